"""Loss concealment, resampling, tones and comfort noise (pure Python, also under MicroPython)."""

import math
import struct

from audio.comfort import ComfortNoise
from audio.plc import Concealer
from audio.resample import Resampler
from audio.tones import BUSY, DTMF_FREQUENCIES, RINGBACK, ToneGenerator, dtmf_cadence
from firmware.errors import RemoteProtocolError
from tests.portable import raises

MICROPYTHON = True


def _sine(freq, rate, start, count, amplitude=8000):
    return struct.pack(
        "<%dh" % count, *[int(amplitude * math.sin(2 * math.pi * freq * (start + i) / rate)) for i in range(count)]
    )


def _samples(pcm):
    return struct.unpack("<%dh" % (len(pcm) // 2), pcm)


def _rms(pcm):
    s = _samples(pcm)
    return math.sqrt(sum(x * x for x in s) / len(s)) if s else 0.0


def _goertzel(samples, freq, rate):
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def test_concealment_continues_a_voiced_sound():
    plc = Concealer(8000)
    for k in range(5):
        plc.good(_sine(200, 8000, k * 160, 160))
    concealed = _samples(plc.conceal(160))
    expected = _samples(_sine(200, 8000, 5 * 160, 160))
    error = sum((a - b) ** 2 for a, b in zip(concealed, expected))
    energy = sum(b * b for b in expected)
    assert error < 0.05 * energy


def test_concealment_fades_out_after_60_ms():
    plc = Concealer(8000)
    for k in range(5):
        plc.good(_sine(250, 8000, k * 160, 160))
    levels = [_rms(plc.conceal(160)) for _ in range(5)]
    assert levels[0] > 4000
    assert levels[1] < levels[0] and levels[2] < levels[1]
    assert levels[3] == 0 and levels[4] == 0


def test_return_after_loss_is_smooth():
    plc = Concealer(16000)
    for k in range(5):
        plc.good(_sine(300, 16000, k * 320, 320))
    plc.conceal(320)
    back = _samples(plc.good(_sine(300, 16000, 6 * 320, 320)))
    assert abs(back[0]) < 8000 and len(back) == 320


def test_resampler_keeps_a_tone_and_gives_exact_frame_lengths():
    down = Resampler(48000, 8000)
    up = Resampler(8000, 48000)
    out = b""
    for k in range(10):
        frame = down.process(_sine(1000, 48000, k * 960, 960))
        assert len(frame) == 320
        out_up = up.process(frame)
        assert len(out_up) == 1920
        out += out_up
    tail = _samples(out)[-2880:]
    level = math.sqrt(sum(x * x for x in tail) / len(tail))
    assert abs(level - 8000 / math.sqrt(2)) < 300


def test_resampler_rejects_what_would_alias():
    down = Resampler(48000, 8000)
    out = b""
    for k in range(5):
        out += down.process(_sine(6000, 48000, k * 960, 960))  # above the 4 kHz Nyquist limit
    assert _rms(out[len(out) // 2 :]) < 8000 * 0.01


def test_equal_rates_pass_through():
    r = Resampler(8000, 8000)
    frame = _sine(500, 8000, 0, 160)
    assert r.process(frame) is frame


def test_dtmf_tone_has_its_two_frequencies():
    gen = ToneGenerator(dtmf_cadence("5"), 8000, level=0.25)
    samples = _samples(gen.frame(800))
    low, high = DTMF_FREQUENCIES["5"]
    wanted = _goertzel(samples, low, 8000) + _goertzel(samples, high, 8000)
    other = _goertzel(samples, 697, 8000) + _goertzel(samples, 1477, 8000)
    assert wanted > 50 * other


def test_cadences_have_their_on_off_pattern():
    busy = ToneGenerator(BUSY, 8000)
    on = busy.frame(4000)
    off = busy.frame(4000)
    assert _rms(on) > 1000 and _rms(off) == 0
    ringback = ToneGenerator(RINGBACK, 8000)
    assert _rms(ringback.frame(16000)) > 1000 and _rms(ringback.frame(32000)) == 0


def test_comfort_noise_level_and_cn_payload():
    cn = ComfortNoise(8000, level_dbov=-40)
    loud = _rms(cn.frame(1600))
    cn.apply_cn_payload(bytes((70,)))
    quiet = _rms(cn.frame(1600))
    assert 50 < loud < 600 and quiet < loud / 10
    raises(RemoteProtocolError, cn.apply_cn_payload, b"")


def test_a_gap_with_the_next_frame_known_is_bridged_closer_than_extrapolated():
    history = [_sine(180, 8000, k * 160, 160) for k in range(5)]
    truth = _samples(_sine(180, 8000, 5 * 160, 160))
    following = _sine(180, 8000, 6 * 160, 160)
    errors = []
    for future in (None, following):
        plc = Concealer(8000)
        for frame in history:
            plc.good(frame)
        got = _samples(plc.conceal(160, future))
        errors.append(sum((a - b) ** 2 for a, b in zip(got, truth)))
        # The frame after the gap passes unchanged when the gap was bridged to it.
        after = plc.good(following)
        if future is not None:
            assert after == following
    assert errors[1] <= errors[0]
    assert errors[1] < 0.05 * sum(b * b for b in truth)


def test_a_burst_with_its_end_known_is_bridged_to_it_instead_of_fading_out():
    # A 180 Hz vowel, three frames lost, the frame after them held by the playout buffer from the start.
    history = [_sine(180, 8000, k * 160, 160) for k in range(5)]
    truth = [_samples(_sine(180, 8000, (5 + k) * 160, 160)) for k in range(3)]
    following = _sine(180, 8000, 8 * 160, 160)
    errors = []
    for future in (None, following):
        plc = Concealer(8000)
        for frame in history:
            plc.good(frame)
        got = [_samples(plc.conceal(160, future, (2 - k) * 160)) for k in range(3)]
        errors.append(sum((a - b) ** 2 for frame, true in zip(got, truth) for a, b in zip(frame, true)))
        after = plc.good(following)
        if future is not None:
            # The gap ends where the next frame starts: it passes unchanged, and the seam is no larger
            # than a step of the waveform itself.
            assert after == following
            steepest = max(abs(a - b) for a, b in zip(_samples(following)[1:], _samples(following)))
            assert abs(got[2][-1] - _samples(following)[0]) <= steepest
            # Not faded to silence in the middle of the gap.
            assert _rms(struct.pack("<160h", *got[1])) > 0.5 * _rms(following)
    signal = sum(b * b for true in truth for b in true)
    # Faded past alone: the gap's end is silent (its error is most of the signal); bridged: a few %.
    assert errors[0] > 0.3 * signal and errors[1] < 0.1 * signal, (errors, signal)


def test_a_burst_whose_end_becomes_known_late_is_merged_from_there_without_a_jump():
    history = [_sine(180, 8000, k * 160, 160) for k in range(5)]
    following = _sine(180, 8000, 8 * 160, 160)
    plc = Concealer(8000)
    for frame in history:
        plc.good(frame)
    first = _samples(plc.conceal(160))  # the end is not held yet
    second = _samples(plc.conceal(160, following, 160))
    third = _samples(plc.conceal(160, following, 0))
    assert plc.good(following) == following
    # The cross-fade starts at the second frame: its first sample continues the first frame's last.
    steepest = max(abs(a - b) for a, b in zip(_samples(following)[1:], _samples(following)))
    assert abs(second[0] - first[-1]) <= steepest and abs(third[0] - second[-1]) <= steepest


def test_at_16_khz_the_coarse_pitch_search_on_every_second_sample_still_finds_the_period():
    # The search runs on every second sample at 16 kHz (a quarter of the cost), then refines at the full
    # rate: the repeated period must still be the voice's, to the sample.
    for freq in (110, 180, 250):
        plc = Concealer(16000)
        for k in range(5):
            plc.good(_sine(freq, 16000, k * 320, 320))
        got = _samples(plc.conceal(320))
        truth = _samples(_sine(freq, 16000, 5 * 320, 320))
        error = sum((a - b) ** 2 for a, b in zip(got[:160], truth[:160]))
        assert abs(plc._pitch - 16000 / freq) <= 1 or abs(plc._pitch - 2 * 16000 / freq) <= 1, (freq, plc._pitch)
        assert error < 0.05 * sum(b * b for b in truth[:160]), (freq, error)


def test_a_decoder_that_carried_the_concealment_itself_can_return_without_the_cross_fade():
    plc = Concealer(8000)
    for k in range(5):
        plc.good(_sine(180, 8000, k * 160, 160))
    plc.conceal(160)
    after = _sine(180, 8000, 6 * 160, 160)
    assert plc.good(after, smooth=False) == after
    plc.conceal(160)
    assert plc.good(after) != after  # the default smooths the return
