"""SIP message parsing and serialization, in the spirit of RFC 4475 (our own messages, valid and invalid)."""

from firmware.errors import RemoteProtocolError
from firmware.sip.headers import Headers, canonical_name, parse_cseq, parse_via, split_commas
from firmware.sip.message import (
    KEEPALIVE_PING,
    KEEPALIVE_PONG,
    MAX_HEADERS,
    Request,
    Response,
    StreamFramer,
    check_request,
    check_response,
    make_response,
    parse_message,
)
from firmware.sip.uri import parse_uri
from tests.portable import raises

MICROPYTHON = True

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"v=0\r\n"
)


def _with(replace_from, replace_to, base=INVITE):
    assert replace_from in base
    return base.replace(replace_from, replace_to)


def test_parse_basic_invite():
    msg = parse_message(INVITE)
    check_request(msg)
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert msg.uri.user == "bob"
    assert msg.call_id == "a84b4c76e66710"
    assert msg.cseq == (314159, "INVITE")
    assert msg.from_addr.tag == "1928301774"
    assert msg.to_addr.tag is None
    assert msg.top_via.branch == "z9hG4bKnashds8"
    assert msg.top_via.param("rport") == ""
    assert msg.body == b"v=0\r\n"
    assert msg.content_type == "application/sdp"


def test_header_order_is_kept_and_round_trips():
    msg = parse_message(INVITE)
    names = [name for name, _ in msg.headers.items()]
    assert names[:4] == ["Via", "Max-Forwards", "To", "From"]
    again = parse_message(msg.to_bytes())
    assert [n for n, _ in again.headers.items()] == names
    assert again.body == msg.body


def test_compact_forms_folding_and_whitespace():
    data = (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP host1.example.com;branch=z9hG4bK1, SIP/2.0/TCP  host2.example.com:5070 ;branch=z9hG4bK2\r\n"
        b"t: <sip:user@example.com>\r\n"
        b"f  :   <sip:caller@example.net>;tag=3\r\n"
        b"i: 0ha0isndaksdj\r\n"
        b"CSeq: 8\r\n   OPTIONS\r\n"
        b"m: <sip:a@b>, <sip:c@d>;q=0.5\r\n"
        b"Subject: I know you're there,\r\n\tpick up the phone\r\n"
        b"k: timer, replaces\r\n"
        b"l: 0\r\n"
        b"\r\n"
    )
    msg = parse_message(data)
    check_request(msg)
    assert len(msg.vias) == 2
    assert msg.vias[1].transport == "TCP" and msg.vias[1].port == 5070 and msg.vias[1].branch == "z9hG4bK2"
    assert msg.cseq == (8, "OPTIONS")
    assert msg.headers.get("Subject") == "I know you're there, pick up the phone"
    assert msg.headers.get_all("Contact") == ["<sip:a@b>", "<sip:c@d>;q=0.5"]
    assert msg.headers.get_all("Supported") == ["timer", "replaces"]


def test_quoted_commas_do_not_split():
    assert split_commas('"a, b" <sip:x@y>, <sip:z@w;p=",">') == ['"a, b" <sip:x@y>', '<sip:z@w;p=",">']
    raises(RemoteProtocolError, split_commas, '"open')


def test_authenticate_header_is_not_split():
    headers = Headers()
    headers.add("www-authenticate", 'Digest realm="a", nonce="b", qop="auth,auth-int"')
    assert headers.get_all("WWW-Authenticate") == ['Digest realm="a", nonce="b", qop="auth,auth-int"']


def test_content_length_cuts_datagram_body():
    msg = parse_message(INVITE + b"trailing junk")
    assert msg.body == b"v=0\r\n"


def test_missing_content_length_takes_rest_of_datagram_but_not_on_streams():
    data = _with(b"Content-Length: 5\r\n", b"")
    assert parse_message(data).body == b"v=0\r\n"
    raises(RemoteProtocolError, parse_message, data, True)


def test_leading_crlf_and_bare_lf_tolerated():
    data = b"\r\n\r\n" + INVITE.replace(b"Content-Length: 5", b"Content-Length: 4").replace(b"\r\n", b"\n")
    msg = parse_message(data)
    assert msg.method == "INVITE" and msg.body == b"v=0\n"


def test_response_parse():
    data = (
        b"SIP/2.0 180 Ringing  now\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx;received=10.0.0.1;rport=4000\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n"
    )
    msg = parse_message(data)
    check_response(msg)
    assert isinstance(msg, Response)
    assert msg.status == 180 and msg.reason == "Ringing  now"
    assert msg.top_via.param("rport") == "4000"
    assert msg.top_via.param("received") == "10.0.0.1"


def test_invalid_messages():
    bad = [
        b"",
        b"\r\n",
        b"garbage",
        b"INVITE sip:bob@example.com SIP/2.0\r\nVia: x",  # no end of headers on a stream-ish message
        _with(b"INVITE sip:bob@biloxi.example.com SIP/2.0", b"INVITE  sip:bob@biloxi.example.com SIP/2.0"),
        _with(b"Content-Length: 5", b"Content-Length: 50"),
        _with(b"Content-Length: 5", b"Content-Length: -5"),
        _with(b"Content-Length: 5", b"Content-Length: five"),
        _with(b"Content-Length: 5\r\n", b"Content-Length: 5\r\nl: 6\r\n"),
        _with(b"Max-Forwards: 70\r\n", b"Max Forwards: 70\r\n"),
        _with(b"Max-Forwards: 70\r\n", b"NoColonHere\r\n"),
        _with(b"Max-Forwards: 70\r\n", b"\xff\xfe: x\r\n"),
        b"SIP/2.0 20 OK\r\nVia: SIP/2.0/UDP a\r\n\r\n",
        b"SIP/2.0 700 What\r\nVia: SIP/2.0/UDP a\r\n\r\n",
        b" continuation first\r\nVia: x\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\n folded-too-early\r\n\r\n",
    ]
    for data in bad:
        raises(RemoteProtocolError, parse_message, data)


def test_version_error_is_505():
    data = _with(b"sip:bob@biloxi.example.com SIP/2.0", b"sip:bob@biloxi.example.com SIP/7.0")
    assert raises(RemoteProtocolError, parse_message, data).status == 505


def test_size_bounds():
    big = INVITE.replace(b"Content-Length: 5", b"Content-Length: 66000") + b"x" * 66000
    assert raises(RemoteProtocolError, parse_message, big).status == 513
    many = INVITE.replace(b"Max-Forwards: 70\r\n", b"X-A: 1\r\n" * (MAX_HEADERS + 1))
    raises(RemoteProtocolError, parse_message, many)
    long_line = INVITE.replace(b"Max-Forwards: 70", b"X-Long: " + b"a" * 9000)
    raises(RemoteProtocolError, parse_message, long_line)


def test_rule_violations_found_by_check_request():
    cases = [
        (_with(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"), 400),
        (_with(b"CSeq: 314159 INVITE", b"CSeq: abc INVITE"), 400),
        (_with(b"CSeq: 314159 INVITE", b"CSeq: 99999999999 INVITE"), 400),
        (_with(b"Call-ID: a84b4c76e66710\r\n", b""), 400),
        (_with(b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n", b""), 400),
        (_with(b"To: Bob <sip:bob@biloxi.example.com>", b"To: <sip:a@b>, <sip:c@d>"), 400),
        (_with(b"Via: SIP/2.0/UDP pc33", b"Via: SIP/3.0/UDP pc33"), 400),
        (_with(b"Max-Forwards: 70", b"Max-Forwards: 300"), 400),
        (_with(b"INVITE sip:bob@biloxi.example.com SIP", b"INVITE mailto:bob@biloxi.example.com SIP"), 416),
        (_with(b"INVITE sip:bob@biloxi.example.com SIP", b"INVITE sip:bob@bil%20oxi SIP"), 400),
    ]
    for data, status in cases:
        msg = parse_message(data)
        exc = raises(RemoteProtocolError, check_request, msg)
        assert exc.status == status, (data, exc.status, exc.message)


def test_max_forwards_zero_is_accepted_by_a_user_agent():
    check_request(parse_message(_with(b"Max-Forwards: 70", b"Max-Forwards: 0")))


def test_make_response_copies_dialog_headers_and_adds_tag():
    msg = parse_message(INVITE)
    resp = make_response(msg, 486, to_tag="abc")
    assert resp.reason == "Busy Here"
    assert resp.headers.get("Via") == msg.headers.get("Via")
    assert resp.headers.get("CSeq") == "314159 INVITE"
    again = parse_message(resp.to_bytes())
    assert again.to_addr.tag == "abc"
    assert make_response(msg, 100, to_tag="abc").headers.get("To") == msg.headers.get("To")


def test_serialize_request_computes_content_length():
    headers = Headers()
    headers.add("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1")
    headers.add("Content-Length", "999")
    req = Request("MESSAGE", parse_uri("sip:a@b"), headers, b"hello")
    data = req.to_bytes()
    assert b"Content-Length: 5\r\n\r\nhello" in data
    assert b"999" not in data


def test_header_helpers():
    assert canonical_name("i") == "Call-ID"
    assert canonical_name("CALL-ID") == "Call-ID"
    assert canonical_name("X-Custom") == "X-Custom"
    assert parse_cseq("1 REGISTER") == (1, "REGISTER")
    raises(RemoteProtocolError, parse_cseq, "1")
    via = parse_via("SIP / 2.0 / UDP [2001:db8::1]:5060;branch=z9hG4bKa")
    assert via.host == "2001:db8::1" and via.port == 5060
    assert str(via) == "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa"
    headers = Headers([("Route", "<sip:a;lr>"), ("Route", "<sip:b;lr>")])
    headers.set("Route", "<sip:c;lr>")
    assert headers.get_all("Route") == ["<sip:c;lr>"]


def test_stream_framer():
    framer = StreamFramer()
    items = framer.feed(b"\r\n\r\n" + INVITE[:30])
    assert items == [KEEPALIVE_PING]
    items = framer.feed(INVITE[30:] + INVITE + b"\r\n")
    assert items == [INVITE, INVITE, KEEPALIVE_PONG]
    assert parse_message(items[0], stream=True).method == "INVITE"
    raises(RemoteProtocolError, StreamFramer().feed, b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n")
