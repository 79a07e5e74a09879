"""Time-stretching of one decoded frame by one pitch period (WSOLA-style), for playout adaptation.

A playout buffer that must shed or gain delay (the sender's clock runs faster or slower than the sound
card's, or the jitter changed) should never drop or repeat a whole 20 ms frame: that is an audible
click or gap. Removing or repeating one pitch period inside a frame, joined with an overlap-add where
the waveform is most similar to itself, is all but inaudible in voiced speech and harmless in silence
or noise (the waveform-similarity overlap-add of Verhelst and Roelands, ICASSP 1993; the "accelerate"
and "preemptive expand" operations of WebRTC's NetEQ).

The similarity search runs on every (rate // 8000)-th sample, so it costs the same at 8, 16 or 48 kHz:
about 100 lags of a 5 ms window (4000 multiplications), done only when the buffer asks for it.

API (pure Python, MicroPython-compatible):
    shorten(pcm, rate) -> pcm     one pitch period (2.5-15 ms) removed; a frame too short to search is
                                  returned unchanged
    lengthen(pcm, rate) -> pcm    one pitch period repeated
    quiet(pcm) -> bool            no sample of the frame (every 4th looked at) above -30 dBFS: a pause,
                                  where a stretch is least audible
    pcm: 16-bit little-endian mono bytes.
"""

import struct

try:
    from operator import mul as _mul
except ImportError:  # MicroPython has no operator module

    def _mul(a, b):
        return a * b


_MIN_PERIOD_8K = 20  # 2.5 ms: a high voice's pitch
_MAX_PERIOD_8K = 120  # 15 ms: a low voice's pitch
_WINDOW_8K = 40  # 5 ms compared at each lag, and the length of the overlap-add


def _dot(a, b):
    return sum(map(_mul, a, b))


def _best_period(samples, rate):
    """The lag (in samples at `rate`) where the frame's start best matches itself later, and its window."""
    step = rate // 8000 if rate >= 8000 else 1
    coarse = samples[::step]
    window = _WINDOW_8K
    longest = min(_MAX_PERIOD_8K, len(coarse) - window)
    if longest < _MIN_PERIOD_8K:
        return 0, 0
    head = coarse[:window]
    best_lag, best_score = longest, None
    for lag in range(_MIN_PERIOD_8K, longest + 1):
        candidate = coarse[lag : lag + window]
        energy = _dot(candidate, candidate)
        correlation = _dot(head, candidate)
        score = correlation * abs(correlation) / energy if energy > 0 else 0.0
        if best_score is None or score > best_score:
            best_score, best_lag = score, lag
    return best_lag * step, window * step


def _unpack(pcm):
    return list(struct.unpack("<%dh" % (len(pcm) >> 1), pcm))


def _pack(samples):
    return struct.pack(
        "<%dh" % len(samples), *[32767 if s > 32767 else (-32768 if s < -32768 else int(s)) for s in samples]
    )


def _fade(leaving, entering):
    count = len(leaving)
    return [leaving[i] + (entering[i] - leaving[i]) * (i + 1) / (count + 1) for i in range(count)]


_QUIET_PEAK = 1036  # -30 dBFS


def quiet(pcm):
    samples = struct.unpack("<%dh" % (len(pcm) >> 1), pcm)
    for index in range(0, len(samples), 4):
        sample = samples[index]
        if sample > _QUIET_PEAK or sample < -_QUIET_PEAK:
            return False
    return True


def shorten(pcm, rate):
    samples = _unpack(pcm)
    period, window = _best_period(samples, rate)
    if not period:
        return pcm
    # Play x[0:W] fading into x[P:P+W], then go on from x[P+W]: the period x[0:P] is skipped.
    return _pack(_fade(samples[:window], samples[period : period + window]) + samples[period + window :])


def lengthen(pcm, rate):
    samples = _unpack(pcm)
    period, window = _best_period(samples, rate)
    if not period:
        return pcm
    # Play up to x[P], fade from x[P:P+W] back into x[0:W], and go on from x[W]: x[0:P] is heard twice.
    return _pack(samples[:period] + _fade(samples[period : period + window], samples[:window]) + samples[window:])
