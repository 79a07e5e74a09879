"""Packet loss concealment by pitch-period repetition, in the spirit of ITU-T G.711 Appendix I.

On the first lost frame the pitch period of the last 48.75 ms of good speech is found by normalised
cross-correlation (periods 5-15 ms, a coarse search on every second lag of the signal taken at 8 kHz,
refined at the full rate around the best),
and the last period is repeated, joined to the real signal with a quarter-period overlap-add. Longer
losses widen the repeated span to two and then three periods (less buzzy), attenuate by 20 % per
10 ms after the first 10 ms, and fall silent after 60 ms. The first good frame after a loss is
cross-faded from the continued synthetic signal over a quarter period. When the frame after the gap is
already known (the playout buffer holds it), the gap is bridged instead: a one-frame gap by a raised-
cosine cross-fade from the pitch-repeated past into the future's first period repeated backwards; a
longer gap (a burst) the same way over its whole length, from where its end became known, so it ends
where the next frame starts instead of in silence and an onset (PCMU, tools/bench/impair.py, 40 ms
jitter, 5 %, seeds 1-6: Gilbert-Elliott bursts of 3 2.50 -> 2.58, random 3.01 -> 3.09).

API:
    Concealer(sample_rate)                  8000 for G.711, 16000 for G.722 (any rate works)
        .good(pcm, smooth=True) -> pcm      pass every decoded good frame through it: it keeps the
                                            history and smooths the return after a loss (smooth=False:
                                            the decoder itself carried the concealment into this frame)
        .conceal(samples, following=None, ahead=0) -> pcm   `samples` samples of synthetic speech for a
                                            lost frame; `following`: the decoded frame after the gap,
                                            `ahead` samples after this one, when it is known
        .peek(samples) -> pcm               how the concealment would go on, without consuming it
                                            (G.722 re-encodes it to bring its decoder forward)
    pcm: 16-bit little-endian mono bytes.
"""

import math
import struct

try:
    from operator import mul as _mul
except ImportError:  # MicroPython has no operator module

    def _mul(a, b):
        return a * b


def _unpack(pcm):
    return list(struct.unpack("<%dh" % (len(pcm) >> 1), pcm))


def _pack(samples):
    clipped = [32767 if s > 32767 else (-32768 if s < -32768 else int(s)) for s in samples]
    return struct.pack("<%dh" % len(clipped), *clipped)


def _best_lag(target, lags, candidate_at, best_lag, best_score=-1.0):
    """The lag among `lags` whose samples (candidate_at(lag)) best match `target`, by normalised
    cross-correlation with its sign kept, and that score; `best_lag` and `best_score` when none beats it."""
    for lag in lags:
        candidate = candidate_at(lag)
        energy = _dot(candidate, candidate)
        if energy <= 0:
            continue
        correlation = _dot(target, candidate)
        score = correlation * abs(correlation) / energy
        if score > best_score:
            best_score, best_lag = score, lag
    return best_lag, best_score


def _dot(a, b):
    return sum(map(_mul, a, b))


class Concealer:
    __slots__ = (
        "rate",
        "_pcm_history",
        "_history_length",
        "_min_pitch",
        "_max_pitch",
        "_lost",
        "_pitch",
        "_period_buffer",
        "_position",
        "_span_periods",
        "_snapshot",
        "_merge_from",
    )

    def __init__(self, sample_rate):
        self.rate = sample_rate
        self._history_length = sample_rate * 390 // 8000  # 48.75 ms
        self._min_pitch = sample_rate * 40 // 8000  # 5 ms
        self._max_pitch = sample_rate * 120 // 8000  # 15 ms
        # Kept as bytes (a C-level append and slice per good frame); unpacked only when a loss starts.
        self._pcm_history = bytes(2 * self._history_length)
        self._lost = 0  # samples concealed in the current loss
        self._pitch = 0
        self._period_buffer = []
        self._position = 0
        self._span_periods = 0
        self._snapshot = []
        self._merge_from = 0

    # -- good frames -----------------------------------------------------------------------------

    def good(self, pcm, smooth=True):
        if smooth and self._lost and self._period_buffer and len(pcm) >= 2:
            samples = _unpack(pcm)
            fade = min(len(samples), max(1, self._pitch // 4))
            synthetic = self._synthesize(fade, advance=False)
            for i in range(fade):
                w = (i + 1) / (fade + 1)
                samples[i] = int(synthetic[i] * (1 - w) + samples[i] * w)
            pcm = _pack(samples)
        self._lost = 0
        self._remember_pcm(pcm)
        return pcm

    def _remember_pcm(self, pcm):
        history = self._pcm_history + pcm
        self._pcm_history = history[len(history) - 2 * self._history_length :]

    def _history_samples(self):
        return _unpack(self._pcm_history)

    # -- lost frames -----------------------------------------------------------------------------

    def _find_pitch(self):
        history = self._snapshot
        window = self._max_pitch  # correlate the last 15 ms against earlier positions
        end = len(history)
        target = history[end - window :]

        def earlier(lag):
            return history[end - window - lag : end - lag]

        # Coarse (every second lag at 8 kHz, on every (rate // 8000)-th sample: the same cost at 16 kHz
        # as at 8, a quarter of a full search; G.722's first concealed frame spent 1.8 ms here), then
        # refined at the full rate around the best.
        step = self.rate // 8000 if self.rate >= 8000 else 1
        coarse_target = target[::step]

        def coarse(lag):
            return history[end - window - lag : end - lag : step]

        best_lag = _best_lag(
            coarse_target, range(self._min_pitch, self._max_pitch + 1, 2 * step), coarse, self._min_pitch
        )[0]
        refine = range(max(self._min_pitch, best_lag - step), min(self._max_pitch, best_lag + step) + 1)
        return _best_lag(target, refine, earlier, best_lag)[0]

    def _start_loss(self):
        self._snapshot = self._history_samples()
        self._pitch = self._find_pitch()
        self._span_periods = 1
        self._set_period_buffer()
        # Quarter-period overlap-add between the history's tail and the repeated period (App. I).
        quarter = max(1, self._pitch // 4)
        buffer = self._period_buffer
        tail = self._snapshot[len(self._snapshot) - quarter :]
        for i in range(quarter):
            w = (i + 1) / (quarter + 1)
            buffer[len(buffer) - quarter + i] = int(tail[i] * (1 - w) + buffer[len(buffer) - quarter + i] * w)
        self._position = 0

    def _set_period_buffer(self):
        span = self._pitch * self._span_periods
        self._period_buffer = self._snapshot[len(self._snapshot) - span :]

    def _synthesize(self, count, advance=True):
        buffer = self._period_buffer
        length = len(buffer)
        position = self._position
        out = []
        for _ in range(count):
            out.append(buffer[position])
            position += 1
            if position >= length:
                position = 0
        if advance:
            self._position = position
        return out

    def conceal(self, samples, following=None, ahead=0):
        """Synthetic audio for a lost frame. `following`: the decoded frame after the gap when it is
        already here (the playout buffer usually holds it), `ahead` samples after the end of this one
        (0: it comes next): the gap is then bridged from both sides."""
        if following is not None and len(following) >= 4:
            if not self._lost and not ahead:
                return self._bridge(samples, _unpack(following))
            return self._bridge_long(samples, _unpack(following), ahead)
        if not self._lost:
            self._start_loss()
        pcm = self._forward(samples)
        self._remember_pcm(pcm)
        return pcm

    def _forward(self, samples):
        """The pitch-repeated past, faded after 10 ms and silent after 60 ms."""
        ten_ms = self.rate // 100
        out = []
        produced = 0
        while produced < samples:
            # Widen the repeated span after 10 ms and 20 ms of loss.
            wanted_span = 1 + min(2, self._lost // ten_ms)
            if wanted_span != self._span_periods and self._pitch * wanted_span <= self._history_length:
                self._span_periods = wanted_span
                self._set_period_buffer()
                self._position %= len(self._period_buffer)
            chunk = min(samples - produced, ten_ms - self._lost % ten_ms)
            block = self._synthesize(chunk)
            for i in range(chunk):
                elapsed = self._lost + i
                if elapsed >= 6 * ten_ms:
                    gain = 0.0
                elif elapsed < ten_ms:
                    gain = 1.0
                else:
                    gain = 1.0 - 0.2 * (elapsed - ten_ms) / ten_ms
                out.append(block[i] * gain)
            self._lost += chunk
            produced += chunk
        return _pack(out)

    def peek(self, samples):
        if not self._lost or not self._period_buffer:
            return bytes(2 * samples)
        ten_ms = self.rate // 100
        elapsed = self._lost
        gain = 0.0 if elapsed >= 6 * ten_ms else (1.0 if elapsed < ten_ms else 1.0 - 0.2 * (elapsed - ten_ms) / ten_ms)
        return _pack([s * gain for s in self._synthesize(samples, advance=False)])

    def _bridge(self, samples, future):
        """One-frame gap with the next frame known: cross-fade the pitch-repeated past into the
        pitch-repeated (backwards) future, so the gap ends exactly where the next frame starts."""
        self._start_loss()
        forward = self._synthesize(samples)
        period = self._future_pitch(future)
        out = []
        for i in range(samples):
            backward = future[(i - samples) % period]
            w = 0.5 - 0.5 * math.cos(math.pi * (i + 1) / (samples + 1))  # raised-cosine cross-fade
            out.append(forward[i] * (1 - w) + backward * w)
        self._lost = 0  # the next frame joins by construction: no cross-fade in good()
        pcm = _pack(out)
        self._remember_pcm(pcm)
        return pcm

    def _bridge_long(self, samples, future, ahead):
        """A frame of a longer gap whose end is known (a burst of losses shorter than the playout
        buffer): the faded pitch-repeated past is cross-faded over the whole gap into the future's
        first pitch period repeated backwards, so the gap ends where the next frame starts instead of
        in silence followed by an onset (the "merge" of WebRTC's NetEQ does the same)."""
        if not self._lost:
            self._start_loss()
            self._merge_from = 0
        elapsed = self._lost
        if not self._merge_from:
            # The cross-fade runs from where the end became known (the playout buffer may receive the
            # packet after the gap only while the gap is already being played) to the gap's end.
            self._merge_from = elapsed + 1
        start = self._merge_from - 1
        total = elapsed + samples + ahead
        forward = _unpack(self._forward(samples))
        period = self._future_pitch(future)
        out = []
        for i in range(samples):
            position = elapsed + i
            backward = future[(position - total) % period]
            w = 0.5 - 0.5 * math.cos(math.pi * (position - start + 1) / (total - start + 1))
            out.append(forward[i] * (1 - w) + backward * w)
        if not ahead:
            self._lost = 0  # the next frame joins by construction: no cross-fade in good()
            self._merge_from = 0
        pcm = _pack(out)
        self._remember_pcm(pcm)
        return pcm

    def _future_pitch(self, future):
        """The pitch period at the start of the next frame (falls back to the past's)."""
        low, high = self._min_pitch, self._max_pitch
        window = len(future) - high
        if window < low:
            return self._pitch if self._pitch <= len(future) else len(future)
        head = future[:window]
        return _best_lag(head, range(low, high + 1), lambda lag: future[lag : lag + window], self._pitch)[0]
