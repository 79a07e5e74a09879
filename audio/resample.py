"""Sample-rate conversion by a polyphase windowed-sinc FIR (rational ratio L/M), streaming, pure Python.

For a conversion from rate `source` to rate `target`, L = target / g and M = source / g with
g = gcd(source, target). The prototype low-pass is a Kaiser-windowed (beta 8) sinc with its cutoff at
0.9 of the lower Nyquist frequency, `zero_crossings` zero crossings each side; it is split into L
phases so that each output sample costs one dot product of about 2 * zero_crossings * max(1, M/L)
taps. State (the input tail) is kept between calls, so 20 ms frames join without clicks.

API:
    Resampler(source_rate, target_rate, zero_crossings=8, use_numpy=None)
        use_numpy: None = when numpy is importable (host), False = pure Python (MicroPython, tests);
                   both paths compute the same filter on the same samples
        .process(pcm) -> pcm    16-bit little-endian mono in, the same out; the output length follows
                                the ratio exactly over time (a 20 ms frame at 48 kHz gives exactly
                                160 samples at 8 kHz); the filter delay is constant
        .delay_samples          group delay in output samples
    A Resampler with equal rates passes frames through untouched.
    check_rates(source_rate, target_rate, zero_crossings=8) -> filter length (taps); ValueError when a
        rate is not an integer from MIN_RATE to MAX_RATE or the ratio needs a filter longer than
        MAX_FILTER_TAPS (a rate such as 44101 Hz against 8 kHz has L = 8000 phases); the constructor
        runs it first, so a WAV header's rate 0 or 4e9 is a clear error, not a ZeroDivisionError or
        half a gigabyte of filter.
"""

import math
import struct

try:
    from operator import mul as _mul
except ImportError:  # MicroPython

    def _mul(a, b):
        return a * b


_np = None  # numpy, imported only by the first Resampler that really converts (see _numpy())
_NUMPY_MISSING = False


def _numpy():
    """numpy when importable (host), else None. Imported lazily: a phone whose devices run at the codec's
    rate never resamples, and numpy (with its BLAS) costs about 15 MB of RSS for nothing."""
    global _np, _NUMPY_MISSING
    if _np is None and not _NUMPY_MISSING:
        try:  # optional on the host: the same polyphase arithmetic, vectorised (about 30x faster)
            import numpy

            _np = numpy
        except ImportError:
            _NUMPY_MISSING = True
    return _np


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


MIN_RATE = 1000
MAX_RATE = 768000
MAX_FILTER_TAPS = 32768  # every ratio between the usual rates (8 kHz ... 384 kHz) needs at most ~21 k


def check_rates(source_rate, target_rate, zero_crossings=8):
    for name, rate in (("source", source_rate), ("target", target_rate)):
        if not isinstance(rate, int) or isinstance(rate, bool) or not MIN_RATE <= rate <= MAX_RATE:
            raise ValueError(
                "{} sample rate {!r} Hz is not an integer from {} to {}".format(name, rate, MIN_RATE, MAX_RATE)
            )
    if source_rate == target_rate:
        return 0
    g = _gcd(source_rate, target_rate)
    up, down = target_rate // g, source_rate // g
    taps = 2 * zero_crossings * max(1, (down + up - 1) // up) * up
    if taps > MAX_FILTER_TAPS:
        raise ValueError(
            "converting {} Hz to {} Hz needs a {}-tap filter (at most {}): use a standard sample rate".format(
                source_rate, target_rate, taps, MAX_FILTER_TAPS
            )
        )
    return taps


def _bessel_i0(x):
    total = term = 1.0
    k = 1
    while term > 1e-12 * total:
        term *= (x / (2 * k)) ** 2
        total += term
        k += 1
    return total


class Resampler:
    __slots__ = (
        "source_rate",
        "target_rate",
        "up",
        "down",
        "_phases",
        "_taps",
        "_history",
        "_time",
        "delay_samples",
        "_passthrough",
        "_np_phases",
        "_np_history",
    )

    def __init__(self, source_rate, target_rate, zero_crossings=8, use_numpy=None):
        check_rates(source_rate, target_rate, zero_crossings)
        self.source_rate = source_rate
        self.target_rate = target_rate
        self._passthrough = source_rate == target_rate
        self._np_phases = None
        self._np_history = None
        g = _gcd(source_rate, target_rate)
        self.up = up = target_rate // g
        self.down = down = source_rate // g
        if self._passthrough:
            self._phases = []
            self._taps = 0
            self._history = []
            self._time = 0
            self.delay_samples = 0
            return
        # Cutoff relative to the upsampled rate: 0.9 of the lower Nyquist frequency.
        cutoff = 0.9 * 0.5 / max(up, down)
        taps_per_phase = 2 * zero_crossings * max(1, (down + up - 1) // up)
        total = taps_per_phase * up
        centre = (total - 1) / 2.0
        beta = 8.0
        norm = _bessel_i0(beta)
        prototype = []
        for n in range(total):
            t = n - centre
            sinc = 2 * cutoff if t == 0 else math.sin(2 * math.pi * cutoff * t) / (math.pi * t)
            ratio = 2.0 * n / (total - 1) - 1.0
            window = _bessel_i0(beta * math.sqrt(max(0.0, 1.0 - ratio * ratio))) / norm
            prototype.append(sinc * window * up)  # gain L restores the level after zero stuffing
        # Phase p holds taps p, p + L, p + 2L, ... reversed so that a forward slice of the input
        # history (oldest first) multiplies directly.
        self._phases = [[prototype[p + i * up] for i in range(taps_per_phase - 1, -1, -1)] for p in range(up)]
        self._taps = taps_per_phase
        self._history = [0.0] * (taps_per_phase - 1)
        self._time = 0  # position of the next output, in 1/L input-sample units, from history start
        self.delay_samples = int(round(centre / down))
        np = _numpy() if use_numpy is not False else None
        if np is not None:
            self._np_phases = np.array(self._phases, dtype=_np.float64)
            self._np_history = np.zeros(taps_per_phase - 1, dtype=np.float64)

    def process(self, pcm):
        if self._passthrough:
            return pcm
        if self._np_phases is not None:
            return self._process_numpy(pcm)
        count = len(pcm) >> 1
        history = self._history + list(struct.unpack("<%dh" % count, pcm))
        taps = self._taps
        up, down = self.up, self.down
        phases = self._phases
        out = []
        time = self._time
        # Output k uses input samples ending at index (time // up) + taps - 1 of `history`.
        limit = (len(history) - taps + 1) * up
        while time < limit:
            base = time // up
            value = sum(map(_mul, phases[time % up], history[base : base + taps]))
            out.append(32767 if value > 32767 else (-32768 if value < -32768 else int(value)))
            time += down
        consumed = time // up
        keep_from = min(consumed, len(history) - taps + 1)
        self._history = history[keep_from:]
        self._time = time - keep_from * up
        return struct.pack("<%dh" % len(out), *out)

    def _process_numpy(self, pcm):
        np = _np
        history = np.concatenate((self._np_history, np.frombuffer(pcm, dtype="<i2").astype(np.float64)))
        taps = self._taps
        up, down = self.up, self.down
        limit = (len(history) - taps + 1) * up
        times = np.arange(self._time, limit, down, dtype=np.int64)
        if len(times) == 0:
            self._np_history = history
            return b""
        windows = np.lib.stride_tricks.sliding_window_view(history, taps)
        if up == 1:  # decimation by an integer: one phase, every down-th window
            values = windows[times[0] :: down][: len(times)] @ self._np_phases[0]
        elif down == 1:  # interpolation by an integer: every phase of every window, in time order
            first = int(times[0])
            values = (windows[first // up :] @ self._np_phases.T).reshape(-1)
            values = values[first % up : first % up + len(times)]
        else:
            bases = times // up
            gathered = history[bases[:, None] + np.arange(taps)[None, :]]
            values = np.einsum("ij,ij->i", gathered, self._np_phases[times % up])
        out = np.clip(values, -32768, 32767).astype("<i2").tobytes()
        time = int(times[-1]) + down
        keep_from = min(time // up, len(history) - taps + 1)
        self._np_history = history[keep_from:]
        self._time = time - keep_from * up
        return out
