"""Playback volume and microphone mute for 16-bit PCM frames.

volume_gain(level, max_level=10, unity_level=6, step_db=3.0) -> float
    the linear gain of a volume step: `unity_level` is 0 dB, each step 3 dB, level 0 is silence.
scale(pcm, gain) -> bytes
    16-bit little-endian PCM multiplied by `gain`, saturated at the int16 limits (never wrapped,
    which would be a loud click). numpy on the host; a plain loop elsewhere (MicroPython).
mix(frames) -> bytes
    the sum of 16-bit little-endian PCM frames of one length, saturated the same way (the local
    conference: each leg hears the microphone and the other leg; the earpiece both legs).
"""

import array
import sys

_np = None  # numpy, imported by the first scale() that changes the level (volume at its default: never)
_NUMPY_MISSING = False


def _numpy():
    global _np, _NUMPY_MISSING
    if _np is None and not _NUMPY_MISSING:
        try:  # optional on the host: the same arithmetic, vectorised
            import numpy

            _np = numpy
        except ImportError:
            _NUMPY_MISSING = True
    return _np


_LITTLE_ENDIAN = sys.byteorder == "little"


def volume_gain(level, max_level=10, unity_level=6, step_db=3.0):
    if level <= 0:
        return 0.0
    level = min(level, max_level)
    return 10.0 ** ((level - unity_level) * step_db / 20.0)


def scale(pcm, gain):
    if gain == 1.0:
        return pcm
    if gain == 0.0:
        return bytes(len(pcm))
    np = _numpy()
    if np is not None:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) * gain
        return np.clip(samples, -32768, 32767).astype("<i2").tobytes()
    samples = array.array("h", pcm)
    if not _LITTLE_ENDIAN:
        samples.byteswap()
    for i in range(len(samples)):
        value = int(samples[i] * gain)
        samples[i] = 32767 if value > 32767 else (-32768 if value < -32768 else value)
    if not _LITTLE_ENDIAN:
        samples.byteswap()
    return bytes(samples)


def mix(frames):
    frames = [f for f in frames if f]
    if not frames:
        return b""
    if len(frames) == 1:
        return frames[0]
    size = min(len(f) for f in frames)
    np = _numpy()
    if np is not None:
        total = np.zeros(size // 2, dtype=np.int32)
        for frame in frames:
            total += np.frombuffer(frame[:size], dtype="<i2")
        return np.clip(total, -32768, 32767).astype("<i2").tobytes()
    out = array.array("h", frames[0][:size])
    others = [array.array("h", f[:size]) for f in frames[1:]]
    if not _LITTLE_ENDIAN:
        out.byteswap()
        for other in others:
            other.byteswap()
    for i in range(len(out)):
        value = out[i]
        for other in others:
            value += other[i]
        out[i] = 32767 if value > 32767 else (-32768 if value < -32768 else value)
    if not _LITTLE_ENDIAN:
        out.byteswap()
    return bytes(out)
