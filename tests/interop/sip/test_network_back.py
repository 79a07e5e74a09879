"""Issue 11: when the network comes back, Sotto registers again at once, not after its back-off.

Two network namespaces the test creates, joined by a veth pair (10.99.0.2 <-> 10.99.0.1): in one
`sotto answer --register`, in the other a small UDP registrar that answers every REGISTER 200 and logs
when it came. The phone's link goes down for NETWORK_DOWN seconds: its keep-alive fails (ENETUNREACH),
its REGISTERs fail and back off (1-2 s, 2-4 s, ... 16-32 s by then). When the link comes back, the
route check that runs while the registration has failed sees it, and a REGISTER reaches the registrar
within a few seconds instead of after the rest of the back-off.
"""

import os
import shutil
import subprocess
import sys
import time

import pytest

from firmware.runtime.endpoint import NETWORK_CHECK_INTERVAL
from tests.interop import sotto
from tests.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.interop

NETWORK_DOWN = 35.0
REGISTRAR_PORT = 15170
SOTTO_PORT = 15172

REGISTRAR = r"""
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("10.99.0.1", int(sys.argv[1])))
log = open(sys.argv[2], "a")
while True:
    data, addr = sock.recvfrom(65536)
    if not data.startswith((b"REGISTER ", b"OPTIONS ")):
        continue
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    lines = head.split("\r\n")
    keep = [l for l in lines[1:] if l.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "cseq")]
    reply = ["SIP/2.0 200 OK"] + keep
    if data.startswith(b"REGISTER "):
        reply.append("Contact: <sip:alice@10.99.0.2:%s>;expires=3600" % sys.argv[3])
        log.write("REGISTER %.3f\n" % time.monotonic())
        log.flush()
    reply = ("\r\n".join(reply) + "\r\nContent-Length: 0\r\n\r\n").encode()
    sock.sendto(reply, addr)
"""


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _registers(path):
    if not path.exists():
        return []
    return [float(line.split()[1]) for line in path.read_text().splitlines() if line.startswith("REGISTER ")]


def test_registration_comes_back_at_once_when_the_network_does(tmp_path):
    if shutil.which("ip") is None:
        pytest.fail("the `ip` command (iproute2) is needed for network namespaces: run `make test`")
    tag = os.getpid()
    phone_ns, registrar_ns = "sotto-ph-{}".format(tag), "sotto-rg-{}".format(tag)
    phone_link, registrar_link = "vph{}".format(tag), "vrg{}".format(tag)
    processes = []
    try:
        _ip("netns", "add", phone_ns)
        _ip("netns", "add", registrar_ns)
        # Created inside the namespaces: nothing appears in the host's own network, even for a moment.
        _ip(
            "-n",
            phone_ns,
            "link",
            "add",
            phone_link,
            "type",
            "veth",
            "peer",
            "name",
            registrar_link,
            "netns",
            registrar_ns,
        )
        _ip("-n", phone_ns, "addr", "add", "10.99.0.2/24", "dev", phone_link)
        _ip("-n", registrar_ns, "addr", "add", "10.99.0.1/24", "dev", registrar_link)
        for ns, link in ((phone_ns, phone_link), (registrar_ns, registrar_link)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", link, "up")
        log = tmp_path / "registrar.log"
        registrar = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                registrar_ns,
                sys.executable,
                "-c",
                REGISTRAR,
                str(REGISTRAR_PORT),
                str(log),
                str(SOTTO_PORT),
            ],
            stderr=subprocess.PIPE,
        )
        processes.append(registrar)
        phone = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                phone_ns,
                *sotto.sotto_command(
                    "answer",
                    "--listen",
                    "10.99.0.2:{}".format(SOTTO_PORT),
                    "--register",
                    "sip:alice@10.99.0.1",
                    "--password",
                    "alicepw",
                    "--proxy",
                    "10.99.0.1:{}".format(REGISTRAR_PORT),
                    "--encryption",
                    "none",
                    "--timeout",
                    "150",
                    "--log-level",
                    "info",
                    "--cache",
                    str(tmp_path / "cache"),
                ),
            ],
            cwd=sotto.ROOT,
            env=sotto.environment(tmp_path / "home"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(phone)

        def alive():
            assert phone.poll() is None, phone.communicate()[1][-2000:]

        wait_until(lambda: _registers(log), 10, "sotto to register", alive, interval=0.1)
        _ip("-n", phone_ns, "link", "set", phone_link, "down")
        down_at = time.monotonic()
        time.sleep(NETWORK_DOWN)
        _ip("-n", phone_ns, "link", "set", phone_link, "up")
        up_at = time.monotonic()
        assert all(t < down_at for t in _registers(log)), "a REGISTER arrived while the link was down"
        try:
            wait_until(lambda: [t for t in _registers(log) if t > up_at], 40, "a REGISTER", alive, interval=0.1)
        except WaitTimeout:
            phone.kill()
            err = phone.communicate()[1][-4000:]
            raise AssertionError("no REGISTER within 40 s of the network coming back: " + err) from None
        took = min(t for t in _registers(log) if t > up_at) - up_at
        print("\nregistered again {:.1f} s after the network came back (down {:.0f} s)".format(took, NETWORK_DOWN))
        assert phone.poll() is None
        assert took <= NETWORK_CHECK_INTERVAL + 2.0, took
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=10)
        for ns in (phone_ns, registrar_ns):  # deleting a namespace deletes its end of the veth pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


class _FakeLoop:
    def __init__(self):
        self.time = 100.0
        self.timers = []

    def now(self):
        return self.time

    def call_later(self, delay, callback):
        self.timers.append((self.time + delay, callback))
        return None


def test_the_route_check_registers_at_once_only_after_the_route_was_lost(monkeypatch):
    """The watcher itself (the namespace test above shows it end to end; this one pins the rule): a
    failed registration whose route disappears and comes back registers at once; a registration that
    failed with the route present (a registrar refusing us) keeps its back-off."""
    from firmware.runtime import endpoint as endpoint_module
    from firmware.runtime import sip_transport
    from firmware.sip.message import parse_message
    from firmware.sip.useragent import UserAgent
    from tests.firmware.sip.netsim import counter_rng

    registrar = ("10.99.0.1", 5060)
    ua = UserAgent(("10.99.0.2", 5062), counter_rng("net"), aor="sip:alice@10.99.0.1", outbound_proxy=registrar)
    ua.register(0.0)
    ua.datagrams_to_send(0.0)
    ua.transport_error(registrar, 0.0)  # the send failed: registration failed, backing off
    assert ua.registration_state == "failed"
    endpoint = endpoint_module.Endpoint.__new__(endpoint_module.Endpoint)
    endpoint.ua = ua
    endpoint.loop = _FakeLoop()
    endpoint.pump = lambda: None
    endpoint._route_lost = False
    routes = {"up": True}
    monkeypatch.setattr(sip_transport, "route_available", lambda addr: routes["up"])
    endpoint._watch_network()  # route present all along: nothing to do (the back-off stands)
    assert ua.datagrams_to_send(100.0) == []
    routes["up"] = False
    endpoint._watch_network()
    assert ua.datagrams_to_send(100.0) == []
    routes["up"] = True
    endpoint._watch_network()
    sent = [parse_message(d) for d, _ in ua.datagrams_to_send(100.0)]
    assert [m.method for m in sent] == ["REGISTER"]
    assert len(endpoint.loop.timers) == 3  # the check re-arms itself every time
