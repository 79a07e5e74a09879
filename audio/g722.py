"""G.722 (RFC 3551: RTP clock 8000, sampled at 16 kHz) over the PyPI `g722` extension. Host-only.

Loss concealment runs inside the codec, in the manner of ITU-T G.722 Appendix IV ("low-complexity PLC"):
a lost frame is synthesised by pitch repetition (audio.plc), and the sub-band ADPCM decoder is then carried
across the gap on that synthetic signal. Without this, the decoder's predictors and step sizes still
describe the audio of 20 ms ago when the next packet arrives, and that packet's ADPCM differences
(relative to the far encoder's predictors, which did see the lost frame) decode to a burst of wrong audio
lasting tens of ms: the error, not the gap, is what PESQ punishes.

How the decoder is carried across (G.722 §3.4-3.6: the encoder holds the same sub-band ADPCM state as a
decoder that decoded its codes, plus the transmit QMF's last 24 input samples):
  - exact transfer (the default): an encoder is given this decoder's own ADPCM state (both bands'
    predictor coefficients, step sizes, delay lines) and the QMF input history, encodes the concealed
    frame, and the decoder decodes those codes. The decoder's state is then exactly that of a decoder
    whose far encoder had seen the concealed audio, and the audio it plays for the gap is that frame
    through the codec, continuous with its QMF. The extension keeps its state in C structs it does not
    expose: they are reached by address (the layout of libg722 1.2.8, pinned in requirements.txt) and
    the layout is checked once at import; when the check fails, the re-encoding below is used.
  - re-encoding (the fallback): a fresh encoder/decoder pair run over the last 60 ms of what was
    played plus the synthetic frame. G.722's ADPCM forgets its history within a few ms (leak factors
    127/128 and 255/256 per sub-band sample), but a tandem re-encoding never reaches the far encoder's
    state exactly: with the true audio in place of the concealment, the frames after the gap decode at
    about 15 dB SNR against a decoder that lost nothing, against 31 dB with the exact transfer.
The QMF's delay (22 samples at 16 kHz for encode + decode, G.722 §3.1, §4.4) is compensated by encoding
22 samples of the concealer's continuation beyond the frame, so the decoder's next output joins the
concealed frame without a shift.

The next packet is not used (bridging to it was measured and lost: tools/bench/impair.py, 5 % loss,
40 ms jitter): decoded from a state carried across a pitch-repeated frame, its first 10 ms are only
about 6 dB SNR off the truth, too far off to aim a bridge at.

API:
    G722Codec(bitrate=64000)
        .sample_rate = 16000, .rtp_clock = 8000, .frame_samples = 320 (20 ms), .name = "G722"
        .encode(pcm) -> bytes        pcm: 16-bit little-endian mono at 16 kHz (a whole number of samples)
        .decode(payload) -> bytes    16-bit little-endian mono at 16 kHz
        .conceal(samples, next_payload=None, ahead=0) -> bytes   pitch repetition at 16 kHz carried
                                     through the ADPCM decoder (see above); the packet after the gap
                                     is not used, in a burst either: bridging a burst to it, decoded
                                     ahead by a copy of the decoder, moved Gilbert-Elliott bursts of 3 at
                                     5 % by -0.03 to +0.02 PESQ depending on how that copy was carried
    EXACT_STATE_TRANSFER             True when the extension's state layout passed the import check
"""

import array
import ctypes
import importlib.metadata

import G722
import numpy

from audio.plc import Concealer

_QMF_DELAY = 22  # samples: encoder + decoder QMF (G.722 §3.1, §4.4), measured with an impulse
_RESYNC_HISTORY = 960  # samples (60 ms) of played audio re-encoded with the concealed frame (fallback)

# libg722 1.2.8 (sippy/libg722, from Steve Underwood's public-domain code): the Python object is
# PyObject_HEAD, then pointers to its decoder and encoder state; each state is 4 ints (ITU test mode,
# packed, 8 kHz, bits per sample), the QMF history x[24], then band[2] of 45 ints each (s, sp, sz, r[3],
# a[3], ap[3], p[3], d[7], b[7], bp[7], sg[7], nb, det), then 4 ints of bit packing.
_LAYOUT_VERSION = "1.2.8"  # the only release whose memory is read (an unknown pointer read could crash)
_DECODER_POINTER = 2  # machine words from the object's start
_ENCODER_POINTER = 3
_HEADER_INTS = 4
_QMF_INTS = 24
_BAND_INTS = 45
_STATE_INTS = _HEADER_INTS + _QMF_INTS + 2 * _BAND_INTS + 4
_BANDS_OFFSET = 4 * (_HEADER_INTS + _QMF_INTS)
_BANDS_BYTES = 4 * 2 * _BAND_INTS


def _halve(pcm):
    # The extension works on 15-bit input (it drops the lowest bit): halve on the way in, double out.
    return array.array("h", (numpy.frombuffer(pcm, dtype="<i2") >> 1).astype("<i2").tobytes())


def _double(decoded):
    samples = numpy.frombuffer(decoded.tobytes(), dtype="<i2").astype(numpy.int32)
    return numpy.clip(samples * 2, -32768, 32767).astype("<i2").tobytes()


def _state_address(codec, which):
    return ctypes.c_void_p.from_address(id(codec) + which * ctypes.sizeof(ctypes.c_void_p)).value


def _state_ints(address):
    return (ctypes.c_int * _STATE_INTS).from_address(address)


def _layout_ok():
    """Whether the extension's objects look exactly as described above: fresh states say 64 kbit/s
    (8 bits per sample), unpacked, 16 kHz, with the initial step sizes of G.722 §3.6 (det 32 and 8); an
    encoder and a decoder that handled the same codes hold the same bands; and a decoder copied by
    address decodes as the original."""
    try:
        # Read no address of a build this layout was not taken from: a wrong pointer would not fail the
        # checks below, it would crash the phone at import.
        if importlib.metadata.version("g722") != _LAYOUT_VERSION:
            return False
        # The object must hold at least the header and the two pointers (a Python built with a longer
        # object header would put other pointers there: those are checked below before any copying).
        if G722.G722.__basicsize__ < (_ENCODER_POINTER + 1) * ctypes.sizeof(ctypes.c_void_p):
            return False
        codec = G722.G722(16000, 64000)
        for which in (_DECODER_POINTER, _ENCODER_POINTER):
            address = _state_address(codec, which)
            if not address:
                return False
            ints = _state_ints(address)
            low_det = _HEADER_INTS + _QMF_INTS + _BAND_INTS - 1
            if list(ints[:_HEADER_INTS]) != [0, 0, 0, 8] or ints[low_det] != 32 or ints[low_det + _BAND_INTS] != 8:
                return False
        tone = array.array("h", (1400 * ((n * 7) % 23 - 11) for n in range(640)))
        codec.decode(codec.encode(tone[:320]))
        encoder_bands = ctypes.string_at(_state_address(codec, _ENCODER_POINTER) + _BANDS_OFFSET, _BANDS_BYTES)
        if encoder_bands != ctypes.string_at(_state_address(codec, _DECODER_POINTER) + _BANDS_OFFSET, _BANDS_BYTES):
            return False
        second = codec.encode(tone[320:])
        copy = G722.G722(16000, 64000)
        ctypes.memmove(_state_address(copy, _DECODER_POINTER), _state_address(codec, _DECODER_POINTER), 4 * _STATE_INTS)
        return bytes(copy.decode(second)) == bytes(codec.decode(second))
    except Exception:  # any surprise in an unknown build: use the re-encoding instead
        return False


EXACT_STATE_TRANSFER = _layout_ok()


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
        self._tail = bytes(4)  # the last 2 samples the decoder gave out: the QMF history's oldest
        self._played = bytes(2 * _RESYNC_HISTORY)  # fallback only: the last 60 ms given out

    def encode(self, pcm):
        return self._encoder.encode(_halve(pcm))

    def _remember(self, pcm):
        if EXACT_STATE_TRANSFER:
            self._tail = (self._tail + pcm)[-4:]  # an empty or 1-octet payload decodes to less than 2 samples
        else:
            played = self._played + pcm
            self._played = played[len(played) - 2 * _RESYNC_HISTORY :]

    def decode(self, payload):
        # No cross-fade from the concealer's continuation after a loss when the decoder was carried over
        # the concealed audio: its output (QMF and predictors) already continues it, and mixing in the
        # pitch repetition only adds a second, different waveform (5 % loss, 40 ms jitter, seeds 1-6 in
        # tools/bench/impair.py: random 2.28 -> 2.31, bursts of 3 2.52 -> 2.55). A re-encoded decoder's
        # QMF does not continue it as exactly: the cross-fade stays (without it, 14.4 -> 9.7 dB in
        # tests/audio/test_g722_concealment.py).
        pcm = self._plc.good(_double(self._decoder.decode(payload)), smooth=not EXACT_STATE_TRANSFER)
        self._remember(pcm)
        return pcm

    def conceal(self, samples, next_payload=None, ahead=0):
        pcm = self._plc.conceal(samples)
        if EXACT_STATE_TRANSFER and len(pcm) % 4 == 0:
            pcm = self._carry_decoder(pcm + self._plc.peek(_QMF_DELAY))
            self._remember(pcm)
        else:
            self._remember(pcm)
            self._decoder = self._synchronised(self._played + self._plc.peek(_QMF_DELAY))
        return pcm

    def _carry_decoder(self, signal):
        """Decode `signal` (ending _QMF_DELAY samples ahead) as if the far encoder had sent it: its
        codes come from an encoder holding this decoder's own ADPCM state. Returns what was decoded."""
        # The encoder's QMF history is the 24 input samples before the frame: at the decoder's output
        # these are the 2 last samples given out and the first 22 of the signal (the QMF delay).
        halved = _halve(self._tail + signal)
        encoder = G722.G722(16000, self._bitrate)
        encoder_state = _state_address(encoder, _ENCODER_POINTER)
        ctypes.memmove(
            encoder_state + _BANDS_OFFSET,
            _state_address(self._decoder, _DECODER_POINTER) + _BANDS_OFFSET,
            _BANDS_BYTES,
        )
        history = (ctypes.c_int * _QMF_INTS).from_address(encoder_state + 4 * _HEADER_INTS)
        history[:] = halved[:_QMF_INTS]
        return _double(self._decoder.decode(encoder.encode(halved[_QMF_INTS:])))

    def _synchronised(self, signal):
        """A decoder in the state of one that has just played `signal` (ending _QMF_DELAY samples ahead)."""
        signal = signal[: len(signal) & ~3]  # whole sub-band sample pairs, and whole bytes of codes
        encoder = G722.G722(16000, self._bitrate)
        decoder = G722.G722(16000, self._bitrate)
        decoder.decode(encoder.encode(_halve(signal)))
        return decoder
