"""How the UserAgent answers requests from outside its calls, and what it does with bad input."""

from firmware.sip import events
from firmware.sip.message import parse_message
from firmware.sip.useragent import UserAgent
from tests.firmware.sip.netsim import counter_rng

MICROPYTHON = True

ME = ("127.0.0.1", 5062)
PEER = ("127.0.0.1", 5099)


def _request(method, extra=b"", to_tag=b"", cseq_method=None, body=b"", uri=b"sip:bob@127.0.0.1:5062"):
    cseq_method = cseq_method or method
    head = (
        method + b" " + uri + b" SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-" + method.lower() + b"\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:peer@127.0.0.1:5099>;tag=p1\r\n"
        b"To: <sip:bob@127.0.0.1:5062>" + to_tag + b"\r\n"
        b"Call-ID: rules-1\r\n"
        b"CSeq: 1 " + cseq_method + b"\r\n"
        b"Contact: <sip:peer@127.0.0.1:5099>\r\n" + extra
    )
    return head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


def _answer(data):
    ua = UserAgent(ME, counter_rng("x"))
    ua.receive_datagram(data, PEER, 0.0)
    out = ua.datagrams_to_send(0.0)
    return ua, [(parse_message(d), dest) for d, dest in out]


def test_options_gets_200_with_allow_accept_supported():
    ua, out = _answer(_request(b"OPTIONS"))
    ((response, dest),) = out
    assert response.status == 200 and dest == PEER
    assert "INVITE" in response.headers.get("Allow") and "REFER" in response.headers.get("Allow")
    assert response.headers.get("Accept") == "application/sdp"
    assert response.headers.get("Supported") is not None
    assert response.to_addr.tag


def test_unknown_method_501_known_405():
    _, out = _answer(_request(b"FOOBAR"))
    assert out[0][0].status == 501
    _, out = _answer(_request(b"SUBSCRIBE", b"Event: presence\r\n"))
    assert out[0][0].status == 405 and out[0][0].headers.get("Allow")


def test_in_dialog_request_for_unknown_dialog_gets_481():
    _, out = _answer(_request(b"BYE", to_tag=b";tag=nope"))
    assert out[0][0].status == 481
    _, out = _answer(_request(b"INVITE", to_tag=b";tag=nope"))
    assert out[0][0].status == 481
    _, out = _answer(_request(b"CANCEL"))
    assert out[0][0].status == 481


def test_rule_breaking_requests_get_400_family():
    _, out = _answer(_request(b"INVITE", cseq_method=b"BYE"))
    assert out[0][0].status == 400 and "CSeq" in out[0][0].reason
    _, out = _answer(_request(b"INVITE", uri=b"mailto:bob@example.com"))
    assert out[0][0].status == 416
    _, out = _answer(_request(b"INVITE", b"Require: precondition, 100rel\r\n"))
    assert out[0][0].status == 420 and out[0][0].headers.get("Unsupported") == "precondition"
    _, out = _answer(_request(b"INVITE", b"Require: 100rel\r\n"))  # RFC 3262: supported
    assert out[0][0].status == 100
    _, out = _answer(_request(b"INVITE", b"Content-Type: text/plain\r\n", body=b"hello"))
    assert out[0][0].status == 415
    no_contact = _request(b"INVITE").replace(b"Contact: <sip:peer@127.0.0.1:5099>\r\n", b"")
    _, out = _answer(no_contact)
    assert out[0][0].status == 400


def test_garbage_is_dropped_and_counted():
    ua = UserAgent(ME, counter_rng("x"))
    for data in (
        b"",
        b"\x00\x01",
        b"hello world\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        _request(b"ACK", cseq_method=b"INVITE"),
    ):
        ua.receive_datagram(data, PEER, 0.0)
    assert ua.malformed_dropped == 6
    assert ua.datagrams_to_send(0.0) == []
    assert ua.next_event() is None


def test_retransmitted_invite_gets_the_cached_response():
    ua = UserAgent(ME, counter_rng("x"))
    invite = _request(
        b"INVITE",
        b"Content-Type: application/sdp\r\n",
        body=b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
    )
    ua.receive_datagram(invite, PEER, 0.0)
    event = ua.next_event()
    assert isinstance(event, events.IncomingCall) and event.call_id == "rules-1"
    ua.ringing("rules-1", 0.1)
    first = [parse_message(d).status for d, _ in ua.datagrams_to_send(0.1)]
    assert first == [100, 180]
    ua.receive_datagram(invite, PEER, 0.5)
    again = [parse_message(d).status for d, _ in ua.datagrams_to_send(0.5)]
    assert again == [180]
    assert ua.next_event() is None


def _uac_with_invite():
    ua = UserAgent(("127.0.0.1", 5061), counter_rng("uac"))
    call = ua.invite("sip:bob@127.0.0.1:5099", b"", 0.0)
    ((data, dest),) = ua.datagrams_to_send(0.0)
    return ua, call, parse_message(data)


def _ok_from(invite, tag, contact="<sip:bob@127.0.0.1:5099>"):
    from firmware.sip.message import make_response

    response = make_response(invite, 200, to_tag=tag)
    response.headers.add("Contact", contact)
    return response.to_bytes()


def test_second_fork_2xx_is_acked_and_hung_up():
    ua, call, invite = _uac_with_invite()
    ua.receive_datagram(_ok_from(invite, "fork1"), PEER, 0.1)
    first = [parse_message(d) for d, _ in ua.datagrams_to_send(0.1)]
    assert [m.method for m in first] == ["ACK"]
    assert isinstance(ua.next_event(), events.CallAnswered)
    ua.receive_datagram(_ok_from(invite, "fork1"), PEER, 0.2)  # retransmission: ACK again only
    again = [parse_message(d) for d, _ in ua.datagrams_to_send(0.2)]
    assert [m.method for m in again] == ["ACK"] and again[0].to_addr.tag == "fork1"
    ua.receive_datagram(_ok_from(invite, "fork2", "<sip:other@127.0.0.1:5098>"), PEER, 0.3)
    stray = [(parse_message(d), dest) for d, dest in ua.datagrams_to_send(0.3)]
    assert [(m.method, m.to_addr.tag, dest) for m, dest in stray] == [
        ("ACK", "fork2", ("127.0.0.1", 5098)),
        ("BYE", "fork2", ("127.0.0.1", 5098)),
    ]
    assert ua.next_event() is None
    assert call in ua.calls


def test_2xx_without_contact_is_acked_byed_and_reported():
    from firmware.sip.message import make_response

    ua, call, invite = _uac_with_invite()
    ua.receive_datagram(make_response(invite, 200, to_tag="t").to_bytes(), PEER, 0.1)
    methods = [parse_message(d).method for d, _ in ua.datagrams_to_send(0.1)]
    assert methods == ["ACK", "BYE"]
    event = ua.next_event()
    assert isinstance(event, events.CallFailed) and event.status == 502


def test_tel_uri_needs_an_outbound_proxy():
    from firmware.errors import LocalProtocolError
    from tests.portable import raises

    ua = UserAgent(ME, counter_rng("x"))
    raises(LocalProtocolError, ua.invite, "tel:+15551234", b"", 0.0)
    assert ua.calls == {}
    raises(LocalProtocolError, ua.invite, "not a uri", b"", 0.0)
    proxied = UserAgent(ME, counter_rng("x"), outbound_proxy=("127.0.0.1", 5080))
    proxied.invite("tel:+15551234", b"", 0.0)
    ((data, dest),) = proxied.datagrams_to_send(0.0)
    assert dest == ("127.0.0.1", 5080) and data.startswith(b"INVITE tel:+15551234 SIP/2.0")


def test_registrar_seen_address_becomes_the_contact():
    from firmware.sip.message import make_response

    ua = UserAgent(
        ("10.0.0.5", 5060), counter_rng("nat"), aor="sip:alice@example.com", outbound_proxy=("192.0.2.1", 5060)
    )
    ua.register(0.0)
    ((data, _),) = ua.datagrams_to_send(0.0)
    register = parse_message(data)
    response = make_response(register, 200, to_tag="r")
    via = register.headers.get("Via").replace(";rport", ";rport=40000;received=203.0.113.7")
    response.headers.set("Via", via)
    response.headers.add("Contact", register.headers.get("Contact"))
    ua.receive_datagram(response.to_bytes(), ("192.0.2.1", 5060), 0.1)
    ((data, _),) = ua.datagrams_to_send(0.1)
    again = parse_message(data)
    assert again.method == "REGISTER"
    assert again.headers.get("Contact").startswith("<sip:alice@203.0.113.7:40000>")
    assert ua.public_address == ("203.0.113.7", 40000)


def test_responses_carry_received_and_rport():
    request = _request(b"OPTIONS").replace(b"branch=z9hG4bK-options", b"branch=z9hG4bK-options;rport")
    request = request.replace(b"Via: SIP/2.0/UDP 127.0.0.1:5099", b"Via: SIP/2.0/UDP 10.1.1.1:5099")
    ua = UserAgent(ME, counter_rng("x"))
    ua.receive_datagram(request, ("192.0.2.9", 40001), 0.0)
    ((data, dest),) = ua.datagrams_to_send(0.0)
    response = parse_message(data)
    assert dest == ("192.0.2.9", 40001)  # RFC 3581: back to the source address and port
    via = response.top_via
    assert via.param("received") == "192.0.2.9" and via.param("rport") == "40001"
    assert via.branch == "z9hG4bK-options"


SDP_BODY = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def _incoming_with(extra):
    ua = UserAgent(ME, counter_rng("st"))
    ua.receive_datagram(_request(b"INVITE", b"Content-Type: application/sdp\r\n" + extra, body=SDP_BODY), PEER, 0.0)
    return ua


def test_session_timer_uac_refreshes_when_it_supports_timer():
    ua = _incoming_with(b"Session-Expires: 1800\r\nSupported: timer\r\n")
    event = ua.next_event()
    ua.answer(event.call_id, SDP_BODY, 0.1)
    ok = [parse_message(d) for d, _ in ua.datagrams_to_send(0.1)][-1]
    assert ok.status == 200
    assert ok.headers.get("Session-Expires") == "1800;refresher=uac"
    assert ok.headers.get("Require") == "timer"


def test_session_timer_too_small_is_422():
    ua = _incoming_with(b"Session-Expires: 60\r\n")
    response = [parse_message(d) for d, _ in ua.datagrams_to_send(0.0)][-1]
    assert response.status == 422 and response.headers.get("Min-SE") == "90"
    assert ua.calls == {} and ua.next_event() is None


def test_session_timer_uas_refresher_sends_refresh_reinvites():
    from firmware.sip.message import make_response

    ua = _incoming_with(b"Session-Expires: 120\r\n")  # the caller does not support timer: we refresh
    call = ua.next_event().call_id
    ua.answer(call, SDP_BODY, 0.0)
    ok = [parse_message(d) for d, _ in ua.datagrams_to_send(0.0)][-1]
    assert ok.headers.get("Session-Expires") == "120;refresher=uas" and ok.headers.get("Require") is None
    ack = _request(b"ACK", to_tag=b";tag=" + ok.to_addr.tag.encode(), cseq_method=b"ACK")
    ua.receive_datagram(ack, PEER, 0.2)
    assert isinstance(ua.next_event(), events.CallConfirmed)
    assert ua.get_timer() == 32.0  # Timer L of the INVITE server transaction (RFC 6026)
    ua.handle_timer(32.0)
    assert ua.get_timer() == 60.0  # then the refresh, at half the session interval
    ua.handle_timer(60.0)
    ((data, dest),) = ua.datagrams_to_send(60.0)
    refresh = parse_message(data)
    assert refresh.method == "INVITE" and refresh.body == SDP_BODY and dest == ("127.0.0.1", 5099)
    assert refresh.headers.get("Session-Expires") == "120;refresher=uac"
    response = make_response(refresh, 200)
    response.headers.add("Contact", "<sip:peer@127.0.0.1:5099>")
    response.headers.add("Content-Type", "application/sdp")
    response.body = SDP_BODY
    ua.receive_datagram(response.to_bytes(), PEER, 60.1)
    assert [parse_message(d).method for d, _ in ua.datagrams_to_send(60.1)] == ["ACK"]
    assert ua.next_event() is None  # a refresh is not the application's business
    assert ua.calls[call].session_refresh_at == 120.0


def test_transport_error_fails_pending_requests_at_once():
    ua = UserAgent(
        ("127.0.0.1", 5061), counter_rng("te"), aor="sip:alice@example.com", outbound_proxy=("127.0.0.1", 5080)
    )
    ua.register(0.0)
    call = ua.invite("sip:bob@example.com", b"", 0.0)
    ua.datagrams_to_send(0.0)
    ua.transport_error(("127.0.0.1", 9), 0.1)  # somewhere else: nothing happens
    assert ua.next_event() is None
    ua.transport_error(("127.0.0.1", 5080), 0.1)
    got = [ua.next_event(), ua.next_event()]
    failed = [e for e in got if isinstance(e, events.RegistrationFailed)]
    assert [(e.status, e.reason) for e in failed] == [(503, "transport error")]
    assert 1.0 <= failed[0].retry_in <= 2.0
    assert events.CallFailed(call, 503, "transport error") in got
    assert ua.calls == {}
