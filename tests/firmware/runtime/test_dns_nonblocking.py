"""The loop never waits on DNS (issue 15): RFC 3263 lookups are non-blocking UDP queries on the Loop.

A stub nameserver on loopback (a thread with its own socket, answering with dnspython-built replies)
answers late, drops queries, or never answers; the UserAgent runs on the production SIP transport
(tests/interop/sip/driver.py's Driver). While a lookup is pending the UA keeps answering OPTIONS, and
the late answer is used. dnsmasq checks the NAPTR/SRV/A plan of the non-blocking path.
"""

import socket
import threading
import time

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from firmware.runtime.dns import Rfc3263Resolver
from firmware.runtime.loop import Loop
from firmware.sip import events
from tests.interop.sip.driver import Driver, offer, pump_until


class StubNameserver:
    """Answers A queries for `names` (name -> ip) after `delay` seconds, dropping the first `drop`
    queries; AAAA/NAPTR/SRV get an empty NOERROR answer; `silent` never answers."""

    def __init__(self, names, delay=0.0, drop=0, silent=False, ttl=60):
        self.names = names
        self.delay = delay
        self.drop = drop
        self.silent = silent
        self.ttl = ttl
        self.queries = []  # (time, name, type)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._timers = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            query = dns.message.from_wire(data)
            question = query.question[0]
            name = question.name.to_text().rstrip(".")
            kind = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((time.monotonic(), name, kind))
            if self.silent or len(self.queries) <= self.drop:
                continue
            response = dns.message.make_response(query)
            if kind == "A" and name in self.names:
                response.answer.append(dns.rrset.from_text(question.name, self.ttl, "IN", "A", self.names[name]))
            elif name not in self.names:
                response.set_rcode(dns.rcode.NXDOMAIN)
            timer = threading.Timer(self.delay, self._reply, (response.to_wire(), peer))
            self._timers.append(timer)
            timer.start()

    def _reply(self, wire, peer):
        try:
            self.sock.sendto(wire, peer)
        except OSError:
            pass

    def asked(self, kind="A"):
        return [q for q in self.queries if q[2] == kind]

    def close(self):
        self._stop.set()
        for timer in self._timers:
            timer.cancel()
        self._thread.join(timeout=2)
        self.sock.close()


def _options(to_port, branch):
    return (
        (
            "OPTIONS sip:ua@127.0.0.1:{port} SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-{branch}\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:probe@127.0.0.1:9>;tag=probe\r\n"
            "To: <sip:ua@127.0.0.1:{port}>\r\n"
            "Call-ID: dns-probe-{branch}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        .format(port=to_port, branch=branch)
        .encode()
    )


@pytest.fixture
def probe():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def _answered(probe):
    try:
        data = probe.recv(4096)
    except BlockingIOError:
        return None
    return data


def test_the_ua_answers_options_while_a_slow_lookup_is_pending_and_then_uses_the_late_answer(probe):
    callee = Driver(port=0)
    stub = StubNameserver({"slow.test": "127.0.0.1"}, delay=1.5)
    resolver = Rfc3263Resolver(nameservers=["127.0.0.1"], port=stub.port, timeout=6.0, tries=2)
    caller = Driver(port=0, transport_kwargs={"resolver": resolver})
    try:
        started = time.monotonic()
        caller.ua.invite("sip:bob@slow.test:{}".format(callee.address[1]), offer(43000), caller.now())
        caller.pump_once(0)
        assert time.monotonic() - started < 0.2  # the invite went to a pending lookup, not a wait
        assert resolver.pending == 1
        # While the lookup waits for the stub, the UA answers OPTIONS from another peer, promptly.
        delays = []
        for n in range(5):
            sent = time.monotonic()
            probe.sendto(_options(caller.address[1], n), caller.address)
            got = None
            while got is None and time.monotonic() - sent < 1.0:
                caller.pump_once(0.01)
                got = _answered(probe)
            assert got is not None and got.startswith(b"SIP/2.0 200"), got
            delays.append(time.monotonic() - sent)
            assert resolver.pending == 1, "the lookup ended before the probes"
        assert max(delays) < 0.25, delays
        # The late answer is used: the INVITE reaches the callee.
        assert pump_until([caller, callee], lambda: callee.of(events.IncomingCall), 5.0)
        asked = stub.asked("A")
        assert len(asked) == 1 and asked[0][0] - started < 0.2
        assert time.monotonic() - started >= 1.5
    finally:
        caller.close()
        callee.close()
        stub.close()


def test_a_dropped_query_is_sent_again_and_answers_are_cached_by_ttl():
    stub = StubNameserver({"lossy.test": "127.0.0.1"}, drop=1, ttl=1)
    resolver = Rfc3263Resolver(nameservers=["127.0.0.1"], port=stub.port, timeout=1.0, tries=2)
    loop = Loop()
    got = []
    try:
        assert resolver.resolve_async(loop, "lossy.test", 5060, "udp", got.append) is None
        assert loop.run(until=lambda: got, timeout=3)
        assert got == [[("udp", "127.0.0.1", 5060)]]
        # The first A query was dropped; the second try (after timeout/tries = 0.5 s) was answered.
        a_queries = stub.asked("A")
        assert len(a_queries) == 2 and 0.4 < a_queries[1][0] - a_queries[0][0] < 1.0
        # Cached for its TTL (1 s): answered at once without a query...
        assert resolver.resolve_async(loop, "lossy.test", 5060, "udp", got.append) == [("udp", "127.0.0.1", 5060)]
        assert len(stub.asked("A")) == 2
        # ...and asked again once it expired.
        loop.run(timeout=1.2)
        assert resolver.resolve_async(loop, "lossy.test", 5060, "udp", got.append) is None
        assert loop.run(until=lambda: len(got) == 2, timeout=3)
        assert len(stub.asked("A")) == 3
    finally:
        resolver.close()
        loop.close()
        stub.close()


def test_a_nameserver_that_never_answers_fails_the_call_with_503_without_stalling():
    stub = StubNameserver({}, silent=True)
    resolver = Rfc3263Resolver(nameservers=["127.0.0.1"], port=stub.port, timeout=1.0, tries=2)
    caller = Driver(port=0, transport_kwargs={"resolver": resolver})
    try:
        started = time.monotonic()
        call = caller.ua.invite("sip:bob@void.test:5099", offer(43002), caller.now())
        assert caller.run_until(lambda: caller.of(events.CallFailed), 4.0)
        took = time.monotonic() - started
        assert caller.of(events.CallFailed) == [events.CallFailed(call, 503, "transport error")]
        # A and AAAA each: 2 tries of 0.5 s, one after the other.
        assert 1.8 < took < 3.0, took
        assert len(stub.asked("A")) == 2 and len(stub.asked("AAAA")) == 2
    finally:
        caller.close()
        stub.close()


def test_the_non_blocking_path_follows_naptr_srv_and_a_like_the_blocking_one(dnsmasq):
    dnsmasq_port = dnsmasq.port
    loop = Loop()
    try:
        for host, port, transport in (
            ("example.test", None, "udp"),
            ("example.test", None, "tcp"),
            ("srvonly.test", None, "tls"),
            ("plain.test", None, "udp"),
            ("plain.test", 5099, "udp"),
            ("nothing.test", None, "udp"),
        ):
            blocking = Rfc3263Resolver(nameservers=["127.0.0.1"], port=dnsmasq_port, timeout=1.0)
            expected = blocking.resolve(host, port, transport)
            resolver = Rfc3263Resolver(nameservers=["127.0.0.1"], port=dnsmasq_port, timeout=1.0)
            got = []
            assert resolver.resolve_async(loop, host, port, transport, got.append) is None
            assert loop.run(until=got.__len__, timeout=3), host
            assert got == [expected], host
        assert expected == []
        assert blocking.resolve("example.test", None, "udp") == [
            ("udp", "127.0.0.1", 15060),
            ("udp", "127.0.0.2", 15062),
        ]
    finally:
        loop.close()
