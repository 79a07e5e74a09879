"""The phone's memory footprint: numpy is imported only when something really needs it, and the Opus codec
leaves no cyclic garbage behind per frame (it used to be about 1 MB per second, freed only by the GC)."""

import gc
import subprocess
import sys

from audio.opus import OpusCodec


def test_a_call_that_needs_no_resampling_does_not_import_numpy():
    program = (
        "import sys\n"
        "from firmware.runtime.media import MediaStream\n"
        "from audio.resample import Resampler\n"
        "from audio.gain import scale\n"
        "from audio.codecs import make_codec\n"
        "pcm = bytes(1920)\n"
        "assert Resampler(48000, 48000).process(pcm) == pcm and scale(pcm, 1.0) == pcm\n"
        "codec = make_codec('opus')\n"
        "codec.decode(codec.encode(pcm))\n"
        "print(sorted(name for name in ('numpy', 'PIL', 'luma') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_resampling_still_uses_numpy_when_it_is_there():
    program = (
        "import sys\n"
        "from audio.resample import Resampler\n"
        "Resampler(16000, 48000).process(bytes(640))\n"
        "print('numpy' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "True", result.stderr


def test_opus_frames_leave_no_cyclic_garbage():
    codec = OpusCodec()
    frame = bytes(1920)
    gc.collect()
    gc.disable()
    try:
        for _ in range(100):
            payload = codec.encode(frame)
            codec.decode(payload)
            codec.conceal(960)
            codec.recover(payload, 960)
        garbage = gc.collect()
    finally:
        gc.enable()
    assert garbage < 20, garbage
