"""Time-stretching by one pitch period (audio.stretch): the length changes by the period, the waveform
stays continuous, and a pause is recognised as quiet."""

import math
import struct

from audio.stretch import lengthen, quiet, shorten

MICROPYTHON = True


def _tone(rate, frequency, samples, amplitude=8000):
    return struct.pack(
        "<%dh" % samples, *[int(amplitude * math.sin(2 * math.pi * frequency * n / rate)) for n in range(samples)]
    )


def _largest_step(pcm):
    samples = struct.unpack("<%dh" % (len(pcm) // 2), pcm)
    return max(abs(samples[i + 1] - samples[i]) for i in range(len(samples) - 1))


def test_shorten_and_lengthen_by_a_whole_number_of_periods_without_a_jump():
    for rate, frequency in ((8000, 200), (16000, 160), (48000, 125)):
        frame = _tone(rate, frequency, rate // 50)
        period = rate // frequency
        natural = _largest_step(frame)
        for stretched, sign in ((shorten(frame, rate), -1), (lengthen(frame, rate), 1)):
            change = (len(stretched) - len(frame)) // 2 * sign
            assert change > 0 and change % period == 0, (rate, change)
            assert rate * 25 // 10000 <= change <= rate * 15 // 1000
            assert _largest_step(stretched) <= natural * 1.2 + 2, rate


def test_a_frame_too_short_to_search_is_left_alone():
    short = _tone(8000, 200, 50)  # 6.25 ms: no room for a 2.5 ms period and a 5 ms window
    assert shorten(short, 8000) == short and lengthen(short, 8000) == short


def test_quiet():
    assert quiet(bytes(320))
    assert quiet(_tone(8000, 200, 160, amplitude=500))
    assert not quiet(_tone(8000, 200, 160, amplitude=4000))
