"""RFC 2198 redundancy through two real MediaStreams (send path -> receive and play path), on a simulated
clock: a lone lost packet is rebuilt exactly from the next one; malformed RED is dropped and counted."""

import math
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from audio.playout import LOST, PLAY, JitterBuffer
from audio.wavfile import NullSink, SilentSource
from firmware.rtp.packet import build_rtp, parse_rtp
from firmware.rtp.red import pack_red, parse_red
from firmware.runtime.media import MediaStream
from tests.firmware.runtime.test_media import FakeSocket

RED_PT = 121


class _Recorder(NullSink):
    def __init__(self, rate):
        super().__init__(rate)
        self.frames = []

    def write(self, pcm):
        self.frames.append(pcm)


class _Clock:
    now = 0.0

    def __call__(self):
        return self.now


def _streams(codec, pt, rate, red):
    sock = FakeSocket()
    clock = _Clock()
    options = dict(realtime=False, clock=clock, wallclock=clock, red_payload_type=RED_PT if red else None)
    sender = MediaStream(
        sock,
        codec,
        pt,
        101,
        SilentSource(rate, paced=False),
        NullSink(rate),
        lambda n: bytes(range(1, n + 1)),
        remote=("127.0.0.1", 40000),
        **options,
    )
    sink = _Recorder(rate)
    receiver = MediaStream(
        FakeSocket(),
        codec,
        pt,
        101,
        SilentSource(rate, paced=False),
        sink,
        lambda n: bytes(n),
        remote=("127.0.0.1", 40002),
        **options,
    )
    return sock, sender, receiver, sink, clock


def _speechlike(rate, index):
    count = rate // 50
    return struct.pack(
        "<%dh" % count,
        *[
            int(6000 * math.sin(2 * math.pi * (300 + 40 * (index % 7)) * (index * count + i) / rate))
            for i in range(count)
        ],
    )


def _call(codec, pt, rate, red, drop=(), periods=40):
    """Send `periods` frames, drop the packets at the indices in `drop`, play them all; (sink PCM, stats)."""
    sock, sender, receiver, sink, clock = _streams(codec, pt, rate, red)
    for i in range(periods):
        clock.now = i * 0.02
        sender._send_period(_speechlike(rate, i), clock.now)
    packets = [data for data, _ in sock.sent]
    for i in range(periods + 6):
        clock.now = i * 0.02 + 0.005
        if i < len(packets) and i not in drop:
            receiver.deliver(packets[i], ("127.0.0.1", 40000))
        receiver._receive_pending(clock.now)
        receiver._play_period()
    return b"".join(sink.frames), receiver.stats(), packets


def test_the_sender_wraps_each_frame_with_the_previous_one():
    _, _, packets = _call("G722", 9, 16000, red=True, periods=3)
    parsed = [parse_rtp(p) for p in packets]
    assert {p.payload_type for p in parsed} == {RED_PT}
    first = parse_red(parsed[0].payload)
    assert first[0] == 9 and first[2] == []  # nothing before the first frame
    for before, after in zip(parsed, parsed[1:]):
        primary_pt, primary, blocks = parse_red(after.payload)
        # G.722's RTP clock is 8000 Hz (RFC 3551 §4.5.2): the previous frame is 160 units older.
        assert blocks == [(9, 160, parse_red(before.payload)[1])]
        assert len(primary) == 160


def test_a_lone_loss_is_rebuilt_exactly_from_the_next_packet():
    for codec, pt, rate in (("PCMU", 0, 8000), ("G722", 9, 16000)):
        clean, clean_stats, _ = _call(codec, pt, rate, red=True)
        lossy, stats, _ = _call(codec, pt, rate, red=True, drop=(10, 20, 30))
        # (The end of the stream is concealed once in every run: nothing follows the last packet.)
        assert stats["recovered"] == 3 and stats["concealed"] == clean_stats["concealed"]
        assert clean_stats["recovered"] == 0
        assert lossy == clean  # bit-exact: the redundant frame is the lost frame
        plain, plain_stats, _ = _call(codec, pt, rate, red=False, drop=(10, 20, 30))
        assert plain_stats["recovered"] == 0 and plain_stats["concealed"] == clean_stats["concealed"] + 3
        assert plain != clean


def test_a_burst_of_two_recovers_only_the_second():
    _, clean, _ = _call("PCMU", 0, 8000, red=True)
    _, stats, _ = _call("PCMU", 0, 8000, red=True, drop=(10, 11))
    assert stats["recovered"] == 1 and stats["concealed"] == clean["concealed"] + 1


def test_the_primary_always_wins_and_a_played_slot_is_never_filled():
    buffer = JitterBuffer(8000, min_delay_ms=60)
    for seq in range(4):
        buffer.push(seq, seq * 160, b"P%d" % seq, seq * 0.02)
    assert buffer.fill(2, b"redundant") is False  # the primary is held
    assert buffer.pop() == (PLAY, b"P0")
    assert buffer.fill(0, b"redundant") is False  # already played
    buffer.push(6, 960, b"P6", 0.12)
    assert buffer.fill(5, b"R5") is True  # missing and ahead: taken
    assert buffer.fill(5, b"again") is False
    # Reordered, not lost: the packet itself comes after its copy and takes its slot back.
    assert buffer.push(5, 800, b"P5", 0.13) == "accepted" and buffer.recovered == 0
    assert buffer.push(5, 800, b"P5", 0.13) == "duplicate"
    buffer.push(8, 1280, b"P8", 0.14)
    assert buffer.fill(7, b"R7") is True and buffer.recovered == 1
    assert buffer.fill(9, b"beyond") is False  # beyond anything received: not a loss yet
    assert [buffer.pop() for _ in range(3)] == [(PLAY, b"P1"), (PLAY, b"P2"), (PLAY, b"P3")]
    assert buffer.pop() == (LOST, b"P5")  # 4 never came
    assert [buffer.pop() for _ in range(3)] == [(PLAY, b"P5"), (PLAY, b"P6"), (PLAY, b"R7")]
    assert buffer.push(7, 1120, b"P7", 0.2) == "late" and buffer.recovered == 1


def test_malformed_red_is_dropped_and_counted_and_the_call_goes_on():
    sock, sender, receiver, sink, clock = _streams("PCMU", 0, 8000, red=True)
    bad = [
        b"\x80\x00",  # cut short
        b"\x80\x02\x80\x40\x00" + bytes(10),  # a block longer than the payload
        pack_red(8, bytes(160)),  # a primary of another codec
        pack_red(101, bytes(4)),  # RFC 4733 events inside RED: not what was negotiated
    ]
    for seq, payload in enumerate(bad):
        receiver.deliver(build_rtp(RED_PT, seq, seq * 160, 0xAAAA, payload), ("127.0.0.1", 40000))
    receiver._receive_pending(0.0)
    assert receiver.malformed == 4 and receiver.stats()["received"] == 0
    good = pack_red(0, bytes(160), ((0, 160, bytes(160)),))
    for seq in range(10, 14):
        receiver.deliver(build_rtp(RED_PT, seq, seq * 160, 0xAAAA, good), ("127.0.0.1", 40000))
    receiver._receive_pending(0.02)
    assert receiver.stats()["received"] == 4 and receiver.malformed == 4


def test_dtmf_is_sent_unwrapped_and_breaks_the_redundancy_chain():
    sock, sender, receiver, sink, clock = _streams("PCMU", 0, 8000, red=True)
    for i in range(2):
        sender._cycle(bytes(320), i * 0.02)
    sender.send_dtmf("5", duration_ms=40)
    for i in range(2, 8):
        sender._cycle(bytes(320), i * 0.02)
    parsed = [parse_rtp(data) for data, _ in sock.sent if data[1] & 0x7F != 72]
    events = [p for p in parsed if p.payload_type == 101]
    audio = [p for p in parsed if p.payload_type == RED_PT]
    assert events and all(p.payload_type in (101, RED_PT) for p in parsed)
    after = [p for p in audio if p.sequence > events[-1].sequence]
    # The first frame after the events has no redundant block: the packet before it was an event.
    assert parse_red(after[0].payload)[2] == [] and parse_red(after[1].payload)[2] != []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=12))
def test_any_red_payload_is_played_or_dropped_and_counted_never_a_crash(packets):
    sock, sender, receiver, sink, clock = _streams("PCMU", 0, 8000, red=True)
    for sequence, payload in packets:
        receiver.deliver(build_rtp(RED_PT, sequence, sequence * 160, 0xAAAA, payload), ("127.0.0.1", 40000))
    receiver._cycle(bytes(320), 0.0)
    receiver._cycle(bytes(320), 0.02)
    assert receiver.loop_errors == 0
    assert receiver.malformed + receiver.stats()["received"] == len(packets)
