"""RTP packets (RFC 3550 §5.1): parse and serialize, plus sequence/timestamp arithmetic across the wrap.

API:
    parse_rtp(data) -> RtpPacket         raises RemoteProtocolError, one message per malformed case
    RtpPacket(payload_type, sequence, timestamp, ssrc, payload=b"", marker=False, csrcs=(),
              extension=None, padding=0)
        .serialize() -> bytes             extension is None or (profile:int, data:bytes, len % 4 == 0);
                                          padding: number of padding octets to append (0..255)
    build_rtp(payload_type, sequence, timestamp, ssrc, payload, marker=False) -> bytes
                                          the hot path: a 12-octet header + payload, no object
    header_length(data) -> int            octets before the payload (validated like parse_rtp)
    seq_delta(a, b) -> int                signed distance a - b modulo 2^16, in -32768..32767
    ts_delta(a, b) -> int                 signed distance a - b modulo 2^32
    seq_newer(a, b) -> bool               a is after b (modulo the wrap)

Fields are plain ints; `payload` is the payload without padding.
"""

import struct

from firmware.errors import LocalProtocolError, RemoteProtocolError

RTP_VERSION = 2
HEADER_SIZE = 12
_HEADER = "!BBHII"


class RtpPacket:
    __slots__ = ("payload_type", "sequence", "timestamp", "ssrc", "payload", "marker", "csrcs", "extension", "padding")

    def __init__(
        self, payload_type, sequence, timestamp, ssrc, payload=b"", marker=False, csrcs=(), extension=None, padding=0
    ):
        self.payload_type = payload_type
        self.sequence = sequence
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
        self.marker = marker
        self.csrcs = tuple(csrcs)
        self.extension = extension
        self.padding = padding

    def __repr__(self):
        return "RtpPacket(pt={}, seq={}, ts={}, ssrc={:08x}, {} octets)".format(
            self.payload_type, self.sequence, self.timestamp, self.ssrc, len(self.payload)
        )

    def serialize(self):
        if not 0 <= self.payload_type <= 127:
            raise LocalProtocolError("RTP payload type out of range")
        if not 0 <= self.sequence <= 0xFFFF or not 0 <= self.timestamp <= 0xFFFFFFFF:
            raise LocalProtocolError("RTP sequence or timestamp out of range")
        if not 0 <= self.ssrc <= 0xFFFFFFFF or len(self.csrcs) > 15:
            raise LocalProtocolError("RTP SSRC out of range or more than 15 CSRCs")
        if not 0 <= self.padding <= 255:
            raise LocalProtocolError("RTP padding must be 0..255 octets")
        first = (RTP_VERSION << 6) | len(self.csrcs)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        second = self.payload_type | (0x80 if self.marker else 0)
        parts = [struct.pack(_HEADER, first, second, self.sequence, self.timestamp, self.ssrc)]
        for csrc in self.csrcs:
            parts.append(struct.pack("!I", csrc))
        if self.extension is not None:
            profile, data = self.extension
            if len(data) % 4 or len(data) > 0x3FFFC:
                raise LocalProtocolError("RTP extension data must be a multiple of 4 octets")
            parts.append(struct.pack("!HH", profile, len(data) // 4))
            parts.append(data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1))
            parts.append(bytes((self.padding,)))
        return b"".join(parts)


def build_rtp(payload_type, sequence, timestamp, ssrc, payload, marker=False):
    second = payload_type | 0x80 if marker else payload_type
    return struct.pack(_HEADER, 0x80, second, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + payload


def _check_and_measure(data):
    """(header length, padding length) of an RTP packet, or RemoteProtocolError."""
    length = len(data)
    if length < HEADER_SIZE:
        raise RemoteProtocolError("RTP packet shorter than the 12-octet header")
    first = data[0]
    if first >> 6 != RTP_VERSION:
        raise RemoteProtocolError("RTP version is not 2")
    offset = HEADER_SIZE + 4 * (first & 0x0F)
    if offset > length:
        raise RemoteProtocolError("RTP CSRC list runs past the end of the packet")
    if first & 0x10:
        if offset + 4 > length:
            raise RemoteProtocolError("RTP header extension header runs past the end of the packet")
        words = (data[offset + 2] << 8) | data[offset + 3]
        offset += 4 + 4 * words
        if offset > length:
            raise RemoteProtocolError("RTP header extension runs past the end of the packet")
    padding = 0
    if first & 0x20:
        padding = data[length - 1]
        if padding == 0:
            raise RemoteProtocolError("RTP padding count is zero")
        if offset + padding > length:
            raise RemoteProtocolError("RTP padding count exceeds the payload")
    return offset, padding


def header_length(data):
    return _check_and_measure(data)[0]


def parse_rtp(data):
    data = bytes(data)
    offset, padding = _check_and_measure(data)
    first, second, sequence, timestamp, ssrc = struct.unpack(_HEADER, data[:HEADER_SIZE])
    csrc_count = first & 0x0F
    csrcs = struct.unpack("!%dI" % csrc_count, data[HEADER_SIZE : HEADER_SIZE + 4 * csrc_count])
    extension = None
    if first & 0x10:
        start = HEADER_SIZE + 4 * csrc_count
        profile = (data[start] << 8) | data[start + 1]
        extension = (profile, data[start + 4 : offset])
    payload = data[offset : len(data) - padding]
    return RtpPacket(second & 0x7F, sequence, timestamp, ssrc, payload, bool(second & 0x80), csrcs, extension, padding)


def seq_delta(a, b):
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def ts_delta(a, b):
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def seq_newer(a, b):
    return seq_delta(a, b) > 0
