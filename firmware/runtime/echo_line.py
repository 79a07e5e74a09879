"""The echo test line (`*43#` on the simulated phone): a second Sotto on loopback that answers and echoes."""

import logging
import os

from audio.codecs import SAMPLE_RATES
from firmware import config as configuration
from firmware.runtime.calls import CallController
from firmware.runtime.endpoint import Endpoint, _bind_udp

log = logging.getLogger("sotto.echo-line")


ECHO_NUMBER = "*43"
ECHO_USER = "echo"


class EchoAudio:
    """The echo test line's audio: what arrives is played back to the caller 20 ms periods later."""

    def open(self, codec):
        import collections

        from audio import wavfile

        rate = SAMPLE_RATES[codec]
        frames = collections.deque(maxlen=50)  # at most 1 s of echo delay

        class EchoSink(wavfile.NullSink):
            def write(self, pcm):
                frames.append(pcm)

        class EchoSource(wavfile.SilentSource):
            def read(self):
                silence = wavfile.SilentSource.read(self)
                return frames.popleft() if frames else silence

        return EchoSource(rate), EchoSink(rate)


class EchoLine(CallController):
    """A second Sotto on loopback that answers every call and echoes the audio, so that `make run` shows
    a secure call, the SAS and the trust button on one machine with no server. It confirms the SAS by
    itself (it is a test line, not a person), so the caller's trust press makes the next call verified.
    """

    def on_incoming(self, event):
        if self.take_incoming(event):
            self.ua.ringing(event.call_id, self.loop.now())
            self.answer()

    def on_secure(self, event):
        self.media.confirm_sas()


def start_echo_line(loop, settings):
    """The echo test line on the next free loopback port, with its own ZRTP cache in the data dir."""
    import copy

    host, _port = configuration.host_port(settings.sip.listen)
    echo_settings = copy.deepcopy(settings)
    echo_settings.account.uri = ""
    echo_settings.account.password = ""
    echo_settings.media.rtp_port = 0
    echo_settings.zrtp.cache = os.path.join(settings.data_dir, "echo-zrtp-cache")
    probe = _bind_udp(host, 0, "SIP")
    echo_settings.sip.listen = "{}:{}".format(host, probe.getsockname()[1])
    probe.close()
    endpoint = Endpoint(loop, echo_settings)
    return EchoLine(endpoint, echo_settings, EchoAudio())
