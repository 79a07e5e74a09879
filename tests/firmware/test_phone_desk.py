"""The desk features of the phone core (issue 15): do not disturb, call forward, message waiting, contacts with
trust marks and the history's trust mark (plain tests: also run under MicroPython)."""

from firmware import phone as P
from firmware.phone import contacts as C
from firmware.phone import desk as D
from tests.portable import raises

MICROPYTHON = True

PEER = "00112233445566778899aabb"


def drain(phone):
    out = []
    while True:
        command = phone.next_command()
        if command is None:
            return out
        out.append(command)


def names(commands):
    return [repr(c) for c in commands]


def press(phone, keys, now):
    for key in keys:
        phone.handle(P.KeyPressed(key), now)


def test_do_not_disturb_refuses_with_486_and_never_rings():
    phone = P.Phone(desk={"dnd": True})
    assert "DND" in phone.screen(0.0).lines
    phone.handle(P.CallIncoming("sip:bob@b", "Bob"), 1.0)
    assert phone.state == "idle"
    out = drain(phone)
    assert names(out)[0] == "Reject(486)"
    assert not [c for c in out if isinstance(c, P.PlayTone)]
    assert phone.history[0]["dir"] == "missed" and phone.history[0]["reason"] == "do not disturb"
    assert isinstance(out[-1], P.SaveHistory)


def test_forward_always_answers_302_and_wins_over_dnd():
    phone = P.Phone(desk={"dnd": True, "forward_always": "sip:200@pbx"})
    assert "FWD 200" in phone.screen(0.0).lines[-2]
    phone.handle(P.CallIncoming("sip:bob@b"), 1.0)
    out = drain(phone)
    assert out[0] == P.Forward("sip:200@pbx", 302)
    assert phone.state == "idle"
    assert phone.history[0]["reason"] == "forwarded to 200@pbx"


def test_forward_on_no_answer_after_n_seconds():
    phone = P.Phone(desk={"forward_no_answer": "sip:300@pbx", "no_answer_seconds": 7})
    phone.handle(P.CallIncoming("sip:bob@b"), 10.0)
    assert phone.state == "ringing"
    assert phone.get_timer() == 17.0
    drain(phone)
    phone.handle_timer(16.9)
    assert phone.state == "ringing"
    phone.handle_timer(17.0)
    out = drain(phone)
    assert out[0] == P.Forward("sip:300@pbx", 302)
    assert "StopTone()" in names(out)
    assert phone.state == "ended"
    assert phone.history[0]["dir"] == "missed"
    assert phone.history[0]["reason"] == "forwarded (no answer)"
    # answered in time: no forward
    phone = P.Phone(desk={"forward_no_answer": "sip:300@pbx", "no_answer_seconds": 7})
    phone.handle(P.CallIncoming("sip:bob@b"), 10.0)
    phone.handle(P.Hook(True), 12.0)
    phone.handle_timer(17.5)
    assert phone.state == "in-call"
    assert not [c for c in drain(phone) if isinstance(c, P.Forward)]


def test_forward_on_busy_is_asked_by_the_session():
    assert P.Phone().busy_forward() is None
    assert P.Phone(desk={"forward_busy": "sip:400@pbx"}).busy_forward() == "sip:400@pbx"
    # busy forward does not touch a call to an idle phone
    phone = P.Phone(desk={"forward_busy": "sip:400@pbx"})
    phone.handle(P.CallIncoming("sip:bob@b"), 1.0)
    assert phone.state == "ringing"


def test_settings_from_the_menu_are_saved():
    phone = P.Phone(dial_domain="pbx.example")
    press(phone, "**#4", 0.0)
    assert phone.screen(0.0).title == "Settings"
    assert phone.screen(0.0).lines[0] == "1 DND: off"
    press(phone, "1", 1.0)
    out = drain(phone)
    assert out == [P.SaveSettings(dict(D.DeskSettings().to_dict(), dnd=True))]
    assert phone.screen(1.0).lines[0] == "1 DND: on"
    press(phone, "2", 2.0)
    assert phone.screen(2.0).title == "Forward all to"
    press(phone, "201#", 3.0)
    assert drain(phone)[0].settings["forward_always"] == "sip:201@pbx.example"
    assert phone.screen(3.0).lines[1] == "2 Fwd all: 201@pbx.example"
    press(phone, "5", 4.0)
    press(phone, "3#", 4.5)  # 3 s is below the minimum: refused with a notice
    assert drain(phone) == []
    assert phone.screen(4.5).lines[-1] == "5-120 seconds"
    press(phone, "545#", 5.0)
    assert drain(phone)[0].settings["no_answer_seconds"] == 45
    press(phone, "2#", 6.0)  # empty: forward always off again
    assert drain(phone)[0].settings["forward_always"] == ""
    press(phone, "*", 7.0)
    assert phone.screen(7.0).title == "Menu"


def test_saved_settings_are_checked():
    settings, problems = D.DeskSettings.from_dict(
        {"dnd": "yes", "forward_busy": "sip:a@b\r\nX: y", "no_answer_seconds": 1, "forward_always": "sip:ok@b"}
    )
    assert sorted(problems) == ["dnd", "forward_busy", "no_answer_seconds"]
    assert settings.always == "sip:ok@b" and settings.busy is None and not settings.dnd
    assert D.DeskSettings.from_dict(["junk"])[1] == ["<file>"]
    raises(ValueError, D.DeskSettings().set_forward, D.FORWARD_ALWAYS, "tel:123")


def test_message_waiting_lights_the_led_and_the_key_dials_the_account():
    phone = P.Phone()
    phone.handle(P.KeyPressed(P.KEY_VOICEMAIL), 0.0)
    assert phone.state == "idle" and phone.screen(0.0).lines[-1] == "no voicemail number"
    phone.handle(P.MessageSummary(True, 2, 8, "sip:*97@pbx"), 1.0)
    assert names(drain(phone)) == ["MessageLight(True)"]
    assert "Voicemail: 2 new" in phone.screen(1.0).lines
    phone.handle(P.MessageSummary(True, 3, 8, "sip:*97@pbx"), 2.0)
    assert drain(phone) == []  # still lit
    phone.handle(P.KeyPressed(P.KEY_VOICEMAIL), 3.0)
    assert names(drain(phone)) == ["Dial('sip:*97@pbx')"]
    phone = P.Phone(voicemail="sip:vm@pbx")
    phone.handle(P.MessageSummary(True, None, None, "sip:*97@pbx"), 1.0)
    assert "Voicemail waiting" in phone.screen(1.0).lines
    phone.handle(P.MessageSummary(False, 0, 9), 2.0)
    assert names(drain(phone)) == ["MessageLight(True)", "MessageLight(False)"]
    assert not [line for line in phone.screen(2.0).lines if "Voicemail" in line]
    phone.handle(P.KeyPressed(P.KEY_VOICEMAIL), 3.0)
    assert names(drain(phone)) == ["Dial('sip:vm@pbx')"]


def _call_with(phone, now, remote="sip:alice@a", verified=False, known=None, mismatch=False):
    phone.handle(P.CallIncoming(remote), now)
    phone.handle(P.Hook(True), now + 0.1)
    phone.handle(P.CallSecure("ab3d", "B32", verified, mismatch, "X255", PEER, known=known), now + 0.2)
    phone.handle(P.Hook(False), now + 1.5)


def test_history_keeps_the_trust_mark_of_the_call():
    phone = P.Phone()
    _call_with(phone, 0.0, known=False)
    assert phone.history[0]["mark"] == "new"
    _call_with(phone, 10.0, known=True)
    assert phone.history[0]["mark"] == "known"
    _call_with(phone, 20.0, verified=True, known=True)
    assert phone.history[0]["mark"] == "verified"
    _call_with(phone, 30.0, mismatch=True, known=False)
    assert phone.history[0]["mark"] == "alarm"
    phone.handle(P.CallIncoming("sip:plain@p"), 40.0)
    phone.handle(P.Hook(True), 40.1)
    phone.handle(P.Hook(False), 41.0)
    assert phone.history[0]["mark"] == "clear"
    press(phone, "**#2", 50.0)
    assert phone.screen(50.0).lines[1] == "00:00 clear"
    press(phone, "8", 50.5)
    assert phone.screen(50.5).lines[1] == "00:01 KEY ALARM"
    press(phone, "8", 51.0)
    assert phone.screen(51.0).lines[1] == "00:01 verified"
    press(phone, "88", 51.5)
    assert phone.screen(51.5).lines[1] == "00:01 new key"


def test_contacts_from_history_with_trust_marks_edit_and_delete():
    phone = P.Phone(dial_domain="pbx")
    _call_with(phone, 0.0, remote="sip:alice@a")
    drain(phone)
    press(phone, "**#20", 5.0)  # history, the newest entry, 0: save as a contact
    out = drain(phone)
    assert out == [P.SaveContacts([{"name": "alice", "uri": "sip:alice@a"}])]
    assert phone.screen(5.0).title == "Contacts 1/1"
    assert phone.screen(5.0).lines[0] == "? alice"  # no marks from the cache yet: new
    phone.handle(P.TrustMarks([("sip:alice@a", "verified")]), 6.0)
    assert phone.screen(6.0).lines[:3] == ("V alice", "alice@a", "verified")
    phone.handle(P.TrustMarks([("sip:alice@a", "known")]), 6.5)
    assert phone.screen(6.5).lines[2] == "known key"
    press(phone, "5", 7.0)
    assert phone.screen(7.0).title == "Contact number"
    press(phone, "42#", 7.5)
    assert drain(phone) == [P.SaveContacts([{"name": "alice", "uri": "sip:42@pbx"}])]
    assert phone.screen(7.5).lines[1] == "42@pbx"
    press(phone, "#", 8.0)
    assert names(drain(phone)) == ["Dial('sip:42@pbx')"]
    phone.handle(P.CallEnded("busy", 486), 8.5)
    phone.handle_timer(20.0)
    drain(phone)
    press(phone, "**#50", 21.0)
    assert phone.screen(21.0).title == "Delete contact?"
    press(phone, "#", 21.5)
    assert drain(phone) == [P.SaveContacts([])]
    assert phone.screen(21.5).lines[0] == "no contacts"


def test_a_contact_with_an_unresolved_key_alarm_shows_the_alarm_mark():
    phone = P.Phone(contacts=[{"name": "Alice", "uri": "sip:alice@a"}])
    phone.handle(P.TrustMarks([("sip:alice@a", "verified")]), 0.0)
    _call_with(phone, 1.0, remote="sip:alice@a", mismatch=True)  # hung up without confirming
    press(phone, "**#5", 10.0)
    assert phone.screen(10.0).lines[0] == "! Alice"
    assert phone.screen(10.0).lines[2] == "KEY ALARM"


def test_caller_saved_from_the_call_and_named_from_the_book():
    phone = P.Phone(contacts=[{"name": "Bob B", "uri": "sip:bob@b"}, {"name": 7, "uri": "sip:x@y"}])
    assert len(phone.contacts) == 1  # a bad entry is dropped
    phone.handle(P.CallIncoming("sip:bob@b"), 0.0)
    assert phone.screen(0.0).lines[0] == "Bob B"
    phone.handle(P.Hook(True), 0.1)
    phone.handle(P.KeyPressed(P.KEY_MENU), 0.5)
    assert phone.notice[0] == "already a contact"
    phone.handle(P.Hook(False), 1.0)
    phone.handle(P.CallIncoming("sip:carol@c", "Carol"), 10.0)
    phone.handle(P.Hook(True), 10.1)
    drain(phone)
    phone.handle(P.KeyPressed(P.KEY_MENU), 10.5)
    assert drain(phone) == [
        P.SaveContacts([{"name": "Bob B", "uri": "sip:bob@b"}, {"name": "Carol", "uri": "sip:carol@c"}])
    ]
    assert phone.state == "in-call"


def test_contact_book_helpers():
    book = C.load_contacts([{"name": "b", "uri": "sip:b@x"}, {"name": "a", "uri": "sip:a@x"}])
    assert [c["name"] for c in book] == ["a", "b"]
    assert C.add_contact(book, "bee", "sips:B@x;transport=tls") == 1  # the same address: renamed
    assert len(book) == 2 and book[1]["name"] == "bee"
    assert C.add_contact(book, "bad\n", "sip:c@x") is None
    assert not C.set_uri(book, 0, "sip:b@x")  # another contact has it
    assert C.call_mark(False, None, P.SAS_ALARMS, None, True) == "new"


def test_a_named_second_call_is_forwarded_on_busy_or_refused_by_dnd():
    phone = P.Phone(call_waiting=False, desk={"forward_busy": "sip:400@pbx"})
    phone.handle(P.CallIncoming("sip:bob@b", call="c1"), 0.0)
    phone.handle(P.Hook(True), 0.1)
    drain(phone)
    phone.handle(P.CallIncoming("sip:carol@c", call="c2"), 1.0)
    assert drain(phone) == [P.Forward("sip:400@pbx", 302, "c2")]
    assert phone.state == "in-call"
    phone = P.Phone(desk={"dnd": True})
    phone.handle(P.CallIncoming("sip:carol@c", call="c3"), 1.0)
    assert names(drain(phone))[0] == "Busy('c3')"
