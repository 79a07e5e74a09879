"""Call-progress tones and the ring outside a call, on their own thread. Host-only.

Apart from media.py because no call's media is running then (dial tone off-hook, the ring of an
incoming call, ringback before the far end's media): no socket, no codec, only a sink to pace.

API:
    TonePlayer(sink, cadence, paced=None, clock=time.monotonic)
        plays a call-progress tone or the ring (audio.tones.DIAL, RINGBACK, BUSY, ERROR, RING) on a
        sink. paced: None = pace by absolute 20 ms deadlines unless the sink blocks by itself (ALSA
        playback has `period_samples` and blocks when its buffer is full).
        .start(), .stop() (joins; does not close the sink)
    pcm_level_dbov(pcm) -> the RMS level of 16-bit PCM in dBov (for logs and tests).
"""

import logging
import math
import struct
import threading
import time

from audio.tones import ToneGenerator

log = logging.getLogger("sotto.media")

PERIOD_MS = 20


class TonePlayer:
    def __init__(self, sink, cadence, paced=None, clock=time.monotonic):
        self.sink = sink
        self._generator = ToneGenerator(cadence, sink.sample_rate)
        self._frame = sink.sample_rate * PERIOD_MS // 1000
        self._paced = (not hasattr(sink, "period_samples")) if paced is None else paced
        self._clock = clock
        self._stop = threading.Event()
        self._thread = None
        self.periods = 0

    def start(self):
        self._thread = threading.Thread(target=self._run, name="sotto-tone", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def _run(self):
        start = self._clock()
        while not self._stop.is_set():
            try:
                self.sink.write(self._generator.frame(self._frame))
            except Exception:
                log.exception("tone playback failed")
                return
            self.periods += 1
            if self._paced:
                # Absolute deadlines (t0 + n * 20 ms): no drift. Event.wait so stop() is prompt.
                delay = start + self.periods * PERIOD_MS / 1000.0 - self._clock()
                if delay > 0 and self._stop.wait(delay):
                    return


def pcm_level_dbov(pcm):
    """RMS level of 16-bit PCM in dBov (for logs and tests)."""

    count = len(pcm) // 2
    if not count:
        return -120.0
    samples = struct.unpack("<%dh" % count, pcm)
    power = sum(s * s for s in samples) / count
    if power <= 0:
        return -120.0
    return 10 * math.log10(power / (32767.0 * 32767.0 / 2))
