"""SIP transports on loopback: UDP, TCP framing, TLS with a pinned certificate, keep-alives, and RFC 3263
resolution against a real DNS server (dnsmasq) on 127.0.0.1. Every transport runs on a
firmware.runtime.loop.Loop, as in the phone (there is no other way to run it)."""

import contextlib
import datetime
import ipaddress
import os
import select
import socket
import ssl
import time

import pytest

from firmware.runtime.loop import Loop
from firmware.runtime.sip_transport import SipTransport, client_tls_context

MESSAGE = (
    b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK1\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Length: 4\r\n\r\nbody"
)


class _SkewedClock:
    """The loop's clock for tests that jump ahead: real time plus `skew`, so the loop still waits."""

    def __init__(self):
        self.skew = 0.0

    def __call__(self):
        return time.monotonic() + self.skew


@pytest.fixture
def loop():
    loop = Loop()
    yield loop
    loop.close()


@pytest.fixture
def skewed():
    clock = _SkewedClock()
    loop = Loop(clock=clock)
    yield loop, clock
    loop.close()


def _pump(loop, until, timeout=3.0):
    """Run the loop until `until()` holds (True) or `timeout` seconds pass (False)."""
    return loop.run(until=until, timeout=timeout)


def _pair(kind, loop, **server_kwargs):
    got_server, got_client = [], []
    server = SipTransport(
        kind, ("127.0.0.1", 0), loop, on_message=lambda d, a: got_server.append((d, a)), **server_kwargs
    )
    return server, got_server, got_client


def test_udp_round_trip_and_crlf_keepalive(loop):
    server, got_server, got_client = _pair("udp", loop)
    client = SipTransport("udp", ("127.0.0.1", 0), loop, on_message=lambda d, a: got_client.append((d, a)))
    try:
        assert client.send(MESSAGE, server.local_address)
        assert _pump(loop, lambda: got_server)
        data, addr = got_server[0]
        assert data == MESSAGE and addr == client.local_address
        server.send(b"SIP/2.0 200 OK\r\n\r\n", addr)
        assert _pump(loop, lambda: got_client)
        # A CRLFCRLF ping is answered with CRLF and never reaches the UserAgent.
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.settimeout(2)
        raw.sendto(b"\r\n\r\n", server.local_address)
        _pump(loop, lambda: False, 0.2)
        assert raw.recvfrom(100)[0] == b"\r\n"
        raw.close()
        assert len(got_server) == 1
    finally:
        server.close()
        client.close()


def test_tcp_framing_responses_on_the_same_connection_and_keepalive(loop):
    server, got_server, got_client = _pair("tcp", loop)
    client = SipTransport(
        "tcp", ("127.0.0.1", 0), loop, on_message=lambda d, a: got_client.append((d, a)), listen=False
    )
    try:
        assert client.send(MESSAGE + MESSAGE, server.local_address)  # two messages in one segment
        assert _pump(loop, lambda: len(got_server) == 2)
        assert got_server[0][0] == MESSAGE and got_server[1][0] == MESSAGE
        peer = got_server[0][1]
        assert server.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", peer)
        assert _pump(loop, lambda: got_client)
        assert got_client[0][0].startswith(b"SIP/2.0 200 OK")
        client.keepalive()  # RFC 5626 ping; the server answers with a pong, nothing is delivered
        _pump(loop, lambda: False, 0.3)
        assert len(got_server) == 2 and len(got_client) == 1
        # A message split across segments is reassembled.
        raw = socket.create_connection(server.local_address, timeout=2)
        raw.sendall(MESSAGE[:20])
        _pump(loop, lambda: False, 0.1)
        raw.sendall(MESSAGE[20:])
        assert _pump(loop, lambda: len(got_server) == 3)
        # A stream without Content-Length is a framing error: the connection is closed.
        raw.sendall(b"OPTIONS sip:x SIP/2.0\r\nVia: x\r\n\r\n")
        assert _pump(loop, lambda: server.malformed == 1)
        raw.close()
    finally:
        server.close()
        client.close()


def _self_signed(tmp_path, name):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp_path / "cert.pem"
    key_path = tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def test_tls_with_pinned_certificate_and_refusal_without_it(tmp_path, loop):
    cert, key = _self_signed(tmp_path, "sip.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server, got_server, got_client = _pair("tls", loop, server_tls_context=server_context)
    pinned = SipTransport(
        "tls",
        ("127.0.0.1", 0),
        loop,
        on_message=lambda d, a: got_client.append((d, a)),
        tls_context=client_tls_context(pinned_cert=cert),
        listen=False,
    )
    refused = []
    untrusted = SipTransport(
        "tls", ("127.0.0.1", 0), loop, tls_context=client_tls_context(), listen=False, on_error=refused.append
    )
    try:
        assert pinned.send(MESSAGE, server.local_address)
        assert _pump(loop, lambda: got_server, 3.0)
        assert got_server and got_server[0][0] == MESSAGE
        server.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", got_server[0][1])
        assert _pump(loop, lambda: got_client)
        # The system CAs do not know our self-signed certificate: no connection, no data. send() only
        # queues; the failed handshake is reported through on_error.
        assert untrusted.send(MESSAGE, server.local_address)
        assert _pump(loop, lambda: refused, 3.0)
        assert refused == [server.local_address]
        assert untrusted.errors == 1 and len(got_server) == 1
    finally:
        server.close()
        pinned.close()
        untrusted.close()


def test_rfc3263_naptr_srv_a(dnsmasq):
    resolver = dnsmasq
    # NAPTR picks the service of our transport, then SRV in priority order, then A.
    assert resolver.resolve("example.test", None, "udp") == [("udp", "127.0.0.1", 15060), ("udp", "127.0.0.2", 15062)]
    assert resolver.resolve("example.test", None, "tcp") == [("tcp", "127.0.0.1", 15061)]
    # No NAPTR: SRV for the transport (§4.2).
    assert resolver.resolve("srvonly.test", None, "tls") == [("tls", "127.0.0.2", 15063)]
    # Neither: A record on the default port; an explicit port skips NAPTR/SRV.
    assert resolver.resolve("plain.test", None, "udp") == [("udp", "127.0.0.3", 5060)]
    assert resolver.resolve("plain.test", None, "tls") == [("tls", "127.0.0.3", 5061)]
    assert resolver.resolve("plain.test", 5099, "udp") == [("udp", "127.0.0.3", 5099)]
    assert resolver.resolve("nothing.test", None, "udp") == []
    assert resolver.resolve("127.0.0.9", None, "udp") == [("udp", "127.0.0.9", 5060)]


def test_transport_sends_to_the_srv_target(dnsmasq, loop):
    got = []
    server = SipTransport("udp", ("127.0.0.1", 15060), loop, on_message=lambda d, a: got.append(d))
    client = SipTransport("udp", ("127.0.0.1", 0), loop, resolver=dnsmasq)
    try:
        assert client.send(MESSAGE, ("example.test", None))
        assert _pump(loop, lambda: got)
    finally:
        server.close()
        client.close()


def test_tcp_fails_over_to_the_next_srv_target(dnsmasq, loop):
    got = []
    # sip1.example.test:15061 is the only _sip._tcp target; make a second resolver answer with a dead
    # first target by asking for the UDP records over TCP instead: 15060 (nothing) then 15062 (us).
    server = SipTransport("tcp", ("127.0.0.2", 15062), loop, on_message=lambda d, a: got.append(d))
    client = SipTransport("tcp", ("127.0.0.1", 0), loop, listen=False)
    targets = dnsmasq.resolve("example.test", None, "udp")
    client.resolver = type("Fixed", (), {"resolve": lambda self, *a: [("tcp", ip, port) for _, ip, port in targets]})()
    try:
        assert client.send(MESSAGE, ("example.test", None))
        assert _pump(loop, lambda: got)
        assert client.errors == 1  # the first target refused the connection
    finally:
        server.close()
        client.close()


def test_tls_handshake_never_blocks_the_loop(tmp_path, loop):
    cert, key = _self_signed(tmp_path, "sip.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server, got_server, _ = _pair("tls", loop, server_tls_context=server_context, max_connections=2)
    silent = [socket.create_connection(server.local_address, timeout=2) for _ in range(3)]
    try:
        started = time.monotonic()
        _pump(loop, lambda: False, 0.3)  # accepts the silent clients; must not wait on them
        assert time.monotonic() - started < 1.0
        assert len(server.sockets()) <= 3  # listener + at most max_connections (older ones evicted)
        client = SipTransport(
            "tls", ("127.0.0.1", 0), loop, tls_context=client_tls_context(pinned_cert=cert), listen=False
        )
        assert client.send(MESSAGE, server.local_address)
        assert _pump(loop, lambda: got_server, 3.0)
        assert got_server and got_server[0][0] == MESSAGE
        client.close()
    finally:
        for sock in silent:
            sock.close()
        server.close()


# -- connections that never block the loop --------------------------------------------------------------


class _Fixed:
    """A resolver that answers every name with the same targets (RFC 3263 order)."""

    def __init__(self, targets):
        self.targets = targets

    def resolve(self, host, port, transport, secure=False):
        return list(self.targets)


def _silent_listener():
    """A TCP port whose connects never complete: a backlog of 0 already holding one connection, so the
    kernel drops further SYNs (the client sees a host that does not answer)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.socket()
    filler.setblocking(False)
    filler.connect_ex(listener.getsockname())
    # Writable once the handshake is done and the connection sits in the backlog.
    _, writable, _ = select.select([], [filler], [], 5.0)
    assert writable, "the filler connection never completed"
    return listener, filler


def _free_port():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def test_connect_to_a_silent_target_does_not_block_and_is_reported_after_the_timeout(loop):
    listener, filler = _silent_listener()
    failed = []
    client = SipTransport("tcp", ("127.0.0.1", 0), loop, listen=False, on_error=failed.append, connect_timeout=0.3)
    try:
        started = time.monotonic()
        assert client.send(MESSAGE, listener.getsockname())
        assert client.send(MESSAGE, listener.getsockname())  # queued on the same opening connection
        assert time.monotonic() - started < 0.1  # the old blocking connect waited connect_timeout here
        assert not failed
        assert _pump(loop, lambda: failed, 3.0)
        assert failed == [listener.getsockname()]  # once per address, not once per message
        assert client.errors == 1 and client.sockets() == []
    finally:
        client.close()
        listener.close()
        filler.close()


def test_failover_to_the_next_target_after_a_timeout_and_a_refusal_keeps_the_queue_in_order(loop):
    listener, filler = _silent_listener()
    got, failed = [], []
    server = SipTransport("tcp", ("127.0.0.1", 0), loop, on_message=lambda d, a: got.append(d))
    targets = [("tcp",) + listener.getsockname(), ("tcp", "127.0.0.1", _free_port()), ("tcp",) + server.local_address]
    client = SipTransport(
        "tcp",
        ("127.0.0.1", 0),
        loop,
        listen=False,
        on_error=failed.append,
        connect_timeout=0.3,
        resolver=_Fixed(targets),
    )
    second = MESSAGE.replace(b"CSeq: 1", b"CSeq: 2")
    try:
        started = time.monotonic()
        assert client.send(MESSAGE, ("sip.example.test", None))
        assert client.send(second, ("sip.example.test", None))
        assert time.monotonic() - started < 0.1
        assert _pump(loop, lambda: len(got) == 2, 3.0)
        assert got == [MESSAGE, second] and not failed
        assert client.errors == 2  # the silent target timed out, the closed port refused
        # The next message reuses the connection that worked.
        assert client.send(MESSAGE, ("sip.example.test", None))
        assert _pump(loop, lambda: len(got) == 3)
    finally:
        client.close()
        server.close()
        listener.close()
        filler.close()


def test_every_target_refusing_is_an_error_reported_once(loop):
    failed = []
    ports = [_free_port(), _free_port()]
    client = SipTransport(
        "tcp",
        ("127.0.0.1", 0),
        loop,
        listen=False,
        on_error=failed.append,
        resolver=_Fixed([("tcp", "127.0.0.1", p) for p in ports]),
    )
    try:
        accepted = client.send(MESSAGE, ("down.example.test", None))
        if accepted:  # the refusals arrive through the loop
            assert _pump(loop, lambda: failed, 3.0)
            assert failed == [("down.example.test", None)]
        else:  # refused at once: the return value says it, on_error must stay quiet
            _pump(loop, lambda: False, 0.2)
            assert failed == []
        assert client.errors == 2
    finally:
        client.close()


def test_a_peer_that_does_not_read_never_blocks_send(loop):
    failed = []
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the sender backs up
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = SipTransport("tcp", ("127.0.0.1", 0), loop, listen=False, on_error=failed.append)
    try:
        assert client.send(MESSAGE, listener.getsockname())
        peer, _ = listener.accept()
        assert _pump(loop, lambda: client.sockets(), 2.0)
        big = MESSAGE.replace(b"Content-Length: 4\r\n\r\nbody", b"Content-Length: 200000\r\n\r\n" + b"x" * 200000)
        started = time.monotonic()
        accepted = [client.send(big, listener.getsockname()) for _ in range(30)]  # ~6 MB
        assert time.monotonic() - started < 0.5  # the old blocking sendall waited here, then failed
        # More than the socket buffers hold and the queue bound: the first ones are taken, the rest
        # refused at once (False), never a silent loss of a message that send() accepted.
        assert accepted[0] and not accepted[-1] and accepted == sorted(accepted, reverse=True)
        expected = MESSAGE + big * accepted.count(True)
        peer.settimeout(0.002)
        received = b""
        deadline = time.monotonic() + 5
        while len(received) < len(expected) and time.monotonic() < deadline:
            loop.run_once(0)
            try:
                received += peer.recv(1 << 20)
            except TimeoutError:
                pass
        assert received == expected
        assert not failed
        peer.close()
    finally:
        client.close()
        listener.close()


def test_tls_client_and_server_in_one_thread_on_the_loop(tmp_path, loop):
    """Both ends on one Loop: the handshake can only finish if neither side ever blocks on it."""
    cert, key = _self_signed(tmp_path, "sip.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    got_server, got_client, failed = [], [], []
    server = SipTransport(
        "tls",
        ("127.0.0.1", 0),
        loop,
        on_message=lambda d, a: got_server.append((d, a)),
        on_error=failed.append,
        server_tls_context=server_context,
    )
    client = SipTransport(
        "tls",
        ("127.0.0.1", 0),
        loop,
        on_message=lambda d, a: got_client.append(d),
        on_error=failed.append,
        tls_context=client_tls_context(pinned_cert=cert),
        listen=False,
    )
    untrusted = SipTransport(
        "tls", ("127.0.0.1", 0), loop, on_error=failed.append, tls_context=client_tls_context(), listen=False
    )
    try:
        started = time.monotonic()
        assert client.send(MESSAGE, server.local_address)
        assert time.monotonic() - started < 0.1
        assert loop.run(until=lambda: got_server, timeout=5)
        assert got_server[0][0] == MESSAGE
        assert server.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", got_server[0][1])
        assert loop.run(until=lambda: got_client, timeout=5)
        # A server certificate the system CAs do not know: the handshake fails, reported via on_error.
        assert untrusted.send(MESSAGE, server.local_address)
        assert loop.run(until=lambda: failed, timeout=5)
        assert failed == [server.local_address] and len(got_server) == 1 and untrusted.errors == 1
    finally:
        untrusted.close()
        client.close()
        server.close()


def test_connect_timeout_fires_from_the_loop_timer(loop):
    listener, filler = _silent_listener()
    failed = []
    client = SipTransport("tcp", ("127.0.0.1", 0), loop, listen=False, on_error=failed.append, connect_timeout=0.2)
    try:
        assert client.send(MESSAGE, listener.getsockname())
        started = time.monotonic()
        assert loop.run(until=lambda: failed, timeout=3)
        assert 0.1 < time.monotonic() - started < 1.5
    finally:
        client.close()
        listener.close()
        filler.close()


def test_without_on_error_a_connect_still_never_blocks_and_its_failure_is_counted(loop):
    """There is no blocking mode any more (issue 13): on_error only decides who hears of a failure."""
    listener, filler = _silent_listener()
    client = SipTransport("tcp", ("127.0.0.1", 0), loop, listen=False, connect_timeout=0.2)
    try:
        started = time.monotonic()
        assert client.send(MESSAGE, listener.getsockname())
        assert time.monotonic() - started < 0.1  # the old blocking mode waited connect_timeout here
        assert client.errors == 0
        assert loop.run(until=lambda: client.errors, timeout=3)
        assert client.errors == 1 and client.sockets() == []
    finally:
        client.close()
        listener.close()
        filler.close()


# -- UDP failover (RFC 3263 §4.3) ---------------------------------------------------------------------


def _closed_udp_port():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def test_udp_moves_to_the_next_target_on_icmp_unreachable(loop):
    got, failed = [], []
    server = SipTransport("udp", ("127.0.0.1", 0), loop, on_message=lambda d, a: got.append(d))
    targets = [("udp", "127.0.0.1", _closed_udp_port()), ("udp",) + server.local_address]
    client = SipTransport("udp", ("127.0.0.1", 0), loop, on_error=failed.append, resolver=_Fixed(targets))
    try:
        assert client.send(MESSAGE, ("sip.example.test", None))  # to the dead first target
        assert _pump(loop, lambda: client.errors, 1.0)  # the ICMP error came back
        assert client.send(MESSAGE, ("sip.example.test", None))  # a retransmission: the next target
        assert _pump(loop, lambda: got)
        assert got == [MESSAGE] and failed == []
    finally:
        client.close()
        server.close()


def test_udp_icmp_unreachable_everywhere_is_reported(loop):
    failed = []
    targets = [("udp", "127.0.0.1", _closed_udp_port()), ("udp", "127.0.0.1", _closed_udp_port())]
    client = SipTransport("udp", ("127.0.0.1", 0), loop, on_error=failed.append, resolver=_Fixed(targets))
    lone = ("127.0.0.1", _closed_udp_port())
    try:
        for _ in range(2):
            assert client.send(MESSAGE, ("down.example.test", None))
            _pump(loop, lambda: False, 0.2)
        assert failed == [("down.example.test", None)]  # the first target failed over, the second reported
        assert client.send(MESSAGE, lone)
        assert _pump(loop, lambda: len(failed) == 2, 1.0)
        assert failed[1] == lone
    finally:
        client.close()


def test_udp_moves_on_from_a_silent_target_but_not_from_one_that_answers(skewed):
    loop, clock = skewed
    got = []
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    server = SipTransport("udp", ("127.0.0.1", 0), loop, on_message=lambda d, a: got.append(a))
    targets = [("udp",) + silent.getsockname(), ("udp",) + server.local_address]
    client = SipTransport("udp", ("127.0.0.1", 0), loop, resolver=_Fixed(targets))
    name = ("sip.example.test", None)
    try:
        silent.settimeout(1)
        for delay in (0.0, 0.5, 1.0, 2.0):  # Timer E retransmissions within the silence window
            clock.skew += delay
            assert client.send(MESSAGE, name)
            assert silent.recvfrom(70000)[0] == MESSAGE
        clock.skew += 0.6  # 4.1 s of silence since the first datagram
        assert client.send(MESSAGE, name)
        assert _pump(loop, lambda: got)
        # The second target answers: it stays in use however long the next pause is.
        server.send(b"SIP/2.0 200 OK\r\n\r\n", got[0])
        assert _pump(loop, lambda: False, 0.2) is False
        clock.skew += 60
        assert client.send(MESSAGE, name)
        assert _pump(loop, lambda: len(got) == 2)
        # A message that gets no answer (an ACK) followed by another one seconds later is no failover.
        ack = MESSAGE.replace(b"OPTIONS", b"ACK")
        assert client.send(ack, name)
        clock.skew += 10
        assert client.send(MESSAGE, name)
        assert _pump(loop, lambda: len(got) == 4)
        silent.settimeout(0.1)
        with pytest.raises(TimeoutError):
            silent.recvfrom(70000)
    finally:
        client.close()
        server.close()
        silent.close()


def test_a_connection_that_breaks_with_data_queued_is_reported(loop):
    failed = []
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = SipTransport("tcp", ("127.0.0.1", 0), loop, listen=False, on_error=failed.append)
    try:
        assert client.send(MESSAGE, listener.getsockname())
        peer, _ = listener.accept()
        assert _pump(loop, lambda: client.sockets(), 2.0)
        big = MESSAGE.replace(b"Content-Length: 4\r\n\r\nbody", b"Content-Length: 200000\r\n\r\n" + b"x" * 200000)
        while client.send(big, listener.getsockname()):  # until the queue is full: data is waiting
            pass
        assert not failed
        peer.close()  # unread data: the kernel resets the connection
        assert _pump(loop, lambda: failed, 3.0)
        assert failed == [listener.getsockname()] and client.sockets() == []
    finally:
        client.close()
        listener.close()


def test_user_agent_on_the_loop_keeps_running_while_connecting_and_learns_the_failure(loop):
    """The wiring the shell uses: send() results and on_error both end in ua.transport_error()."""

    from firmware.sip import events
    from firmware.sip.useragent import UserAgent

    listener, filler = _silent_listener()
    ticks, got = [], []
    holder = {}

    def on_error(addr):
        holder["ua"].transport_error(addr, loop.now())
        pump()

    transport = SipTransport("tcp", ("127.0.0.1", 0), loop, listen=False, on_error=on_error, connect_timeout=0.5)
    ua = holder["ua"] = UserAgent(transport.local_address, os.urandom, transport="tcp")

    def pump():
        for data, addr in ua.datagrams_to_send(loop.now()):
            if not transport.send(data, addr):
                ua.transport_error(addr, loop.now())
        event = ua.next_event()
        while event is not None:
            got.append(event)
            event = ua.next_event()

    def tick():
        ticks.append(loop.now())
        loop.call_later(0.01, tick)

    try:
        started = loop.now()
        ua.invite("sip:bob@127.0.0.1:{};transport=tcp".format(listener.getsockname()[1]), b"", started)
        pump()
        tick()
        assert loop.run(until=lambda: any(isinstance(e, events.CallFailed) for e in got), timeout=5)
        failure = [e for e in got if isinstance(e, events.CallFailed)][0]
        assert (failure.status, failure.reason) == (503, "transport error")
        assert 0.4 < loop.now() - started < 2.0  # the connect timeout, not Timer B (32 s)
        assert len(ticks) >= 20  # the loop kept running while the connect was pending
    finally:
        transport.close()
        listener.close()
        filler.close()


def test_tls_call_between_two_user_agents_in_one_thread(tmp_path):
    """Before non-blocking connects the callee had to run in a thread of its own (tests/interop/sip/
    test_tls.py): the caller's handshake blocked until the callee answered it."""
    from firmware.sip import events
    from tests.interop.sip.driver import Driver, offer

    cert, key = _self_signed(tmp_path, "bob.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    bob = Driver(transport="tls", transport_kwargs={"server_tls_context": server_context})
    alice = Driver(transport="tls", transport_kwargs={"tls_context": client_tls_context(pinned_cert=cert)})
    bob.on_event = lambda e: isinstance(e, events.IncomingCall) and bob.ua.answer(e.call_id, offer(43002), bob.now())
    try:
        started = time.monotonic()
        call = alice.ua.invite("sip:bob@127.0.0.1:{};transport=tls".format(bob.address[1]), offer(43000), alice.now())
        deadline = time.monotonic() + 10
        while not alice.of(events.CallAnswered) and time.monotonic() < deadline:
            alice.pump_once(0.005)
            bob.pump_once(0.005)
        assert alice.of(events.CallAnswered), alice.events
        assert time.monotonic() - started < 3
        alice.ua.hangup(call, alice.now())
        deadline = time.monotonic() + 5
        while not (alice.of(events.CallEnded) and bob.of(events.CallEnded)) and time.monotonic() < deadline:
            alice.pump_once(0.005)
            bob.pump_once(0.005)
        assert bob.of(events.CallConfirmed) and bob.of(events.CallEnded)[0].by_remote
        assert alice.transport_errors == [] and bob.transport_errors == []
    finally:
        alice.close()
        bob.close()


@contextlib.contextmanager
def _registrar_flow(loop):
    """A client transport with one open TCP connection to a listening socket standing in for a registrar:
    yields (client, the registrar's end, its address, the addresses on_error was called with)."""
    failed = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = SipTransport("tcp", ("127.0.0.1", 0), loop, listen=False, on_error=failed.append)
    peer = None
    try:
        addr = listener.getsockname()
        assert client.send(MESSAGE, addr)
        peer, _ = listener.accept()
        assert _pump(loop, lambda: client.sockets(), 2.0)
        yield client, peer, addr, failed
    finally:
        client.close()
        listener.close()
        if peer is not None:
            peer.close()


def test_a_ping_without_a_pong_fails_the_flow_after_10_seconds(skewed):
    """RFC 5626 §4.4.1 (issue 11): a registrar that stopped answering on its TCP connection is noticed
    10 s after a keep-alive, and the address send() used is told, so the registration is renewed."""
    loop, clock = skewed
    with _registrar_flow(loop) as (client, peer, addr, failed):
        assert client.send(b"\r\n\r\n", addr)  # the UserAgent's keep-alive for its registration
        assert peer.recv(65536).endswith(b"\r\n\r\n")
        clock.skew += 9.0
        loop.run_once(0.01)
        assert not failed  # not yet: the pong may still come
        clock.skew += 1.5
        loop.run_once(0.01)
        assert failed == [addr] and client.flow_failures == 1 and client.sockets() == []


def test_a_pong_keeps_the_flow_and_a_closed_connection_fails_it(skewed):
    loop, clock = skewed
    with _registrar_flow(loop) as (client, peer, addr, failed):
        client.keepalive()
        peer.recv(65536)
        peer.sendall(b"\r\n")  # the pong
        loop.run_once(0.1)
        clock.skew += 11.0
        loop.run_once(0.01)
        assert not failed and client.flow_failures == 0
        peer.close()  # e.g. the registrar restarts: its connection goes away with nothing queued
        assert _pump(loop, lambda: failed, 2.0)
        assert failed == [addr]
