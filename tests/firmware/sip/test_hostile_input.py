"""Issue 11: numbers spelled with Unicode digits or control characters, and the RFC 4475 torture cases.

Each of these once crashed the phone (ValueError out of int() where only RemoteProtocolError may leave a
parser) or was accepted / dropped where RFC 3261 wants a 400.
"""

from firmware.digits import decimal_or_none, is_ascii_digits, parse_decimal, split_lws
from firmware.errors import RemoteProtocolError
from firmware.sdp import parse_sdp, remote_media
from firmware.sip.message import StreamFramer, check_request, check_response, has_control_character, parse_message
from firmware.sip.useragent import UserAgent
from tests.firmware.sip.netsim import counter_rng
from tests.portable import raises

MICROPYTHON = True

ME = ("127.0.0.1", 5062)
PEER = ("127.0.0.1", 5099)

# What a number field must refuse: superscripts (isdigit() true, int() fails), Arabic-Indic and fullwidth
# digits (int() converts them), control characters that str.strip() removes, NBSP, signs, huge values.
HOSTILE = [
    "\u00b2",
    "20\u00b2",
    "20\x1d",
    "\x1c20",
    "2\x1f0",
    "20\x0b",
    "20\x85",
    "20\u00a0",
    "\u0662\u0660",
    "\uff12\uff10",
    "-20",
    "+20",
    "2_0",
    "0x14",
    "",
    " ",
    "70000000000000000000000000000",
]

SDP = (
    "v=0\r\n"
    "o=bob 1 1 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 7088 RTP/AVP 0 101\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=ptime:PTIME\r\n"
)


def test_parse_decimal_takes_ascii_digits_only():
    assert parse_decimal("70", "Max-Forwards", 255) == 70
    assert parse_decimal(" \t0070 ", "Max-Forwards", 255) == 70  # LWS around, leading zeros (1*DIGIT)
    assert parse_decimal(b"123", "Content-Length", 65536) == 123
    for text in HOSTILE:
        exc = raises(RemoteProtocolError, parse_decimal, text, "X", 4294967295)
        assert exc.status == 400
        assert decimal_or_none(text, 4294967295) is None
    assert raises(RemoteProtocolError, parse_decimal, "256", "Max-Forwards", 255).message == "Max-Forwards out of range"
    assert raises(RemoteProtocolError, parse_decimal, "0", "port", 65535, 1).status == 400
    assert raises(RemoteProtocolError, parse_decimal, None, "CSeq", 10).message == "missing CSeq"
    assert is_ascii_digits("0123") and not is_ascii_digits("1\u00b2") and not is_ascii_digits("")
    assert split_lws(" 1 \t INVITE ") == ["1", "INVITE"]
    assert split_lws("1\x1cINVITE") == ["1\x1cINVITE"]  # str.split() would have made this "1 INVITE"


def test_remote_media_ignores_a_ptime_it_cannot_read():
    # Issue 11: `a=ptime:²` and `a=ptime:20\x1d` killed `sotto run` with ValueError.
    assert remote_media(parse_sdp(SDP.replace("PTIME", "20"))).ptime == 20
    for text in HOSTILE:
        media = remote_media(parse_sdp(SDP.replace("PTIME", text)))
        assert media.ptime is None, repr(text)


def test_sdp_numbers_are_ascii_or_a_remote_protocol_error():
    for text in HOSTILE:
        for old, new in (
            ("m=audio 7088", "m=audio " + text),
            ("m=audio 7088", "m=audio 7088/" + text),
            ("rtpmap:101", "rtpmap:" + text),
            ("telephone-event/8000", "telephone-event/" + text),
            ("telephone-event/8000", "telephone-event/8000/" + text),
        ):
            data = SDP.replace("PTIME", "20").replace(old, new)
            try:
                remote_media(parse_sdp(data))
            except RemoteProtocolError:
                pass
    # Unicode payload types in m= are skipped, never int()-converted into a codec.
    media = remote_media(parse_sdp(SDP.replace("PTIME", "20").replace("RTP/AVP 0 101", "RTP/AVP \u0668 0 101")))
    assert [c.payload_type for c in media.codecs] == [0]


def _request(method=b"OPTIONS", extra=b"", body=b"", length=None, cseq=b"1", max_forwards=b"70"):
    head = (
        method + b" sip:bob@127.0.0.1:5062 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-hostile\r\n"
        b"Max-Forwards: " + max_forwards + b"\r\n"
        b"From: <sip:peer@127.0.0.1:5099>;tag=p1\r\n"
        b"To: <sip:bob@127.0.0.1:5062>\r\n"
        b"Call-ID: hostile-1\r\n"
        b"CSeq: " + cseq + b" " + method + b"\r\n"
        b"Contact: <sip:peer@127.0.0.1:5099>\r\n" + extra
    )
    length = str(len(body)).encode() if length is None else length
    return head + b"Content-Length: " + length + b"\r\n\r\n" + body


def _answers(data):
    ua = UserAgent(ME, counter_rng("hostile"))
    ua.receive_datagram(data, PEER, 0.0)
    return ua, [parse_message(d) for d, dest in ua.datagrams_to_send(0.0) if dest == PEER]


def _status(data):
    """The status of the one answer, or "dropped" when the UA could not address one and counted it."""
    ua, out = _answers(data)
    if not out and ua.malformed_dropped == 1:
        return "dropped"
    assert len(out) == 1, (data, out, ua.malformed_dropped)
    return out[0].status


def test_unicode_digits_in_sip_numbers_get_400():
    assert _status(_request()) == 200
    for text in HOSTILE:
        raw = text.encode()
        # A control character in CSeq leaves nothing to copy into a response (§8.2.6.2): dropped.
        expected = ("dropped",) if has_control_character(text) else (400,)
        if text.strip(" \t"):  # "1" followed by nothing or LWS is a fine CSeq
            assert _status(_request(cseq=b"1" + raw)) in expected, raw
        assert _status(_request(max_forwards=raw)) == 400, raw
        assert _status(_request(extra=b"Expires: " + raw + b"\r\n")) == 400, raw


def test_unicode_digit_in_a_status_code_or_port_is_dropped_not_a_crash():
    response = (
        b"SIP/2.0 2\xc2\xb20 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKx\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    raises(RemoteProtocolError, parse_message, response)
    ua = UserAgent(ME, counter_rng("hostile"))
    ua.receive_datagram(response, PEER, 0.0)
    ua.receive_datagram(response.replace(b"127.0.0.1:5062", b"127.0.0.1:5\xc2\xb2"), PEER, 0.0)
    assert ua.malformed_dropped == 2
    fullwidth_port = _request().replace(b"bob@127.0.0.1:5062", b"bob@127.0.0.1:\xef\xbc\x95")
    raises(RemoteProtocolError, check_request, parse_message(fullwidth_port))
    assert _status(fullwidth_port) == 400


def test_registrar_rport_in_unicode_digits_is_ignored():
    ua = UserAgent(ME, counter_rng("hostile"), aor="sip:alice@127.0.0.1", outbound_proxy=PEER)
    ua.register(0.0)
    ((data, _),) = ua.datagrams_to_send(0.0)
    register = parse_message(data)
    branch = register.top_via.branch
    ok = (
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=" + branch + ";received=10.0.0.9;rport=5\u00b2\r\n"
        "From: " + register.headers.get("From") + "\r\nTo: <sip:alice@127.0.0.1>;tag=r\r\n"
        "Call-ID: " + register.call_id + "\r\nCSeq: " + register.headers.get("CSeq") + "\r\n"
        "Contact: <sip:alice@127.0.0.1:5062>;expires=60\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    ua.receive_datagram(ok, PEER, 0.1)
    assert ua.public_address == ("10.0.0.9", 5062)


def test_stream_framer_refuses_a_unicode_content_length():
    for length in (b"\xc2\xb2", b"1\x1d", b"\xef\xbc\x95", b"99999999999999999999999"):
        framer = StreamFramer()
        raises(RemoteProtocolError, framer.feed, _request(length=length))
    framer = StreamFramer()
    assert len(framer.feed(_request())) == 1


# ---- RFC 3261 §18.3 and RFC 4475 torture cases (our own messages in the spirit of the RFC's)


def test_content_length_larger_than_the_datagram_gets_400():
    # RFC 4475 §3.1.2.2 "clerr": §18.3 says a UDP request with a body shorter than Content-Length gets 400.
    ua, out = _answers(_request(b"INVITE", body=b"v=0\r\n", length=b"9999"))
    assert [m.status for m in out] == [400]
    assert "Content-Length" in out[0].reason
    assert ua.malformed_dropped == 0
    # RFC 4475 §3.1.2.3 "ncl": a negative Content-Length.
    assert _status(_request(b"INVITE", body=b"v=0\r\n", length=b"-999")) == 400
    # RFC 4475 §3.3.9 "mcl01": Content-Length given twice.
    assert _status(_request(extra=b"l: 0\r\n")) == 400
    assert _status(_request(extra=b"Content-Length: 0\r\n")) == 400


def test_every_value_of_a_single_valued_header_is_checked():
    # Issue 11: a second Max-Forwards of 70000000000000 was answered 200 (only the first was read).
    assert _status(_request(extra=b"Max-Forwards: 70000000000000\r\n")) == 400
    assert _status(_request(extra=b"Max-Forwards: 70\r\n")) == 400
    # RFC 4475 §3.3.8 "multi01": single-valued headers repeated.
    for extra in (
        b"Call-ID: other\r\n",
        b"CSeq: 2 OPTIONS\r\n",
        b"To: <sip:eve@127.0.0.1>\r\n",
        b"From: <sip:eve@127.0.0.1>;tag=e\r\n",
        b"Expires: 10\r\nExpires: 20\r\n",
        b"Content-Type: application/sdp\r\nContent-Type: text/plain\r\n",
    ):
        assert _status(_request(extra=extra)) == 400, extra


def test_overlarge_scalar_fields_get_400():
    # RFC 4475 §3.1.2.4 "scalar02": CSeq, Max-Forwards, Expires far beyond their range.
    assert _status(_request(cseq=b"36893488147419103232")) == 400
    assert _status(_request(cseq=b"2147483648")) == 400  # §8.1.1.5: CSeq < 2**31
    assert _status(_request(max_forwards=b"300")) == 400
    assert _status(_request(extra=b"Expires: 10000000000000000000\r\n")) == 400
    assert _status(_request(extra=b"Session-Expires: 99999999999;refresher=uac\r\n")) == 400
    assert _status(_request(extra=b"Min-SE: 1\xc2\xb2\r\n")) == 400
    assert _status(_request(extra=b"Retry-After: \xd9\xa1 (sleep)\r\n")) == 400
    assert _status(_request(extra=b"RSeq: 4294967296\r\n")) == 400
    assert _status(_request(extra=b"Session-Expires: 1800;refresher=uac\r\nRetry-After: 5 (soon)\r\n")) == 200


def test_overlarge_response_code_is_dropped():
    # RFC 4475 §3.1.2.19 "bigcode"; and §3.1.2.5 "scalarlg": a response with an overlarge CSeq.
    ua = UserAgent(ME, counter_rng("hostile"))
    base = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKx\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    ua.receive_datagram(base.replace(b"200 OK", b"4294967301 better not break the receiver"), PEER, 0.0)
    ua.receive_datagram(base.replace(b"CSeq: 1", b"CSeq: 36893488147419103232"), PEER, 0.0)
    ua.receive_datagram(base.replace(b"Call-ID: x", b"Call-ID: x\r\nCall-ID: y"), PEER, 0.0)
    assert ua.malformed_dropped == 3
    raises(RemoteProtocolError, check_response, parse_message(base.replace(b"To:", b"To: <sip:e@f>\r\nTo:")))


def test_control_characters_in_headers_get_400():
    # §25.1: header values are TEXT-UTF8 and LWS; a control character (other than HTAB) is malformed
    # even where str.strip() would have hidden it at the end of a value.
    for ch in (b"\x1d", b"\x0b", b"\x0c", b"\x7f", b"\x01"):
        assert _status(_request(extra=b"Subject: hi" + ch + b"\r\n")) == 400, ch
        assert _status(_request(max_forwards=b"70" + ch)) == 400, ch
        # Never echoed back: with the control character in a header the response copies, no answer.
        assert _status(_request().replace(b"Call-ID: hostile-1", b"Call-ID: hostile-1" + ch)) == "dropped"
    check_request(parse_message(_request(extra=b"Subject:\thi\tthere\r\n")))


def test_torture_requests_that_must_be_refused():
    cases = [
        # §3.1.2.6 "quotbal": unterminated quoted display name.
        (_request().replace(b"From: <sip:peer", b'From: "Peer <sip:peer'), 400),
        # §3.1.2.7 "ltgtruri": <> around the Request-URI.
        (_request().replace(b"OPTIONS sip:bob@127.0.0.1:5062 SIP", b"OPTIONS <sip:bob@127.0.0.1:5062> SIP"), 400),
        # §3.1.2.16 "badvers": an unknown protocol version.
        (_request().replace(b"5062 SIP/2.0\r\n", b"5062 SIP/7.0\r\n"), 505),
        # §3.1.2.17 "mismatch01": start line and CSeq method differ.
        (_request().replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"), 400),
        # §3.3.2 "unkscm": unknown Request-URI scheme.
        (_request().replace(b"OPTIONS sip:bob@127.0.0.1:5062", b"OPTIONS nobaru:bob@127.0.0.1"), 416),
        # §3.3.1 "insuf": no Call-ID.
        (_request().replace(b"Call-ID: hostile-1\r\n", b""), None),
    ]
    for data, status in cases:
        ua, out = _answers(data)
        if status is None:
            # Without a Call-ID the request cannot be matched to anything; a response is optional, a
            # crash is not.
            assert [m.status for m in out] in ([], [400]), out
        else:
            assert [m.status for m in out] == [status], (data, [m.status for m in out])


def test_sdes_crypto_numbers_are_ascii_or_refused():
    # a=crypto tag and MKI length went through str.isdigit() then int(): "²" was a ValueError.
    from firmware.srtp.sdes import answer_offer, parse_crypto

    key = "inline:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZn"[:40]
    assert parse_crypto("1 AES_CM_128_HMAC_SHA1_80 " + key).tag == 1
    for value in (
        "\u00b2 AES_CM_128_HMAC_SHA1_80 " + key,
        "\uff11 AES_CM_128_HMAC_SHA1_80 " + key,
        "1 AES_CM_128_HMAC_SHA1_80 " + key + "|1:\u00b2",
        "1 AES_CM_128_HMAC_SHA1_80 " + key + "|\u0661:4",
        "1 AES_CM_128_HMAC_SHA1_80 " + key + "|2^\u00b3\u00b9",
    ):
        raises(RemoteProtocolError, parse_crypto, value)
        assert answer_offer([value], lambda n: bytes(n)) is None
