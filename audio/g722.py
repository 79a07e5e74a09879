"""G.722 (RFC 3551: RTP clock 8000, sampled at 16 kHz) over the PyPI `g722` extension. Host-only.

Loss concealment runs inside the codec, in the manner of ITU-T G.722 Appendix IV ("low-complexity PLC"):
a lost frame is synthesised by pitch repetition (audio.plc), and then the sub-band ADPCM decoder is
brought forward onto that synthetic signal by re-encoding it. Without this, the decoder's predictors and
step sizes still describe the audio of 20 ms ago when the next packet arrives, and that packet's ADPCM
differences (relative to the far encoder's predictors, which did see the lost frame) decode to a burst of
wrong audio lasting tens of ms: the error, not the gap, is what PESQ punishes. The extension's state is
opaque, so "bringing forward" means a fresh encoder/decoder pair run over the last 60 ms of what was
played plus the synthetic frame: the adaptive step sizes and predictor coefficients of G.722's ADPCM
(G.722 §3.5-3.6) forget their history within a few ms (leak factors 127/128 and 255/256 per sub-band
sample), so 60 ms converges to the state of a decoder that had decoded that signal. The QMF's delay
(22 samples at 16 kHz for encode + decode) is compensated by re-encoding 22 samples of the concealer's
continuation beyond the frame, so the decoder's next output joins the concealed frame without a shift.

API:
    G722Codec(bitrate=64000)
        .sample_rate = 16000, .rtp_clock = 8000, .frame_samples = 320 (20 ms), .name = "G722"
        .encode(pcm) -> bytes        pcm: 16-bit little-endian mono at 16 kHz (a whole number of samples)
        .decode(payload) -> bytes    16-bit little-endian mono at 16 kHz
        .conceal(samples, next_payload=None) -> bytes   pitch repetition at 16 kHz, then the ADPCM
                                     decoder re-synchronised on it (see above)
"""

import array

import G722
import numpy

from audio.plc import Concealer

_QMF_DELAY = 22  # samples: encoder + decoder QMF (G.722 §3.1, §4.4), measured with an impulse
_RESYNC_HISTORY = 960  # samples (60 ms) of played audio re-encoded with the concealed frame


def _halve(pcm):
    # The extension works on 15-bit input (it drops the lowest bit): halve on the way in, double out.
    return array.array("h", (numpy.frombuffer(pcm, dtype="<i2") >> 1).astype("<i2").tobytes())


def _double(decoded):
    samples = numpy.frombuffer(decoded.tobytes(), dtype="<i2").astype(numpy.int32)
    return numpy.clip(samples * 2, -32768, 32767).astype("<i2").tobytes()


class G722Codec:
    name = "G722"
    sample_rate = 16000
    rtp_clock = 8000
    frame_samples = 320

    def __init__(self, bitrate=64000):
        self._bitrate = bitrate
        self._encoder = G722.G722(16000, bitrate)
        self._decoder = G722.G722(16000, bitrate)
        self._plc = Concealer(16000)
        self._played = bytes(2 * _RESYNC_HISTORY)  # the last 60 ms given out, good or concealed

    def encode(self, pcm):
        return self._encoder.encode(_halve(pcm))

    def _remember(self, pcm):
        played = self._played + pcm
        self._played = played[len(played) - 2 * _RESYNC_HISTORY :]

    def decode(self, payload):
        pcm = self._plc.good(_double(self._decoder.decode(payload)))
        self._remember(pcm)
        return pcm

    def conceal(self, samples, next_payload=None):
        # Bridging to the next packet (decoded ahead from a decoder brought forward over the pitch-repeated
        # past) scored lower on average here (tools/bench/impair.py, 6 seeds): that decoder's first frame is
        # too far off to aim at. So the gap is concealed from the past only.
        pcm = self._plc.conceal(samples)
        self._remember(pcm)
        self._decoder = self._synchronised(self._played + self._plc.peek(_QMF_DELAY))
        return pcm

    def _synchronised(self, signal):
        """A decoder in the state of one that has just played `signal` (ending _QMF_DELAY samples ahead)."""
        signal = signal[: len(signal) & ~3]  # whole sub-band sample pairs, and whole bytes of codes
        encoder = G722.G722(16000, self._bitrate)
        decoder = G722.G722(16000, self._bitrate)
        decoder.decode(encoder.encode(_halve(signal)))
        return decoder
