"""SIP/SIPS/tel URIs and name-addr values (RFC 3261 §19.1, §20.10, §25.1; RFC 3966)."""

from firmware.errors import RemoteProtocolError
from firmware.sip.uri import Uri, parse_header_params, parse_name_addr, parse_uri, quote, unquote
from tests.portable import raises

MICROPYTHON = True


def test_full_sip_uri():
    uri = parse_uri("sip:alice:secretword@Atlanta.COM:5061;transport=TCP;lr?subject=project%20x&priority=urgent")
    assert uri.scheme == "sip"
    assert uri.user == "alice"
    assert uri.password == "secretword"
    assert uri.host == "atlanta.com"
    assert uri.port == 5061
    assert uri.param("transport") == "TCP"
    assert uri.param("lr") == ""
    assert uri.param("maddr") is None
    assert uri.transport() == "tcp"
    assert uri.headers == [["subject", "project x"], ["priority", "urgent"]]


def test_sips_default_transport_and_ipv6():
    uri = parse_uri("sips:[2001:db8::10]:5061")
    assert uri.scheme == "sips" and uri.host == "2001:db8::10" and uri.port == 5061
    assert uri.transport() == "tls"
    assert str(uri) == "sips:[2001:db8::10]:5061"


def test_escaped_user_round_trip():
    uri = parse_uri("sip:sip%3Auser%40example.com@example.net")
    assert uri.user == "sip:user@example.com"
    again = parse_uri(str(uri))
    assert again.user == uri.user and again.host == "example.net"


def test_tel_uri():
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert uri.scheme == "tel" and uri.user == "+1-201-555-0123"
    assert uri.param("phone-context") == "example.com"
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com"


def test_uri_equality_ignores_case_of_host_and_other_params():
    assert parse_uri("sip:bob@BILOXI.com;foo=1") == parse_uri("sip:bob@biloxi.com")
    assert parse_uri("sip:bob@biloxi.com;transport=tcp") != parse_uri("sip:bob@biloxi.com")
    assert parse_uri("sip:bob@biloxi.com:5060") != parse_uri("sip:bob@biloxi.com")
    assert parse_uri("sip:BOB@biloxi.com") != parse_uri("sip:bob@biloxi.com")


def test_bad_uris_raise_remote_protocol_error():
    for text in (
        "",
        "sip:",
        "sip:@host",
        "sip:user@",
        "sip:user@host:99999",
        "sip:user@host:0",
        "sip:user@host:abc",
        "sip:us er@host",
        "sip:user@ho_st",
        "sip:user@[::1",
        "sip:host;",
        "sip:host;=x",
        "sip:user%4@host",
        "sip:user%zz@host",
        "sip:user%ff@host",
        "sip:host?a",
        "tel:",
        "tel:12x",
        "nouri",
    ):
        exc = raises(RemoteProtocolError, parse_uri, text)
        assert exc.status == 400, text


def test_unknown_scheme_is_416():
    assert raises(RemoteProtocolError, parse_uri, "http://example.com/").status == 416


def test_name_addr_forms():
    na = parse_name_addr('"Bob \\"B\\" Smith" <sip:bob@biloxi.com;transport=udp>;tag=a6c85cf;expires=60')
    assert na.display == 'Bob "B" Smith'
    assert na.uri.param("transport") == "udp"
    assert na.tag == "a6c85cf"
    assert na.param("expires") == "60"
    bare = parse_name_addr("sip:bob@biloxi.com;tag=xyz")
    assert bare.tag == "xyz" and bare.uri.params == []
    token_display = parse_name_addr("Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8")
    assert token_display.display == "Anonymous"
    star = parse_name_addr("*")
    assert star.uri is None
    assert str(parse_name_addr(str(na))) == str(na)


def test_name_addr_errors():
    for text in ("", "<sip:bob@biloxi.com", '"unterminated <sip:a@b>', "<sip:a@b>;=x", '<sip:a@b>;tag="x'):
        raises(RemoteProtocolError, parse_name_addr, text)


def test_quote_unquote_and_params():
    assert unquote(quote('a "b" \\ c')) == 'a "b" \\ c'
    assert parse_header_params(';a=b ; c="d;e" ;F') == [["a", "b"], ["c", "d;e"], ["f", None]]
    raises(RemoteProtocolError, unquote, '"abc')
    raises(RemoteProtocolError, unquote, '"a"b"')


def test_uri_set_and_copy():
    uri = Uri("sip", "alice", "127.0.0.1", 5070)
    uri.set_param("transport", "tcp")
    copy = uri.copy()
    copy.set_param("transport", "udp")
    assert str(uri) == "sip:alice@127.0.0.1:5070;transport=tcp"
    assert str(copy) == "sip:alice@127.0.0.1:5070;transport=udp"
    assert uri.host_port() == "127.0.0.1:5070"
