"""One interface over every codec Sotto speaks, for the media loop.

API:
    CODECS = ("PCMU", "PCMA", "G722", "opus")        names as in SDP (rtpmap encoding names)
    STATIC_PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8, "G722": 9}
    RTPMAP, RTP_CLOCKS, SAMPLE_RATES  per codec name: SDP rtpmap text, RTP clock, PCM sample rate
    make_codec(name) -> codec                        LocalProtocolError for an unknown name
    codec attributes and methods:
        .name, .sample_rate (of the PCM it takes and gives), .rtp_clock (RTP timestamp rate; G.722
        is 8000 although it samples at 16 kHz, RFC 3551 §4.5.2), .frame_samples (20 ms of PCM)
        .encode(pcm) -> payload          one 20 ms frame of 16-bit little-endian mono PCM
        .decode(payload) -> pcm          any payload duration
        .conceal(samples, next_payload=None, ahead=0) -> pcm   synthetic audio for a lost frame;
                                         next_payload: the first packet after the gap when the playout
                                         buffer holds it, `ahead` samples (of the codec's rate) after the
                                         end of this frame (0: it comes next). G.711 bridges the gap from
                                         both sides with it, over a burst too
        .recover(next_payload, samples) -> pcm   (Opus only: FEC from the following packet)
    G.722 and Opus are imported only when asked for (they are host-only C libraries).
"""

from audio import g711
from audio.plc import Concealer
from firmware.errors import LocalProtocolError

CODECS = ("PCMU", "PCMA", "G722", "opus")
STATIC_PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8, "G722": 9}
# SDP a=rtpmap encodings (RFC 3551; RFC 7587 for Opus, always "/48000/2"), the RTP clock (the rate of
# telephone-event/<clock> too), and the PCM rate a device should run at to need no resampling.
RTPMAP = {"PCMU": "PCMU/8000", "PCMA": "PCMA/8000", "G722": "G722/8000", "opus": "opus/48000/2"}
RTP_CLOCKS = {"PCMU": 8000, "PCMA": 8000, "G722": 8000, "opus": 48000}
SAMPLE_RATES = {"PCMU": 8000, "PCMA": 8000, "G722": 16000, "opus": 48000}


class G711Codec:
    __slots__ = ("name", "_encode", "_decode", "_plc")
    sample_rate = 8000
    rtp_clock = 8000
    frame_samples = 160

    def __init__(self, name):
        self.name = name
        if name == "PCMU":
            self._encode, self._decode = g711.encode_ulaw, g711.decode_ulaw
        else:
            self._encode, self._decode = g711.encode_alaw, g711.decode_alaw
        self._plc = Concealer(8000)

    def encode(self, pcm):
        return self._encode(pcm)

    def decode(self, payload):
        return self._plc.good(self._decode(payload))

    def conceal(self, samples, next_payload=None, ahead=0):
        # G.711 decoding is stateless, so the packet after the gap can be decoded ahead and the gap
        # bridged from both sides.
        following = self._decode(next_payload) if next_payload else None
        return self._plc.conceal(samples, following, ahead)


def make_codec(name):
    if name in ("PCMU", "PCMA"):
        return G711Codec(name)
    if name == "G722":
        from audio.g722 import G722Codec

        return G722Codec()
    if name == "opus":
        from audio.opus import OpusCodec

        return OpusCodec()
    raise LocalProtocolError("unknown codec {}".format(name))
