"""RFC 3262 (reliable provisional responses, PRACK) and RFC 4028 §10 (the session expires without a
refresh), on the fake clock: the UserAgent against a scripted peer that sends raw SIP."""

from firmware.sip import events
from firmware.sip.message import parse_message
from firmware.sip.useragent import UserAgent
from tests.firmware.sip.netsim import counter_rng

MICROPYTHON = True

ME = ("127.0.0.1", 5062)
PEER = ("127.0.0.1", 5099)
SDP = b"v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def _message(first, call_id, cseq, method, to_tag=b"", extra=b"", body=b"", branch=b"z9hG4bK-1"):
    head = (
        first + b"\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=" + branch + b"\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:peer@127.0.0.1:5099>;tag=p1\r\n"
        b"To: <sip:bob@127.0.0.1:5062>" + to_tag + b"\r\n"
        b"Call-ID: " + call_id + b"\r\n"
        b"CSeq: " + str(cseq).encode() + b" " + method + b"\r\n"
        b"Contact: <sip:peer@127.0.0.1:5099>\r\n" + extra
    )
    if body:
        head += b"Content-Type: application/sdp\r\n"
    return head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


class Peer:
    """The UserAgent under test and what it sent, on a clock the test moves."""

    def __init__(self, **kwargs):
        self.ua = UserAgent(ME, counter_rng("x"), aor="sip:bob@127.0.0.1:5062", **kwargs)
        self.now = 0.0
        self.out = []  # (time, Message)
        self.events = []

    def send(self, data):
        self.ua.receive_datagram(data, PEER, self.now)
        self.collect()

    def cmd(self, name, *args):
        """A UserAgent command at the current time, and what it sent."""
        result = getattr(self.ua, name)(*(args + (self.now,)))
        self.collect()
        return result

    def collect(self):
        for data, _ in self.ua.datagrams_to_send(self.now):
            self.out.append((self.now, parse_message(data)))
        while True:
            event = self.ua.next_event()
            if event is None:
                return
            self.events.append(event)

    def advance(self, seconds):
        end = self.now + seconds
        while True:
            deadline = self.ua.get_timer()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            self.ua.handle_timer(self.now)
            self.collect()
        self.now = end

    def sent(self, status=None, method=None):
        found = []
        for when, message in self.out:
            if status is not None and getattr(message, "status", None) != status:
                continue
            if method is not None and message.cseq[1] != method:
                continue
            found.append((when, message))
        return found

    def of(self, cls):
        return [e for e in self.events if isinstance(e, cls)]


def _incoming(peer, extra=b"Require: 100rel\r\nSupported: 100rel\r\n"):
    peer.send(_message(b"INVITE sip:bob@127.0.0.1:5062 SIP/2.0", b"c1", 1, b"INVITE", extra=extra, body=SDP))
    return peer.of(events.IncomingCall)[0].call_id


def _prack(peer, rack, cseq=2, branch=b"z9hG4bK-prack"):
    tag = peer.sent(status=180)[0][1].to_addr.tag.encode()
    peer.send(
        _message(
            b"PRACK sip:bob@127.0.0.1:5062 SIP/2.0",
            b"c1",
            cseq,
            b"PRACK",
            to_tag=b";tag=" + tag,
            extra=b"RAck: " + rack + b"\r\n",
            branch=branch,
        )
    )
    return peer.sent(method="PRACK")[-1][1]


def test_uas_sends_180_reliably_and_retransmits_it_t1_doubling_until_64_t1():
    peer = Peer()
    call = _incoming(peer)
    peer.cmd("ringing", call)
    peer.advance(40)
    ringing = peer.sent(status=180)
    first = ringing[0][1]
    assert first.headers.get("Require") == "100rel"
    rseq = int(first.headers.get("RSeq"))
    assert 1 <= rseq < 2**31
    assert all(int(m.headers.get("RSeq")) == rseq for _, m in ringing)
    # RFC 3262 §3: T1, 2*T1, 4*T1 ... (not capped at T2) while 64*T1 = 32 s have not passed.
    assert [t for t, _ in ringing] == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    when, final = peer.sent(status=500)[0]  # (then retransmitted by the transaction, Timer G)
    assert when == 32.0 and final.cseq[1] == "INVITE"
    assert peer.of(events.CallEnded) == [events.CallEnded(call, "no PRACK", 500, False)]


def test_uas_prack_with_the_right_rack_stops_retransmissions_and_the_call_goes_on():
    peer = Peer()
    call = _incoming(peer)
    peer.cmd("ringing", call)
    rseq = peer.sent(status=180)[0][1].headers.get("RSeq").encode()
    peer.advance(0.2)
    assert _prack(peer, b"999 1 INVITE", cseq=2, branch=b"z9hG4bK-p0").status == 481  # §3: matches nothing
    assert _prack(peer, b"1 one INVITE", cseq=3, branch=b"z9hG4bK-p1").status == 400
    assert _prack(peer, rseq + b" 1 INVITE", cseq=4, branch=b"z9hG4bK-p2").status == 200
    peer.advance(10)
    assert len(peer.sent(status=180)) == 1  # nothing after the PRACK
    assert _prack(peer, rseq + b" 1 INVITE", cseq=5, branch=b"z9hG4bK-p3").status == 481  # already acknowledged
    peer.cmd("answer", call, SDP)
    ok = peer.sent(status=200, method="INVITE")[0][1]
    assert "100rel" in ok.headers.get("Supported")
    tag = ok.to_addr.tag.encode()
    peer.send(
        _message(b"ACK sip:bob@127.0.0.1:5062 SIP/2.0", b"c1", 1, b"ACK", to_tag=b";tag=" + tag, branch=b"z9hG4bK-a")
    )
    assert peer.of(events.CallConfirmed)
    peer.send(
        _message(b"BYE sip:bob@127.0.0.1:5062 SIP/2.0", b"c1", 6, b"BYE", to_tag=b";tag=" + tag, branch=b"z9hG4bK-b")
    )
    assert peer.sent(status=200, method="BYE")
    assert peer.of(events.CallEnded)[0].reason == "remote hangup"


def test_uas_answers_while_the_180_awaits_its_prack_and_a_late_prack_is_still_accepted():
    peer = Peer()
    call = _incoming(peer)
    peer.cmd("ringing", call)
    peer.cmd("ringing", call)  # §3: no second reliable 1xx before the first is acknowledged
    assert len(peer.sent(status=180)) == 1
    rseq = peer.sent(status=180)[0][1].headers.get("RSeq").encode()
    peer.cmd("answer", call, SDP)
    peer.advance(5)
    assert len(peer.sent(status=180)) == 1  # the final response ends the 1xx retransmissions
    assert _prack(peer, rseq + b" 1 INVITE").status == 200


def test_uas_without_require_100rel_sends_an_ordinary_180():
    peer = Peer()
    call = _incoming(peer, extra=b"Supported: 100rel\r\n")
    peer.cmd("ringing", call)
    peer.advance(5)
    ((_, ringing),) = peer.sent(status=180)
    assert ringing.headers.get("RSeq") is None and ringing.headers.get("Require") is None


def _outgoing(peer):
    call = peer.cmd("invite", "sip:peer@127.0.0.1:5099", SDP)
    invite = peer.sent(method="INVITE")[0][1]
    assert "100rel" in invite.headers.get("Supported")
    return call, invite


def _response(invite, status, reason, extra=b"", body=b"", tag=b"callee"):
    data = invite.to_bytes()
    headers = data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    keep = [h for h in headers if h.split(b":")[0].lower() in (b"via", b"from", b"call-id", b"cseq")]
    to = [h for h in headers if h.lower().startswith(b"to:")][0] + b";tag=" + tag
    head = b"SIP/2.0 " + str(status).encode() + b" " + reason + b"\r\n" + b"\r\n".join(keep + [to]) + b"\r\n"
    head += b"Contact: <sip:peer@127.0.0.1:5099>\r\n" + extra
    if body:
        head += b"Content-Type: application/sdp\r\n"
    return head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


def test_uac_pracks_a_reliable_183_once_drops_duplicates_and_uses_its_answer():
    peer = Peer()
    call, invite = _outgoing(peer)
    reliable = b"Require: 100rel\r\nRSeq: 7\r\n"
    peer.send(_response(invite, 183, b"Session Progress", reliable, SDP))
    peer.send(_response(invite, 183, b"Session Progress", reliable, SDP))  # a retransmission
    peer.send(_response(invite, 183, b"Session Progress", b"Require: 100rel\r\nRSeq: 9\r\n", SDP))  # out of order
    pracks = peer.sent(method="PRACK")
    assert len(pracks) == 1
    prack = pracks[0][1]
    assert prack.headers.get("RAck") == "7 1 INVITE"
    assert str(prack.uri) == "sip:peer@127.0.0.1:5099" and prack.to_addr.tag == "callee"
    assert prack.cseq[0] == 2
    assert [e.status for e in peer.of(events.CallRinging)] == [183]
    peer.send(_response(invite, 183, b"Session Progress", b"Require: 100rel\r\nRSeq: 8\r\n"))
    assert peer.sent(method="PRACK")[-1][1].headers.get("RAck") == "8 1 INVITE"
    peer.send(_response(invite, 200, b"OK"))  # RFC 3262 §5: the answer came in the 183
    assert peer.of(events.CallAnswered) == [events.CallAnswered(call, SDP)]
    peer.cmd("hangup", call)
    bye = peer.sent(method="BYE")[0][1]
    assert bye.cseq[0] == 4  # after INVITE 1 and PRACKs 2, 3


def test_uas_ends_the_session_when_the_refresher_does_not_refresh():
    peer = Peer()
    extra = b"Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n"
    call = _incoming(peer, extra=extra)
    peer.cmd("answer", call, SDP)
    ok = peer.sent(status=200, method="INVITE")[0][1]
    assert ok.headers.get("Session-Expires") == "90;refresher=uac"
    tag = b";tag=" + ok.to_addr.tag.encode()
    peer.send(_message(b"ACK sip:bob@127.0.0.1:5062 SIP/2.0", b"c1", 1, b"ACK", to_tag=tag, branch=b"z9hG4bK-a"))
    # A refresh at 40 s (a re-INVITE with the same SDP) moves the expiry to 40 + 90 - 30 = 100 s.
    peer.advance(40)
    refresh = _message(b"INVITE sip:bob@127.0.0.1:5062 SIP/2.0", b"c1", 2, b"INVITE", tag, extra, SDP, b"z9hG4bK-r")
    peer.send(refresh)
    assert len(peer.sent(status=200, method="INVITE")) == 2
    peer.send(_message(b"ACK sip:bob@127.0.0.1:5062 SIP/2.0", b"c1", 2, b"ACK", to_tag=tag, branch=b"z9hG4bK-a2"))
    peer.advance(59.9)
    assert not peer.sent(method="BYE") and not peer.of(events.CallEnded)
    peer.advance(0.2)
    ((when, bye),) = peer.sent(method="BYE")
    assert when == 100.0 and str(bye.uri) == "sip:peer@127.0.0.1:5099"
    assert peer.of(events.CallEnded) == [events.CallEnded(call, "session expired", 408, False)]


def test_uac_ends_the_session_when_the_uas_refresher_does_not_refresh():
    peer = Peer()
    call, invite = _outgoing(peer)
    peer.send(_response(invite, 200, b"OK", b"Session-Expires: 120;refresher=uas\r\n", SDP))
    assert peer.of(events.CallAnswered)
    peer.advance(87.9)
    assert not peer.sent(method="BYE")
    peer.advance(0.2)
    ((when, _),) = peer.sent(method="BYE")
    assert when == 88.0  # 120 - min(32, 120/3)
    assert peer.of(events.CallEnded) == [events.CallEnded(call, "session expired", 408, False)]


def test_the_refresher_side_refreshes_and_never_expires():
    peer = Peer()
    call, invite = _outgoing(peer)
    peer.send(_response(invite, 200, b"OK", b"Require: timer\r\nSession-Expires: 90;refresher=uac\r\n", SDP))
    peer.advance(70)
    refreshes = [(t, m.cseq[0]) for t, m in peer.sent(method="INVITE") if m.cseq[0] > 1]
    assert refreshes[0] == (45.0, 2) and {cseq for _, cseq in refreshes} == {2}  # §10: half the interval
    assert not peer.sent(method="BYE") and not peer.of(events.CallEnded)


def test_an_update_or_a_bare_reinvite_from_the_refresher_counts_as_a_refresh():
    peer = Peer()
    call = _incoming(peer, extra=b"Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n")
    peer.cmd("answer", call, SDP)
    tag = b";tag=" + peer.sent(status=200, method="INVITE")[0][1].to_addr.tag.encode()
    peer.send(_message(b"ACK sip:bob@127.0.0.1:5062 SIP/2.0", b"c1", 1, b"ACK", to_tag=tag, branch=b"z9hG4bK-a"))
    peer.advance(50)
    peer.send(_message(b"UPDATE sip:bob@127.0.0.1:5062 SIP/2.0", b"c1", 2, b"UPDATE", tag, branch=b"z9hG4bK-u"))
    assert peer.sent(status=200, method="UPDATE")
    peer.advance(50)  # 100 s: past the first expiry (60 s), before the one the UPDATE set (110 s)
    refresh = _message(b"INVITE sip:bob@127.0.0.1:5062 SIP/2.0", b"c1", 3, b"INVITE", tag, b"", SDP, b"z9hG4bK-r")
    peer.send(refresh)  # no Session-Expires: still a refresh (RFC 4028 §10)
    peer.send(_message(b"ACK sip:bob@127.0.0.1:5062 SIP/2.0", b"c1", 3, b"ACK", to_tag=tag, branch=b"z9hG4bK-a3"))
    peer.advance(59.9)
    assert not peer.sent(method="BYE")
    peer.advance(0.2)
    assert [t for t, _ in peer.sent(method="BYE")] == [160.0]
    assert peer.of(events.CallEnded)[0].reason == "session expired"


def test_uas_on_supported_100rel_alone_sends_a_plain_180_by_default():
    """RFC 3262 §3 leaves it to the UAS (MAY); the default is what desk phones ship with: only Require."""
    peer = Peer()
    call = _incoming(peer, extra=b"Supported: 100rel, timer\r\n")
    peer.cmd("ringing", call)
    peer.advance(2)
    ringing = peer.sent(status=180)
    assert len(ringing) == 1
    assert ringing[0][1].headers.get("RSeq") is None and ringing[0][1].headers.get("Require") is None


def test_uas_with_reliable_provisional_supported_sends_a_reliable_180_on_supported_100rel():
    peer = Peer(reliable_provisional="supported")
    call = _incoming(peer, extra=b"Supported: timer, 100rel\r\n")
    peer.cmd("ringing", call)
    peer.advance(1.0)
    ringing = peer.sent(status=180)
    assert [t for t, _ in ringing] == [0.0, 0.5]  # retransmitted until the PRACK (§3)
    first = ringing[0][1]
    assert first.headers.get("Require") == "100rel"
    rseq = first.headers.get("RSeq").encode()
    assert _prack(peer, rseq + b" 1 INVITE").status == 200
    peer.advance(10)
    assert len(peer.sent(status=180)) == 2


def test_uas_with_reliable_provisional_supported_sends_a_plain_180_to_a_caller_without_100rel():
    peer = Peer(reliable_provisional="supported")
    call = _incoming(peer, extra=b"Supported: timer\r\n")
    peer.cmd("ringing", call)
    peer.advance(2)
    assert [m.headers.get("RSeq") for _, m in peer.sent(status=180)] == [None]


def test_an_unknown_reliable_provisional_policy_is_refused():
    from firmware.errors import LocalProtocolError

    try:
        Peer(reliable_provisional="always")
    except LocalProtocolError as exc:
        assert "required, supported" in str(exc)
    else:
        raise AssertionError("an unknown policy was taken")


OUR_OFFER = b"v=0\r\no=bob 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4100 RTP/AVP 0\r\n"


def _late_offer(peer, extra=b"Supported: 100rel\r\n"):
    """An INVITE without a body (the offer is ours to make, RFC 3261 §13.2.1)."""
    peer.send(_message(b"INVITE sip:bob@127.0.0.1:5062 SIP/2.0", b"c1", 1, b"INVITE", extra=extra))
    return peer.of(events.IncomingCall)[0].call_id


def _ring_with_offer(peer, call):
    peer.ua.ringing(call, peer.now, sdp=OUR_OFFER)
    peer.collect()


def _prack_with(peer, rack, body):
    tag = peer.sent(status=183)[0][1].to_addr.tag.encode()
    peer.send(
        _message(
            b"PRACK sip:bob@127.0.0.1:5062 SIP/2.0",
            b"c1",
            2,
            b"PRACK",
            to_tag=b";tag=" + tag,
            extra=b"RAck: " + rack + b"\r\n",
            body=body,
            branch=b"z9hG4bK-prack",
        )
    )
    return peer.sent(method="PRACK")[-1][1]


def test_a_late_offer_invite_gets_our_offer_in_a_reliable_183_and_the_answer_in_the_prack():
    """RFC 3262 §5: the offer in a reliable provisional response, the answer in its PRACK; §3: no 2xx before
    that PRACK; the 2xx then carries the same session description."""
    from firmware.errors import LocalProtocolError

    peer = Peer()
    call = _late_offer(peer)
    assert peer.of(events.IncomingCall)[0].sdp == b""
    _ring_with_offer(peer, call)
    early = peer.sent(status=183)[0][1]
    assert early.headers.get("Require") == "100rel" and early.body == OUR_OFFER
    assert early.headers.get("Content-Type") == "application/sdp"
    try:
        peer.cmd("answer", call, OUR_OFFER)
    except LocalProtocolError:
        pass
    else:
        raise AssertionError("a 2xx went out before the PRACK of the 183 with our offer")
    peer.advance(0.6)
    assert len(peer.sent(status=183)) == 2  # retransmitted until the PRACK
    rseq = early.headers.get("RSeq").encode()
    assert _prack_with(peer, rseq + b" 1 INVITE", SDP).status == 200
    assert peer.of(events.PrackAnswer) == [events.PrackAnswer(call, SDP)]
    peer.cmd("answer", call, OUR_OFFER)
    ok = peer.sent(status=200, method="INVITE")[0][1]
    assert ok.body == OUR_OFFER
    peer.advance(5)
    assert len(peer.sent(status=183)) == 2


def test_a_prack_without_the_answer_is_reported_empty():
    peer = Peer()
    call = _late_offer(peer)
    _ring_with_offer(peer, call)
    rseq = peer.sent(status=183)[0][1].headers.get("RSeq").encode()
    assert _prack_with(peer, rseq + b" 1 INVITE", b"").status == 200
    assert peer.of(events.PrackAnswer) == [events.PrackAnswer(call, b"")]  # the application refuses (488)


def test_no_offer_in_a_provisional_response_to_a_caller_without_100rel_or_with_its_own_offer():
    from firmware.errors import LocalProtocolError

    for make in (lambda p: _late_offer(p, extra=b"Supported: timer\r\n"), lambda p: _incoming(p)):
        peer = Peer()
        call = make(peer)
        try:
            _ring_with_offer(peer, call)
        except LocalProtocolError:
            pass
        else:
            raise AssertionError("an offer went in a provisional response it may not be in")
        assert peer.sent(status=183) == []
