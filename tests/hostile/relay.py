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


def bind_loopback(port=0):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
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

    def tick(self):
        """Called at least every 20 ms (timers of a relay that speaks a protocol itself)."""

    def _run(self):
        sockets = self.sockets()
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(exc))
            ready, _, _ = select.select(sockets, [], [], 0.02)
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
    def __init__(self, tamper=None, to_b_port=0, to_a_port=0):
        _Forwarder.__init__(self)
        self.tamper = tamper or (lambda direction, data: [data])
        self._to_b = bind_loopback(to_b_port)  # A sends here (B advertises it)
        self._to_a = bind_loopback(to_a_port)  # B sends here (A advertises it)
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

    def __init__(self, b_sip_port, rewrite=None, port=0):
        _Forwarder.__init__(self)
        self.rewrite = rewrite or (lambda direction, data: data)
        self._sock = bind_loopback(port)
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


def fix_zrtp_crc(packet):
    """The CRC-32c of a ZRTP packet recomputed (RFC 6189 §5), so a tampered message is not simply dropped
    as damaged but reaches the protocol checks that must catch it."""
    from firmware.zrtp.messages import crc32c

    return packet[:-4] + struct.pack("<I", crc32c(packet[:-4]))


class ZrtpMitm:
    """A man in the middle that terminates ZRTP itself (RFC 6189 §4, the attack the SAS, the
    a=zrtp-hash binding and the cache are there to catch): one engine faces A as if it were B, another
    faces B as if it were A. Plug it into a MediaRelay as `tamper` and call attach(relay).

    zid_towards_a / zid_towards_b: the ZIDs it presents (None: fresh random ones; the real peers' ZIDs
    to impersonate them). SRTP between the ends is dropped: the point is what each end reports.
    """

    def __init__(self, zid_towards_a=None, zid_towards_b=None):
        import os

        from firmware.zrtp.cache import ZrtpCache
        from firmware.zrtp.engine import Preferences, ZrtpEngine

        self.engines = {}
        self.events = {"a": [], "b": []}
        for side, zid in (("a", zid_towards_a), ("b", zid_towards_b)):
            cache = ZrtpCache(zid) if zid else ZrtpCache.create(os.urandom)
            self.engines[side] = ZrtpEngine(
                cache.zid, cache, Preferences(), os.urandom, ssrc=int.from_bytes(os.urandom(4), "big")
            )
        self.relay = None
        self._started = set()  # an engine starts when its end's first ZRTP packet arrives (its media is up)
        self.lock = threading.Lock()

    def attach(self, relay):
        self.relay = relay
        relay.tamper = self
        relay.tick = self.tick

    def _now(self):
        import time

        return time.monotonic()

    def _send(self, side, packets):
        relay = self.relay
        # A talks to the port B advertised (relay._to_b): the engine facing A answers from it; and the
        # other way round.
        sock, target = (relay._to_b, relay._a) if side == "a" else (relay._to_a, relay._b)
        for packet in packets:
            sock.sendto(packet, target)

    def tick(self):
        now = self._now()
        with self.lock:
            for side, engine in self.engines.items():
                if side not in self._started:
                    continue
                timer = engine.get_timer()
                if timer is not None and timer <= now:
                    engine.handle_timer(now)
                self._send(side, engine.datagrams_to_send(now))
                self._drain(side)

    def _drain(self, side):
        engine = self.engines[side]
        while True:
            event = engine.next_event()
            if event is None:
                return
            self.events[side].append(event)

    def __call__(self, direction, data):
        if not is_zrtp(data):
            return []  # SRTP/RTCP from one end cannot be read by the other: dropped
        side = "a" if direction == "a->b" else "b"
        now = self._now()
        with self.lock:
            engine = self.engines[side]
            if side not in self._started:
                self._started.add(side)
                engine.start(now)
            engine.receive_datagram(data, now)
            self._send(side, engine.datagrams_to_send(now))
            self._drain(side)
        return []

    def secure(self, side):
        return any(type(e).__name__ == "Secure" for e in self.events[side])
