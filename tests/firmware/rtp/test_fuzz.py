"""Any bytes in: a parsed packet or RemoteProtocolError out (RTP, SRTP, SRTCP, a=crypto)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.errors import RemoteProtocolError
from firmware.rtp import demux
from firmware.rtp.packet import parse_rtp
from firmware.srtp import sdes
from firmware.srtp.context import SrtpContext


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_rtp_parser_only_raises_remote_protocol_error(data):
    try:
        packet = parse_rtp(data)
    except RemoteProtocolError:
        return
    assert packet.serialize() == data or packet.padding  # padding octets are not preserved


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_srtp_unprotect_only_raises_remote_protocol_error(data):
    ctx = SrtpContext("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14))
    for func in (ctx.unprotect, ctx.unprotect_rtcp):
        try:
            func(data)
        except RemoteProtocolError:
            pass
        else:
            raise AssertionError("random bytes authenticated")
    demux.classify(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_crypto_attribute_parser_only_raises_remote_protocol_error(text):
    try:
        sdes.parse_crypto(text)
    except RemoteProtocolError:
        pass
