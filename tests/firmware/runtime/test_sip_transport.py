"""SIP transports on loopback: UDP, TCP framing, TLS with a pinned certificate, keep-alives, and RFC 3263
resolution against a real DNS server (dnsmasq) on 127.0.0.1."""

import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from firmware.runtime.sip_transport import Rfc3263Resolver, SipTransport, client_tls_context

MESSAGE = (
    b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK1\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Length: 4\r\n\r\nbody"
)
DNS_PORT = 15053


def _pump(transports, until, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t in transports:
            t.poll(0.01)
        if until():
            return True
    return False


def _pair(kind, **server_kwargs):
    got_server, got_client = [], []
    server = SipTransport(kind, ("127.0.0.1", 0), on_message=lambda d, a: got_server.append((d, a)), **server_kwargs)
    return server, got_server, got_client


def test_udp_round_trip_and_crlf_keepalive():
    server, got_server, got_client = _pair("udp")
    client = SipTransport("udp", ("127.0.0.1", 0), on_message=lambda d, a: got_client.append((d, a)))
    try:
        assert client.send(MESSAGE, server.local_address)
        assert _pump([server, client], lambda: got_server)
        data, addr = got_server[0]
        assert data == MESSAGE and addr == client.local_address
        server.send(b"SIP/2.0 200 OK\r\n\r\n", addr)
        assert _pump([server, client], lambda: got_client)
        # A CRLFCRLF ping is answered with CRLF and never reaches the UserAgent.
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.settimeout(2)
        raw.sendto(b"\r\n\r\n", server.local_address)
        _pump([server], lambda: False, 0.2)
        assert raw.recvfrom(100)[0] == b"\r\n"
        raw.close()
        assert len(got_server) == 1
    finally:
        server.close()
        client.close()


def test_tcp_framing_responses_on_the_same_connection_and_keepalive():
    server, got_server, got_client = _pair("tcp")
    client = SipTransport("tcp", ("127.0.0.1", 0), on_message=lambda d, a: got_client.append((d, a)), listen=False)
    try:
        assert client.send(MESSAGE + MESSAGE, server.local_address)  # two messages in one segment
        assert _pump([server, client], lambda: len(got_server) == 2)
        assert got_server[0][0] == MESSAGE and got_server[1][0] == MESSAGE
        peer = got_server[0][1]
        assert server.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", peer)
        assert _pump([server, client], lambda: got_client)
        assert got_client[0][0].startswith(b"SIP/2.0 200 OK")
        client.keepalive()  # RFC 5626 ping; the server answers with a pong, nothing is delivered
        _pump([server, client], lambda: False, 0.3)
        assert len(got_server) == 2 and len(got_client) == 1
        # A message split across segments is reassembled.
        raw = socket.create_connection(server.local_address, timeout=2)
        raw.sendall(MESSAGE[:20])
        _pump([server], lambda: False, 0.1)
        raw.sendall(MESSAGE[20:])
        assert _pump([server], lambda: len(got_server) == 3)
        # A stream without Content-Length is a framing error: the connection is closed.
        raw.sendall(b"OPTIONS sip:x SIP/2.0\r\nVia: x\r\n\r\n")
        assert _pump([server], lambda: server.malformed == 1)
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


def test_tls_with_pinned_certificate_and_refusal_without_it(tmp_path):
    cert, key = _self_signed(tmp_path, "sip.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server, got_server, got_client = _pair("tls", server_tls_context=server_context)
    pinned = SipTransport(
        "tls",
        ("127.0.0.1", 0),
        on_message=lambda d, a: got_client.append((d, a)),
        tls_context=client_tls_context(pinned_cert=cert),
        listen=False,
    )
    untrusted = SipTransport("tls", ("127.0.0.1", 0), tls_context=client_tls_context(), listen=False)
    try:
        import threading

        accept = threading.Thread(target=lambda: _pump([server], lambda: got_server, 3.0))
        accept.start()
        assert pinned.send(MESSAGE, server.local_address)
        accept.join()
        assert got_server and got_server[0][0] == MESSAGE
        server.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", got_server[0][1])
        assert _pump([pinned], lambda: got_client)
        # The system CAs do not know our self-signed certificate: no connection, no data.
        accept = threading.Thread(target=lambda: _pump([server], lambda: False, 1.0))
        accept.start()
        assert untrusted.send(MESSAGE, server.local_address) is False
        accept.join()
        assert untrusted.errors == 1 and len(got_server) == 1
    finally:
        server.close()
        pinned.close()
        untrusted.close()


@pytest.fixture
def dnsmasq(tmp_path):
    binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not os.path.exists(binary):
        pytest.fail("dnsmasq is not installed: `make test` installs dnsmasq-base")
    args = [
        binary,
        "-k",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--port={}".format(DNS_PORT),
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
    resolver = Rfc3263Resolver(nameservers=["127.0.0.1"], port=DNS_PORT, timeout=1.0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not resolver.addresses("plain.test")[0]:
        time.sleep(0.05)
    yield resolver
    proc.terminate()
    proc.wait(timeout=5)


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


def test_transport_sends_to_the_srv_target(dnsmasq):
    got = []
    server = SipTransport("udp", ("127.0.0.1", 15060), on_message=lambda d, a: got.append(d))
    client = SipTransport("udp", ("127.0.0.1", 0), resolver=dnsmasq)
    try:
        assert client.send(MESSAGE, ("example.test", None))
        assert _pump([server], lambda: got)
    finally:
        server.close()
        client.close()


def test_tcp_fails_over_to_the_next_srv_target(dnsmasq):
    got = []
    # sip1.example.test:15061 is the only _sip._tcp target; make a second resolver answer with a dead
    # first target by asking for the UDP records over TCP instead: 15060 (nothing) then 15062 (us).
    server = SipTransport("tcp", ("127.0.0.2", 15062), on_message=lambda d, a: got.append(d))
    client = SipTransport("tcp", ("127.0.0.1", 0), listen=False)
    targets = dnsmasq.resolve("example.test", None, "udp")
    client.resolver = type("Fixed", (), {"resolve": lambda self, *a: [("tcp", ip, port) for _, ip, port in targets]})()
    try:
        assert client.send(MESSAGE, ("example.test", None))
        assert _pump([server, client], lambda: got)
        assert client.errors == 1  # the first target refused the connection
    finally:
        server.close()
        client.close()


def test_tls_handshake_never_blocks_the_loop(tmp_path):
    import threading

    cert, key = _self_signed(tmp_path, "sip.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server, got_server, _ = _pair("tls", server_tls_context=server_context, max_connections=2)
    silent = [socket.create_connection(server.local_address, timeout=2) for _ in range(3)]
    try:
        started = time.monotonic()
        _pump([server], lambda: False, 0.3)  # accepts the silent clients; must not wait on them
        assert time.monotonic() - started < 1.0
        assert len(server.sockets()) <= 3  # listener + at most max_connections (older ones evicted)
        client = SipTransport("tls", ("127.0.0.1", 0), tls_context=client_tls_context(pinned_cert=cert), listen=False)
        worker = threading.Thread(target=lambda: _pump([server], lambda: got_server, 3.0))
        worker.start()
        assert client.send(MESSAGE, server.local_address)
        worker.join()
        assert got_server and got_server[0][0] == MESSAGE
        client.close()
    finally:
        for sock in silent:
            sock.close()
        server.close()
