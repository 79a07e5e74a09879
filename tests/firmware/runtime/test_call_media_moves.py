"""A re-INVITE (or the answer to ours) that moves the peer's media address moves every datagram we send:
the RTP stream, and the ZRTP engine's packets too, so a ZRTP restart after the move (GNU ZRTP sends new
Hellos after hold/retrieve, RFC 6189 §4.6.1) is answered at the new address, not at the old one a carrier
relay has already dropped (tests/interop/carrier/test_reanchor.py moves calls that way)."""

import socket

from firmware import config, sdp
from firmware.runtime.call_media import CallMedia
from firmware.runtime.endpoint import Endpoint
from firmware.runtime.loop import Loop
from firmware.runtime.summary import Summary

PEER_HASH = "1.10 " + "ab" * 32


def _media(tmp_path):
    settings = config.load(None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # a free port for our SIP socket
        probe.bind(("127.0.0.1", 0))
        settings.sip.listen = "127.0.0.1:{}".format(probe.getsockname()[1])
    settings.data.dir = str(tmp_path)
    settings.zrtp.cache = str(tmp_path / "zrtp-cache")
    loop = Loop()
    endpoint = Endpoint(loop, settings)
    return loop, endpoint, CallMedia(endpoint, Summary("zrtp"), "sip:peer@127.0.0.1")


def _offer(address, port, version):
    return sdp.build_offer(["PCMU"], address, port, zrtp_hash=PEER_HASH, session_version=version).to_bytes()


def _close(loop, endpoint, media):
    media.close()
    endpoint.close()
    loop.close()


def test_a_reinvite_to_a_new_address_moves_where_zrtp_goes(tmp_path):
    loop, endpoint, media = _media(tmp_path)
    try:
        media.answer(_offer("127.0.0.1", 40000, 1))
        assert media.remote == ("127.0.0.1", 40000)
        media.answer_reinvite(_offer("127.0.0.2", 40100, 2))
        assert media.remote == ("127.0.0.2", 40100)
    finally:
        _close(loop, endpoint, media)


def test_the_answer_to_our_reinvite_moves_where_zrtp_goes(tmp_path):
    loop, endpoint, media = _media(tmp_path)
    try:
        media.offer()
        media.accept_answer(_offer("127.0.0.1", 40000, 1))
        media.accept_reanswer(_offer("127.0.0.2", 40100, 2), on_hold=False)
        assert media.remote == ("127.0.0.2", 40100)
    finally:
        _close(loop, endpoint, media)


def _offer_with_red(address, port, version, redundancy):
    offer = sdp.build_offer(
        ["PCMU"], address, port, zrtp_hash=PEER_HASH, session_version=version, redundancy=redundancy
    )
    return offer.to_bytes()


def test_a_reinvite_without_red_stops_our_redundancy(tmp_path):
    # RFC 2198 needs both SDPs: a PBX re-anchoring the call to a phone without RED re-offers without it,
    # and redundant packets would be audio that phone cannot decode.
    loop, endpoint, media = _media(tmp_path)
    try:
        media.answer(_offer_with_red("127.0.0.1", 40000, 1, True))
        assert media.red_payload_type is not None
        media.answer_reinvite(_offer_with_red("127.0.0.1", 40000, 2, True))
        assert media.red_payload_type is not None  # a re-offer that keeps it changes nothing
        answer = media.answer_reinvite(_offer_with_red("127.0.0.2", 40100, 3, False))
        assert media.red_payload_type is None
        assert b"red/" not in answer
    finally:
        _close(loop, endpoint, media)


def test_an_answer_to_our_reinvite_without_red_stops_our_redundancy(tmp_path):
    loop, endpoint, media = _media(tmp_path)
    try:
        media.offer()
        media.accept_answer(_offer_with_red("127.0.0.1", 40000, 1, True))
        assert media.red_payload_type is not None
        media.accept_reanswer(_offer_with_red("127.0.0.2", 40100, 2, False), on_hold=False)
        assert media.red_payload_type is None
    finally:
        _close(loop, endpoint, media)


def test_a_hold_reoffer_keeps_the_payload_types_the_peer_chose(tmp_path):
    # linphone offers Opus as 96 and telephone-event as 110: a hold/resume re-offer with our defaults (111,
    # 101) would have it answer and then send formats our running stream drops (RFC 3264 §8.3.2).
    loop, endpoint, media = _media(tmp_path)
    try:
        offer = sdp.build_offer(
            ["opus"],
            "127.0.0.1",
            40000,
            zrtp_hash=PEER_HASH,
            payload_types={"opus": 96, "telephone-event": 110},
        )
        media.answer(offer.to_bytes())
        reoffer = sdp.remote_media(sdp.parse_sdp(media.reoffer("sendonly")))
        assert [(codec.name.lower(), codec.payload_type) for codec in reoffer.codecs] == [("opus", 96)]
        assert reoffer.telephone_event == 110
    finally:
        _close(loop, endpoint, media)


def _opus_offer(version, opus_pt, codecs=("opus",)):
    numbers = {"opus": opus_pt, "telephone-event": 110}
    offer = sdp.build_offer(
        list(codecs), "127.0.0.1", 40000, zrtp_hash=PEER_HASH, session_version=version, payload_types=numbers
    )
    return offer.to_bytes()


def test_a_reinvite_keeps_the_running_codec_follows_its_new_number_or_is_refused(tmp_path):
    import pytest

    from firmware.errors import RemoteProtocolError

    loop, endpoint, media = _media(tmp_path)
    try:
        media.answer(_opus_offer(1, 96))
        assert media.codec.name.lower() == "opus" and media.codec.payload_type == 96
        # the same codec under a new number (another phone behind a PBX): answered and followed
        answer = sdp.remote_media(sdp.parse_sdp(media.answer_reinvite(_opus_offer(2, 100))))
        assert [(c.name.lower(), c.payload_type) for c in answer.codecs] == [("opus", 100)]
        assert media.codec.payload_type == 100
        # PCMU first in our preference and in the offer: the answer still keeps the running Opus
        answer = sdp.remote_media(sdp.parse_sdp(media.answer_reinvite(_opus_offer(3, 100, ("PCMU", "opus")))))
        assert [c.name.lower() for c in answer.codecs] == ["opus"]
        # an offer without it: 488, and the call goes on as it was
        with pytest.raises(RemoteProtocolError) as refused:
            media.answer_reinvite(_opus_offer(4, 100, ("PCMU",)))
        assert refused.value.status == 488
        assert media.codec.name.lower() == "opus" and media.codec.payload_type == 100
    finally:
        _close(loop, endpoint, media)
