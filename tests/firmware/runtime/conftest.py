"""Fixtures shared by the runtime tests: a real DNS server (dnsmasq) on 127.0.0.1 with the RFC 3263 records
the SIP transport and DNS tests resolve."""

import os
import socket
import subprocess

import pytest

from firmware.runtime.dns import Rfc3263Resolver
from tests.conftest import require_tool
from tests.waiting import stop_process, wait_until


def _free_dns_port():
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq listens on both)."""
    for _ in range(32):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no port free for both UDP and TCP")


@pytest.fixture
def dnsmasq(tmp_path):
    """dnsmasq answering the test zone; yields a blocking Rfc3263Resolver pointed at it (its `port` is
    dnsmasq's)."""
    binary = require_tool("dnsmasq", "dnsmasq-base")
    # A free port, not a fixed one: two runs of this module at once must not answer each other's queries.
    dns_port = _free_dns_port()
    args = [
        binary,
        "-k",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--port={}".format(dns_port),
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--pid-file=",
        "--log-facility=-",
        "--naptr-record=example.test,10,50,s,SIP+D2T,,_sip._tcp.example.test",
        "--naptr-record=example.test,20,50,s,SIP+D2U,,_sip._udp.example.test",
        "--srv-host=_sip._udp.example.test,sip1.example.test,15060,10,5",
        "--srv-host=_sip._udp.example.test,sip2.example.test,15062,20,5",
        "--srv-host=_sip._tcp.example.test,sip1.example.test,15061,10,5",
        "--srv-host=_sips._tcp.srvonly.test,sip2.example.test,15063,10,5",
        "--host-record=sip1.example.test,127.0.0.1",
        "--host-record=sip2.example.test,127.0.0.2",
        "--host-record=plain.test,127.0.0.3",
    ]
    if os.geteuid() == 0:
        args.append("--user=root")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    resolver = Rfc3263Resolver(nameservers=["127.0.0.1"], port=dns_port, timeout=1.0)

    def alive():
        assert proc.poll() is None, "dnsmasq exited: {}".format(proc.communicate()[0].decode(errors="replace"))

    try:
        wait_until(lambda: resolver.addresses("plain.test")[0], 5, "dnsmasq to answer", alive)
        yield resolver
    finally:
        stop_process(proc, timeout=5)
