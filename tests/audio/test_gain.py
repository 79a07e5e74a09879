"""Volume and mute arithmetic (portable: also runs under MicroPython, without numpy)."""

import struct

from audio import gain

MICROPYTHON = True


def _pcm(*samples):
    return struct.pack("<{}h".format(len(samples)), *samples)


def test_unity_level_is_0_db_and_steps_are_3_db():
    assert gain.volume_gain(6) == 1.0
    assert abs(gain.volume_gain(8) - 10 ** (6 / 20)) < 1e-9
    assert abs(gain.volume_gain(4) - 10 ** (-6 / 20)) < 1e-9
    assert gain.volume_gain(0) == 0.0
    assert gain.volume_gain(99) == gain.volume_gain(10)


def test_scale_saturates_instead_of_wrapping():
    out = gain.scale(_pcm(1000, -1000, 30000, -30000, 0), 2.0)
    assert struct.unpack("<5h", out) == (2000, -2000, 32767, -32768, 0)


def test_scale_identity_and_silence():
    pcm = _pcm(5, -7, 12345)
    assert gain.scale(pcm, 1.0) == pcm
    assert gain.scale(pcm, 0.0) == bytes(6)
    assert struct.unpack("<3h", gain.scale(pcm, 0.5)) == (2, -3, 6172)
