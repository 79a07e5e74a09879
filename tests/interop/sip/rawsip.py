"""A hand-written SIP peer for hostile-network tests: it sends exactly the bytes a test gives it.

The point is to send what no well-behaved stack would (torture messages, floods), at a real running
`sotto`, and read the answers with Sotto's own parser.
"""

import socket
import time

from firmware.errors import RemoteProtocolError
from firmware.sip.message import Response, parse_message

SDP = (
    "v=0\r\n"
    "o=raw 1 1 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio {rtp_port} RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=ptime:{ptime}\r\n"
)


def request(
    method,
    target,
    local,
    call_id,
    branch,
    cseq=1,
    to_tag="",
    body=b"",
    extra="",
    content_length=None,
    max_forwards="70",
    uri=None,
):
    """The bytes of one request from `local` (host, port) to `target` (host, port), for `uri` (default:
    sip:sotto@target)."""
    uri = uri or "sip:sotto@{}:{}".format(*target)
    head = (
        "{m} {uri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP {lh}:{lp};branch=z9hG4bK{branch};rport\r\n"
        "Max-Forwards: {mf}\r\n"
        "From: <sip:raw@{lh}:{lp}>;tag=raw{call_id}\r\n"
        "To: <{uri}>{to_tag}\r\n"
        "Call-ID: {call_id}\r\n"
        "CSeq: {cseq} {cm}\r\n"
        "Contact: <sip:raw@{lh}:{lp}>\r\n"
    ).format(
        m=method,
        uri=uri,
        lh=local[0],
        lp=local[1],
        branch=branch,
        mf=max_forwards,
        call_id=call_id,
        to_tag=";tag=" + to_tag if to_tag else "",
        cseq=cseq,
        cm="INVITE" if method == "ACK" else method,
    )
    if body:
        head += "Content-Type: application/sdp\r\n"
    length = str(len(body)) if content_length is None else content_length
    return (head + extra + "Content-Length: " + length + "\r\n\r\n").encode() + body


class RawPeer:
    """One UDP socket on loopback; send bytes, read parsed responses."""

    def __init__(self, target, host="127.0.0.1"):
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.local = self.sock.getsockname()
        self.counter = 0

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendto(data, self.target)

    def next_id(self):
        self.counter += 1
        return "{}-{}".format(self.local[1], self.counter)

    def responses(self, timeout):
        """Every response that arrives within `timeout` seconds (requests to us are ignored)."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65536)
            except OSError:
                return out
            try:
                message = parse_message(data)
            except RemoteProtocolError:
                continue
            if isinstance(message, Response):
                out.append(message)

    def wait_for(self, call_id, timeout, final=True):
        """The first (final, unless final=False) response for `call_id`, or None after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65536)
            except OSError:
                return None
            try:
                message = parse_message(data)
            except RemoteProtocolError:
                continue
            if isinstance(message, Response) and message.call_id == call_id:
                if message.status >= 200 or not final:
                    return message

    def options(self, timeout=1.0, extra="", uri=None):
        """Send one OPTIONS (to `uri` through the target, if given); (response or None, seconds it took)."""
        call_id = self.next_id()
        started = time.monotonic()
        self.send(request("OPTIONS", self.target, self.local, call_id, call_id, extra=extra, uri=uri))
        response = self.wait_for(call_id, timeout)
        return response, time.monotonic() - started


def wait_until_answering(target, timeout=10.0):
    """Poll `target` with OPTIONS until it answers (a started sotto needs a moment to bind)."""
    peer = RawPeer(target)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response, _ = peer.options(timeout=0.2)
            if response is not None:
                return response
        raise AssertionError("nothing answered OPTIONS at {}:{} within {} s".format(target[0], target[1], timeout))
    finally:
        peer.close()
