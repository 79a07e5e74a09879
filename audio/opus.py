"""Opus over libopus (opuslib): 48 kHz mono, in-band FEC, decoder-side loss concealment. Host-only.

API:
    OpusCodec(bitrate=40000, fec=True, expected_loss_percent=5, complexity=5,
              max_bandwidth=opuslib.constants.BANDWIDTH_WIDEBAND)
                                         (40 kbit/s: PESQ-WB 3.96 here, 3.82 at 32; complexity and
                                         bandwidth: see below)
        .sample_rate = 48000, .rtp_clock = 48000, .frame_samples = 960 (20 ms), .name = "opus"
        .encode(pcm) -> bytes            pcm: 960 16-bit little-endian mono samples
        .decode(payload) -> bytes        16-bit little-endian mono at 48 kHz (the packet's duration)
        .conceal(samples, next_payload=None, ahead=0) -> bytes   libopus loss concealment (see
                                         recover(); the packets after a gap are not used here)
        .recover(next_payload, samples) -> bytes   the lost frame rebuilt from the FEC data carried
                                         in the packet after it (falls back to conceal)
"""

import ctypes

import opuslib
import opuslib.api.ctl as _ctl
import opuslib.api.decoder as _decoder_api
import opuslib.api.encoder as _encoder_api

MAX_FRAME_SAMPLES = 5760  # 120 ms at 48 kHz
MAX_PAYLOAD = 1500

# Our own handles on opus_encode/opus_decode (CDLL item access makes new function objects, so opuslib's are
# left as they are). opuslib's wrappers allocate a fresh output buffer per call, twice the size needed, and
# tie it into a reference cycle with ctypes.cast(): about 1 MB of garbage per second of audio, freed only
# by the cyclic GC (a saw-tooth in the phone's RSS). Here the buffers are allocated once per codec.
_opus_encode = opuslib.api.libopus["opus_encode"]
_opus_encode.argtypes = (_encoder_api.EncoderPointer, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int32)
_opus_encode.restype = ctypes.c_int32
_opus_decode = opuslib.api.libopus["opus_decode"]
_opus_decode.argtypes = (
    _decoder_api.DecoderPointer,
    ctypes.c_char_p,
    ctypes.c_int32,
    ctypes.c_void_p,
    ctypes.c_int,
    ctypes.c_int,
)
_opus_decode.restype = ctypes.c_int


# The encoder is most of a secure Opus call's CPU (issue 14: a Pi Zero 2 W has about a tenth of this
# machine's core). Capped at wideband (OPUS_SET_MAX_BANDWIDTH, 8 kHz audio bandwidth: a headset's speech,
# and what PESQ-WB scores), 40 kbit/s go to SILK alone instead of the SILK+CELT hybrid: on flite's slt and
# rms, encoded and decoded here at 48 kHz, PESQ-WB 4.344 and 4.479 at complexity 5 against 4.197 and 4.405
# for fullband at complexity 8 (the previous setting), with the encoder at 0.27 ms per 20 ms frame instead
# of 0.60 and the decoder at 0.045 instead of 0.071. Below 5 it drops (complexity 3: 4.172, 4.346); above,
# it costs more for nothing (8: 4.350, 4.487 at 0.51 ms). The peer still decodes at 48 kHz.
DEFAULT_COMPLEXITY = 5
DEFAULT_MAX_BANDWIDTH = opuslib.constants.BANDWIDTH_WIDEBAND


class OpusCodec:
    name = "opus"
    sample_rate = 48000
    rtp_clock = 48000
    frame_samples = 960

    def __init__(
        self,
        bitrate=40000,
        fec=True,
        expected_loss_percent=5,
        complexity=DEFAULT_COMPLEXITY,
        max_bandwidth=DEFAULT_MAX_BANDWIDTH,
    ):
        self._encoder = opuslib.Encoder(48000, 1, opuslib.APPLICATION_VOIP)
        self._encoder.bitrate = bitrate
        _encoder_api.encoder_ctl(self._encoder.encoder_state, _ctl.set_complexity, complexity)
        _encoder_api.encoder_ctl(self._encoder.encoder_state, _ctl.set_max_bandwidth, max_bandwidth)
        if fec:
            _encoder_api.encoder_ctl(self._encoder.encoder_state, _ctl.set_inband_fec, 1)
            _encoder_api.encoder_ctl(self._encoder.encoder_state, _ctl.set_packet_loss_perc, expected_loss_percent)
        self._decoder = opuslib.Decoder(48000, 1)
        self._encoder_state = self._encoder.encoder_state
        self._decoder_state = self._decoder.decoder_state
        self._payload = ctypes.create_string_buffer(MAX_PAYLOAD)
        self._pcm = (ctypes.c_int16 * MAX_FRAME_SAMPLES)()

    def encode(self, pcm):
        length = _opus_encode(self._encoder_state, pcm, len(pcm) // 2, self._payload, MAX_PAYLOAD)
        if length < 0:
            raise opuslib.OpusError(length)
        return ctypes.string_at(self._payload, length)

    def _decode(self, payload, samples, fec):
        count = _opus_decode(self._decoder_state, payload, len(payload) if payload else 0, self._pcm, samples, fec)
        if count < 0:
            raise opuslib.OpusError(count)
        return ctypes.string_at(self._pcm, 2 * count)

    def decode(self, payload):
        return self._decode(payload, MAX_FRAME_SAMPLES, 0)

    def conceal(self, samples, next_payload=None, ahead=0):
        # libopus's own concealment (no data): it continues its internal state, so the next packet joins.
        return self._decode(None, min(samples, MAX_FRAME_SAMPLES), 0)

    def recover(self, next_payload, samples):
        try:
            return self._decode(next_payload, min(samples, MAX_FRAME_SAMPLES), 1)
        except opuslib.OpusError:
            return self.conceal(samples)
