"""RTP packet parse/serialize, wrap arithmetic and RFC 7983 demultiplexing."""

from firmware.errors import RemoteProtocolError
from firmware.rtp import demux
from firmware.rtp.packet import RtpPacket, build_rtp, header_length, parse_rtp, seq_delta, seq_newer, ts_delta
from tests.portable import raises, unhex

MICROPYTHON = True


def test_round_trip_with_csrcs_extension_and_padding():
    packet = RtpPacket(
        96,
        65535,
        0xFFFFFFF0,
        0xDEADBEEF,
        b"payload",
        marker=True,
        csrcs=(1, 2),
        extension=(0xBEDE, b"\x10\xaa\x00\x00"),
        padding=3,
    )
    data = packet.serialize()
    assert len(data) == 12 + 8 + 4 + 4 + 7 + 3
    assert data[0] == 0x80 | 0x20 | 0x10 | 2 and data[-1] == 3
    back = parse_rtp(data)
    assert (back.payload_type, back.sequence, back.timestamp, back.ssrc) == (96, 65535, 0xFFFFFFF0, 0xDEADBEEF)
    assert back.marker and back.csrcs == (1, 2) and back.extension == (0xBEDE, b"\x10\xaa\x00\x00")
    assert back.payload == b"payload" and back.padding == 3
    assert header_length(data) == 28


def test_build_rtp_matches_serialize():
    fast = build_rtp(0, 70000, 2**32 + 5, 7, b"x" * 160, marker=True)
    slow = RtpPacket(0, 70000 & 0xFFFF, 5, 7, b"x" * 160, marker=True).serialize()
    assert fast == slow
    assert fast[:12] == unhex("8080 1170 00000005 00000007")


def test_each_malformed_case_raises_its_own_error():
    good = RtpPacket(0, 1, 2, 3, b"abcd", csrcs=(9,), extension=(1, b"1234")).serialize()
    cases = [
        (good[:11], "shorter"),
        (bytes((0x40,)) + good[1:], "version"),
        (bytes((0x8F,)) + good[1:20], "CSRC"),
        (good[:15], "CSRC"),
        (good[:19], "extension header"),
        (good[:22], "extension runs"),
        (bytes((0xA0,)) + good[1:12] + b"ab\x00", "zero"),
        (bytes((0xA0,)) + good[1:12] + b"ab\x09", "exceeds"),
    ]
    for data, words in cases:
        error = raises(RemoteProtocolError, parse_rtp, data)
        assert words in error.message, (words, error.message)


def test_sequence_and_timestamp_arithmetic_across_the_wrap():
    assert seq_delta(0, 65535) == 1 and seq_delta(65535, 0) == -1
    assert seq_delta(100, 100) == 0 and seq_delta(32767, 0) == 32767 and seq_delta(32768, 0) == -32768
    assert seq_newer(2, 65530) and not seq_newer(65530, 2)
    assert ts_delta(10, 0xFFFFFFF0) == 26 and ts_delta(0xFFFFFFF0, 10) == -26


def test_demux_by_first_octet():
    assert demux.classify(b"\x00\x01\x00\x00" + bytes(16)) == demux.STUN
    assert demux.classify(b"\x10\x00\x00\x01ZRTP" + bytes(8)) == demux.ZRTP
    assert demux.classify(b"\x10\x00\x00\x01XXXX") == demux.UNKNOWN
    assert demux.classify(b"\x16\xfe\xfd") == demux.DTLS
    assert demux.classify(b"\x40\x00") == demux.TURN_CHANNEL
    assert demux.classify(b"\x80\x00\x00\x01") == demux.RTP
    assert demux.classify(b"\x80\xe5\x00\x01") == demux.RTP  # PT 101 + marker
    assert demux.classify(b"\x81\xc8\x00\x06") == demux.RTCP  # SR
    assert demux.classify(b"\x81\xc9\x00\x07") == demux.RTCP  # RR
    assert demux.classify(b"") == demux.UNKNOWN and demux.classify(b"\xff") == demux.UNKNOWN
