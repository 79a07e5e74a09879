"""DTMF as RFC 4733 telephone-events: payload codec, a sender that paces packets, a receiver.

Payload (RFC 4733 §2.3): event (8 bits) | E (1) | R (1) | volume (6) | duration (16, timestamp units).

API:
    DIGITS = "0123456789*#ABCD"  (events 0-15)
    encode_event(event, end, volume, duration) -> 4 octets
    parse_event(payload) -> (event, end, volume, duration)   RemoteProtocolError when malformed
    DtmfSender(clock_rate, packet_ms=20, volume=10)
        .start(digit, timestamp, duration_ms=100)   LocalProtocolError for a digit not in DIGITS;
                                                    queues behind an event in progress (bounded: 32)
        .active -> bool
        .next_packets() -> [(marker, timestamp, payload)]   call once per packet period while active:
            the first packet has the marker bit; every packet of one event carries the event's start
            timestamp and the duration so far; the end packet is sent three times (§2.5.1.4)
        After an event ends the caller's media timestamps continue from its sample counter as usual.
    DtmfReceiver()
        .receive(timestamp, payload) -> digit or None   a digit once per event (at its first packet),
                                                         duplicates and end retransmissions ignored
"""

from firmware.errors import LocalProtocolError, RemoteProtocolError

DIGITS = "0123456789*#ABCD"
_MAX_QUEUED = 32


def encode_event(event, end, volume, duration):
    if not 0 <= event <= 255 or not 0 <= volume <= 63:
        raise LocalProtocolError("telephone-event out of range")
    if duration > 0xFFFF:
        duration = 0xFFFF
    return bytes((event, (0x80 if end else 0) | volume, duration >> 8, duration & 0xFF))


def parse_event(payload):
    if len(payload) < 4:
        raise RemoteProtocolError("telephone-event payload shorter than 4 octets")
    return payload[0], bool(payload[1] & 0x80), payload[1] & 0x3F, (payload[2] << 8) | payload[3]


class DtmfSender:
    __slots__ = (
        "clock_rate",
        "packet_ms",
        "volume",
        "_queue",
        "_event",
        "_timestamp",
        "_total",
        "_elapsed",
        "_ends_left",
        "_first",
    )

    def __init__(self, clock_rate, packet_ms=20, volume=10):
        self.clock_rate = clock_rate
        self.packet_ms = packet_ms
        self.volume = volume
        self._queue = []
        self._event = None
        self._timestamp = 0
        self._total = 0
        self._elapsed = 0
        self._ends_left = 0
        self._first = False

    @property
    def active(self):
        return self._event is not None or bool(self._queue)

    def start(self, digit, timestamp, duration_ms=100):
        digit = str(digit).upper()
        if len(digit) != 1 or digit not in DIGITS:
            raise LocalProtocolError("not a DTMF digit: {!r}".format(digit))
        if len(self._queue) >= _MAX_QUEUED:
            raise LocalProtocolError("too many DTMF digits queued")
        self._queue.append((DIGITS.index(digit), duration_ms))
        if self._event is None:
            self._begin(timestamp)

    def _begin(self, timestamp):
        event, duration_ms = self._queue.pop(0)
        self._event = event
        self._timestamp = timestamp & 0xFFFFFFFF
        self._total = self.clock_rate * duration_ms // 1000
        self._elapsed = 0
        self._ends_left = 3
        self._first = True

    def next_packets(self, timestamp=None):
        """Packets for this period; `timestamp` (the media clock now) starts a queued event."""
        if self._event is None:
            if not self._queue:
                return []
            self._begin(self._timestamp + self._total if timestamp is None else timestamp)
        step = self.clock_rate * self.packet_ms // 1000
        if self._elapsed < self._total:
            self._elapsed = min(self._total, self._elapsed + step)
        end = self._elapsed >= self._total
        payload = encode_event(self._event, end, self.volume, self._elapsed)
        marker = self._first
        self._first = False
        packets = [(marker, self._timestamp, payload)]
        if end:
            self._ends_left -= 1
            if self._ends_left <= 0:
                self._event = None
        return packets


class DtmfReceiver:
    __slots__ = ("_last_timestamp",)

    def __init__(self):
        self._last_timestamp = None

    def receive(self, timestamp, payload):
        event, _end, _volume, _duration = parse_event(payload)
        if timestamp == self._last_timestamp:
            return None
        self._last_timestamp = timestamp
        if event < len(DIGITS):
            return DIGITS[event]
        return None
