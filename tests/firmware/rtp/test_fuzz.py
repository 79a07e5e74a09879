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


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_rtcp_and_telephone_event_parsers_only_raise_remote_protocol_error(data):
    from firmware.rtp import rtcp
    from firmware.rtp.dtmf import DtmfReceiver

    for func in (rtcp.parse_compound, lambda d: DtmfReceiver().receive(0, d)):
        try:
            func(data)
        except RemoteProtocolError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.floats(0, 100)), max_size=80))
def test_playout_buffer_stays_bounded_whatever_arrives(packets):
    from audio.playout import JitterBuffer

    jb = JitterBuffer(8000, capacity=20)
    for seq, ts, now in packets:
        jb.push(seq, ts, b"x", now)
        jb.pop()
        assert len(jb._slots) <= 20
        assert 20 <= jb.target_ms <= 200
