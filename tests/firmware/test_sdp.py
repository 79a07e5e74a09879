"""SDP parsing, offers and answers (RFC 4566, RFC 3264)."""

from firmware.errors import RemoteProtocolError
from firmware.sdp import answer_offer, build_offer, parse_sdp, remote_media, reverse_direction
from tests.portable import raises

MICROPYTHON = True

LINPHONE_OFFER = (
    b"v=0\r\n"
    b"o=bob 1234 5678 IN IP4 127.0.0.1\r\n"
    b"s=Talk\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n"
    b"m=audio 7088 RTP/AVP 96 97 0 8 101\r\n"
    b"a=rtpmap:96 opus/48000/2\r\n"
    b"a=fmtp:96 useinbandfec=1\r\n"
    b"a=rtpmap:97 speex/16000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=zrtp-hash:1.10 4f2b1c\r\n"
    b"a=rtcp-mux\r\n"
    b"a=sendrecv\r\n"
    b"m=video 0 RTP/AVP 96\r\n"
)


def test_parse_linphone_offer():
    sdp = parse_sdp(LINPHONE_OFFER)
    assert sdp.origin.username == "bob" and sdp.origin.session_version == "5678"
    assert sdp.session_name == "Talk"
    assert len(sdp.media) == 2
    media = remote_media(sdp)
    assert media.address == "127.0.0.1" and media.port == 7088
    assert [(c.payload_type, c.name, c.clock_rate) for c in media.codecs] == [
        (96, "opus", 48000),
        (97, "speex", 16000),
        (0, "PCMU", 8000),
        (8, "PCMA", 8000),
    ]
    assert media.codecs[0].channels == 2 and media.codecs[0].fmtp == "useinbandfec=1"
    assert media.telephone_event == 101
    assert media.zrtp_hash == "1.10 4f2b1c"
    assert media.rtcp_mux is True
    assert media.direction == "sendrecv"


def test_round_trip_keeps_unknown_lines():
    sdp = parse_sdp(LINPHONE_OFFER)
    again = parse_sdp(sdp.to_bytes())
    assert again.to_bytes() == sdp.to_bytes()
    assert b"a=rtcp-xr:" in sdp.to_bytes()


def test_build_offer():
    sdp = build_offer(
        ["PCMU", "PCMA", "G722", "opus"],
        "192.0.2.5",
        40000,
        direction="sendonly",
        zrtp_hash="1.10 abcd",
        crypto_lines=["1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"],
        rtcp_mux=True,
        session_id=42,
        session_version=7,
    )
    data = sdp.to_bytes()
    assert b"m=audio 40000 RTP/SAVP 0 8 9 111 101\r\n" in data
    assert b"a=rtpmap:9 G722/8000\r\n" in data
    assert b"a=rtpmap:111 opus/48000/2\r\n" in data
    assert b"a=rtpmap:101 telephone-event/8000\r\n" in data
    assert b"o=- 42 7 IN IP4 192.0.2.5\r\n" in data
    assert b"c=IN IP4 192.0.2.5\r\n" in data
    media = remote_media(parse_sdp(data))
    assert media.direction == "sendonly"
    assert media.zrtp_hash == "1.10 abcd"
    assert media.crypto_lines == ["1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"]
    assert media.rtcp_mux
    assert media.ptime == 20
    plain = build_offer(["PCMA"], "127.0.0.1", 4000, telephone_event=False).to_bytes()
    assert b"m=audio 4000 RTP/AVP 8\r\n" in plain


def test_build_offer_rejects_unknown_codec():
    raises(RemoteProtocolError, build_offer, ["GSM"], "127.0.0.1", 4000)


def test_answer_picks_our_preference_and_keeps_their_payload_types():
    answer, codec = answer_offer(LINPHONE_OFFER, ["PCMA", "opus"], "127.0.0.1", 5000, zrtp_hash="1.10 ff")
    assert codec.name == "PCMA" and codec.payload_type == 8
    media = remote_media(answer)
    assert [c.name for c in media.codecs] == ["PCMA"]
    assert media.telephone_event == 101
    assert media.rtcp_mux
    assert media.zrtp_hash == "1.10 ff"
    assert media.port == 5000
    assert answer.media[1].port == 0 and answer.media[1].media == "video"
    answer, codec = answer_offer(LINPHONE_OFFER, ["opus", "PCMU"], "127.0.0.1", 5000)
    assert codec.name == "opus" and codec.payload_type == 96 and codec.fmtp == "useinbandfec=1"
    assert b"a=rtpmap:96 opus/48000/2" in answer.to_bytes()


def test_answer_with_no_common_codec_is_488():
    exc = raises(RemoteProtocolError, answer_offer, LINPHONE_OFFER, ["G722"], "127.0.0.1", 5000)
    assert exc.status == 488


def test_answer_directions_rfc3264():
    for offered, wanted, expected in (
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("inactive", "sendrecv", "inactive"),
        ("sendrecv", "sendonly", "sendonly"),
        ("sendonly", "sendonly", "inactive"),
    ):
        offer = build_offer(["PCMU"], "127.0.0.1", 4000, direction=offered)
        answer, _ = answer_offer(offer.to_bytes(), ["PCMU"], "127.0.0.1", 5000, direction=wanted)
        assert remote_media(answer).direction == expected, (offered, wanted)
    assert reverse_direction("sendonly") == "recvonly"
    assert reverse_direction("sendrecv") == "sendrecv"


def test_hold_with_zero_address_and_session_level_direction():
    data = (
        b"v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=sendonly\r\n"
        b"m=audio 4000 RTP/AVP 0\r\n"
    )
    media = remote_media(data)
    assert media.address == "0.0.0.0" and media.direction == "sendonly"
    assert [c.name for c in media.codecs] == ["PCMU"]


def test_invalid_sdp():
    for data in (
        b"",
        b"o=- 1 1 IN IP4 1.2.3.4\r\n",
        b"v=1\r\n",
        b"v=0\r\nm=audio 1 RTP/AVP 0\r\n",
        b"v=0\r\no=short\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nbogus\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x y\r\n",
        b"\xff\xfe",
    ):
        try:
            sdp = parse_sdp(data)
            remote_media(sdp)
            answer_offer(sdp, ["PCMU"], "127.0.0.1", 1)
        except RemoteProtocolError:
            continue
        raise AssertionError("accepted {!r}".format(data))


def test_no_audio_is_488():
    data = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n"
    assert raises(RemoteProtocolError, remote_media, data).status == 488
    assert raises(RemoteProtocolError, answer_offer, data, ["PCMU"], "127.0.0.1", 1).status == 488
