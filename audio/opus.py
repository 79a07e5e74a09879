"""Opus over libopus (opuslib): 48 kHz mono, in-band FEC, decoder-side loss concealment. Host-only.

API:
    OpusCodec(bitrate=40000, fec=True, expected_loss_percent=5, complexity=8)
                                         (40 kbit/s: PESQ-WB 3.96 here, 3.82 at 32; complexity: see below)
        .sample_rate = 48000, .rtp_clock = 48000, .frame_samples = 960 (20 ms), .name = "opus"
        .encode(pcm) -> bytes            pcm: 960 16-bit little-endian mono samples
        .decode(payload) -> bytes        16-bit little-endian mono at 48 kHz (the packet's duration)
        .conceal(samples, next_payload=None) -> bytes   libopus loss concealment (see recover())
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


# The encoder's complexity (0-10; libopus defaults to 10) is most of a secure Opus call's CPU. At 8 the
# encoder costs 0.43-0.45 ms per 20 ms frame here instead of 0.54-0.56, for the same PESQ-WB on flite's
# slt and rms (4.197, 4.405) and the same bytes per frame; at 5, 0.22 ms but 0.06 PESQ less. A Pi Zero
# 2 W has about a tenth of this machine's core (issue 14: Sotto needed 15 % of a core for a clean Opus
# call, linphonec 7.5 %).
DEFAULT_COMPLEXITY = 8


class OpusCodec:
    name = "opus"
    sample_rate = 48000
    rtp_clock = 48000
    frame_samples = 960

    def __init__(self, bitrate=40000, fec=True, expected_loss_percent=5, complexity=DEFAULT_COMPLEXITY):
        self._encoder = opuslib.Encoder(48000, 1, opuslib.APPLICATION_VOIP)
        self._encoder.bitrate = bitrate
        _encoder_api.encoder_ctl(self._encoder.encoder_state, _ctl.set_complexity, complexity)
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

    def conceal(self, samples, next_payload=None):
        # libopus's own concealment (no data): it continues its internal state, so the next packet joins.
        return self._decode(None, min(samples, MAX_FRAME_SAMPLES), 0)

    def recover(self, next_payload, samples):
        try:
            return self._decode(next_payload, min(samples, MAX_FRAME_SAMPLES), 1)
        except opuslib.OpusError:
            return self.conceal(samples)
