"""RTCP reports, statistics and RTT; RFC 4733 telephone-events."""

from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.rtp import rtcp
from firmware.rtp.dtmf import DtmfReceiver, DtmfSender, encode_event, parse_event
from tests.portable import raises

MICROPYTHON = True


def test_sr_rr_sdes_bye_round_trip():
    block = rtcp.ReportBlock(0x1234, 25, -3, 0x10005, 80, 0xAABBCCDD, 0x10000)
    compound = (
        rtcp.build_sr(7, 0x0123456789ABCDEF, 1000, 50, 8000, [block])
        + rtcp.build_sdes_cname(7, "alice@host")
        + rtcp.build_bye(7, "done")
    )
    sr, sdes, bye = rtcp.parse_compound(compound)
    assert isinstance(sr, rtcp.SenderReport) and sr.ssrc == 7 and sr.ntp == 0x0123456789ABCDEF
    assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (1000, 50, 8000)
    got = sr.blocks[0]
    assert (got.ssrc, got.fraction_lost, got.cumulative_lost, got.highest_sequence) == (0x1234, 25, -3, 0x10005)
    assert (got.jitter, got.lsr, got.dlsr) == (80, 0xAABBCCDD, 0x10000)
    assert sdes.chunks == [(7, [(1, b"alice@host")])]
    assert bye.ssrcs == [7] and bye.reason == "done"
    rr = rtcp.parse_compound(rtcp.build_rr(9, [block]))[0]
    assert isinstance(rr, rtcp.ReceiverReport) and rr.ssrc == 9 and rr.blocks[0].jitter == 80


def test_malformed_rtcp_each_raise():
    good = rtcp.build_rr(9, [rtcp.ReportBlock(1, 0, 0, 0, 0, 0, 0)])
    for bad in [
        b"",
        b"\x80\xc9\x00",
        b"\x40" + good[1:],
        good[:-4],
        good + b"\x80",
        b"\x81\xc9\x00\x01" + good[4:8],
        b"\x81\xc8\x00\x01\x00\x00\x00\x01",
        b"\x82\xcb\x00\x01\x00\x00\x00\x01",
        b"\x81\xca\x00\x01\x00\x00\x00\x01",
        b"\xa0\xc9\x00\x01\x00\x00\x00\x00",
    ]:
        raises(RemoteProtocolError, rtcp.parse_compound, bad)


def test_reception_stats_loss_wrap_and_fraction():
    stats = rtcp.ReceptionStats(8000)
    for i, seq in enumerate(list(range(65530, 65536)) + [0, 1, 3, 4]):
        stats.update(seq, i * 160, i * 0.02)
    assert stats.expected == 11 and stats.received == 10 and stats.lost == 1
    assert stats.extended_max == 65536 + 4
    block = stats.report_block(42, 1.0)
    assert block.cumulative_lost == 1 and block.fraction_lost == (1 << 8) // 11
    assert block.highest_sequence == 65540 and block.jitter < 5
    assert stats.report_block(42, 2.0).fraction_lost == 0


def test_round_trip_time_from_lsr_and_dlsr():
    sr_sent_ntp = 1000 << 32
    block = rtcp.ReportBlock(1, 0, 0, 0, 0, rtcp.ntp_middle32(sr_sent_ntp), 65536 // 2)  # held 0.5 s
    now = (1000 << 32) + int(0.55 * (1 << 32))
    rtt = rtcp.round_trip_seconds(block, now)
    assert abs(rtt - 0.05) < 0.001
    assert rtcp.round_trip_seconds(rtcp.ReportBlock(1, 0, 0, 0, 0, 0, 0), now) is None


def test_dtmf_sender_paces_an_event_and_repeats_the_end():
    sender = DtmfSender(8000)
    sender.start("#", 5000, duration_ms=100)
    packets = []
    while sender.active:
        packets.extend(sender.next_packets(9999))
    assert len(packets) == 5 + 2
    assert packets[0][0] is True and all(not p[0] for p in packets[1:])
    assert all(p[1] == 5000 for p in packets)
    events = [parse_event(p[2]) for p in packets]
    assert [e[3] for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e[1] for e in events] == [False] * 4 + [True] * 3
    assert all(e[0] == 11 for e in events)
    raises(LocalProtocolError, sender.start, "x", 0)


def test_dtmf_receiver_reports_each_event_once():
    receiver = DtmfReceiver()
    assert receiver.receive(100, encode_event(1, False, 10, 160)) == "1"
    assert receiver.receive(100, encode_event(1, True, 10, 800)) is None
    assert receiver.receive(900, encode_event(10, False, 10, 160)) == "*"
    raises(RemoteProtocolError, receiver.receive, 1000, b"\x01")
