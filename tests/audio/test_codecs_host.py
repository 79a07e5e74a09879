"""G.722 and Opus wrappers (host-only C libraries), the codec factory, and the WAV devices."""

import math
import struct
import time

import pytest

from audio.codecs import make_codec
from audio.wavfile import NullSink, SilentSource, WavRecorder, WavSource, read_wav, write_wav
from firmware.errors import LocalProtocolError


def _sine(freq, rate, count, amplitude=8000, start=0):
    return struct.pack(
        "<%dh" % count, *[int(amplitude * math.sin(2 * math.pi * freq * (start + i) / rate)) for i in range(count)]
    )


def _best_correlation(reference, decoded, max_lag):
    ref = struct.unpack("<%dh" % (len(reference) // 2), reference)
    out = struct.unpack("<%dh" % (len(decoded) // 2), decoded)
    best = 0.0
    n = len(ref) - max_lag
    for lag in range(max_lag):
        a = ref[:n]
        b = out[lag : lag + n]
        num = sum(x * y for x, y in zip(a, b))
        den = math.sqrt(sum(x * x for x in a) * sum(y * y for y in b)) or 1.0
        best = max(best, num / den)
    return best


@pytest.mark.parametrize("name", ["PCMU", "PCMA", "G722", "opus"])
def test_codec_round_trip_keeps_a_tone(name):
    codec = make_codec(name)
    frame = codec.frame_samples
    reference = b""
    decoded = b""
    for k in range(15):
        pcm = _sine(440, codec.sample_rate, frame, start=k * frame)
        payload = codec.encode(pcm)
        assert 0 < len(payload) <= 400
        reference += pcm
        decoded += codec.decode(payload)
    assert len(decoded) == len(reference)
    skip = 5 * frame * 2
    assert _best_correlation(reference[skip:], decoded[skip:], codec.sample_rate // 100) > 0.97


@pytest.mark.parametrize("name", ["PCMU", "G722", "opus"])
def test_codec_conceals_a_lost_frame(name):
    codec = make_codec(name)
    frame = codec.frame_samples
    for k in range(5):
        codec.decode(codec.encode(_sine(300, codec.sample_rate, frame, start=k * frame)))
    concealed = codec.conceal(frame)
    assert len(concealed) == frame * 2
    samples = struct.unpack("<%dh" % frame, concealed)
    assert max(abs(s) for s in samples) > 1000


def test_opus_fec_recovers_from_the_next_packet():
    codec = make_codec("opus")
    frames = [codec.encode(_sine(300, 48000, 960, start=k * 960)) for k in range(10)]
    for payload in frames[:5]:
        codec.decode(payload)
    recovered = codec.recover(frames[6], 960)
    assert len(recovered) == 1920


def test_opus_encodes_wideband_at_complexity_5_not_libopus_fullband_at_10():
    # Most of an Opus call's CPU is the encoder: capped at wideband, complexity 5 costs under half of
    # fullband at 8 for a higher PESQ-WB (issue 14; figures in audio/opus.py).
    import opuslib
    import opuslib.api.ctl as ctl
    import opuslib.api.encoder as encoder_api

    codec = make_codec("opus")
    assert encoder_api.encoder_ctl(codec._encoder_state, ctl.get_complexity) == 5
    assert encoder_api.encoder_ctl(codec._encoder_state, ctl.get_max_bandwidth) == opuslib.constants.BANDWIDTH_WIDEBAND
    # What goes out is SILK at wideband or less: the TOC octet's configuration (RFC 6716 §3.1) is 0-11;
    # 12-15 are the SWB/FB hybrids and 16-31 CELT.
    speech_like = b"".join(_sine(f, 48000, 960, start=k * 960) for k, f in enumerate((300, 1200, 3400, 5000)))
    for start in range(0, len(speech_like), 1920):
        config = codec.encode(speech_like[start : start + 1920])[0] >> 3
        assert config <= 11, config


def test_unknown_codec():
    with pytest.raises(LocalProtocolError):
        make_codec("GSM")


def test_wav_round_trip_stereo_mixdown_and_resampling(tmp_path):
    path = tmp_path / "a.wav"
    write_wav(path, 16000, _sine(440, 16000, 1600))
    assert read_wav(path) == (16000, _sine(440, 16000, 1600))
    import wave

    stereo = tmp_path / "s.wav"
    with wave.open(str(stereo), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<4h", 100, 300, -100, -300))
    assert read_wav(stereo) == (8000, struct.pack("<2h", 200, -200))
    source = WavSource(path, 8000, paced=False, loop=False)
    frames = [source.read() for _ in range(7)]
    assert all(len(f) == 320 for f in frames)
    assert frames[-1] == bytes(320)  # past the end: silence


def test_wav_source_loops_and_is_paced_in_real_time(tmp_path):
    path = tmp_path / "a.wav"
    write_wav(path, 8000, _sine(440, 8000, 400))
    source = WavSource(path, 8000, loop=True)
    started = time.monotonic()
    frames = [source.read() for _ in range(15)]
    elapsed = time.monotonic() - started
    assert 0.27 <= elapsed <= 0.5, elapsed
    assert frames[2][160:] == _sine(440, 8000, 400)[:160]  # 400 samples: frame 2 wraps at sample 80
    silent = SilentSource(48000)
    assert silent.period_samples == 960 and silent.read() == bytes(1920)


def test_recorder_and_null_sink(tmp_path):
    path = tmp_path / "rec.wav"
    recorder = WavRecorder(path, 16000)
    recorder.write(_sine(440, 16000, 320))
    recorder.write(_sine(440, 16000, 320, start=320))
    recorder.close()
    assert read_wav(path) == (16000, _sine(440, 16000, 640))
    sink = NullSink(8000)
    sink.write(bytes(320))
    assert sink.samples == 160


def test_codec_tables_agree_with_the_codecs():
    from audio.codecs import CODECS, RTP_CLOCKS, RTPMAP, SAMPLE_RATES

    for name in CODECS:
        codec = make_codec(name)
        assert codec.sample_rate == SAMPLE_RATES[name] and codec.rtp_clock == RTP_CLOCKS[name]
        assert RTPMAP[name].split("/")[1] == str(codec.rtp_clock)
