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
    _, out = _answer(_request(b"INVITE", b"Require: 100rel\r\n"))
    assert out[0][0].status == 420 and out[0][0].headers.get("Unsupported") == "100rel"
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
