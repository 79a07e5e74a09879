"""MediaStream end to end: two loops over loopback UDP, SRTP, DTMF, symmetric RTP, RTCP, bad keys."""

import math
import os
import socket
import struct
import threading
import time

import pytest

from audio.wavfile import NullSink, SilentSource, WavRecorder, WavSource, read_wav, write_wav
from firmware.runtime import media
from firmware.runtime.media import MediaStream
from tests.waiting import wait_until


class Pump:
    """The control thread's part: read the socket, hand datagrams to the stream (as the lead's loop)."""

    def __init__(self, sock, stream):
        self.sock = sock
        self.stream = stream
        self.running = True
        sock.settimeout(0.05)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:  # includes the timeout
                continue
            self.stream.deliver(data, addr)

    def stop(self):
        self.running = False
        self.thread.join(2)


def _udp():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def _tone_wav(path, rate, seconds, freq=440):
    count = int(rate * seconds)
    write_wav(
        path,
        rate,
        struct.pack("<%dh" % count, *[int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(count)]),
    )


def _dominant_correlation(reference, recording, rate, freq=440):
    """How pure a `freq` tone the recording is, after the start-up (normalised Goertzel power)."""
    samples = struct.unpack("<%dh" % (len(recording) // 2), recording)[rate // 2 :]
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    energy = sum(x * x for x in samples)
    return power / (energy * len(samples) / 2) if energy else 0.0


def _pair(tmp_path, codec, pt, keys=True, rx_key_b=None):
    a, b = _udp(), _udp()
    _tone_wav(tmp_path / "tone.wav", 16000, 3)
    stream_a = MediaStream(
        a, codec, pt, 101, WavSource(tmp_path / "tone.wav", 48000), NullSink(48000), os.urandom, remote=b.getsockname()
    )
    stream_b = MediaStream(
        b,
        codec,
        pt,
        101,
        SilentSource(48000),
        WavRecorder(tmp_path / "b.wav", 16000),
        os.urandom,
        remote=a.getsockname(),
    )
    if keys:
        key_ab = ("AES_CM_128_HMAC_SHA1_80", os.urandom(16), os.urandom(14))
        key_ba = ("AES_256_CM_HMAC_SHA1_32", os.urandom(32), os.urandom(14))
        stream_a.set_keys(key_ab, key_ba)
        stream_b.set_keys(key_ba, rx_key_b or key_ab)
    return (a, b), (stream_a, stream_b)


def _run(socks, streams, seconds, during=None):
    pumps = [Pump(s, st) for s, st in zip(socks, streams)]
    for st in streams:
        st.start()
    try:
        if during:
            during()
        time.sleep(seconds)
    finally:
        for st in streams:
            st.stop()
        for p in pumps:
            p.stop()
        for s in socks:
            s.close()


@pytest.mark.parametrize("codec,pt", [("PCMU", 0), ("PCMA", 8), ("G722", 9), ("opus", 111)])
def test_srtp_call_carries_the_tone(tmp_path, codec, pt):
    socks, (stream_a, stream_b) = _pair(tmp_path, codec, pt)
    _run(socks, (stream_a, stream_b), 1.5)
    sa, sb = stream_a.stats(), stream_b.stats()
    assert sa["sent"] >= 60 and sb["received"] >= sa["sent"] - 3
    assert sb["auth_failures"] == 0 and sb["replays"] == 0 and sb["lost"] == 0
    assert sa["received"] >= 60  # b's silence came back, under the other key and profile
    rate, recording = read_wav(tmp_path / "b.wav")
    assert rate == 16000 and len(recording) // 2 >= 16000
    assert _dominant_correlation(None, recording, rate) > 0.9


def test_wrong_key_counts_auth_failures_and_plays_nothing(tmp_path):
    wrong = ("AES_CM_128_HMAC_SHA1_80", os.urandom(16), os.urandom(14))
    socks, (stream_a, stream_b) = _pair(tmp_path, "PCMU", 0, rx_key_b=wrong)
    _run(socks, (stream_a, stream_b), 0.6)
    sb = stream_b.stats()
    assert sb["received"] == 0 and sb["auth_failures"] >= 20


def test_dtmf_rfc4733_and_symmetric_rtp(tmp_path, monkeypatch):
    monkeypatch.setattr(media, "RTCP_INTERVAL", 0.3)
    a, b = _udp(), _udp()
    _tone_wav(tmp_path / "tone.wav", 8000, 2)
    # b does not know where a is: it must learn it from a's authenticated media (symmetric RTP).
    stream_a = MediaStream(
        a, "PCMU", 0, 101, WavSource(tmp_path / "tone.wav", 8000), NullSink(8000), os.urandom, remote=b.getsockname()
    )
    stream_b = MediaStream(b, "PCMU", 0, 101, SilentSource(8000), NullSink(8000), os.urandom)
    key_ab = ("AES_CM_128_HMAC_SHA1_32", os.urandom(16), os.urandom(14))
    key_ba = ("AES_CM_128_HMAC_SHA1_80", os.urandom(16), os.urandom(14))
    stream_a.set_keys(key_ab, key_ba)
    stream_b.set_keys(key_ba, key_ab)

    def press():
        time.sleep(0.4)
        stream_a.send_dtmf("7")
        time.sleep(0.3)
        stream_a.send_dtmf("#")

    _run((a, b), (stream_a, stream_b), 1.0, during=press)
    sa, sb = stream_a.stats(), stream_b.stats()
    assert sb["dtmf_received"] == "7#"
    assert ("dtmf", "7") in list(stream_b.events)
    assert sa["received"] > 20  # b answered to the address a's media came from
    # RTT from b's RTCP report blocks (RFC 3550 §6.4.1), arrival-stamped: loopback is well under 20 ms.
    assert sa["rtt_ms"] is not None and 0 <= sa["rtt_ms"] < 15, sa["rtt_ms"]


def test_plain_rtp_and_require_keys(tmp_path):
    socks, (stream_a, stream_b) = _pair(tmp_path, "PCMA", 8, keys=False)
    stream_b.require_keys()
    _run(socks, (stream_a, stream_b), 0.5)
    assert stream_a.stats()["sent"] > 10
    assert stream_b.stats()["received"] == 0 and stream_b.stats()["sent"] == 0


def test_playout_delay_adapts_to_jitter_and_loss_is_concealed():
    # On the simulated clock and network (tools.bench.impair: the real MediaStreams, SRTP and playout,
    # nothing else), so the "clean" call really is clean: on the real-time loopback, a loaded machine's
    # scheduling delays are genuine jitter and the playout rightly grows its delay for them.
    from tools.bench.impair import impaired_call

    rate, freq, seconds = 8000, 200, 3  # 200 Hz: a voice-like pitch (concealment repeats 5-15 ms periods)
    count = rate * seconds
    tone = struct.pack("<%dh" % count, *[int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(count)])
    _, clean, _ = impaired_call(tone, rate, "PCMU")
    received, impaired, _ = impaired_call(tone, rate, "PCMU", loss=0.05, jitter_ms=40.0, seed=3)
    assert clean["target_delay_ms"] < 35 and clean["lost"] == 0
    assert impaired["target_delay_ms"] >= 45, impaired
    assert impaired["playout_delay_ms"] > clean["playout_delay_ms"]
    assert impaired["lost"] > 0 and impaired["concealed"] >= impaired["lost"] - impaired["late"]
    assert impaired["late"] <= 0.05 * impaired["received"]
    purity = _dominant_correlation(None, received[: count * 2], rate, freq=freq)
    assert purity > 0.6, purity  # noise would be near 0


def test_stop_sends_rtcp_bye_to_the_peer(tmp_path):
    socks, (stream_a, stream_b) = _pair(tmp_path, "PCMU", 0)
    pumps = [Pump(s, st) for s, st in zip(socks, (stream_a, stream_b))]
    stream_a.start()
    stream_b.start()
    try:
        wait_until(lambda: stream_b.stats()["received"], 5, "media from A at B")
        stream_a.stop()
        wait_until(lambda: stream_b.stats()["bye"], 2, "B to see A's RTCP BYE", interval=0.02)
        assert ("bye",) in list(stream_b.events)
    finally:
        stream_b.stop()
        for p in pumps:
            p.stop()
        for s in socks:
            s.close()


class FakeSocket:
    def __init__(self):
        self.sent = []

    def sendto(self, data, addr):
        self.sent.append((data, addr))


def _counting_rng(n):
    return bytes(range(1, n + 1))


def _stream(codec="PCMU", pt=0, rate=8000, **kwargs):
    sock = FakeSocket()
    stream = MediaStream(
        sock,
        codec,
        pt,
        101,
        SilentSource(rate, paced=False),
        NullSink(rate),
        _counting_rng,
        remote=("127.0.0.1", 40000),
        realtime=False,
        **kwargs,
    )
    return sock, stream


def test_timestamps_come_from_the_sample_counter_and_dtmf_shares_the_sequence():
    from firmware.rtp.dtmf import parse_event
    from firmware.rtp.packet import parse_rtp

    sock, stream = _stream("G722", 9, 16000)
    pcm = bytes(640)
    for i in range(3):
        stream._cycle(pcm, i * 0.02)
    stream.send_dtmf("9", duration_ms=40)
    for i in range(3, 9):
        stream._cycle(pcm, i * 0.02)
    packets = [parse_rtp(data) for data, _ in sock.sent if data[1] & 0x7F != 72]
    assert [p.sequence for p in packets] == [(0x0102 + i) & 0xFFFF for i in range(len(packets))]
    audio = [p for p in packets if p.payload_type == 9]
    events = [p for p in packets if p.payload_type == 101]
    assert audio[0].marker and not any(p.marker for p in audio[1:])
    assert audio[0].timestamp == 0x01020304
    assert [p.timestamp - 0x01020304 for p in audio[:3]] == [0, 160, 320]  # G.722: 8000 Hz RTP clock
    assert len(events) == 4 and events[0].marker and {p.timestamp for p in events} == {0x01020304 + 480}
    assert [parse_event(p.payload)[3] for p in events] == [160, 320, 320, 320]
    assert audio[3].timestamp == 0x01020304 + 7 * 160  # audio resumes on the sample clock


def test_keys_required_withholds_media_and_ssrc_change_resets_playout():
    from firmware.rtp.packet import build_rtp

    sock, stream = _stream()
    stream.require_keys()
    stream._cycle(bytes(320), 0.0)
    assert sock.sent == []
    stream.deliver(build_rtp(0, 1, 160, 0xAAAA, bytes(160)), ("127.0.0.1", 40000))
    stream._cycle(bytes(320), 0.02)
    assert stream.stats()["received"] == 0
    sock2, plain = _stream()
    for seq in range(5):
        plain.deliver(build_rtp(0, seq, seq * 160, 0xAAAA, bytes(160)), ("127.0.0.1", 40001))
    plain._cycle(bytes(320), 0.1)
    assert plain._remote == ("127.0.0.1", 40001)  # symmetric RTP
    plain.deliver(build_rtp(0, 9000, 5, 0xBBBB, bytes(160)), ("127.0.0.1", 40001))
    plain._cycle(bytes(320), 0.12)
    assert plain.stats()["received"] == 6 and plain._remote_ssrc == 0xBBBB
    assert plain.stats()["lost"] == 0  # statistics restart with the new source


def test_inbox_is_bounded_and_garbage_is_counted():
    sock, stream = _stream(queue_limit=4)
    for _ in range(6):
        stream.deliver(b"\x80\x00junk", ("127.0.0.1", 1))
    assert len(stream._inbox) == 4 and stream.inbox_overflows == 2
    stream.deliver(b"\x00\x01\x00\x00", ("127.0.0.1", 1))
    stream._cycle(bytes(320), 0.0)
    assert stream.malformed == 4


def test_tone_player_paces_a_cadence_on_a_sink(tmp_path):
    from audio.tones import BUSY
    from firmware.runtime.tone_player import TonePlayer, pcm_level_dbov

    recorder = WavRecorder(tmp_path / "busy.wav", 8000)
    player = TonePlayer(recorder, BUSY)
    started = time.monotonic()
    player.start()
    time.sleep(1.05)
    player.stop()
    elapsed = time.monotonic() - started
    recorder.close()
    rate, pcm = read_wav(tmp_path / "busy.wav")
    seconds = len(pcm) / 2 / rate
    assert abs(seconds - elapsed) < 0.1, (seconds, elapsed)  # real time, not as fast as possible
    assert pcm_level_dbov(pcm[:8000]) > -25  # 0.5 s on
    assert pcm_level_dbov(pcm[8000:16000]) < -90  # 0.5 s off


def test_keys_required_from_construction_then_srtp_once_keys_arrive():
    from firmware.srtp.context import SrtpContext

    sock, stream = _stream(keys_required=True)
    stream._cycle(bytes(320), 0.0)
    assert sock.sent == []
    key = ("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14))
    stream.set_keys(key, key)
    stream._cycle(bytes(320), 0.02)
    assert len(sock.sent) == 1
    assert len(SrtpContext(*key).unprotect(sock.sent[0][0])) == 12 + 160


def _peak(recording, skip_samples):
    samples = struct.unpack("<%dh" % (len(recording) // 2), recording)[skip_samples:]
    return max(abs(x) for x in samples)


def test_mute_sends_silence_and_volume_scales_playback(tmp_path):
    from audio.gain import volume_gain

    socks, (stream_a, stream_b) = _pair(tmp_path, "PCMU", 0)
    stream_a.set_mute(True)
    _run(socks, (stream_a, stream_b), 1.0)
    _rate, muted = read_wav(tmp_path / "b.wav")
    assert stream_b.stats()["received"] > 30  # packets keep flowing while muted
    assert _peak(muted, 8000) < 50  # but they carry silence

    socks, (stream_a, stream_b) = _pair(tmp_path, "PCMU", 0)
    _run(socks, (stream_a, stream_b), 1.0)
    _rate, full = read_wav(tmp_path / "b.wav")
    socks, (stream_a, stream_b) = _pair(tmp_path, "PCMU", 0)
    stream_b.set_volume(volume_gain(2))  # four steps down: -12 dB
    _run(socks, (stream_a, stream_b), 1.0)
    _rate, quiet = read_wav(tmp_path / "b.wav")
    ratio = _peak(quiet, 8000) / _peak(full, 8000)
    assert 0.2 < ratio < 0.32, ratio  # 10 ** (-12 / 20) = 0.25


def test_the_audio_thread_reads_the_socket_itself_and_hands_back_what_is_not_media(tmp_path):
    socks, (stream_a, stream_b) = _pair(tmp_path, "PCMU", 0)
    a, b = socks
    b.setblocking(False)
    others = []
    stream_b.read_socket(lambda data, addr: others.append((data, addr)))
    zrtp_like = b"\x10\x00\x00\x01ZRTP" + bytes(20)
    stun_like = b"\x00\x01\x00\x00" + bytes(16)
    pump_a = Pump(a, stream_a)  # a is read the classic way: by a control thread
    stream_a.start()
    stream_b.start()
    try:
        wait_until(lambda: stream_b.stats()["received"], 5, "B's audio thread to read media")
        a.sendto(zrtp_like, b.getsockname())
        a.sendto(stun_like, b.getsockname())
        wait_until(lambda: len(others) == 2 and stream_b.stats()["received"] >= 50, 5, "50 packets and the two others")
    finally:
        stream_a.stop()
        stream_b.stop()
        pump_a.stop()
        for sock in socks:
            sock.close()
    sb = stream_b.stats()
    assert sb["received"] >= 50 and sb["auth_failures"] == 0
    assert sb["jitter_ms"] < 5  # kernel timestamps: arrival is not quantised to the 20 ms period
    assert [data for data, _addr in others] == [zrtp_like, stun_like]
    rate, recording = read_wav(tmp_path / "b.wav")
    assert _dominant_correlation(None, recording, rate) > 0.9
