"""WAV files and file-backed audio devices paced in real time like a sound card. Host-only.

The media loop is paced by a blocking read of one period from its capture device; for `--play` and
in tests that device is a WAV file, so WavSource.read() blocks until the period's absolute deadline
(t0 + n * period, so there is no drift), exactly as an ALSA capture read would.

API:
    read_wav(path) -> (sample_rate, pcm)      16-bit PCM WAV (mono, or stereo mixed down); ValueError
                                              for other formats and for impossible headers: a rate
                                              outside 1 kHz..768 kHz, no audio, a data size larger
                                              than the file or than MAX_PCM_BYTES
    write_wav(path, sample_rate, pcm)
    WavSource(path, sample_rate, period_ms=20, loop=True, paced=True, clock=time.monotonic)
        .sample_rate, .period_samples
        .read() -> pcm       one period, resampled to `sample_rate`; after the end, silence (or the file
                             again when loop); blocks until the period is due when paced
        .close()
    SilentSource(sample_rate, period_ms=20, paced=True)      the same device, producing silence
    WavRecorder(path, sample_rate)            .write(pcm), .close() (finalises the header); .samples
    NullSink(sample_rate)                     .write(pcm) discards, counts .samples
"""

import os
import time
import wave

from audio.resample import MAX_RATE, MIN_RATE, Resampler

# The whole file is held in memory (and resampled at once): 64 MiB of 16-bit PCM is 11 minutes of
# stereo 48 kHz, or 70 minutes of mono 8 kHz, which is plenty for a looped microphone.
MAX_PCM_BYTES = 64 * 1024 * 1024


def read_wav(path):
    with wave.open(str(path), "rb") as reader:
        channels = reader.getnchannels()
        width = reader.getsampwidth()
        rate = reader.getframerate()
        frames_declared = reader.getnframes()
        if not MIN_RATE <= rate <= MAX_RATE:
            raise ValueError(
                "{}: sample rate {} Hz in the header (expected {} to {})".format(path, rate, MIN_RATE, MAX_RATE)
            )
        if channels not in (1, 2):
            raise ValueError("{}: only mono or stereo WAV files are supported ({} channels)".format(path, channels))
        declared = frames_declared * channels * width
        if declared > MAX_PCM_BYTES:
            raise ValueError("{}: {} bytes of audio in the header (at most {})".format(path, declared, MAX_PCM_BYTES))
        if declared > os.path.getsize(path):
            raise ValueError(
                "{}: the header claims {} bytes of audio, more than the file's {} bytes".format(
                    path, declared, os.path.getsize(path)
                )
            )
        frames = reader.readframes(frames_declared)
    if not frames:
        raise ValueError("{}: no audio in the file".format(path))
    if width != 2:
        raise ValueError("{}: only 16-bit PCM WAV files are supported".format(path))
    if channels == 2:
        import array

        stereo = array.array("h", frames)
        mono = array.array("h", [(stereo[i] + stereo[i + 1]) >> 1 for i in range(0, len(stereo) - 1, 2)])
        frames = mono.tobytes()
    elif channels != 1:
        raise ValueError("{}: only mono or stereo WAV files are supported".format(path))
    return rate, frames


def write_wav(path, sample_rate, pcm):
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm)


class _PacedDevice:
    def __init__(self, sample_rate, period_ms, paced, clock):
        self.sample_rate = sample_rate
        self.period_samples = sample_rate * period_ms // 1000
        self._period = period_ms / 1000.0
        self._paced = paced
        self._clock = clock
        self._start = None
        self._count = 0

    def _wait_for_period(self):
        if not self._paced:
            return
        now = self._clock()
        if self._start is None:
            self._start = now
        self._count += 1
        deadline = self._start + self._count * self._period
        delay = deadline - now
        if delay > 0:
            time.sleep(delay)  # the device's clock, like a sound card's; absolute deadlines: no drift
        elif delay < -0.2:
            # We fell far behind (the machine stalled): restart the timeline instead of bursting.
            self._start = now
            self._count = 0

    def close(self):
        pass


class WavSource(_PacedDevice):
    def __init__(self, path, sample_rate, period_ms=20, loop=True, paced=True, clock=time.monotonic):
        _PacedDevice.__init__(self, sample_rate, period_ms, paced, clock)
        file_rate, pcm = read_wav(path)
        if file_rate != sample_rate:
            pcm = Resampler(file_rate, sample_rate).process(pcm)
        self._pcm = pcm
        self._offset = 0
        self._loop = loop

    def read(self):
        size = self.period_samples * 2
        chunk = self._pcm[self._offset : self._offset + size]
        self._offset += size
        if len(chunk) < size:
            if self._loop and self._pcm:
                self._offset = size - len(chunk)
                chunk += self._pcm[: self._offset]
            chunk += bytes(size - len(chunk))
        self._wait_for_period()
        return chunk


class SilentSource(_PacedDevice):
    def __init__(self, sample_rate, period_ms=20, paced=True, clock=time.monotonic):
        _PacedDevice.__init__(self, sample_rate, period_ms, paced, clock)
        self._silence = bytes(self.period_samples * 2)

    def read(self):
        self._wait_for_period()
        return self._silence


class WavRecorder:
    def __init__(self, path, sample_rate):
        self.sample_rate = sample_rate
        self.samples = 0
        self._writer = wave.open(str(path), "wb")
        self._writer.setnchannels(1)
        self._writer.setsampwidth(2)
        self._writer.setframerate(sample_rate)

    def write(self, pcm):
        self._writer.writeframesraw(pcm)
        self.samples += len(pcm) // 2

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class NullSink:
    def __init__(self, sample_rate):
        self.sample_rate = sample_rate
        self.samples = 0

    def write(self, pcm):
        self.samples += len(pcm) // 2

    def close(self):
        pass
