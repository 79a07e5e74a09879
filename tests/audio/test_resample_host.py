"""The numpy path of the resampler computes exactly what the pure-Python path computes."""

import math
import random
import struct

import pytest

from audio.resample import Resampler


@pytest.mark.parametrize(
    "source,target",
    [(48000, 8000), (8000, 48000), (48000, 16000), (16000, 48000), (44100, 8000), (16000, 8000), (8000, 16000)],
)
def test_numpy_and_pure_paths_agree_on_uneven_frames(source, target):
    fast = Resampler(source, target)
    pure = Resampler(source, target, use_numpy=False)
    assert fast._np_phases is not None
    rng = random.Random(source + target)
    position = 0
    for _ in range(12):
        count = source // 50 + rng.randint(-30, 30)
        pcm = struct.pack(
            "<%dh" % count,
            *[
                int(12000 * math.sin(2 * math.pi * 900 * (position + i) / source)) + rng.randint(-500, 500)
                for i in range(count)
            ],
        )
        position += count
        assert fast.process(pcm) == pure.process(pcm)
