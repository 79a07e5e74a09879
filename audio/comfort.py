"""Comfort noise: a quiet, slightly low-passed noise instead of dead silence (and RFC 3389 CN levels).

A dead-silent line sounds like a dropped call; when nothing can be played (before the first packet,
after concealment has faded out, during the peer's CN/silence), this fills in noise at about the
level of a quiet room. The generator is a deterministic xorshift PRNG (no random bytes are drawn: it
is not security-relevant).

API:
    ComfortNoise(sample_rate, level_dbov=-70)
        .frame(samples) -> pcm                 16-bit little-endian mono
        .set_level_dbov(level)                 level in dBov (negative; -127..0)
        .apply_cn_payload(payload)             RFC 3389 §3: the first octet is the level in -dBov;
                                               RemoteProtocolError if empty
"""

import struct

from firmware.errors import RemoteProtocolError

_TABLE_SAMPLES = 4093  # a prime length, so 20 ms frames do not line up with the table's repetition


class ComfortNoise:
    __slots__ = ("sample_rate", "_amplitude", "_state", "_last", "_table", "_position")

    def __init__(self, sample_rate, level_dbov=-70):
        self.sample_rate = sample_rate
        self._state = 0x2545F491
        self._last = 0.0
        self._position = 0
        self._table = b""
        self.set_level_dbov(level_dbov)

    def set_level_dbov(self, level):
        if level > 0:
            level = 0
        # RMS of a uniform variable of peak A is A/sqrt(3); dBov is relative to a full-scale sine.
        rms = 32767.0 / 1.4142 * (10.0 ** (level / 20.0))
        amplitude = rms * 1.732
        if not self._table or amplitude != self._amplitude:
            self._amplitude = amplitude
            # The noise is computed once per level and then read out cyclically: the hot path (a
            # silent line plays this every 20 ms) is a slice, not a per-sample loop.
            self._table = self._generate(_TABLE_SAMPLES)
            self._position = 0

    def apply_cn_payload(self, payload):
        if not payload:
            raise RemoteProtocolError("comfort noise payload is empty")
        self.set_level_dbov(-(payload[0] & 0x7F))

    def _generate(self, samples):
        state = self._state
        last = self._last
        amplitude = self._amplitude
        out = []
        for _ in range(samples):
            state ^= (state << 13) & 0xFFFFFFFF
            state ^= state >> 17
            state ^= (state << 5) & 0xFFFFFFFF
            white = (state / 2147483648.0) - 1.0
            last = 0.6 * last + 0.4 * white
            value = int(last * amplitude * 1.6)
            out.append(32767 if value > 32767 else (-32768 if value < -32768 else value))
        self._state = state
        self._last = last
        return struct.pack("<%dh" % samples, *out)

    def frame(self, samples):
        table = self._table
        size = len(table)
        want = 2 * samples
        out = b""
        while len(out) < want:
            chunk = table[self._position : self._position + want - len(out)]
            out += chunk
            self._position = (self._position + len(chunk)) % size
        return out
