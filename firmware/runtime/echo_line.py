"""The echo test line (`*43#` on the simulated phone): a second Sotto on loopback that answers and echoes."""

import logging
import os

from audio.codecs import SAMPLE_RATES
from firmware import config as configuration
from firmware.runtime.calls import CallController
from firmware.runtime.endpoint import Endpoint, _bind_udp
from firmware.sip import events as sip_events

log = logging.getLogger("sotto.echo-line")


ECHO_NUMBER = "*43"
ECHO_USER = "echo"
CALL_ME_BACK = "*43#"  # typed during an echo call: the echo line calls the phone back (call waiting)
DTMF_POLL = 0.2


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


class EchoCall(CallController):
    """One call of the echo test line: answers, echoes, confirms the SAS by itself (it is a test line, not
    a person), so the caller's trust press makes the next call verified."""

    def __init__(self, line):
        CallController.__init__(self, line.endpoint, line.settings, line.audio, listen=False)
        self.line = line
        self._dtmf_seen = 0
        self._watch = None

    def on_incoming(self, event):
        if self.take_incoming(event):
            self.ring()  # a late offer's goes in a reliable 183 when the caller supports 100rel
            self.answer()

    def on_media_up(self):
        self._watch = self.loop.call_later(DTMF_POLL, self._poll_dtmf)

    def on_secure(self, event):
        self.media.confirm_sas()

    def _poll_dtmf(self):
        """`*43#` typed into an echo call: the line calls the phone back, so the phone shows call waiting."""
        self._watch = None
        if self.call_id is None or self.media is None or self.media.stream is None:
            return
        digits = self.media.stream.dtmf_received
        fresh, self._dtmf_seen = digits[self._dtmf_seen :], len(digits)
        self._typed = (getattr(self, "_typed", "") + fresh)[-len(CALL_ME_BACK) :]
        if fresh and self._typed == CALL_ME_BACK:
            self._typed = ""
            self.line.call_back()
        self._watch = self.loop.call_later(DTMF_POLL, self._poll_dtmf)

    def on_call_over(self):
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        self.line.call_over_for(self)


class EchoLine:
    """A second Sotto on loopback that answers every call (several at once) and echoes the audio, so that
    `make run` shows a secure call, the SAS and the trust button on one machine with no server. `*43#`
    typed during an echo call makes the line call the phone back (`phone_uri`): call waiting, hold, swap
    and the conference with two echo calls."""

    MAX_CALLS = 4

    def __init__(self, endpoint, settings, audio, phone_uri=None):
        self.endpoint = endpoint
        self.loop = endpoint.loop
        self.ua = endpoint.ua
        self.settings = settings
        self.audio = audio
        self.phone_uri = phone_uri
        self.calls = []
        endpoint.listen(self.on_event)

    def on_event(self, kind, media, payload):
        if kind == "sip":
            event = payload
            if isinstance(event, sip_events.IncomingCall):
                if len(self.calls) >= self.MAX_CALLS:
                    self.ua.reject(event.call_id, 486, self.loop.now())
                    self.endpoint.pump()
                    return
                call = EchoCall(self)
                self.calls.append(call)
                call.on_incoming(event)
                return
            call_id = getattr(event, "call_id", None)
            for call in list(self.calls):
                if call_id is not None and call.call_id == call_id:
                    call.on_event(kind, media, payload)
                    return
            return
        for call in list(self.calls):
            if call.media is media:
                call.on_event(kind, media, payload)
                return

    def call_back(self):
        if self.phone_uri is None or len(self.calls) >= self.MAX_CALLS:
            return
        log.info("echo line: calling %s back", self.phone_uri)
        call = EchoCall(self)
        self.calls.append(call)
        call.place(self.phone_uri)

    def call_over_for(self, call):
        if call in self.calls:
            self.calls.remove(call)

    def hangup(self, result=None, reason=None):
        for call in list(self.calls):
            call.hangup(result, reason)


def start_echo_line(loop, settings):
    """The echo test line on the next free loopback port, with its own ZRTP cache in the data dir."""
    import copy

    host, _port = configuration.host_port(settings.sip.listen)
    echo_settings = copy.deepcopy(settings)
    echo_settings.account.uri = ""
    echo_settings.account.password = ""
    echo_settings.account.display_name = "Echo test"  # what the phone shows when the line calls it back
    echo_settings.media.rtp_port = 0
    echo_settings.zrtp.cache = os.path.join(settings.data_dir, "echo-zrtp-cache")
    probe = _bind_udp(host, 0, "SIP")
    echo_settings.sip.listen = "{}:{}".format(host, probe.getsockname()[1])
    probe.close()
    endpoint = Endpoint(loop, echo_settings)
    # The phone listens where `settings` say (the port is bound by now): where the line calls it back.
    phone_host = host if host not in ("0.0.0.0", "::") else ("::1" if ":" in host else "127.0.0.1")
    phone_port = _port
    if ":" in phone_host:
        phone_host = "[{}]".format(phone_host)
    phone_uri = "sip:phone@{}:{}".format(phone_host, phone_port)
    return EchoLine(endpoint, echo_settings, EchoAudio(), phone_uri=phone_uri)
