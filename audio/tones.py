"""Tone generators: call-progress tones, the ring, and in-band DTMF, as 16-bit PCM frames.

A tone is a cadence: a list of (frequencies in Hz, duration in ms) segments, repeated; an empty
frequency tuple is silence. Phases continue across frames, so frames of any length join cleanly.

API:
    ToneGenerator(cadence, sample_rate, level=0.12)   level: peak per frequency, fraction of full scale
        .frame(samples) -> pcm                        16-bit little-endian mono
        .reset()
    DIAL, RINGBACK, BUSY, ERROR, RING       cadences (North American precise tones; the ring is the
                                            local ringer: 2 s of 440+480 Hz warble, 4 s off)
    CALL_WAITING                            two soft 440 Hz beeps every 10 s, over a call
    DTMF_FREQUENCIES: {digit: (low, high)}
    dtmf_cadence(digit, on_ms=100, off_ms=60) -> cadence
"""

import math
import struct

DIAL = [((350, 440), 1000)]
RINGBACK = [((440, 480), 2000), ((), 4000)]
BUSY = [((480, 620), 500), ((), 500)]
ERROR = [((480, 620), 250), ((), 250)]  # reorder / fast busy
RING = [((440, 480), 100), ((), 25)] * 16 + [((), 4000)]
# Call waiting (issue 15): a short 440 Hz beep twice, every 10 s, mixed softly over the call in the earpiece
# (the North American call-waiting tone is 440 Hz, 300 ms).
CALL_WAITING = [((440,), 300), ((), 200), ((440,), 300), ((), 9200)]

DTMF_FREQUENCIES = {
    "1": (697, 1209),
    "2": (697, 1336),
    "3": (697, 1477),
    "A": (697, 1633),
    "4": (770, 1209),
    "5": (770, 1336),
    "6": (770, 1477),
    "B": (770, 1633),
    "7": (852, 1209),
    "8": (852, 1336),
    "9": (852, 1477),
    "C": (852, 1633),
    "*": (941, 1209),
    "0": (941, 1336),
    "#": (941, 1477),
    "D": (941, 1633),
}


def dtmf_cadence(digit, on_ms=100, off_ms=60):
    return [(DTMF_FREQUENCIES[str(digit).upper()], on_ms), ((), off_ms)]


class ToneGenerator:
    __slots__ = ("cadence", "sample_rate", "amplitude", "_segment", "_left", "_phases", "_steps")

    def __init__(self, cadence, sample_rate, level=0.12):
        self.cadence = cadence
        self.sample_rate = sample_rate
        self.amplitude = 32767.0 * level
        self.reset()

    def reset(self):
        self._segment = 0
        self._enter(0)

    def _enter(self, index):
        self._segment = index
        freqs, duration_ms = self.cadence[index]
        self._left = self.sample_rate * duration_ms // 1000
        self._steps = [2.0 * math.pi * f / self.sample_rate for f in freqs]
        self._phases = [0.0] * len(freqs)

    def frame(self, samples):
        out = []
        amplitude = self.amplitude
        while len(out) < samples:
            if self._left <= 0:
                self._enter((self._segment + 1) % len(self.cadence))
                continue
            count = min(samples - len(out), self._left)
            steps = self._steps
            if not steps:
                out.extend([0] * count)
            else:
                phases = self._phases
                for _ in range(count):
                    value = 0.0
                    for k in range(len(steps)):
                        value += math.sin(phases[k])
                        phases[k] += steps[k]
                    out.append(int(value * amplitude))
                for k in range(len(steps)):
                    phases[k] %= 2.0 * math.pi
            self._left -= count
        return struct.pack("<%dh" % samples, *out)
