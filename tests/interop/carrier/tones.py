"""Test tones for interop calls: write one into a WAV, and measure it in a recording, window by window."""

import math
import struct
import wave

import numpy as np


def write_tone(path, frequency, seconds, rate=8000, amplitude=8000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(amplitude * math.sin(2 * math.pi * frequency * i / rate)))
                for i in range(int(seconds * rate))
            )
        )
    return path


def tone_levels(path, frequency, window=0.2):
    """[(start second, amplitude of `frequency` in that window)] over a 16-bit mono WAV (any rate): the
    magnitude of its Fourier coefficient, so a full-scale sine of amplitude A measures about A."""
    with wave.open(str(path), "rb") as w:
        rate = w.getframerate()
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise AssertionError("{}: not 16-bit mono".format(path))
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(float)
    size = int(rate * window)
    basis = np.exp(-2j * np.pi * frequency * np.arange(size) / rate)
    return [
        (start / rate, float(abs(np.dot(samples[start : start + size], basis)) * 2 / size))
        for start in range(0, len(samples) - size + 1, size)
    ]
