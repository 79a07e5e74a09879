"""Message waiting (RFC 3842 over RFC 6665): the message-summary body parser and the subscriber on a UserAgent,
fed bytes and the time (plain tests: also run under MicroPython)."""

from firmware.errors import RemoteProtocolError
from firmware.sip.message import parse_message
from firmware.sip.subscription import MessageSummarySubscription, MessageWaiting, parse_message_summary
from firmware.sip.useragent import UserAgent
from tests.firmware.sip.netsim import counter_rng
from tests.portable import raises

MICROPYTHON = True

ME = ("127.0.0.1", 5062)
VM = ("127.0.0.1", 5099)
BODY = b"Messages-Waiting: yes\r\nMessage-Account: sip:*97@vm.example\r\nVoice-Message: 2/8 (0/2)\r\n"


def test_the_rfc_3842_example_body():
    summary = parse_message_summary(BODY)
    assert summary == MessageWaiting(True, 2, 8, 0, 2, "sip:*97@vm.example", True)
    summary = parse_message_summary(b"messages-waiting:no\nFax-Message: 1/0\n\nX-Opt: whatever\n")
    assert not summary.waiting and summary.new is None and summary.account is None
    assert parse_message_summary(b"Messages-Waiting: yes\r\nVoice-Message: 3/0\r\n").new == 3


def test_malformed_bodies_are_a_400():
    for body in (
        b"",
        b"Voice-Message: 2/8\r\nMessages-Waiting: yes\r\n",  # not first
        b"Messages-Waiting: maybe\r\n",
        b"Messages-Waiting: yes\r\nVoice-Message: 2\r\n",
        b"Messages-Waiting: yes\r\nVoice-Message: \xd9\xa3/8\r\n".replace(b"\xd9\xa3", "\u0663".encode()),
        b"Messages-Waiting: yes\r\nVoice-Message: 99999999999/1\r\n",
        b"Messages-Waiting: yes\r\nVoice-Message: 1/2 (3/4\r\n",
        b"Messages-Waiting: yes\r\nno colon here\r\n",
        b"\xff\xfe",
        b"Messages-Waiting: yes\r\n" + b"Voice-Message: 1/1\r\n" * 400,
    ):
        exc = raises(RemoteProtocolError, parse_message_summary, body)
        assert exc.status == 400, body


def _ua():
    return UserAgent(ME, counter_rng("mwi"), aor="sip:alice@127.0.0.1:5099", source_rate=None)


def _sent(ua, now=0.0):
    return [parse_message(data) for data, _ in ua.datagrams_to_send(now)]


def _ok(request, tag=b"vm1", expires=b"600"):
    head = "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag={}\r\nCall-ID: {}\r\nCSeq: {}\r\n".format(
        request.headers.get("Via"),
        request.headers.get("From"),
        request.headers.get("To"),
        tag.decode(),
        request.call_id,
        request.headers.get("CSeq"),
    ).encode()
    return head + b"Contact: <sip:vm@127.0.0.1:5099>\r\nExpires: " + expires + b"\r\nContent-Length: 0\r\n\r\n"


def _notify(subscribe, cseq, body, event=b"message-summary", ctype=b"application/simple-message-summary", tag=b"vm1"):
    head = "NOTIFY sip:alice@127.0.0.1:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-n{}\r\n".format(
        cseq
    ).encode()
    head += b"From: <sip:vm@127.0.0.1:5099>;tag=" + tag + b"\r\n"
    head += (
        "To: {}\r\nCall-ID: {}\r\nCSeq: {} NOTIFY\r\n".format(subscribe.headers.get("From"), subscribe.call_id, cseq)
    ).encode()
    head += b"Contact: <sip:vm@127.0.0.1:5099>\r\nEvent: " + event + b"\r\nSubscription-State: active;expires=600\r\n"
    if body:
        head += b"Content-Type: " + ctype + b"\r\n"
    return head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


def _events(ua):
    out = []
    while True:
        event = ua.next_event()
        if event is None:
            return out
        out.append(event)


def test_subscribe_notify_refresh_and_bad_notifies():
    ua = _ua()
    mwi = MessageSummarySubscription(ua, "sip:alice@127.0.0.1:5099")
    mwi.subscribe(0.0)
    (subscribe,) = _sent(ua)
    assert subscribe.method == "SUBSCRIBE"
    assert subscribe.headers.get("Event") == "message-summary"
    assert subscribe.headers.get("Accept") == "application/simple-message-summary"
    assert subscribe.headers.get("Expires") == "3600"
    ua.receive_datagram(_ok(subscribe), VM, 0.1)
    assert mwi.state == "active" and mwi.refresh_at == 0.1 + 600 * 0.8
    ua.receive_datagram(_notify(subscribe, 1, BODY), VM, 0.2)
    (response,) = _sent(ua)
    assert response.status == 200
    assert _events(ua) == [MessageWaiting(True, 2, 8, 0, 2, "sip:*97@vm.example", True)]
    for cseq, notify, status in (
        (2, _notify(subscribe, 2, b"Messages-Waiting: perhaps\r\n"), 400),
        (3, _notify(subscribe, 3, b"", event=b"presence"), 489),
        (4, _notify(subscribe, 4, b"<xml/>", ctype=b"application/xml"), 415),
    ):
        ua.receive_datagram(notify, VM, 0.3)
        (response,) = _sent(ua)
        assert response.status == status, (cseq, response.status)
    assert _events(ua) == []
    assert mwi.notifies == 1 and mwi.notifies_refused == 3
    # the refresh goes inside the dialog: the notifier's tag in To, to its Contact
    assert ua.get_timer() <= mwi.refresh_at
    ua.handle_timer(mwi.refresh_at)
    (refresh,) = [m for m in _sent(ua, mwi.refresh_at) if m.method == "SUBSCRIBE"]
    assert refresh.to_addr.tag == "vm1" and refresh.call_id == subscribe.call_id
    assert refresh.cseq[0] > subscribe.cseq[0]
    assert str(refresh.uri) == "sip:vm@127.0.0.1:5099"


def test_a_refused_subscription_is_retried_later_but_not_after_489():
    ua = _ua()
    mwi = MessageSummarySubscription(ua, "sip:alice@127.0.0.1:5099")
    mwi.subscribe(0.0)
    (subscribe,) = _sent(ua)
    ua.receive_datagram(_ok(subscribe).replace(b"200 OK", b"503 Service Unavailable"), VM, 0.1)
    (failed,) = _events(ua)
    assert failed.status == 503 and failed.retry_in == 30.0
    ua.handle_timer(30.1)
    (again,) = [m for m in _sent(ua, 30.1) if m.method == "SUBSCRIBE"]
    ua.receive_datagram(_ok(again).replace(b"200 OK", b"489 Bad Event"), VM, 30.2)
    (failed,) = _events(ua)
    assert failed.status == 489 and failed.retry_in is None
    assert mwi.state == "terminated" and mwi.deadlines() == []


def test_unsolicited_notify_only_when_allowed():
    ua = _ua()
    plain = _notify(parse_message(_fake_subscribe()), 1, BODY).replace(b";tag=ours", b"")
    ua.receive_datagram(plain, VM, 0.0)
    assert [m.status for m in _sent(ua)] == [481]
    ua = _ua()
    MessageSummarySubscription(ua, "sip:alice@127.0.0.1:5099", accept_unsolicited=True)
    ua.receive_datagram(plain, VM, 0.0)
    assert [m.status for m in _sent(ua)] == [200]
    assert _events(ua) == [MessageWaiting(True, 2, 8, 0, 2, "sip:*97@vm.example", False)]
    ua.receive_datagram(plain.replace(b"Messages-Waiting: yes", b"Messages-Waiting: si").replace(b"n1", b"n9"), VM, 1.0)
    assert [m.status for m in _sent(ua)] == [400]


def _fake_subscribe():
    return (
        b"SUBSCRIBE sip:vm@127.0.0.1:5099 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-s\r\n"
        b"From: <sip:alice@127.0.0.1:5099>;tag=ours\r\nTo: <sip:vm@127.0.0.1:5099>\r\nCall-ID: unsolicited-1\r\n"
        b"CSeq: 1 SUBSCRIBE\r\nContent-Length: 0\r\n\r\n"
    )
