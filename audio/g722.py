"""G.722 (RFC 3551: RTP clock 8000, sampled at 16 kHz) over the PyPI `g722` extension. Host-only.

API:
    G722Codec(bitrate=64000)
        .sample_rate = 16000, .rtp_clock = 8000, .frame_samples = 320 (20 ms), .name = "G722"
        .encode(pcm) -> bytes        pcm: 16-bit little-endian mono at 16 kHz (a whole number of samples)
        .decode(payload) -> bytes    16-bit little-endian mono at 16 kHz
        .conceal(samples, next_payload=None) -> bytes   pitch repetition (audio.plc) at 16 kHz
        .note_good(pcm)              feed what was played, for the concealment's history
"""

import array

import G722
import numpy

from audio.plc import Concealer


class G722Codec:
    name = "G722"
    sample_rate = 16000
    rtp_clock = 8000
    frame_samples = 320

    def __init__(self, bitrate=64000):
        self._encoder = G722.G722(16000, bitrate)
        self._decoder = G722.G722(16000, bitrate)
        self._plc = Concealer(16000)

    def encode(self, pcm):
        halved = numpy.frombuffer(pcm, dtype="<i2") >> 1
        return self._encoder.encode(array.array("h", halved.astype("<i2").tobytes()))

    def decode(self, payload):
        decoded = numpy.frombuffer(self._decoder.decode(payload).tobytes(), dtype="<i2").astype(numpy.int32)
        pcm = numpy.clip(decoded * 2, -32768, 32767).astype("<i2").tobytes()
        return self._plc.good(pcm)

    def conceal(self, samples, next_payload=None):
        # The ADPCM decoder state cannot be run ahead on the next packet: conceal from the past only.
        return self._plc.conceal(samples)
