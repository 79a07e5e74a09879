"""Loopback UDP relays that sit between two real `sotto` processes, as an attacker on the path would.

MediaRelay: two sockets. Each sotto advertises one of them as its media address (`--public-address`),
so all RTP, RTCP and ZRTP of the call crosses the relay. A datagram from one side is passed to
`tamper(direction, data)`, which returns the datagrams to send on (none: drop; a changed copy; the same
packet twice: a replay). Direction "a->b" is what the caller (A) sends, "b->a" what the answerer sends.

    relay = MediaRelay(tamper)           # relay.to_a_port: A's advertised port, relay.to_b_port: B's
    relay.connect(a_media_port, b_media_port)
    with relay: ...                      # a thread forwards until the block ends

SipRelay: one socket in front of B's SIP port. A calls B through it; requests from A and B's answers
pass `rewrite(direction, data)`; it forwards responses to the address it last saw A at (Via rport).

Packet kinds (RFC 6189 §5: a ZRTP packet has the magic cookie 0x5a525450 at bytes 4-7 and its first
byte is 0x10; RFC 5761 §4: RTCP has packet type 192-223 in the second byte).
"""

import select
import socket
import struct
import threading

ZRTP_COOKIE = b"ZRTP"


def bind_loopback():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def is_zrtp(data):
    return len(data) >= 12 and data[0] == 0x10 and data[4:8] == ZRTP_COOKIE


def zrtp_message_type(data):
    """The 8-character type block of a ZRTP packet ("Hello   ", "Commit  ", ...), or None."""
    if not is_zrtp(data) or len(data) < 24:
        return None
    return data[16:24].decode("ascii", "replace")


def is_rtcp(data):
    return len(data) >= 8 and data[0] >> 6 == 2 and 192 <= data[1] <= 223


def is_rtp(data):
    return len(data) >= 12 and data[0] >> 6 == 2 and not is_rtcp(data)


def rtp_sequence(data):
    return struct.unpack("!H", data[2:4])[0]


class _Forwarder:
    def __init__(self):
        self._stop = threading.Event()
        self._thread = None
        self.errors = []

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self.close()
        return False

    def _run(self):
        sockets = self.sockets()
        while not self._stop.is_set():
            ready, _, _ = select.select(sockets, [], [], 0.05)
            for sock in ready:
                try:
                    data, source = sock.recvfrom(65536)
                except OSError:
                    continue
                try:
                    self.handle(sock, data, source)
                except Exception as exc:  # noqa: BLE001 - reported by the test, never silently lost
                    self.errors.append(repr(exc))

    def close(self):
        for sock in self.sockets():
            sock.close()


class MediaRelay(_Forwarder):
    def __init__(self, tamper=None):
        _Forwarder.__init__(self)
        self.tamper = tamper or (lambda direction, data: [data])
        self._to_b = bind_loopback()  # A sends here (B advertises it)
        self._to_a = bind_loopback()  # B sends here (A advertises it)
        self.to_b_port = self._to_b.getsockname()[1]
        self.to_a_port = self._to_a.getsockname()[1]
        self._a = self._b = None
        self.forwarded = {"a->b": 0, "b->a": 0}

    def connect(self, a_media_port, b_media_port):
        self._a = ("127.0.0.1", a_media_port)
        self._b = ("127.0.0.1", b_media_port)

    def sockets(self):
        return [self._to_b, self._to_a]

    def handle(self, sock, data, source):
        if sock is self._to_b:
            direction, out_sock, target = "a->b", self._to_a, self._b
        else:
            direction, out_sock, target = "b->a", self._to_b, self._a
        for datagram in self.tamper(direction, data):
            out_sock.sendto(datagram, target)
            self.forwarded[direction] += 1


class SipRelay(_Forwarder):
    """In front of B's SIP port; A talks to relay.port. Requests A -> B and responses B -> A both pass
    `rewrite(direction, data)` (direction "a->b" or "b->a"), which returns the bytes to forward."""

    def __init__(self, b_sip_port, rewrite):
        _Forwarder.__init__(self)
        self.rewrite = rewrite
        self._sock = bind_loopback()
        self.port = self._sock.getsockname()[1]
        self._b = ("127.0.0.1", b_sip_port)
        self._a = None

    def sockets(self):
        return [self._sock]

    def handle(self, sock, data, source):
        if source == self._b:
            if self._a is not None:
                sock.sendto(self.rewrite("b->a", data), self._a)
        else:
            self._a = source
            sock.sendto(self.rewrite("a->b", data), self._b)


def with_content_length(message):
    """Fix Content-Length after the body of a SIP message was rewritten."""
    head, _, body = message.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith((b"content-length:", b"l:"))]
    lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
