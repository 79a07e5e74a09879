"""RTCP (RFC 3550 §6): sender/receiver reports, SDES CNAME, BYE; reception statistics; round-trip time.

API (sans-I/O; `ntp` is a 64-bit NTP timestamp int the caller computes from its wall clock, `now` a
monotonic time in seconds):
    ReceptionStats(clock_rate)                 per remote SSRC (RFC 3550 A.1, A.3, A.8)
        .update(sequence, timestamp, now)      for every authenticated RTP packet
        .report_block(ssrc, now) -> ReportBlock   fraction lost since the last call, cumulative lost,
                                               extended highest sequence, jitter, LSR/DLSR
        .note_sender_report(ntp, now)          remember the peer's SR for LSR/DLSR
        .received, .expected, .lost, .jitter (timestamp units)
    ReportBlock(ssrc, fraction_lost, cumulative_lost, highest_sequence, jitter, lsr, dlsr)
    build_sr(ssrc, ntp, rtp_timestamp, packet_count, octet_count, blocks=()) -> bytes
    build_rr(ssrc, blocks=()) -> bytes
    build_sdes_cname(ssrc, cname) -> bytes
    build_bye(ssrc, reason="") -> bytes
    parse_compound(data) -> [SenderReport | ReceiverReport | Bye | Sdes | OtherRtcp]
        RemoteProtocolError for a malformed compound packet (each case its own message)
    round_trip_seconds(block, ntp_now) -> float or None     RFC 3550 §6.4.1: A - LSR - DLSR
    ntp_middle32(ntp) -> int
"""

import struct

from firmware.errors import RemoteProtocolError
from firmware.rtp.packet import seq_delta

SR = 200
RR = 201
SDES = 202
BYE = 203
APP = 204


class ReportBlock:
    __slots__ = ("ssrc", "fraction_lost", "cumulative_lost", "highest_sequence", "jitter", "lsr", "dlsr")

    def __init__(self, ssrc, fraction_lost, cumulative_lost, highest_sequence, jitter, lsr, dlsr):
        self.ssrc = ssrc
        self.fraction_lost = fraction_lost
        self.cumulative_lost = cumulative_lost
        self.highest_sequence = highest_sequence
        self.jitter = jitter
        self.lsr = lsr
        self.dlsr = dlsr

    def serialize(self):
        lost = self.cumulative_lost
        if lost > 0x7FFFFF:
            lost = 0x7FFFFF
        elif lost < -0x800000:
            lost = -0x800000
        return struct.pack(
            "!IBBHIIII",
            self.ssrc,
            self.fraction_lost & 0xFF,
            (lost >> 16) & 0xFF,
            lost & 0xFFFF,
            self.highest_sequence & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.lsr & 0xFFFFFFFF,
            self.dlsr & 0xFFFFFFFF,
        )


def _parse_block(data, offset):
    ssrc, fraction, lost_hi, lost_lo, highest, jitter, lsr, dlsr = struct.unpack(
        "!IBBHIIII", data[offset : offset + 24]
    )
    lost = (lost_hi << 16) | lost_lo
    if lost & 0x800000:
        lost -= 0x1000000
    return ReportBlock(ssrc, fraction, lost, highest, jitter, lsr, dlsr)


class SenderReport:
    __slots__ = ("ssrc", "ntp", "rtp_timestamp", "packet_count", "octet_count", "blocks")

    def __init__(self, ssrc, ntp, rtp_timestamp, packet_count, octet_count, blocks):
        self.ssrc = ssrc
        self.ntp = ntp
        self.rtp_timestamp = rtp_timestamp
        self.packet_count = packet_count
        self.octet_count = octet_count
        self.blocks = blocks


class ReceiverReport:
    __slots__ = ("ssrc", "blocks")

    def __init__(self, ssrc, blocks):
        self.ssrc = ssrc
        self.blocks = blocks


class Bye:
    __slots__ = ("ssrcs", "reason")

    def __init__(self, ssrcs, reason):
        self.ssrcs = ssrcs
        self.reason = reason


class Sdes:
    __slots__ = ("chunks",)

    def __init__(self, chunks):
        self.chunks = chunks  # list of (ssrc, [(item type, bytes)])


class OtherRtcp:
    __slots__ = ("packet_type", "body")

    def __init__(self, packet_type, body):
        self.packet_type = packet_type
        self.body = body


def _header(count, packet_type, body_length):
    return struct.pack("!BBH", 0x80 | count, packet_type, body_length // 4)


def build_sr(ssrc, ntp, rtp_timestamp, packet_count, octet_count, blocks=()):
    body = struct.pack(
        "!IIIIII",
        ssrc,
        (ntp >> 32) & 0xFFFFFFFF,
        ntp & 0xFFFFFFFF,
        rtp_timestamp & 0xFFFFFFFF,
        packet_count & 0xFFFFFFFF,
        octet_count & 0xFFFFFFFF,
    )
    body += b"".join(block.serialize() for block in blocks)
    return _header(len(blocks), SR, len(body)) + body


def build_rr(ssrc, blocks=()):
    body = struct.pack("!I", ssrc) + b"".join(block.serialize() for block in blocks)
    return _header(len(blocks), RR, len(body)) + body


def build_sdes_cname(ssrc, cname):
    text = cname.encode()[:255]
    chunk = struct.pack("!IBB", ssrc, 1, len(text)) + text + b"\x00"
    chunk += bytes((4 - len(chunk) % 4) % 4)
    return _header(1, SDES, len(chunk)) + chunk


def build_bye(ssrc, reason=""):
    body = struct.pack("!I", ssrc)
    if reason:
        text = reason.encode()[:255]
        body += bytes((len(text),)) + text
        body += bytes((4 - len(body) % 4) % 4)
    return _header(1, BYE, len(body)) + body


def parse_compound(data):
    packets = []
    offset = 0
    length = len(data)
    if length < 4:
        raise RemoteProtocolError("RTCP packet shorter than its 4-octet header")
    while offset < length:
        if length - offset < 4:
            raise RemoteProtocolError("RTCP trailing octets shorter than a header")
        first, packet_type, words = struct.unpack("!BBH", data[offset : offset + 4])
        if first >> 6 != 2:
            raise RemoteProtocolError("RTCP version is not 2")
        end = offset + 4 + 4 * words
        if end > length:
            raise RemoteProtocolError("RTCP length field runs past the end of the compound packet")
        count = first & 0x1F
        body = data[offset + 4 : end]
        if first & 0x20:
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise RemoteProtocolError("RTCP padding count is invalid")
            body = body[: len(body) - body[-1]]
        packets.append(_parse_one(packet_type, count, body))
        offset = end
    return packets


def _parse_blocks(body, offset, count):
    if len(body) < offset + 24 * count:
        raise RemoteProtocolError("RTCP report blocks run past the end of the packet")
    return [_parse_block(body, offset + 24 * i) for i in range(count)]


def _parse_one(packet_type, count, body):
    if packet_type == SR:
        if len(body) < 24:
            raise RemoteProtocolError("RTCP SR shorter than its sender info")
        ssrc, ntp_hi, ntp_lo, rtp_ts, packets, octets = struct.unpack("!IIIIII", body[:24])
        return SenderReport(ssrc, (ntp_hi << 32) | ntp_lo, rtp_ts, packets, octets, _parse_blocks(body, 24, count))
    if packet_type == RR:
        if len(body) < 4:
            raise RemoteProtocolError("RTCP RR shorter than its SSRC")
        return ReceiverReport(struct.unpack("!I", body[:4])[0], _parse_blocks(body, 4, count))
    if packet_type == BYE:
        if len(body) < 4 * count:
            raise RemoteProtocolError("RTCP BYE SSRC list runs past the end of the packet")
        ssrcs = list(struct.unpack("!%dI" % count, body[: 4 * count]))
        reason = ""
        rest = body[4 * count :]
        if rest:
            if rest[0] + 1 > len(rest):
                raise RemoteProtocolError("RTCP BYE reason runs past the end of the packet")
            reason = bytes(rest[1 : 1 + rest[0]]).decode("utf-8", "replace") if rest[0] else ""
        return Bye(ssrcs, reason)
    if packet_type == SDES:
        return Sdes(_parse_sdes(body, count))
    return OtherRtcp(packet_type, bytes(body))


def _parse_sdes(body, count):
    chunks = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise RemoteProtocolError("RTCP SDES chunk runs past the end of the packet")
        ssrc = struct.unpack("!I", body[offset : offset + 4])[0]
        offset += 4
        items = []
        while True:
            if offset >= len(body):
                raise RemoteProtocolError("RTCP SDES items are not terminated")
            item_type = body[offset]
            if item_type == 0:
                offset += 1
                offset += (4 - offset % 4) % 4
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise RemoteProtocolError("RTCP SDES item runs past the end of the packet")
            size = body[offset + 1]
            items.append((item_type, bytes(body[offset + 2 : offset + 2 + size])))
            offset += 2 + size
        chunks.append((ssrc, items))
    return chunks


def ntp_middle32(ntp):
    return (ntp >> 16) & 0xFFFFFFFF


def round_trip_seconds(block, ntp_now):
    """RFC 3550 §6.4.1: RTT = A - LSR - DLSR, in seconds; None without an SR from us yet."""
    if not block.lsr:
        return None
    rtt = (ntp_middle32(ntp_now) - block.lsr - block.dlsr) & 0xFFFFFFFF
    if rtt > 0x80000000:
        return None
    return rtt / 65536.0


class ReceptionStats:
    """RFC 3550 appendix A.1/A.3/A.8 receiver statistics for one source."""

    __slots__ = (
        "clock_rate",
        "base_seq",
        "max_seq",
        "cycles",
        "received",
        "expected_prior",
        "received_prior",
        "jitter",
        "_last_transit",
        "_last_sr",
        "_last_sr_time",
    )

    def __init__(self, clock_rate):
        self.clock_rate = clock_rate
        self.base_seq = None
        self.max_seq = 0
        self.cycles = 0
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0
        self._last_transit = None
        self._last_sr = 0
        self._last_sr_time = None

    def update(self, sequence, timestamp, now):
        if self.base_seq is None:
            self.base_seq = self.max_seq = sequence
        else:
            delta = seq_delta(sequence, self.max_seq)
            if delta > 0:
                if sequence < self.max_seq:
                    self.cycles += 65536
                self.max_seq = sequence
        self.received += 1
        transit = now * self.clock_rate - timestamp
        if self._last_transit is not None:
            d = transit - self._last_transit
            if d > 2147483648:
                d -= 4294967296
            elif d < -2147483648:
                d += 4294967296
            self.jitter += (abs(d) - self.jitter) / 16.0
        self._last_transit = transit

    @property
    def extended_max(self):
        return self.cycles + self.max_seq

    @property
    def expected(self):
        if self.base_seq is None:
            return 0
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self):
        return self.expected - self.received

    def note_sender_report(self, ntp, now):
        self._last_sr = ntp_middle32(ntp)
        self._last_sr_time = now

    def report_block(self, ssrc, now):
        expected = self.expected
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0 if expected_interval <= 0 or lost_interval <= 0 else (lost_interval << 8) // expected_interval
        dlsr = 0
        if self._last_sr_time is not None:
            dlsr = int((now - self._last_sr_time) * 65536) & 0xFFFFFFFF
        return ReportBlock(
            ssrc, min(fraction, 255), self.lost, self.extended_max & 0xFFFFFFFF, int(self.jitter), self._last_sr, dlsr
        )
