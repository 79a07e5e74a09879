"""The phone's state machine, driven with a fake clock (plain tests: also run under MicroPython)."""

from firmware import phone as P
from firmware.errors import LocalProtocolError
from tests.portable import raises

MICROPYTHON = True

PEER = "00112233445566778899aabb"
OTHER_PEER = "ffeeddccbbaa998877665544"


def drain(phone):
    out = []
    while True:
        command = phone.next_command()
        if command is None:
            return out
        out.append(repr(command))


def press(phone, keys, now):
    for key in keys:
        phone.handle(P.KeyPressed(key), now)


def outgoing_secure(phone, now=0.0, verified=False, cache_mismatch=False, peer=PEER, number="123"):
    """Dial `number`, let the far end answer and ZRTP reach SecureState."""
    press(phone, number + "#", now)
    phone.handle(P.CallRinging(), now + 0.1)
    phone.handle(P.CallAnswered(), now + 0.5)
    phone.handle(
        P.CallSecure(
            "ab3d",
            "B32",
            verified=verified,
            cache_mismatch=cache_mismatch,
            algorithms="X255 AES1 S256 HS80",
            peer_zid=peer,
        ),
        now + 0.7,
    )


def test_digits_then_hash_dial_at_the_dial_domain():
    phone = P.Phone(dial_domain="127.0.0.1:5072")
    assert phone.state == "idle"
    press(phone, "12", 0.0)
    assert phone.state == "dialing"
    assert phone.screen(0.0).lines[0] == "12_"
    press(phone, "3#", 0.5)
    assert phone.state == "calling"
    assert drain(phone) == ["Dial('sip:123@127.0.0.1:5072')"]
    assert phone.screen(0.5).lines == ("123@127.0.0.1:5072", "connecting...")
    phone.handle(P.CallRinging(), 0.6)
    assert phone.screen(0.6).lines[1] == "ringing..."
    assert drain(phone) == ["PlayTone('ringback')"]
    phone.handle(P.CallAnswered(), 1.0)
    assert drain(phone) == ["StopTone()"]
    assert phone.state == "in-call"


def test_star_is_a_digit_and_speed_dial_maps_digits_to_a_uri():
    phone = P.Phone(dial_domain="example.org", speed_dial={"*43": "sip:echo@127.0.0.1:5070", "1": "sip:bob@b"})
    press(phone, "*43#", 0.0)
    assert drain(phone) == ["Dial('sip:echo@127.0.0.1:5070')"]
    phone.handle(P.CallEnded("busy", 486), 1.0)
    drain(phone)
    press(phone, "1#", 2.0)
    assert drain(phone) == ["Dial('sip:bob@b')"]
    phone = P.Phone(speed_dial=[("2", "sip:carol@c")])
    press(phone, "2#", 0.0)
    assert drain(phone) == ["Dial('sip:carol@c')"]


def test_bad_speed_dial_is_a_local_error():
    raises(LocalProtocolError, P.Phone, speed_dial={"1": 5})


def test_hash_alone_redials_and_with_nothing_to_redial_shows_a_notice():
    phone = P.Phone(dial_domain="d")
    press(phone, "#", 0.0)
    assert phone.state == "idle"
    assert drain(phone) == []
    assert "nothing to redial" in phone.screen(0.5).lines
    assert phone.get_timer() == P.NOTICE_HOLD
    phone.handle_timer(P.NOTICE_HOLD)
    assert "nothing to redial" not in phone.screen(P.NOTICE_HOLD).lines
    press(phone, "77#", 3.0)
    phone.handle(P.CallEnded("not found", 404), 3.5)
    drain(phone)
    press(phone, "#", 10.0)
    assert drain(phone) == ["Dial('sip:77@d')"]
    phone.handle(P.KeyPressed("hangup"), 11.0)
    phone.handle_timer(11.0 + P.ENDED_HOLD)
    phone.handle(P.KeyPressed("redial"), 20.0)
    assert drain(phone)[-1] == "Dial('sip:77@d')"


def test_redial_comes_from_the_persisted_history():
    history = [{"dir": "in", "remote": "sip:x@y"}, {"dir": "out", "remote": "sip:last@z"}]
    phone = P.Phone(history=history)
    press(phone, "#", 0.0)
    assert drain(phone) == ["Dial('sip:last@z')"]


def test_trust_erases_a_digit_long_trust_clears_and_timeout_abandons():
    phone = P.Phone(dial_domain="d")
    press(phone, "123", 0.0)
    phone.handle(P.TrustPressed(False), 1.0)
    assert phone.digits == "12"
    phone.handle(P.KeyPressed("back"), 1.5)
    assert phone.digits == "1"
    phone.handle(P.TrustPressed(True), 2.0)
    assert phone.state == "idle" and phone.digits == ""
    press(phone, "9", 3.0)
    assert phone.get_timer() == 3.0 + P.DIAL_TIMEOUT
    press(phone, "8", 5.0)
    assert phone.get_timer() == 5.0 + P.DIAL_TIMEOUT
    phone.handle_timer(5.0 + P.DIAL_TIMEOUT - 0.01)
    assert phone.state == "dialing"
    phone.handle_timer(5.0 + P.DIAL_TIMEOUT)
    assert phone.state == "idle"
    assert drain(phone) == []
    press(phone, "5", 20.0)
    phone.handle(P.TrustPressed(False), 20.5)
    assert phone.state == "idle"


def test_digits_are_bounded():
    phone = P.Phone(dial_domain="d")
    press(phone, "1" * 100, 0.0)
    assert len(phone.digits) == P.MAX_DIGITS


def test_without_a_dial_domain_the_number_cannot_be_called():
    phone = P.Phone()
    press(phone, "55#", 0.0)
    assert phone.state == "ended"
    assert phone.screen(0.0).lines[0] == "no dial domain set"
    assert drain(phone) == []


def test_outgoing_call_secure_then_short_press_confirms_the_sas():
    phone = P.Phone(dial_domain="d")
    outgoing_secure(phone)
    assert phone.state == "secure"
    screen = phone.screen(1.0)
    assert screen.big == "ab3d"
    assert screen.lines == ("read it aloud,", "press to confirm")
    drain(phone)
    phone.handle(P.TrustPressed(False), 2.0)
    assert phone.state == "verified"
    assert drain(phone) == ["ConfirmSas()"]
    phone.handle(P.TrustPressed(False), 3.0)
    assert drain(phone) == []
    phone.handle(P.CallEnded("remote hung up"), 10.5)
    assert phone.state == "ended"
    assert phone.screen(10.5).lines == ("remote hung up", "00:10")
    entry = phone.history[0]
    assert entry["dir"] == "out" and entry["verified"] and entry["secure"] and entry["peer_zid"] == PEER
    assert drain(phone) == ["SaveHistory(1 entries)"]


def test_peer_verified_before_goes_straight_to_verified():
    phone = P.Phone(dial_domain="d")
    outgoing_secure(phone, verified=True)
    assert phone.state == "verified"
    assert phone.screen(1.0).lines[2] == "SAS ab3d"
    assert "ConfirmSas()" not in drain(phone)


def test_long_press_rejects_the_sas_hangs_up_and_marks_the_peer_untrusted():
    phone = P.Phone(dial_domain="d")
    outgoing_secure(phone)
    drain(phone)
    phone.handle(P.TrustPressed(True), 3.0)
    assert drain(phone) == ["RejectSas()", "Hangup()", "SaveHistory(1 entries)"]
    assert phone.state == "ended"
    assert phone.end_reason == "SAS did not match"
    assert phone.history[0]["untrusted"] is True
    # The session's CallEnded for the call we hung up is ignored.
    phone.handle(P.CallEnded("bye"), 3.1)
    assert phone.end_reason == "SAS did not match"
    assert drain(phone) == []


def test_long_press_after_verification_still_rejects():
    phone = P.Phone(dial_domain="d")
    outgoing_secure(phone, verified=True)
    drain(phone)
    phone.handle(P.TrustPressed(True), 3.0)
    assert drain(phone)[:2] == ["RejectSas()", "Hangup()"]


def test_cache_mismatch_is_an_alarm_with_the_sas_until_confirmed():
    phone = P.Phone(dial_domain="d")
    outgoing_secure(phone, cache_mismatch=True)
    assert phone.state == "alarm"
    screen = phone.screen(1.0)
    assert screen.alert and screen.big == "ab3d"
    assert screen.title == "KEY CHANGED" and screen.lines[0] == "peer key changed"
    assert "PlayTone('alarm')" in drain(phone)
    phone.handle(P.TrustPressed(False), 2.0)
    assert phone.state == "verified"
    assert drain(phone) == ["ConfirmSas()", "StopTone()"]
    assert phone.unresolved == []


def test_a_cache_mismatch_report_after_the_confirmation_is_stale():
    phone = P.Phone(dial_domain="d")
    outgoing_secure(phone, cache_mismatch=True)
    phone.handle(P.TrustPressed(False), 2.0)
    drain(phone)
    phone.handle(P.CallAlarm("cache-mismatch"), 2.1)  # queued behind the Secure event in the session
    assert phone.state == "verified"
    assert drain(phone) == []
    phone.handle(P.CallAlarm("goclear"), 3.0)  # other alarms still count
    assert phone.state == "alarm"


def test_an_unresolved_alarm_returns_on_the_next_call_to_that_peer():
    phone = P.Phone(dial_domain="d")
    outgoing_secure(phone, cache_mismatch=True)
    phone.handle(P.KeyPressed("hangup"), 2.0)
    phone.handle_timer(2.0 + P.ENDED_HOLD)
    assert phone.state == "idle"
    assert phone.unresolved == [PEER]
    drain(phone)
    outgoing_secure(phone, now=10.0)  # the engine no longer says mismatch, the peer is not verified
    assert phone.state == "alarm"
    assert "PlayTone('alarm')" in drain(phone)
    # Another peer is not affected.
    phone.handle(P.KeyPressed("hangup"), 12.0)
    phone.handle_timer(12.0 + P.ENDED_HOLD)
    outgoing_secure(phone, now=20.0, peer=OTHER_PEER)
    assert phone.state == "secure"


def test_unresolved_peers_are_bounded():
    phone = P.Phone(dial_domain="d")
    for i in range(P.UNRESOLVED_LIMIT + 5):
        outgoing_secure(phone, now=i * 10.0, cache_mismatch=True, peer="{:024x}".format(i))
        phone.handle(P.KeyPressed("hangup"), i * 10.0 + 1)
        phone.handle_timer(i * 10.0 + 1 + P.ENDED_HOLD)
        drain(phone)
    assert len(phone.unresolved) == P.UNRESOLVED_LIMIT


def test_goclear_and_downgrade_alarm_during_a_call_press_acknowledges():
    phone = P.Phone(dial_domain="d")
    outgoing_secure(phone, verified=True)
    drain(phone)
    phone.handle(P.CallAlarm("goclear"), 5.0)
    assert phone.state == "alarm"
    screen = phone.screen(5.0)
    assert screen.alert and screen.big is None
    assert screen.title == "GOCLEAR"
    assert screen.lines == ("peer sent GoClear", "123@d", "press: silence")
    assert drain(phone) == ["PlayTone('alarm')"]
    phone.handle(P.TrustPressed(False), 6.0)
    assert phone.state == "alarm"
    assert drain(phone) == ["StopTone()"]
    assert phone.screen(6.0).lines[2] == "acknowledged"
    phone.handle(P.CallAlarm("goclear"), 6.5)  # reported again: no second tone
    assert drain(phone) == []
    phone.handle(P.CallEnded("bye"), 7.0)
    assert phone.history[0]["alarm"] == "goclear"


def test_secure_only_ends_a_call_that_is_not_secure():
    phone = P.Phone(dial_domain="d", secure_only=True)
    press(phone, "1#", 0.0)
    phone.handle(P.CallAnswered(), 1.0)
    drain(phone)
    phone.handle(P.CallAlarm("not-secure"), 1.5)
    assert phone.state == "ended"
    assert phone.end_reason == "not secure: not-secure"
    assert drain(phone) == ["Hangup()", "SaveHistory(1 entries)"]


def test_secure_only_ends_a_secure_call_on_goclear():
    phone = P.Phone(dial_domain="d", secure_only=True)
    outgoing_secure(phone)
    drain(phone)
    phone.handle(P.CallAlarm("goclear"), 4.0)
    assert phone.state == "ended"
    assert drain(phone)[0] == "Hangup()"


def test_the_call_layers_not_secure_verdict_is_an_alarm_or_with_secure_only_the_end():
    phone = P.Phone(dial_domain="d")
    press(phone, "1#", 0.0)
    phone.handle(P.CallAnswered(), 1.0)
    assert phone.state == "in-call"
    assert phone.screen(1.0).lines[2] == "not secure yet"
    assert phone.get_timer() < 3.0  # only the duration tick: the call layer alone decides "not secure"
    phone.handle(P.CallNotSecure("no-zrtp", "peer has no ZRTP"), 1.1)
    assert phone.state == "alarm"
    assert phone.alarm_reason == "no-zrtp"
    assert phone.screen(1.2).title == "NOT SECURE"
    assert phone.screen(1.2).lines[0] == "peer has no ZRTP"
    phone = P.Phone(dial_domain="d", secure_only=True)
    press(phone, "1#", 0.0)
    phone.handle(P.CallAnswered(), 1.0)
    drain(phone)
    phone.handle(P.CallNotSecure("zrtp-failed", "ZRTP failed"), 4.0)
    assert phone.state == "ended"
    assert drain(phone)[0] == "Hangup()"


def test_an_sdes_call_says_encrypted_to_the_server_without_an_alarm():
    phone = P.Phone(dial_domain="d")
    press(phone, "1#", 0.0)
    phone.handle(P.CallAnswered(), 1.0)
    drain(phone)
    phone.handle(P.CallNotSecure("sdes-only", "encrypted to the server only"), 1.0)
    assert phone.state == "in-call"
    assert phone.screen(1.5).lines[2] == "to server only"
    assert drain(phone) == []  # no alarm tone


def test_a_new_key_for_a_verified_contact_shows_the_sas_and_a_press_accepts_it():
    phone = P.Phone(dial_domain="d")
    outgoing_secure(phone)
    phone.handle(P.CallAlarm("new-key-for-contact"), 3.0)
    assert phone.state == "alarm"
    screen = phone.screen(3.1)
    assert screen.title == "NEW KEY" and screen.big == phone.sas
    drain(phone)
    phone.handle(P.TrustPressed(long=False), 3.5)
    assert phone.state == "verified"
    assert "ConfirmSas()" in drain(phone)


def test_the_call_screen_ticks_every_second():
    phone = P.Phone(dial_domain="d")
    press(phone, "1#", 0.0)
    phone.handle(P.CallAnswered(), 1.25)
    assert phone.get_timer() == 2.25
    phone.handle_timer(2.25)
    assert phone.get_timer() == 3.25
    assert phone.screen(2.25).lines[1] == "00:01"
    assert phone.screen(62.3).lines[1] == "01:01"


def test_incoming_call_rings_and_any_key_answers():
    phone = P.Phone()
    phone.handle(P.CallIncoming("sip:alice@10.0.0.1", "Alice"), 0.0)
    assert phone.state == "ringing"
    assert phone.screen(0.0).lines[0] == "Alice"
    assert drain(phone) == ["PlayTone('ring')"]
    phone.handle(P.KeyPressed("5"), 1.0)
    assert phone.state == "in-call"
    assert drain(phone) == ["Answer()", "StopTone()"]


def test_incoming_call_answered_by_lifting_the_handset_and_ended_by_hanging_it_up():
    phone = P.Phone()
    phone.handle(P.CallIncoming("sip:alice@10.0.0.1"), 0.0)
    phone.handle(P.Hook(off=True), 1.0)
    assert phone.state == "in-call"
    phone.handle(P.CallSecure("wxyz", peer_zid=PEER), 1.2)
    drain(phone)
    phone.handle(P.Hook(off=False), 4.0)
    assert drain(phone) == ["Hangup()", "SaveHistory(1 entries)"]
    assert phone.history[0]["dir"] == "in"
    assert phone.history[0]["duration"] == 3


def test_incoming_call_declined_or_missed():
    phone = P.Phone()
    phone.handle(P.CallIncoming("sip:a@b"), 0.0)
    phone.handle(P.KeyPressed("hangup"), 1.0)
    assert drain(phone) == ["PlayTone('ring')", "Reject(603)", "StopTone()", "SaveHistory(1 entries)"]
    assert phone.history[0]["dir"] == "missed"
    phone.handle_timer(1.0 + P.ENDED_HOLD)
    phone.handle(P.CallIncoming("sip:c@d"), 10.0)
    phone.handle(P.TrustPressed(True), 11.0)
    assert "Reject(603)" in drain(phone)
    phone.handle(P.CallIncoming("sip:e@f"), 20.0)
    phone.handle(P.CallEnded("caller cancelled", 487), 21.0)
    assert phone.state == "ended"
    assert phone.history[0]["dir"] == "missed"
    assert phone.history[0]["reason"] == "caller cancelled"


def test_a_second_incoming_call_during_a_call_is_ignored():
    phone = P.Phone(dial_domain="d")
    outgoing_secure(phone)
    drain(phone)
    phone.handle(P.CallIncoming("sip:intruder@x"), 2.0)
    assert phone.state == "secure"
    assert phone.remote == "sip:123@d"
    assert drain(phone) == []


def test_keys_in_a_call_send_dtmf_mute_and_change_the_volume_within_bounds():
    phone = P.Phone(dial_domain="d")
    outgoing_secure(phone, verified=True)
    drain(phone)
    press(phone, "4*#", 2.0)
    assert drain(phone) == ["SendDtmf('4')", "SendDtmf('*')", "SendDtmf('#')"]
    phone.handle(P.KeyPressed("mute"), 2.5)
    assert drain(phone) == ["SetMute(True)"]
    assert "MUTED" in phone.screen(2.5).lines
    phone.handle(P.KeyPressed("mute"), 2.6)
    assert drain(phone) == ["SetMute(False)"]
    for _ in range(20):
        phone.handle(P.KeyPressed("volume_up"), 3.0)
    out = drain(phone)
    assert out[-1] == "SetVolume(10)" and len(out) == 4
    for _ in range(20):
        phone.handle(P.KeyPressed("volume_down"), 3.0)
    assert drain(phone)[-1] == "SetVolume(0)"


def test_hook_off_in_idle_starts_dialing_and_hook_on_abandons():
    phone = P.Phone(dial_domain="d")
    phone.handle(P.Hook(off=True), 0.0)
    assert phone.state == "dialing" and phone.digits == ""
    press(phone, "4", 1.0)
    phone.handle(P.Hook(off=False), 2.0)
    assert phone.state == "idle"
    press(phone, "4#", 3.0)
    drain(phone)
    phone.handle(P.Hook(off=False), 3.5)
    assert drain(phone) == ["Hangup()", "SaveHistory(1 entries)"]
    assert phone.end_reason == "cancelled"


def test_ended_returns_to_idle_after_the_hold_time_or_a_key():
    phone = P.Phone(dial_domain="d")
    outgoing_secure(phone)
    phone.handle(P.CallEnded("remote hung up"), 5.0)
    assert phone.get_timer() == 5.0 + P.ENDED_HOLD
    phone.handle_timer(5.0 + P.ENDED_HOLD)
    assert phone.state == "idle"
    assert phone.get_timer() is None
    outgoing_secure(phone, now=20.0)
    phone.handle(P.CallEnded("remote hung up"), 25.0)
    phone.handle(P.KeyPressed("hangup"), 25.5)
    assert phone.state == "idle"
    outgoing_secure(phone, now=30.0)
    phone.handle(P.CallEnded("remote hung up"), 35.0)
    press(phone, "7", 35.5)
    assert phone.state == "dialing" and phone.digits == "7"


def test_history_is_newest_first_and_bounded_to_fifty():
    phone = P.Phone(dial_domain="d", wall_offset=1000.0)
    saves = []
    for i in range(55):
        press(phone, str(i % 10) + "#", i * 10.0)
        phone.handle(P.CallEnded("busy", 486), i * 10.0 + 1)
        saves += [c for c in drain(phone) if c.startswith("SaveHistory")]
    assert len(phone.history) == P.HISTORY_LIMIT
    assert phone.history[0]["remote"] == "sip:4@d"
    assert phone.history[0]["at"] == 1541
    assert len(saves) == 55 and saves[-1] == "SaveHistory(50 entries)"
    phone = P.Phone(history=[{"dir": "out", "remote": "sip:a@b"}] * 70 + ["junk"])
    assert len(phone.history) == 50


def test_menu_shows_our_zid_fingerprint():
    phone = P.Phone()
    press(phone, "**#", 0.0)
    assert phone.state == "menu"
    assert phone.screen(0.0).lines[:3] == ("1 Our ZID", "2 History", "3 Reset trust")
    press(phone, "1", 1.0)
    assert phone.screen(1.0).lines == ("not known yet", "* back")
    phone.handle(P.OurZid("0123456789abcdef01234567"), 1.5)
    assert phone.screen(1.5).lines == ("0123 4567 89ab", "cdef 0123 4567", "* back")
    press(phone, "*", 2.0)
    assert phone.screen(2.0).title == "Menu"
    press(phone, "*", 2.5)
    assert phone.state == "idle"


def test_menu_key_and_timeout():
    phone = P.Phone()
    phone.handle(P.KeyPressed("menu"), 0.0)
    assert phone.state == "menu"
    assert phone.get_timer() == P.MENU_TIMEOUT
    phone.handle_timer(P.MENU_TIMEOUT)
    assert phone.state == "idle"


def test_menu_history_browses_and_calls_back():
    history = [
        {"dir": "in", "remote": "sip:alice@a", "duration": 65, "verified": True, "secure": True},
        {"dir": "out", "remote": "sip:bob@b", "duration": 3, "secure": False},
    ]
    phone = P.Phone(history=history)
    press(phone, "**#2", 0.0)
    screen = phone.screen(0.0)
    assert screen.title == "History 1/2"
    assert screen.lines[:2] == ("<- alice@a", "01:05 verified")
    press(phone, "8", 1.0)
    assert phone.screen(1.0).lines[:2] == ("-> bob@b", "00:03 clear")
    press(phone, "8", 1.5)
    assert phone.screen(1.5).title == "History 1/2"
    press(phone, "2", 2.0)
    press(phone, "#", 2.5)
    assert phone.state == "calling"
    assert drain(phone) == ["Dial('sip:bob@b')"]


def test_menu_resets_trust_for_a_peer():
    history = [
        {"dir": "in", "remote": "sip:alice@a", "peer_zid": PEER},
        {"dir": "out", "remote": "sip:alice@a", "peer_zid": PEER},
        {"dir": "out", "remote": "sip:bob@b", "peer_zid": OTHER_PEER},
        {"dir": "out", "remote": "sip:plain@c"},
    ]
    phone = P.Phone(history=history)
    press(phone, "**#3", 0.0)
    assert phone.screen(0.0).title == "Reset trust 1/2"
    press(phone, "8#", 1.0)
    assert phone.screen(1.0).title == "Reset trust?"
    assert phone.screen(1.0).lines[0] == "bob@b"
    press(phone, "*", 1.5)
    assert phone.screen(1.5).title == "Reset trust 2/2"
    press(phone, "#", 2.0)
    phone.handle(P.TrustPressed(False), 2.5)  # the trust button is '#' in the menu
    assert drain(phone) == ["ResetTrust('{}')".format(OTHER_PEER)]
    assert phone.screen(2.5).lines[3] == "trust reset"
    phone.handle_timer(2.5 + P.NOTICE_HOLD)
    assert phone.screen(2.5 + P.NOTICE_HOLD).lines[3] == "* back"


def test_error_screens_and_their_recovery():
    phone = P.Phone(dial_domain="d")
    phone.handle(P.RegistrationFailed("403 Forbidden"), 0.0)
    assert phone.state == "error"
    screen = phone.screen(0.0)
    assert screen.title == "Not registered" and screen.alert
    assert screen.lines == ("403 Forbidden", "calls by IP only")
    phone.handle(P.AudioDeviceMissing("hw:1"), 0.5)
    phone.handle(P.Registered(), 1.0)
    assert phone.state == "error"
    assert phone.screen(1.0).title == "No audio device"
    phone.handle(P.AudioDeviceOk(), 2.0)
    assert phone.state == "idle"
    phone.handle(P.NetworkDown(), 3.0)
    assert phone.screen(3.0).title == "No network"
    press(phone, "1#", 4.0)  # dialing is still allowed: the session reports what happens
    assert phone.state == "calling"
    phone.handle(P.NetworkUp(), 4.5)
    phone.handle(P.NetworkDown(), 4.6)
    assert phone.state == "calling"
    phone.handle(P.CallEnded("no route"), 5.0)
    phone.handle_timer(5.0 + P.ENDED_HOLD)
    assert phone.state == "error"


def test_misuse_is_a_local_error():
    phone = P.Phone()
    raises(LocalProtocolError, phone.handle, P.KeyPressed("x"), 0.0)
    raises(LocalProtocolError, phone.handle, P.KeyPressed("12"), 0.0)
    raises(LocalProtocolError, phone.handle, object(), 0.0)


def test_the_command_queue_is_bounded():
    phone = P.Phone(dial_domain="d")
    outgoing_secure(phone, verified=True)
    for _ in range(200):
        phone.handle(P.KeyPressed("1"), 2.0)
    out = drain(phone)
    assert len(out) == P.COMMAND_QUEUE_LIMIT


def test_every_state_name_is_one_of_the_contract():
    assert P.STATES == (
        "idle",
        "dialing",
        "calling",
        "ringing",
        "in-call",
        "secure",
        "verified",
        "alarm",
        "ended",
        "menu",
        "error",
        "call-waiting",  # issue 15: two calls, names added, none renamed
        "held",
        "conference",
    )
    assert P.MediaUp is P.CallAnswered


def test_a_lost_trust_cache_is_shown_until_the_next_secure_call():
    phone = P.Phone(dial_domain="example.org")
    phone.handle(P.TrustCacheLost("moved to zrtp-cache.corrupt-1"), 0.0)
    assert phone.state == "error"
    screen = phone.screen(0.0)
    assert screen.title == "Trust cache lost" and screen.alert
    assert screen.lines == ("compare every SAS again",)
    outgoing_secure(phone, now=1.0)
    assert phone.state == "secure"
    phone.handle(P.CallEnded("remote hangup", 200), 5.0)
    phone.handle_timer(5.0 + P.ENDED_HOLD)
    assert phone.state == "idle" and not phone.errors


def test_a_transfer_ends_the_call_in_the_history_and_calls_the_target():
    phone = P.Phone(dial_domain="example.org")
    outgoing_secure(phone, now=0.0)
    drain(phone)
    phone.handle(P.TransferTo("sip:carol@example.org"), 5.0)
    assert phone.state == "calling"
    assert phone.history[0]["reason"] == "transferred" and phone.history[0]["remote"] == "sip:123@example.org"
    commands = drain(phone)
    assert "Dial('sip:carol@example.org')" in commands
    assert "Hangup()" not in commands  # the session already ended the transferred call
    phone.handle(P.TransferTo("sip:dave@example.org"), 6.0)  # not in a call any more: ignored
    assert phone.remote == "sip:carol@example.org"


def test_the_duration_tick_always_moves_forward_despite_float_rounding():
    # 2.3 - 0.3 is 1.9999999999999998 in binary floating point: the tick must still advance.
    phone = P.Phone(dial_domain="example.org")
    press(phone, "123#", 0.0)
    phone.handle(P.CallAnswered(), 0.3)
    assert phone.get_timer() == 0.3 + 1
    now = 2.3
    phone.handle_timer(now)
    assert phone.get_timer() > now
