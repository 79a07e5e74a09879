"""The AudioHub (issue 15): one microphone and earpiece shared by two calls, driven here one step at a time
from the test's thread (the driving port reads the device; the other port's input was queued for it)."""

import struct

from firmware.runtime.audio_hub import AudioHub

PERIOD = 160  # 20 ms at 8 kHz


def frame(value):
    return struct.pack("<%dh" % PERIOD, *([value] * PERIOD))


def level(pcm):
    return struct.unpack_from("<h", pcm)[0]


class Microphone:
    sample_rate = 8000
    period_samples = PERIOD

    def __init__(self, value):
        self.value = value
        self.closed = False

    def read(self):
        return frame(self.value)

    def close(self):
        self.closed = True


class Earpiece:
    sample_rate = 8000

    def __init__(self):
        self.frames = []
        self.closed = False

    def write(self, pcm):
        self.frames.append(pcm)

    def close(self):
        self.closed = True


class Plan:
    def __init__(self):
        self.opened = []

    def open(self, codec):
        devices = (Microphone(100), Earpiece())
        self.opened.append(devices)
        return devices


def two_ports():
    plan = Plan()
    hub = AudioHub(plan)
    a_source, a_sink = hub.open("PCMU")
    b_source, b_sink = hub.open("PCMU")
    assert len(plan.opened) == 1  # one device for both calls
    return plan, hub, (a_source, a_sink), (b_source, b_sink)


def test_one_call_is_the_device_itself():
    plan = Plan()
    hub = AudioHub(plan)
    source, sink = hub.open("PCMU")
    assert level(source.read()) == 100
    sink.write(frame(7))
    assert [level(f) for f in plan.opened[0][1].frames] == [7]
    source.close()
    sink.close()
    assert plan.opened[0][0].closed and plan.opened[0][1].closed
    assert not hub.busy


def test_a_held_call_hears_silence_and_is_not_heard():
    plan, hub, (a, a_sink), (b, b_sink) = two_ports()
    hub.set_active(a, False)  # the first call on hold, the second in front
    assert level(a.read()) == 0  # a drives the device, but hears nothing of us
    assert level(b.read()) == 100
    b_sink.write(frame(30))
    a_sink.write(frame(40))  # the held far end is not played
    assert [level(f) for f in plan.opened[0][1].frames] == [30]


def test_the_conference_mixes_each_leg_with_the_microphone_and_the_other_leg():
    plan, hub, (a, a_sink), (b, b_sink) = two_ports()
    hub.set_conference(True)
    a.read()
    b.read()
    b_sink.write(frame(30))  # what b's far end said
    a_sink.write(frame(40))  # what a's far end said; a drives: the earpiece gets both
    assert level(plan.opened[0][1].frames[-1]) == 70
    assert level(a.read()) == 130  # a hears us and b
    assert level(b.read()) == 140  # b hears us and a


def test_the_waiting_tone_is_mixed_over_the_call():
    from audio import tones

    plan, hub, (a, a_sink), _b = two_ports()
    hub.set_tone(tones.CALL_WAITING)
    a.read()
    a_sink.write(frame(0))
    out = plan.opened[0][1].frames[-1]
    peak = max(abs(v) for v in struct.unpack("<%dh" % PERIOD, out))
    assert 0 < peak <= 32767 * 0.06  # soft, not the ringer
    hub.set_tone(None)
    a.read()
    a_sink.write(frame(0))
    assert level(plan.opened[0][1].frames[-1]) == 0


def test_the_other_port_drives_the_device_when_the_first_call_ends():
    plan, hub, (a, a_sink), (b, b_sink) = two_ports()
    a.read()  # a drives
    b.read()
    a.close()
    a_sink.close()
    assert hub.busy  # b's call still has the device
    assert level(b.read()) == 100  # b reads the device itself now
    b_sink.write(frame(5))
    assert level(plan.opened[0][1].frames[-1]) == 5
    b.close()
    assert plan.opened[0][0].closed and not hub.busy


def test_mix_saturates():
    from audio.gain import mix

    assert level(mix([frame(30000), frame(30000)])) == 32767
    assert level(mix([frame(-30000), frame(-30000)])) == -32768
    assert mix([frame(3)]) == frame(3)
