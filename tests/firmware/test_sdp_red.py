"""RFC 2198 redundancy in SDP (RFC 2198 §5, red/8000 registered by RFC 4102): offered after the plain
codecs, answered only for the chosen codec, used only when both sides have it."""

from firmware.sdp import answer_offer, build_offer, parse_sdp, red_payload_type, remote_media

CODECS = ["PCMU", "PCMA", "G722", "opus"]


def _lines(description):
    return description.to_bytes().decode().split("\r\n")


def test_the_offer_lists_red_after_the_plain_codecs_for_g711_and_g722():
    lines = _lines(build_offer(CODECS, "127.0.0.1", 4000, redundancy=True))
    assert "m=audio 4000 RTP/AVP 0 8 9 111 121 122 123 101" in lines
    for red, primary in ((121, 0), (122, 8), (123, 9)):
        assert "a=rtpmap:{} red/8000".format(red) in lines
        assert "a=fmtp:{} {}/{}".format(red, primary, primary) in lines
    assert not [line for line in _lines(build_offer(CODECS, "127.0.0.1", 4000)) if "red/" in line]
    # Opus alone: it has in-band FEC, no RED.
    assert not [line for line in _lines(build_offer(["opus"], "127.0.0.1", 4000, redundancy=True)) if "red" in line]


def test_answering_an_offer_with_red_for_the_chosen_codec():
    offer = build_offer(["G722", "PCMU"], "127.0.0.1", 4000, redundancy=True)
    answer, chosen = answer_offer(offer, ["G722", "PCMU"], "127.0.0.1", 5000, redundancy=True)
    assert chosen.name == "G722"
    lines = _lines(answer)
    assert "m=audio 5000 RTP/AVP 9 123 101" in lines and "a=fmtp:123 9/9" in lines
    assert red_payload_type(remote_media(answer).codecs, chosen) == 123
    # Without redundancy on our side, the answer leaves RED out.
    plain, chosen = answer_offer(offer, ["G722"], "127.0.0.1", 5000)
    assert "m=audio 5000 RTP/AVP 9 101" in _lines(plain)
    assert red_payload_type(remote_media(plain).codecs, chosen) is None


def test_a_peers_red_is_taken_only_for_the_codec_it_names():
    offer = parse_sdp(
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 8 0 96 97\r\na=rtpmap:96 red/8000\r\na=fmtp:96 0/0\r\n"
        b"a=rtpmap:97 RED/8000\r\na=fmtp:97 8/0\r\n"
    )
    # Ours is PCMU first: the peer's red 96 names PCMU; 97 mixes encodings (we send one of a kind).
    answer, chosen = answer_offer(offer, ["PCMU", "PCMA"], "127.0.0.1", 5000, redundancy=True)
    assert chosen.name == "PCMU" and "m=audio 5000 RTP/AVP 0 96" in _lines(answer)
    assert red_payload_type(remote_media(offer).codecs, chosen) == 96
    answer, chosen = answer_offer(offer, ["PCMA"], "127.0.0.1", 5000, redundancy=True)
    assert chosen.name == "PCMA" and "m=audio 5000 RTP/AVP 8" in _lines(answer)
    assert red_payload_type(remote_media(offer).codecs, chosen) is None


def test_red_without_fmtp_or_with_a_wrong_clock_is_not_used():
    offer = parse_sdp(
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0 96 98\r\na=rtpmap:96 red/8000\r\na=rtpmap:98 red/16000\r\na=fmtp:98 0/0\r\n"
    )
    answer, chosen = answer_offer(offer, ["PCMU"], "127.0.0.1", 5000, redundancy=True)
    assert "m=audio 5000 RTP/AVP 0" in _lines(answer)
    assert red_payload_type(remote_media(offer).codecs, chosen) is None


def test_a_reoffer_keeps_the_red_payload_type_the_call_uses():
    lines = _lines(build_offer(["PCMA"], "127.0.0.1", 4000, redundancy=96))
    assert "m=audio 4000 RTP/AVP 8 96 101" in lines and "a=fmtp:96 8/8" in lines


def test_redundancy_is_on_by_default_in_the_configuration(tmp_path):
    import pytest

    from firmware import config
    from firmware.errors import ConfigError

    assert config.load(None).media.redundancy is True
    path = tmp_path / "off.toml"
    path.write_text("[media]\nredundancy = false\n")
    assert config.load(str(path)).media.redundancy is False
    path.write_text('[media]\nredundancy = "yes"\n')
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    assert "media.redundancy: " in str(info.value) and "true or false" in str(info.value)
