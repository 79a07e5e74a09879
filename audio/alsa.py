"""ALSA capture and playback devices for the media loop (pyalsaaudio >= 0.11). Host-only.

The only module of Sotto that imports `alsaaudio`. Both devices are mono 16-bit little-endian with a
20 ms period; the capture read blocks for one period, which is what paces the media loop.

API:
    AlsaCapture(device="default", rate=48000, period_ms=20, periods=4, pcm_factory=None)
    AlsaPlayback(device="default", rate=48000, period_ms=20, periods=4, prefill_periods=2, pcm_factory=None)
        .sample_rate      the rate the device actually runs at (the hardware's own when it cannot do
                          `rate`: USB headsets often only do 48 kHz; the media loop resamples)
        .period_samples   samples in one period
        .device           the device name that opened (a "hw:" name falls back to "plughw:")
        .xruns            overruns (capture) / underruns (playback) recovered so far
        AlsaCapture.read() -> pcm      exactly one period; an overrun (EPIPE) is recovered by
                                       re-preparing the stream and returns one period of silence, so
                                       the sample counter, and the RTP timestamps, never drift
        AlsaPlayback.write(pcm)        one period; an underrun is recovered by re-preparing and
                                       refilling `prefill_periods` of silence ahead of the data
        .close()
    open_device_pair(capture_device, playback_device, preferred_rate=48000) -> (capture, playback)
    open_pair(capture_device, playback_device, rate)   the same (the name firmware.runtime.call_media uses)
        Ask for the codec's rate: "plughw:"/"default" devices then convert in ALSA (C) and the media
        loop needs no resampling; a "hw:" device that cannot do it opens at its own rate and the loop
        resamples.

pcm_factory(type, device, rate, period_samples, periods) -> an object with read()/write()/info()/
close(), for tests that inject xruns; by default it opens alsaaudio.PCM.
"""

import errno

import alsaaudio


def _open_pcm(pcm_type, device, rate, period_samples, periods):
    try:
        return alsaaudio.PCM(
            pcm_type,
            alsaaudio.PCM_NORMAL,
            rate=rate,
            channels=1,
            format=alsaaudio.PCM_FORMAT_S16_LE,
            periodsize=period_samples,
            periods=periods,
            device=device,
        )
    except TypeError as exc:
        # pyalsaaudio before 0.9 (Debian bookworm's python3-alsaaudio is 0.8.4) takes no keywords here.
        # The image ships the pinned 0.11 in its venv; anything else is a wrong environment, said once
        # and plainly rather than as "no audio device" on every call.
        raise RuntimeError(
            "pyalsaaudio {} is too old: Sotto needs the pinned version in requirements.txt "
            "(0.11), not Debian's python3-alsaaudio ({})".format(getattr(alsaaudio, "__version__", "< 0.9"), exc)
        ) from None


def _candidates(device):
    names = [device]
    if device.startswith("hw:"):
        names.append("plug" + device)
    return names


class _AlsaDevice:
    def __init__(self, pcm_type, device, rate, period_ms, periods, pcm_factory):
        factory = pcm_factory or _open_pcm
        last_error = None
        self.pcm = None
        for name in _candidates(device):
            try:
                pcm = factory(pcm_type, name, rate, rate * period_ms // 1000, periods)
            except alsaaudio.ALSAAudioError as exc:
                last_error = exc
                continue
            actual = int(pcm.info().get("rate", rate))
            if actual != rate:
                # The hardware runs at its own rate: reopen with a period of 20 ms at that rate.
                pcm.close()
                pcm = factory(pcm_type, name, actual, actual * period_ms // 1000, periods)
            self.pcm = pcm
            self.device = name
            self.sample_rate = actual
            break
        if self.pcm is None:
            raise OSError("cannot open ALSA device {}: {}".format(device, last_error))
        self.period_samples = self.sample_rate * period_ms // 1000
        self._period_bytes = self.period_samples * 2
        self.xruns = 0

    def close(self):
        if self.pcm is not None:
            self.pcm.close()
            self.pcm = None


class AlsaCapture(_AlsaDevice):
    def __init__(self, device="default", rate=48000, period_ms=20, periods=4, pcm_factory=None):
        _AlsaDevice.__init__(self, alsaaudio.PCM_CAPTURE, device, rate, period_ms, periods, pcm_factory)
        self._pending = b""

    def read(self):
        wanted = self._period_bytes
        data = self._pending
        while len(data) < wanted:
            length, chunk = self.pcm.read()
            if length < 0:
                # Overrun (-EPIPE): pyalsaaudio has re-prepared the stream. Give the loop one period of
                # silence in place of what was lost, so the sample clock stays continuous.
                self.xruns += 1
                if length != -errno.EPIPE:
                    self._pending = b""
                    raise OSError(-length, "ALSA capture read failed")
                self._pending = b""
                return bytes(wanted)
            data += chunk
        self._pending = data[wanted:]
        return data[:wanted]


class AlsaPlayback(_AlsaDevice):
    def __init__(self, device="default", rate=48000, period_ms=20, periods=4, prefill_periods=2, pcm_factory=None):
        _AlsaDevice.__init__(self, alsaaudio.PCM_PLAYBACK, device, rate, period_ms, periods, pcm_factory)
        self._prefill = bytes(self._period_bytes) * prefill_periods
        if self._prefill:
            self.pcm.write(self._prefill)

    def write(self, pcm):
        result = self.pcm.write(pcm)
        if result < 0:
            if result != -errno.EPIPE:
                raise OSError(-result, "ALSA playback write failed")
            # Underrun: the stream was re-prepared; put the headroom back, then this period.
            self.xruns += 1
            if self._prefill:
                self.pcm.write(self._prefill)
            self.pcm.write(pcm)


def open_device_pair(capture_device, playback_device, preferred_rate=48000):
    capture = AlsaCapture(capture_device, preferred_rate)
    try:
        playback = AlsaPlayback(playback_device, capture.sample_rate)
    except Exception:
        capture.close()
        raise
    return capture, playback


def open_pair(capture_device, playback_device, rate):
    return open_device_pair(capture_device, playback_device, rate)
