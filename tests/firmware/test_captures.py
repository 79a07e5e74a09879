"""Our parsers against what real peers put on the wire (tests/fixtures/captures, recorded from linphone-cli,
baresip and kamailio; README.md there says how). Until now RTP, RTCP, SIP and ZRTP were tested as our encoder
against our parser only."""

import hashlib
import pathlib

from firmware import sdp
from firmware.rtp import demux, rtcp
from firmware.rtp.packet import parse_rtp
from firmware.sip import auth
from firmware.sip.message import check_request, check_response, parse_message
from firmware.zrtp import messages

CAPTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "captures"


def capture(name):
    return (CAPTURES / name).read_bytes()


def zrtp(name):
    data = capture(name)
    assert demux.classify(data) == demux.ZRTP
    _sequence, _ssrc, message = messages.decode_packet(data)  # the CRC-32c, little-endian on the wire, checks
    return messages.decode_message(message)


def test_linphones_invite_parses_checks_and_offers_zrtp():
    request = parse_message(capture("linphone_invite.bin"))
    check_request(request)
    assert request.method == "INVITE"
    offer = sdp.remote_media(request.body)
    assert [c.name for c in offer.codecs] == ["PCMU"] and offer.telephone_event is not None
    assert offer.zrtp_hash is not None and offer.zrtp_hash.startswith("1.10 ")
    assert offer.address == "127.0.0.1" and offer.port > 0 and offer.direction == "sendrecv"


def test_baresips_invite_has_no_zrtp_and_two_codecs():
    request = parse_message(capture("baresip_invite.bin"))
    check_request(request)
    offer = sdp.remote_media(request.body)
    assert [c.name for c in offer.codecs] == ["PCMU", "PCMA"]
    assert offer.zrtp_hash is None and not offer.crypto_lines and offer.proto == "RTP/AVP"


def test_kamailios_challenge_and_registration_answer():
    challenge_response = parse_message(capture("kamailio_401.bin"))
    check_response(challenge_response)
    assert challenge_response.status == 401
    challenge = auth.choose_challenge(challenge_response.headers.get_all("WWW-Authenticate"))
    assert challenge is not None
    assert challenge.realm == "127.0.0.1" and "auth" in challenge.qop and challenge.nonce
    ok = parse_message(capture("kamailio_register_200.bin"))
    check_response(ok)
    assert ok.status == 200 and ok.headers.get("Contact")


def test_bzrtp_hello_and_its_offer():
    hello = zrtp("linphone_zrtp_hello.bin")
    assert isinstance(hello, messages.Hello)
    assert hello.version == "1.10" and hello.client_id.startswith("BZRTP")
    assert hello.key_agreements == ["DH3k", "Mult"] and hello.hashes == ["S256"]
    assert hello.ciphers == ["AES1", "AES3"] and hello.auth_tags == ["HS80", "HS32"] and hello.sas_types == ["B32"]


def test_bzrtp_exchange_messages_parse_and_chain():
    """One exchange: Commit's H2 hashes to Hello's H3, DHPart1's H1 to Commit's H2 (RFC 6189 §9)."""
    hello = zrtp("linphone_zrtp_hello.bin")
    commit = zrtp("linphone_zrtp_commit.bin")
    dhpart1 = zrtp("linphone_zrtp_dhpart1.bin")
    assert (commit.hash, commit.cipher, commit.auth_tag, commit.key_agreement, commit.sas) == (
        "S256",
        "AES1",
        "HS80",
        "DH3k",
        "B32",
    )
    assert hashlib.sha256(commit.h2).digest() == hello.h3
    assert isinstance(dhpart1, messages.DHPart) and dhpart1.part == 1
    assert hashlib.sha256(dhpart1.h1).digest() == commit.h2
    assert len(dhpart1.pv) == 384  # DH3k: a 3072-bit public value
    confirm1 = zrtp("linphone_zrtp_confirm1.bin")
    assert isinstance(confirm1, messages.Confirm) and confirm1.part == 1
    conf2ack = zrtp("linphone_zrtp_conf2ack.bin")
    assert conf2ack.TYPE == b"Conf2ACK"


def test_rtp_from_linphone_and_baresip():
    for name in ("linphone_rtp_pcmu.bin", "baresip_rtp_pcmu.bin"):
        data = capture(name)
        assert demux.classify(data) == demux.RTP
        packet = parse_rtp(data)
        assert packet.payload_type == 0 and len(packet.payload) == 160, name  # 20 ms of PCMU


def test_rtcp_from_linphone_and_baresip():
    data = capture("linphone_rtcp.bin")
    assert demux.classify(data) == demux.RTCP
    reports = rtcp.parse_compound(data)
    assert [type(r).__name__ for r in reports] == ["ReceiverReport", "Sdes"]
    assert reports[1].chunks  # the CNAME
    baresip = rtcp.parse_compound(capture("baresip_rtcp.bin"))
    assert len(baresip) == 1 and not isinstance(baresip[0], (rtcp.SenderReport, rtcp.ReceiverReport))
