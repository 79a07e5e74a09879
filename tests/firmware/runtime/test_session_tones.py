"""Tones outside a call: the phone's PlayTone("ring") plays on the speaker until StopTone or the media."""

import time

from firmware import config
from firmware import phone as P
from firmware.runtime import call_media, phone_calls
from firmware.runtime.loop import Loop
from firmware.runtime.tone_player import pcm_level_dbov
from tests.waiting import wait_until


class RecordingSpeaker:
    sample_rate = 16000

    def __init__(self):
        self.frames = []
        self.closed = False

    def write(self, pcm):
        self.frames.append(pcm)

    def close(self):
        self.closed = True


class SpeakerPlan(call_media.AudioPlan):
    def __init__(self):
        call_media.AudioPlan.__init__(self)
        self.speakers = []

    def open_speaker(self, rate=16000):
        self.speakers.append(RecordingSpeaker())
        return self.speakers[-1]


class EndpointStandIn:
    """Only what CallController's constructor touches; no SIP is exercised here."""

    def __init__(self, loop):
        self.loop = loop
        self.ua = None

    def listen(self, callback):
        pass


def _calls():
    loop = Loop()
    plan = SpeakerPlan()
    calls = phone_calls.PhoneCalls(EndpointStandIn(loop), config.load(None), plan, history=None)
    return loop, plan, calls


def test_the_ring_plays_on_the_speaker_until_stopped():
    loop, plan, calls = _calls()
    try:
        calls.dispatch(P.PlayTone("ring"), loop.now())
        time.sleep(0.3)
        calls.dispatch(P.StopTone(), loop.now())
        speaker = plan.speakers[0]
        assert speaker.closed
        count = len(speaker.frames)
        assert count >= 10  # about 15 periods of 20 ms in 0.3 s, paced in real time
        assert max(pcm_level_dbov(frame) for frame in speaker.frames) > -30  # audible, not silence
        time.sleep(0.1)  # not a wait: nothing may be played in the next 100 ms (five periods)
        assert len(speaker.frames) == count  # really stopped
    finally:
        calls.stop_tone_player()
        loop.close()


def test_the_media_takes_the_speaker_from_a_tone():
    loop, plan, calls = _calls()
    try:
        calls.dispatch(P.PlayTone("ringback"), loop.now())
        wait_until(lambda: plan.speakers and plan.speakers[0].frames, 5, "the ringback on the speaker")
        phone_calls.PhoneLeg(calls, "call-1").on_media_starting()  # a call's media starts
        assert plan.speakers[0].closed
        calls.dispatch(P.PlayTone("no-such-tone"), loop.now())
        assert len(plan.speakers) == 1  # an unknown tone name plays nothing
    finally:
        calls.stop_tone_player()
        loop.close()
