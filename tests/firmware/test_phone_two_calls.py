"""Two calls on the phone (issue 15): call waiting, hold, swap, the local conference and per-leg trust,
driven with a fake clock (plain tests: also run under MicroPython)."""

from firmware import phone as P
from tests.portable import raises

MICROPYTHON = True

ALICE_ZID = "00112233445566778899aabb"
BOB_ZID = "ffeeddccbbaa998877665544"


def drain(phone):
    out = []
    while True:
        command = phone.next_command()
        if command is None:
            return out
        out.append(repr(command))


def first_call_secure(phone, verified=False):
    """Alice calls (key "c1"), we answer, ZRTP reaches SecureState."""
    phone.handle(P.CallIncoming("sip:alice@10.0.0.2", "Alice", call="c1"), 0.0)
    phone.handle(P.KeyPressed("5"), 0.5)
    phone.handle(P.CallAnswered(call="c1"), 0.6)
    phone.handle(P.CallSecure("ab3d", "B32", verified=verified, peer_zid=ALICE_ZID, call="c1"), 1.0)
    drain(phone)


def bob_waits(phone, now=10.0):
    phone.handle(P.CallIncoming("sip:bob@10.0.0.3", "Bob", call="c2"), now)


def two_calls(verified=False):
    """Alice's call secure and held, Bob's (key "c2") answered from call waiting and in front, not secure yet."""
    phone = P.Phone()
    first_call_secure(phone, verified=verified)
    bob_waits(phone)
    phone.handle(P.KeyPressed("hold"), 11.0)
    phone.handle(P.CallAnswered(call="c2"), 11.2)
    return phone


def test_a_second_call_is_waiting_with_a_soft_tone_and_its_caller_shown():
    phone = P.Phone()
    first_call_secure(phone, verified=True)
    bob_waits(phone)
    assert phone.state == "call-waiting"
    assert drain(phone) == ["PlayTone('call-waiting')"]  # mixed into the earpiece, not the ringer
    screen = phone.screen(10.0)
    assert screen.title == "Call waiting"
    assert screen.lines[0] == "Bob"
    assert screen.lines[2] == "verified: Alice"
    assert phone.view(10.0).other == P.Leg("Bob", "ringing", "waiting")
    # the call in front still gets its events and keys: DTMF goes to Alice
    phone.handle(P.KeyPressed("7"), 10.5)
    assert drain(phone) == ["SendDtmf('7')"]
    assert phone.state == "call-waiting"


def test_the_hold_key_answers_the_waiting_call_and_holds_the_first():
    phone = P.Phone()
    first_call_secure(phone)
    bob_waits(phone)
    drain(phone)
    phone.handle(P.KeyPressed("hold"), 11.0)
    assert drain(phone) == ["Hold('c1')", "Answer()", "StopTone()"]
    assert phone.state == "in-call"
    assert phone.remote == "sip:bob@10.0.0.3"
    assert phone.other["role"] == "held" and phone.other["state"] == "secure"
    assert "held: Alice" in phone.screen(12.0).lines
    # Bob's call goes secure on its own ZRTP session
    phone.handle(P.CallSecure("zz99", "B32", peer_zid=BOB_ZID, call="c2"), 12.0)
    assert phone.state == "secure" and phone.sas == "zz99"
    assert phone.other["sas"] == "ab3d"


def test_back_refuses_the_waiting_call_with_486_and_keeps_it_as_missed():
    phone = P.Phone()
    first_call_secure(phone)
    bob_waits(phone)
    drain(phone)
    phone.handle(P.KeyPressed("back"), 11.0)
    assert drain(phone) == ["Busy('c2')", "SaveHistory(1 entries)", "StopTone()"]
    assert phone.state == "secure"
    assert phone.other is None
    assert phone.history[0]["dir"] == "missed" and phone.history[0]["remote"] == "sip:bob@10.0.0.3"


def test_the_waiting_caller_gives_up():
    phone = P.Phone()
    first_call_secure(phone)
    bob_waits(phone)
    drain(phone)
    phone.handle(P.CallEnded("cancelled", 487, call="c2"), 15.0)
    assert phone.state == "secure"
    assert drain(phone) == ["StopTone()", "SaveHistory(1 entries)"]
    assert phone.history[0]["dir"] == "missed"
    assert phone.screen(15.0).big == "ab3d"


def test_hanging_up_the_first_call_lets_the_waiting_one_ring():
    phone = P.Phone()
    first_call_secure(phone)
    bob_waits(phone)
    drain(phone)
    phone.handle(P.KeyPressed("hangup"), 11.0)
    assert phone.state == "ringing"
    assert phone.remote == "sip:bob@10.0.0.3"
    assert drain(phone) == ["Hangup()", "StopTone()", "SaveHistory(1 entries)", "PlayTone('ring')"]
    phone.handle(P.KeyPressed("1"), 12.0)
    assert drain(phone) == ["Answer()", "StopTone()"]
    assert phone.state == "in-call"


def test_the_first_call_ending_from_afar_while_one_waits():
    phone = P.Phone()
    first_call_secure(phone)
    bob_waits(phone)
    drain(phone)
    phone.handle(P.CallEnded("remote hung up", call="c1"), 12.0)
    assert phone.state == "ringing" and phone.remote == "sip:bob@10.0.0.3"
    assert phone.history[0]["remote"] == "sip:alice@10.0.0.2"


def test_the_hold_key_swaps_between_two_calls():
    phone = two_calls()
    drain(phone)
    phone.handle(P.KeyPressed("hold"), 20.0)
    assert drain(phone) == ["Hold('c2')", "Resume('c1')", "Focus('c1')"]
    assert phone.remote == "sip:alice@10.0.0.2" and phone.state == "secure"
    assert phone.other["remote"] == "sip:bob@10.0.0.3" and phone.other["state"] == "in-call"
    phone.handle(P.KeyPressed("hold"), 21.0)
    assert drain(phone) == ["Hold('c1')", "Resume('c2')", "Focus('c2')"]
    assert phone.remote == "sip:bob@10.0.0.3" and phone.state == "in-call"


def test_hanging_up_one_call_shows_the_other_held_until_a_key_resumes_it():
    phone = two_calls()
    drain(phone)
    phone.handle(P.KeyPressed("hangup"), 30.0)
    assert drain(phone) == ["Hangup()", "SaveHistory(1 entries)", "Focus('c1')"]
    assert phone.state == "held"
    assert phone.remote == "sip:alice@10.0.0.2"
    assert phone.screen(30.0).title == "On hold"
    phone.handle(P.KeyPressed("hold"), 31.0)
    assert drain(phone) == ["Resume('c1')"]
    assert phone.state == "secure"


def test_the_held_call_ending_from_afar():
    phone = two_calls()
    drain(phone)
    phone.handle(P.CallEnded("remote hung up", call="c1"), 30.0)
    assert phone.state == "in-call" and phone.other is None
    assert drain(phone) == ["SaveHistory(1 entries)"]
    assert phone.view(30.0).notice == "held call ended"


def test_hold_and_resume_one_call():
    phone = P.Phone()
    first_call_secure(phone, verified=True)
    phone.handle(P.KeyPressed("hold"), 5.0)
    assert phone.state == "held"
    assert drain(phone) == ["Hold('c1')"]
    phone.handle(P.CallSecure("ab3d", "B32", verified=True, peer_zid=ALICE_ZID, call="c1"), 6.0)  # a re-key
    assert phone.state == "held"
    phone.handle(P.Hook(off=True), 7.0)
    assert phone.state == "verified"
    assert drain(phone) == ["Resume('c1')"]


def test_a_call_while_ours_is_held_rings_and_the_held_one_waits():
    phone = P.Phone()
    first_call_secure(phone)
    phone.handle(P.KeyPressed("hold"), 5.0)
    bob_waits(phone, 6.0)
    assert phone.state == "ringing"
    phone.handle(P.KeyPressed("hangup"), 7.0)  # decline Bob
    assert phone.state == "held" and phone.remote == "sip:alice@10.0.0.2"


def test_the_conference_is_secure_only_when_both_legs_are():
    phone = two_calls()
    drain(phone)
    phone.handle(P.KeyPressed("conference"), 20.0)
    assert drain(phone) == ["Resume('c1')", "Conference(True)"]
    assert phone.state == "conference"
    screen = phone.screen(20.0)
    assert screen.title == "Conference"
    # Bob's leg has no keys yet
    assert screen.lines[0] == "NOT all secure"
    assert screen.lines[1] == " not secure: Bob"
    assert screen.lines[2] == ">SAS ab3d: Alice"
    phone.handle(P.CallSecure("zz99", "B32", peer_zid=BOB_ZID, call="c2"), 21.0)
    assert phone.state == "conference"
    assert phone.screen(21.0).lines[0] == "secure: compare SAS"
    # each leg's SAS is confirmed on its own: first the front leg (Bob), then Alice
    phone.handle(P.TrustPressed(False), 22.0)
    assert drain(phone) == ["ConfirmSas()"]
    assert phone.verified and not phone.other["verified"]
    assert phone.screen(22.0).lines[0] == "secure: compare SAS"
    assert phone.screen(22.0).lines[2] == ">SAS ab3d: Alice"  # the next press is for Alice's leg
    phone.handle(P.TrustPressed(False), 23.0)
    assert drain(phone) == ["Focus('c1')", "ConfirmSas()", "Focus('c2')"]
    assert phone.other["verified"] and phone.other["state"] == "verified"
    assert phone.screen(23.0).lines[0] == "both verified"
    assert phone.state == "conference"


def test_an_alarm_on_one_leg_shows_on_the_conference():
    phone = two_calls(verified=True)
    phone.handle(P.CallSecure("zz99", "B32", verified=True, peer_zid=BOB_ZID, call="c2"), 12.0)
    phone.handle(P.KeyPressed("conference"), 20.0)
    assert phone.screen(20.0).lines[0] == "both verified"
    drain(phone)
    phone.handle(P.CallAlarm("peer-stopped-encrypting", call="c1"), 21.0)
    assert phone.state == "conference"
    screen = phone.screen(21.0)
    assert screen.alert and screen.lines[0] == "NOT all secure"
    assert screen.lines[2] == " NOT SECURE: Alice"
    assert drain(phone) == ["PlayTone('alarm')"]


def test_a_leg_leaving_the_conference_leaves_the_other_call():
    phone = two_calls()
    phone.handle(P.KeyPressed("conference"), 20.0)
    drain(phone)
    phone.handle(P.CallEnded("remote hung up", call="c2"), 25.0)  # Bob, the front leg, leaves
    assert phone.state == "secure" and phone.remote == "sip:alice@10.0.0.2"
    assert drain(phone) == ["SaveHistory(1 entries)", "Conference(False)", "Focus('c1')"]


def test_hanging_up_the_conference_ends_both_legs():
    phone = two_calls()
    phone.handle(P.KeyPressed("conference"), 20.0)
    drain(phone)
    phone.handle(P.KeyPressed("hangup"), 25.0)
    assert phone.state == "ended"
    assert drain(phone) == [
        "Focus('c1')",
        "Hangup()",
        "SaveHistory(1 entries)",
        "Focus('c2')",
        "Conference(False)",
        "Hangup()",
        "SaveHistory(2 entries)",
    ]
    assert phone.other is None


def test_the_conference_key_again_splits_it():
    phone = two_calls()
    phone.handle(P.KeyPressed("conference"), 20.0)
    drain(phone)
    phone.handle(P.KeyPressed("conference"), 21.0)
    assert drain(phone) == ["Conference(False)", "Hold('c1')"]
    assert phone.state == "in-call" and phone.other["role"] == "held"


def test_a_third_call_is_busy():
    phone = two_calls()
    drain(phone)
    phone.handle(P.CallIncoming("sip:carol@10.0.0.4", None, call="c3"), 30.0)
    assert drain(phone) == ["Busy('c3')"]
    assert phone.state == "in-call"


def test_a_phone_for_one_call_refuses_the_second_as_today():
    phone = P.Phone(call_waiting=False)
    first_call_secure(phone)
    bob_waits(phone)
    assert phone.state == "secure"
    assert drain(phone) == ["Busy('c2')"]


def test_late_events_of_a_call_that_ended_here_are_ignored():
    phone = two_calls()
    phone.handle(P.KeyPressed("back"), 29.0)  # not a key for two calls: nothing
    phone.handle(P.KeyPressed("hangup"), 30.0)
    drain(phone)
    phone.handle(P.CallEnded("bye", call="c2"), 30.5)  # the far end confirms the hang-up
    assert phone.state == "held"
    assert drain(phone) == []


def test_the_call_duration_ticks_in_every_two_call_state():
    phone = P.Phone()
    first_call_secure(phone)
    bob_waits(phone)
    assert phone.get_timer() is not None
    phone.handle(P.KeyPressed("hold"), 11.0)
    phone.handle(P.KeyPressed("hold"), 12.0)
    assert phone.state == "secure"
    phone.handle(P.KeyPressed("hangup"), 13.0)
    assert phone.state == "held"
    assert phone.get_timer() is not None


def test_unknown_keys_still_refused():
    phone = two_calls()
    raises(Exception, phone.handle, P.KeyPressed("transfer-now"), 1.0)


def test_a_forward_on_busy_wins_over_call_waiting():
    """The user set "forward when busy": a second call is forwarded (302), not shown as waiting."""
    phone = P.Phone(desk={"forward_busy": "sip:400@pbx"})
    first_call_secure(phone)
    bob_waits(phone)
    assert phone.state == "secure"
    assert drain(phone) == ["Forward('sip:400@pbx', status=302, call='c2')"]


def test_the_transfer_key_connects_the_held_call_to_the_one_in_front():
    phone = two_calls()
    drain(phone)
    phone.handle(P.KeyPressed("transfer"), 30.0)
    assert drain(phone) == ["Transfer(call='c1', to='c2')"]
    assert phone.view(30.0).notice == "transferring"
    # the transfer succeeded: the session ends both calls
    phone.handle(P.CallEnded("transferred", call="c2"), 31.0)
    assert phone.state == "held"
    phone.handle(P.CallEnded("transferred", call="c1"), 31.1)
    assert phone.state == "ended" and phone.end_reason == "transferred"
    assert [entry["reason"] for entry in phone.history[:2]] == ["transferred", "transferred"]


def test_a_failed_transfer_is_shown_and_both_calls_go_on():
    phone = two_calls()
    drain(phone)
    phone.handle(P.KeyPressed("transfer"), 30.0)
    drain(phone)
    phone.handle(P.TransferFailed(603, call="c1"), 31.0)
    assert phone.view(31.0).notice == "transfer failed (603)"
    assert phone.state not in ("ended", "idle") and phone.other is not None
    assert drain(phone) == []  # nothing is hung up


def test_no_transfer_with_one_call():
    phone = P.Phone()
    first_call_secure(phone)
    phone.handle(P.KeyPressed("transfer"), 5.0)
    assert drain(phone) == []


# -- hold, then dial a new number ------------------------------------------------------------------------


def held_and_dialing(digits="200"):
    """Alice's call secure, then held; digits typed for a second call (not sent yet)."""
    phone = P.Phone(dial_domain="pbx")
    first_call_secure(phone)
    phone.handle(P.KeyPressed("hold"), 5.0)
    for key in digits:
        phone.handle(P.KeyPressed(key), 6.0)
    return phone


def test_hold_then_dial_a_second_call_then_swap_conference_and_transfer():
    phone = held_and_dialing()
    assert drain(phone) == ["Hold('c1')"]
    assert phone.state == "dialing" and phone.digits == "200"
    assert phone.screen(6.0).lines == ("200_", "# call  trust: del", "held: Alice")
    assert phone.other["remote"] == "sip:alice@10.0.0.2" and phone.other["role"] == "held"
    phone.handle(P.KeyPressed("#"), 7.0)
    assert drain(phone) == ["Dial('sip:200@pbx')"]
    assert phone.state == "calling" and phone.remote == "sip:200@pbx"
    assert phone.screen(7.0).lines[-1] == "held: Alice"
    phone.handle(P.CallRinging(call="c2"), 7.5)  # the session names our INVITE's call with its first event
    assert phone.call_key == "c2" and drain(phone) == ["PlayTone('ringback')"]
    phone.handle(P.CallAnswered(call="c2"), 8.0)
    assert phone.state == "in-call"
    assert "held: Alice" in phone.screen(8.0).lines
    phone.handle(P.CallSecure("77xy", "B32", peer_zid=BOB_ZID, call="c2"), 8.5)
    assert phone.state == "secure" and phone.other["sas"] == "ab3d"
    drain(phone)
    phone.handle(P.KeyPressed("hold"), 9.0)  # swap
    assert drain(phone) == ["Hold('c2')", "Resume('c1')", "Focus('c1')"]
    assert phone.remote == "sip:alice@10.0.0.2"
    phone.handle(P.KeyPressed("conference"), 10.0)
    assert drain(phone) == ["Resume('c2')", "Conference(True)"]
    assert phone.state == "conference" and phone.screen(10.0).lines[0] == "secure: compare SAS"
    phone.handle(P.KeyPressed("conference"), 11.0)  # split: the other leg (the dialed call) held
    assert drain(phone) == ["Conference(False)", "Hold('c2')"]
    phone.handle(P.KeyPressed("transfer"), 12.0)  # Alice (in front) ... the held call to the one in front
    assert drain(phone) == ["Transfer(call='c2', to='c1')"]


def test_the_transfer_of_the_held_call_to_the_dialed_one():
    """The consultation call: Alice held, 200 dialed and answered, transfer connects Alice with 200."""
    phone = held_and_dialing()
    phone.handle(P.KeyPressed("#"), 7.0)
    phone.handle(P.CallAnswered(call="c2"), 8.0)
    drain(phone)
    phone.handle(P.KeyPressed("transfer"), 9.0)
    assert drain(phone) == ["Transfer(call='c1', to='c2')"]


def test_a_number_abandoned_while_a_call_is_held_brings_the_held_call_back():
    for abandon in ("hangup", "timeout", "erase", "hook"):
        phone = held_and_dialing("2")
        drain(phone)
        if abandon == "hangup":
            phone.handle(P.KeyPressed("hangup"), 6.5)
        elif abandon == "timeout":
            assert phone.get_timer() == 6.0 + P.DIAL_TIMEOUT
            phone.handle_timer(6.0 + P.DIAL_TIMEOUT)
        elif abandon == "erase":
            phone.handle(P.TrustPressed(), 6.5)
        else:
            phone.handle(P.Hook(off=True), 6.2)
            phone.handle(P.Hook(off=False), 6.5)
        assert phone.state == "held", abandon
        assert phone.remote == "sip:alice@10.0.0.2" and phone.other is None, abandon
        assert drain(phone) == ["Focus('c1')"], abandon
        phone.handle(P.KeyPressed("hold"), 20.0)
        assert phone.state == "secure" and drain(phone) == ["Resume('c1')"], abandon


def test_the_dialed_call_failing_brings_the_held_call_back():
    phone = held_and_dialing()
    phone.handle(P.KeyPressed("#"), 7.0)
    phone.handle(P.CallEnded("busy", 486, call="c2"), 7.5)
    assert phone.state == "held" and phone.remote == "sip:alice@10.0.0.2"
    assert phone.history[0]["remote"] == "sip:200@pbx" and phone.history[0]["reason"] == "busy"
    # cancelled by us while it rings
    phone = held_and_dialing()
    phone.handle(P.KeyPressed("#"), 7.0)
    drain(phone)
    phone.handle(P.KeyPressed("hangup"), 7.5)  # the session's focus is the dialed call (Dial focuses it)
    assert drain(phone) == ["Hangup()", "SaveHistory(1 entries)", "Focus('c1')"]
    assert phone.state == "held" and phone.history[0]["reason"] == "cancelled"


def test_redial_while_held_and_nothing_to_redial():
    phone = P.Phone()
    first_call_secure(phone)
    phone.handle(P.KeyPressed("hold"), 5.0)
    drain(phone)
    phone.handle(P.KeyPressed("redial"), 6.0)
    assert phone.state == "held" and phone.remote == "sip:alice@10.0.0.2" and phone.other is None
    assert phone.view(6.0).notice == "nothing to redial"
    assert drain(phone) == []
    phone.handle(P.KeyPressed("hold"), 7.0)
    assert phone.state == "secure"
    phone.last_dialed = "sip:carol@c"
    phone.handle(P.KeyPressed("hold"), 8.0)
    phone.handle(P.KeyPressed("#"), 9.0)  # '#' alone redials, as on idle
    assert phone.state == "calling" and phone.remote == "sip:carol@c"
    assert drain(phone)[-1] == "Dial('sip:carol@c')"


def test_a_call_arriving_while_dialing_with_one_held_rings_and_the_third_is_busy():
    phone = held_and_dialing()
    bob_waits(phone, 6.5)
    assert phone.state == "ringing" and phone.other["role"] == "held"
    phone.handle(P.KeyPressed("5"), 7.0)
    assert phone.state == "in-call" and phone.remote == "sip:bob@10.0.0.3"
    phone = held_and_dialing()
    phone.handle(P.KeyPressed("#"), 7.0)
    drain(phone)
    phone.handle(P.CallIncoming("sip:carol@c", call="c3"), 7.5)
    assert drain(phone) == ["Busy('c3')"] and phone.state == "calling"


def test_a_followed_transfer_holds_the_call_and_a_failed_one_gives_it_back():
    """TransferTo kept=True (the session keeps the call until the new one is answered, RFC 5589 §6.1): the
    call is held behind the new one; when the new call fails, it is back in front, held, the notice says
    why, and the hold key resumes it."""
    phone = P.Phone()
    first_call_secure(phone)
    phone.handle(P.TransferTo("sip:carol@10.0.0.4", call="c1", kept=True), 5.0)
    assert phone.state == "calling" and phone.remote == "sip:carol@10.0.0.4"
    assert phone.other["call_key"] == "c1" and phone.other["role"] == "held"
    assert drain(phone) == ["Dial('sip:carol@10.0.0.4')"]  # no Hangup, no Hold: the session did both
    assert phone.history == []  # the call is not over
    assert "held: Alice" in phone.screen(5.0).lines
    phone.handle(P.CallRinging(call="c9"), 5.2)  # the new call's key, named by its first event
    phone.handle(P.CallEnded("busy", 486, call="c9"), 6.0)
    assert phone.state == "held" and phone.call_key == "c1" and phone.other is None
    assert phone.history[0]["remote"] == "sip:carol@10.0.0.4"
    assert "Focus('c1')" in drain(phone)  # the session's focused call is the held one again
    phone.handle(P.TransferFailed(486, call="c1"), 6.1)
    assert phone.view(6.1).notice == "transfer failed (486)"
    phone.handle(P.KeyPressed("hold"), 7.0)
    assert "Resume('c1')" in drain(phone)
    assert phone.state == "secure" and phone.sas == "ab3d"  # the same call, its SAS as before


def test_a_followed_transfer_that_succeeds_ends_the_held_call_as_transferred():
    phone = P.Phone()
    first_call_secure(phone)
    phone.handle(P.TransferTo("sip:carol@10.0.0.4", call="c1", kept=True), 5.0)
    phone.handle(P.CallAnswered(call="c9"), 6.0)
    assert phone.state == "in-call" and phone.other["call_key"] == "c1"
    phone.handle(P.CallEnded("transferred", 200, call="c1"), 7.0)  # the transferor's BYE, after the NOTIFY
    assert phone.state == "in-call" and phone.other is None and phone.remote == "sip:carol@10.0.0.4"
    assert phone.history[0]["reason"] == "transferred" and phone.history[0]["remote"] == "sip:alice@10.0.0.2"
    assert phone.view(7.0).notice == "transferred"


def test_a_transfer_with_a_second_call_up_still_leaves_the_call_at_once():
    phone = two_calls()
    drain(phone)
    phone.handle(P.TransferTo("sip:carol@10.0.0.4", call="c2", kept=False), 20.0)
    assert phone.state == "calling" and phone.history[0]["reason"] == "transferred"
