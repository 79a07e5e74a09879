"""Pair tests: two UserAgents, a fake clock and a lossy fake network; timers checked against RFC 3261."""

from firmware.sdp import build_offer, parse_sdp, remote_media
from firmware.sip import events
from firmware.sip.useragent import UserAgent
from tests.firmware.sip.netsim import Network, XorShift, counter_rng

MICROPYTHON = True

A = ("127.0.0.1", 5061)
B = ("127.0.0.1", 5062)
BLACK_HOLE = ("127.0.0.1", 5999)


def _sdp(port, direction="sendrecv", version=1):
    return build_offer(["PCMU", "PCMA"], "127.0.0.1", port, direction=direction, session_version=version).to_bytes()


def _pair(latency=0.01):
    net = Network(latency)
    alice = UserAgent(A, counter_rng("a"), aor="sip:alice@127.0.0.1:5061", display_name="Alice")
    bob = UserAgent(B, counter_rng("b"), aor="sip:bob@127.0.0.1:5062")
    net.add(A, alice)
    net.add(B, bob)
    return net, alice, bob


def _established(net, alice, bob, answer=True):
    call = alice.invite("sip:bob@127.0.0.1:5062", _sdp(4000), net.now)
    assert net.run_until(lambda: net.find(B, events.IncomingCall), 1)
    incoming = net.find(B, events.IncomingCall)[-1]
    assert incoming.call_id == call
    if answer:
        bob.ringing(call, net.now)
        bob.answer(call, _sdp(6000), net.now)
        assert net.run_until(lambda: net.find(B, events.CallConfirmed), 2)
    return call


def _times(entries):
    return [round(e["time"], 3) for e in entries]


def _gaps(entries):
    t = _times(entries)
    return [round(t[i + 1] - t[i], 3) for i in range(len(t) - 1)]


def test_basic_call_and_bye():
    net, alice, bob = _pair()
    call = _established(net, alice, bob)
    incoming = net.find(B, events.IncomingCall)[0]
    assert incoming.from_uri == "sip:alice@127.0.0.1:5061" and incoming.from_display == "Alice"
    assert remote_media(parse_sdp(incoming.sdp)).port == 4000
    assert net.event_types(A) == ["CallRinging", "CallAnswered"]
    assert remote_media(parse_sdp(net.find(A, events.CallAnswered)[0].sdp)).port == 6000
    alice.hangup(call, net.now)
    net.run(1)
    assert net.find(B, events.CallEnded) == [events.CallEnded(call, "remote hangup", 200, True)]
    assert net.find(A, events.CallEnded) == [events.CallEnded(call, "local hangup", 200, False)]
    assert alice.calls == {} and bob.calls == {}
    # Privacy: User-Agent is just "Sotto"; the Call-ID carries no host name.
    invite = net.sent(src=A, line_prefix="INVITE")[0]["data"]
    assert b"User-Agent: Sotto\r\n" in invite
    assert b"@" not in [line for line in invite.split(b"\r\n") if line.startswith(b"Call-ID")][0]


def test_callee_hangs_up():
    net, alice, bob = _pair()
    call = _established(net, alice, bob)
    bob.hangup(call, net.now)
    net.run(1)
    assert net.find(A, events.CallEnded)[0].by_remote is True
    assert net.find(B, events.CallEnded)[0].reason == "local hangup"


def test_timer_a_doubles_and_timer_b_fires_at_64_t1():
    net, alice, _ = _pair()
    call = alice.invite("sip:nobody@127.0.0.1:5999", _sdp(4000), net.now)
    net.run(40)
    sends = net.sent(src=A, line_prefix="INVITE")
    # §17.1.1.2: Timer A = T1, doubling, no cap; Timer B = 64*T1 = 32 s.
    assert _times(sends) == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    failed = net.find(A, events.CallFailed)
    assert failed == [events.CallFailed(call, 408, "timeout")]
    assert alice.calls == {}
    assert alice.get_timer() is None


def test_timer_e_caps_at_t2_and_timer_f_gives_up():
    net, alice, _ = _pair()
    alice.outbound_proxy = BLACK_HOLE
    alice.register(net.now)
    net.run(32.5)
    sends = net.sent(src=A, line_prefix="REGISTER")
    # §17.1.2.2: Timer E = T1 doubling up to T2 = 4 s; Timer F = 64*T1.
    assert _times(sends) == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    ((failed,),) = [net.find(A, events.RegistrationFailed)]
    assert (failed.status, failed.reason) == (408, "timeout")
    assert 1.0 <= failed.retry_in <= 2.0  # RFC 5626 §4.5 back-off: seconds, not 30 s (issue 11)
    # ... and re-registers after the backoff (registrar restart / network back).
    net.run(30)
    retried = _times(net.sent(src=A, line_prefix="REGISTER"))[len(sends)]
    assert 32.0 + 1.0 <= retried <= 32.0 + 2.0 + 0.1, retried


def test_timer_g_retransmits_non2xx_until_timer_h_when_acks_are_lost():
    net, alice, bob = _pair()
    net.drop = lambda e: e["line"].startswith("ACK")
    call = _established(net, alice, bob, answer=False)
    bob.reject(call, 486, net.now)
    net.run(40)
    finals = net.sent(src=B, line_prefix="SIP/2.0 486")
    # §17.2.1: Timer G = T1 doubling up to T2; Timer H = 64*T1 stops it.
    assert _gaps(finals)[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert round(finals[-1]["time"] - finals[0]["time"], 3) <= 32.0
    assert len(finals) == 11
    acks = net.sent(src=A, line_prefix="ACK")
    assert len(acks) == len(finals)  # the client ACKs every retransmitted final (§17.1.1.2)
    assert net.find(A, events.CallFailed)[0].status == 486
    assert net.find(B, events.CallEnded)[0].reason == "rejected"
    assert bob.get_timer() is None or bob.get_timer() > net.now


def test_uas_core_retransmits_2xx_until_ack_then_gives_up_with_bye():
    net, alice, bob = _pair()
    net.drop = lambda e: e["line"].startswith("ACK")
    call = _established(net, alice, bob, answer=False)
    bob.answer(call, _sdp(6000), net.now)
    net.run(40)
    oks = net.sent(src=B, line_prefix="SIP/2.0 200", method="INVITE")
    # §13.3.1.4: T1 doubling up to T2, for 64*T1, then BYE.
    assert _gaps(oks)[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert oks[-1]["time"] - oks[0]["time"] < 32.0
    assert len(net.sent(src=A, line_prefix="ACK")) == len(oks)  # every 2xx re-ACKed
    assert net.find(B, events.CallEnded)[0].reason == "no ACK"
    assert net.sent(src=B, line_prefix="BYE")
    assert net.find(A, events.CallEnded)[0].by_remote is True


def test_lost_first_200_is_retransmitted_and_the_call_completes():
    net, alice, bob = _pair()
    dropped = []

    def drop_first_200(entry):
        if entry["line"].startswith("SIP/2.0 200") and entry["method"] == "INVITE" and not dropped:
            dropped.append(entry)
            return True
        return False

    net.drop = drop_first_200
    call = _established(net, alice, bob)
    assert dropped
    oks = net.sent(src=B, line_prefix="SIP/2.0 200", method="INVITE")
    assert len(oks) == 2 and round(oks[1]["time"] - oks[0]["time"], 3) == 0.5
    assert net.find(A, events.CallAnswered)[0].call_id == call


def test_lossy_network_still_sets_up_and_tears_down_calls():
    for seed in range(1, 9):
        net, alice, bob = _pair(latency=0.03)
        rand = XorShift(seed)
        net.drop = lambda e, rand=rand: rand.next_float() < 0.3
        call = alice.invite("sip:bob@127.0.0.1:5062", _sdp(4000), net.now)
        if not net.run_until(lambda net=net: net.find(B, events.IncomingCall), 40):
            assert net.find(A, events.CallFailed)[0].status == 408
            continue
        bob.answer(call, _sdp(6000), net.now)
        net.run_until(lambda net=net: net.find(A, events.CallAnswered) and net.find(B, events.CallConfirmed), 40)
        answered = net.find(A, events.CallAnswered)
        if not answered:
            continue
        alice.hangup(call, net.now)
        net.run(70)
        assert net.find(A, events.CallEnded), seed
        assert net.find(B, events.CallEnded), seed
        assert alice.calls == {} and bob.calls == {}, seed


def test_cancel_after_ringing():
    net, alice, bob = _pair()
    call = _established(net, alice, bob, answer=False)
    bob.ringing(call, net.now)
    net.run_until(lambda: net.find(A, events.CallRinging), 1)
    alice.hangup(call, net.now)
    net.run(1)
    assert net.find(B, events.CallEnded) == [events.CallEnded(call, "cancelled", 487, True)]
    assert net.find(A, events.CallEnded) == [events.CallEnded(call, "cancelled", 487, False)]
    assert [e["line"] for e in net.sent(src=A)][-2:] == [
        "CANCEL sip:bob@127.0.0.1:5062 SIP/2.0",
        "ACK sip:bob@127.0.0.1:5062 SIP/2.0",
    ]


def test_cancel_waits_for_a_provisional_response():
    net, alice, bob = _pair()
    net.drop = lambda e: e["src"] == B and e["time"] < 0.2
    call = alice.invite("sip:bob@127.0.0.1:5062", _sdp(4000), net.now)
    alice.hangup(call, net.now)
    net.run(0.3)
    assert not net.sent(src=A, line_prefix="CANCEL")  # §9.1: not before a provisional response
    net.run(5)
    assert net.sent(src=A, line_prefix="CANCEL")
    assert net.find(A, events.CallEnded)[0].reason == "cancelled"
    assert net.find(B, events.CallEnded)[0].reason == "cancelled"


def test_reject_busy_and_decline():
    for status in (486, 603, 488):
        net, alice, bob = _pair()
        call = _established(net, alice, bob, answer=False)
        bob.reject(call, status, net.now)
        net.run(1)
        assert net.find(A, events.CallFailed)[0].status == status
        assert alice.calls == {}


def test_hold_and_resume_by_reinvite():
    net, alice, bob = _pair()
    call = _established(net, alice, bob)
    alice.reinvite(call, _sdp(4000, "sendonly", 2), net.now)
    assert net.run_until(lambda: net.find(B, events.ReinviteReceived), 1)
    offer = net.find(B, events.ReinviteReceived)[0].sdp
    assert remote_media(parse_sdp(offer)).direction == "sendonly"
    bob.answer_reinvite(call, _sdp(6002, "recvonly", 2), net.now)
    assert net.run_until(lambda: net.find(A, events.ReinviteAnswered), 1)
    assert remote_media(parse_sdp(net.find(A, events.ReinviteAnswered)[0].sdp)).port == 6002
    net.run(1)
    assert len(net.sent(src=B, line_prefix="SIP/2.0 200", method="INVITE")) == 2  # ACKed: no retransmission
    # Resume from the other side.
    bob.reinvite(call, _sdp(6002, "sendrecv", 3), net.now)
    assert net.run_until(lambda: net.find(A, events.ReinviteReceived), 1)
    alice.answer_reinvite(call, _sdp(4000, "sendrecv", 3), net.now)
    assert net.run_until(lambda: net.find(B, events.ReinviteAnswered), 1)


def test_session_refresh_reinvite_is_answered_without_bothering_the_application():
    net, alice, bob = _pair()
    call = _established(net, alice, bob)
    alice.reinvite(call, _sdp(4000), net.now)  # same o= version: a refresh (RFC 4028)
    net.run(1)
    assert not net.find(B, events.ReinviteReceived)
    assert net.find(A, events.ReinviteAnswered)[0].call_id == call


def test_reinvite_glare_gets_491():
    net, alice, bob = _pair()
    call = _established(net, alice, bob)
    alice.reinvite(call, _sdp(4000, "sendonly", 2), net.now)
    bob.reinvite(call, _sdp(6000, "sendonly", 2), net.now)
    net.run(1)
    assert net.find(A, events.ReinviteFailed) == [events.ReinviteFailed(call, 491)]
    assert net.find(B, events.ReinviteFailed) == [events.ReinviteFailed(call, 491)]


def test_refer_blind_transfer_both_ways():
    net, alice, bob = _pair()
    call = _established(net, alice, bob)
    alice.refer(call, "sip:carol@127.0.0.1:5070", net.now)
    net.run(1)
    refer = net.find(B, events.ReferReceived)
    assert len(refer) == 1 and refer[0].target == "sip:carol@127.0.0.1:5070"
    bob.notify_refer(call, 200, net.now)
    net.run(1)
    progress = [(p.status, p.final) for p in net.find(A, events.ReferProgress)]
    assert progress == [(202, False), (100, False), (200, True)]


def test_info_dtmf_both_formats():
    net, alice, bob = _pair()
    call = _established(net, alice, bob)
    alice.send_info_dtmf(call, "5", net.now, 250)
    alice.send_info_dtmf(call, "#", net.now)
    net.run(1)
    assert net.find(B, events.DtmfReceived) == [
        events.DtmfReceived(call, "5", 250),
        events.DtmfReceived(call, "#", 160),
    ]


def test_busy_when_max_calls_reached():
    net, alice, bob = _pair()
    bob.max_calls = 1
    _established(net, alice, bob)
    second = alice.invite("sip:bob@127.0.0.1:5062", _sdp(4002), net.now)
    net.run(1)
    assert net.find(A, events.CallFailed) == [events.CallFailed(second, 486, "Busy Here")]


def test_callee_hangs_up_before_the_ack_arrives():
    net, alice, bob = _pair(latency=0.05)
    call = _established(net, alice, bob, answer=False)
    bob.answer(call, _sdp(6000), net.now)
    bob.hangup(call, net.now)  # §15: the BYE waits for the ACK
    assert not [e for e in net.sent(src=B) if e["line"].startswith("BYE")]
    net.run(2)
    byes = net.sent(src=B, line_prefix="BYE")
    acks = net.sent(src=A, line_prefix="ACK")
    assert len(byes) == 1 and byes[0]["time"] >= acks[0]["time"]
    assert net.find(A, events.CallEnded)[0].by_remote is True
    assert net.find(B, events.CallEnded)[0].reason == "local hangup"


def test_cancel_crossing_the_200_ends_with_ack_and_bye():
    net, alice, bob = _pair(latency=0.05)
    call = _established(net, alice, bob, answer=False)
    bob.ringing(call, net.now)
    net.run_until(lambda: net.find(A, events.CallRinging), 1)
    bob.answer(call, _sdp(6000), net.now)
    alice.hangup(call, net.now)  # the CANCEL and the 200 cross on the wire
    net.run(3)
    assert net.sent(src=A, line_prefix="CANCEL")
    assert net.sent(src=A, line_prefix="ACK") and net.sent(src=A, line_prefix="BYE")
    assert not net.find(A, events.CallAnswered)
    assert net.find(A, events.CallEnded) and net.find(B, events.CallEnded)[0].by_remote
    assert alice.calls == {} and bob.calls == {}


def test_unanswered_incoming_call_times_out_with_480():
    net, alice, bob = _pair()
    bob.ring_timeout = 60.0
    call = _established(net, alice, bob, answer=False)
    bob.ringing(call, net.now)
    net.run(59)
    assert call in bob.calls
    net.run(2)
    assert net.find(B, events.CallEnded) == [events.CallEnded(call, "no answer", 480, False)]
    assert net.find(A, events.CallFailed) == [events.CallFailed(call, 480, "Temporarily Unavailable")]
