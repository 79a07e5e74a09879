"""A phone that listens on every interface (the image's `listen = "0.0.0.0:5060"`) tells its peers an
address they can reach: never 0.0.0.0 in Via, Contact or the SDP's c= line (RFC 3264 §6)."""

import re
import socket
import time

import pytest

from tests.interop import sotto

pytestmark = pytest.mark.interop

OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {rtp} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def _invite(target_port, local_port, rtp_port):
    body = OFFER.format(rtp=rtp_port)
    return (
        "INVITE sip:phone@127.0.0.1:{t} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:{l};branch=z9hG4bK-everywhere;rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:tester@127.0.0.1:{l}>;tag=t1\r\nTo: <sip:phone@127.0.0.1:{t}>\r\n"
        "Call-ID: listen-everywhere@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:tester@127.0.0.1:{l}>\r\n"
        "Content-Type: application/sdp\r\nContent-Length: {n}\r\n\r\n{b}"
    ).format(t=target_port, l=local_port, n=len(body), b=body)


def _request(method, target_port, local_port, to_tag, cseq):
    return (
        "{m} sip:phone@127.0.0.1:{t} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:{l};branch=z9hG4bK-everywhere-{m};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:tester@127.0.0.1:{l}>;tag=t1\r\nTo: <sip:phone@127.0.0.1:{t}>;tag={tag}\r\n"
        "Call-ID: listen-everywhere@127.0.0.1\r\nCSeq: {c} {m}\r\nContent-Length: 0\r\n\r\n"
    ).format(m=method, t=target_port, l=local_port, tag=to_tag, c=cseq)


def _assert_local_address(host):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))  # EADDRNOTAVAIL unless the address is this host's


def test_a_phone_listening_on_every_interface_advertises_a_reachable_address(tmp_path):
    port = sotto.free_udp_port()
    rtp = sotto.free_udp_port()
    phone = sotto.start(
        [
            "answer",
            "--listen",
            "0.0.0.0:{}".format(port),
            "--rtp-port",
            str(rtp),
            "--encryption",
            "none",
            "--timeout",
            "20",
            "--duration",
            "30",
            "--cache",
            str(tmp_path / "cache"),
        ],
        tmp_path,
    )
    tester = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sotto.wait_listening_anywhere(port, phone)
        tester.bind(("127.0.0.1", 0))
        media.bind(("127.0.0.1", 0))
        tester.settimeout(10)
        local = tester.getsockname()[1]
        tester.sendto(_invite(port, local, media.getsockname()[1]).encode(), ("127.0.0.1", port))
        deadline = time.monotonic() + 15
        final = None
        while final is None and time.monotonic() < deadline:
            data = tester.recv(65535).decode()
            if data.startswith("SIP/2.0 2"):
                final = data
        assert final is not None, "no 200 OK to the INVITE"
        head, _, body = final.partition("\r\n\r\n")
        contact = re.search(r"(?im)^(?:Contact|m):.*$", head).group(0)
        connection = re.search(r"(?m)^c=IN IP4 (\S+)", body).group(1)
        contact_host = re.search(r"@([0-9.]+):", contact).group(1)
        assert contact_host != "0.0.0.0", contact
        _assert_local_address(contact_host)  # the default route's source: one of this host's addresses
        assert connection == "127.0.0.1", body  # the source address toward the peer's media address
        to_tag = re.search(r"(?im)^(?:To|t):.*;tag=([^;\s]+)", head).group(1)
        tester.sendto(_request("ACK", port, local, to_tag, 1).encode(), ("127.0.0.1", port))
        tester.sendto(_request("BYE", port, local, to_tag, 2).encode(), ("127.0.0.1", port))
        code, summary, err = sotto.finish(phone, 20)
        assert code == 0 and summary["result"] == "completed", (summary, err[-2000:])
    finally:
        tester.close()
        media.close()
        if phone.poll() is None:
            phone.kill()
            phone.communicate()
