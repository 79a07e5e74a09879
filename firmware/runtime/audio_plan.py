"""Where a call's microphone and speaker are: WAV files, silence, or ALSA devices. Host-only (files and
devices).

Apart from call_media.py because the front ends choose it (a WAV to play, a recording, the board's
ALSA devices) before any call exists, and the tone player uses the same speaker.
"""

from audio.codecs import SAMPLE_RATES
from firmware.runtime.endpoint import StartupError


class AudioPlan:
    """Where a call's microphone and speaker are: WAV files, silence, or ALSA devices."""

    def __init__(self, play=None, record=None, devices=None):
        self.play = play
        self.record = record
        self.devices = devices  # (capture_name, playback_name) for ALSA, or None

    def open(self, codec):
        from audio import wavfile

        rate = SAMPLE_RATES[codec]
        if self.devices is not None:
            from audio import alsa

            try:
                return alsa.open_pair(self.devices[0], self.devices[1], rate)
            except Exception as exc:  # no sound card: one clear line, the phone shows "no audio device"
                raise StartupError("no audio device ({})".format(exc)) from None
        source = wavfile.WavSource(self.play, rate) if self.play else wavfile.SilentSource(rate)
        sink = wavfile.WavRecorder(self.record, rate) if self.record else wavfile.NullSink(rate)
        return source, sink

    def open_speaker(self, rate=16000):
        """The speaker alone, for tones outside a call (the ring, ringback before the far end answers).
        With WAV files it is silent: --record holds what the far end says, not our own tones."""
        from audio import wavfile

        if self.devices is None:
            return wavfile.NullSink(rate)
        from audio import alsa

        try:
            return alsa.AlsaPlayback(self.devices[1], rate)
        except Exception as exc:  # no sound card: the tone is skipped, the call itself reports the device
            raise StartupError("no audio device ({})".format(exc)) from None
