"""Contact names typed on the keypad by multi-tap (issue 15): the text entry on its own, then the menu's
new contact, rename, and "save number" after a call, all on the fake clock (`now` passed in). Plain tests:
also run under MicroPython."""

from firmware import phone as P
from firmware.phone import text_entry as T

MICROPYTHON = True


def drain(phone):
    out = []
    while True:
        command = phone.next_command()
        if command is None:
            return out
        out.append(command)


def tap(phone, keys, now, gap=0.2):
    """Press `keys` `gap` seconds apart from `now` (the multi-tap timing); returns the time after the last."""
    for key in keys:
        phone.handle(P.KeyPressed(key), now)
        now += gap
    return now


def settle(phone, now):
    """Let the pending letter's timeout pass (the phone's own timer), as the run loop would."""
    when = phone.get_timer()
    assert when is not None and when <= now + T.MULTITAP_TIMEOUT
    phone.handle_timer(when)
    return when


def typed(entry, keys, now, gap=0.2):
    for key in keys:
        entry.key(key, now)
        now += gap
    return now


def test_the_same_key_cycles_within_the_timeout_and_another_key_commits():
    entry = T.TextEntry()
    entry.key("5", 0.0)
    assert entry.shown() == "J" and entry.text == ""  # the first letter of a name is a capital
    entry.key("5", 0.5)
    entry.key("5", 1.4)  # 0.9 s after the last press: still the same letter, cycling
    assert entry.shown() == "L"
    entry.key("6", 1.6)  # another key commits L and starts a lower-case letter
    assert entry.text == "L" and entry.shown() == "Lm"
    entry.handle_timer(2.5)
    assert entry.text == "L" and entry.shown() == "Lm"  # not yet: MULTITAP_TIMEOUT after the last press
    entry.handle_timer(2.6)
    assert entry.text == "Lm" and entry.pending() is None
    entry.key("6", 2.7)
    entry.handle_timer(3.7)
    entry.key("6", 3.8)  # the same key after the timeout: a new letter
    assert entry.shown() == "Lmmm"


def test_the_cycle_holds_the_digit_and_the_other_case():
    assert T.letters("2", True) == "ABC2abc"
    assert T.letters("7", False) == "pqrs7PQRS"
    assert T.letters("0", False) == " 0"
    assert T.letters("1", True)[-1] == "1"
    assert T.letters("*", False) is None
    entry = T.TextEntry()
    typed(entry, "2222", 0.0)
    assert entry.shown() == "2"
    typed(entry, "222", 0.8)
    assert entry.shown() == "c"  # seven presses in all: A B C 2 a b c
    entry = T.TextEntry("Ann")
    typed(entry, "0", 0.0)
    entry.handle_timer(5.0)
    typed(entry, "7", 6.0)
    assert entry.shown() == "Ann P"  # after a space: a capital again


def test_erase_takes_back_the_pending_letter_then_whole_characters():
    entry = T.TextEntry("Zoe\u0308 \U0001f44d\U0001f3fd")  # e + combining diaeresis, thumbs up + skin tone
    entry.key("2", 0.0)
    assert entry.erase() and entry.shown() == "Zoe\u0308 \U0001f44d\U0001f3fd"
    assert entry.erase() and entry.text == "Zoe\u0308 "
    assert entry.erase() and entry.text == "Zoe\u0308"
    assert entry.erase() and entry.text == "Zo"  # the e and its mark together
    family = "A\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one ZWJ sequence
    assert T.without_last_character(family) == "A"
    assert T.without_last_character("\u0301") == ""  # a lone mark goes, nothing breaks
    empty = T.TextEntry()
    assert not empty.erase()


def test_the_text_is_bounded():
    entry = T.TextEntry("x" * 40, limit=32)
    assert len(entry.text) == 32
    assert not entry.key("2", 0.0)
    assert entry.shown() == "x" * 32
    entry = T.TextEntry("x" * 31, limit=32)
    assert entry.key("2", 0.0) and entry.key("2", 0.5)
    assert not entry.key("3", 0.7)  # commits the 32nd, then full
    assert len(entry.value()) == 32


def test_value_strips_spaces_and_commits():
    entry = T.TextEntry()
    now = typed(entry, "0", 0.0)
    entry.handle_timer(now + 1)
    typed(entry, "44", 5.0)
    assert entry.value() == "H"


def open_contacts(phone, now):
    tap(phone, "**#5", now, gap=0.0)
    assert phone.state == "menu"


def test_a_new_contact_named_and_numbered_on_the_keypad():
    phone = P.Phone(dial_domain="pbx")
    open_contacts(phone, 0.0)
    assert phone.screen(0.0).lines[3] == "1 new contact"
    tap(phone, "1", 1.0)
    screen = phone.screen(1.0)
    assert screen.title == "New contact: name" and screen.lines[0] == "_"
    now = tap(phone, "2", 2.0)  # A
    assert phone.screen(now).lines[:2] == ("A", "[A]BC2abc")
    now = tap(phone, "55", now + 0.2)  # (commits A) k
    now = tap(phone, "444", now + 0.2)  # (commits k) i
    assert phone.screen(now).lines[1] == "gh[i]4GHI"
    now = settle(phone, now)  # the timeout commits i
    assert phone.screen(now).lines[:2] == ("Aki_", "3/32 letters")
    assert not drain(phone)
    tap(phone, "#", now + 0.5)
    assert phone.screen(now + 0.5).title == "New contact: number"
    tap(phone, "42#", now + 1.0, gap=0.0)
    assert drain(phone) == [P.SaveContacts([{"name": "Aki", "uri": "sip:42@pbx"}])]
    screen = phone.screen(now + 1.0)
    assert screen.title == "Contacts 1/1" and screen.lines[0] == "? Aki" and screen.lines[3] == "contact saved"
    # a new contact with a number the book already has is not a second entry
    tap(phone, "1", now + 2.0)
    later = tap(phone, "3#", now + 3.0)
    tap(phone, "42#", later, gap=0.0)
    assert not drain(phone)
    assert phone.notice[0] == "already a contact" and len(phone.contacts) == 1


def test_rename_keeps_the_number_and_the_order_by_name():
    book = [{"name": "Bob", "uri": "sip:bob@b"}, {"name": "Carol", "uri": "sip:carol@c"}]
    phone = P.Phone(contacts=book)
    open_contacts(phone, 0.0)
    tap(phone, "8", 0.5)  # Carol
    tap(phone, "4", 1.0)
    screen = phone.screen(1.0)
    assert screen.title == "Contact name" and screen.lines[0] == "Carol_"
    now = tap(phone, "*****", 2.0)  # erase all five letters
    assert phone.screen(now).lines[0] == "_"
    now = tap(phone, "2", now)  # A
    now = tap(phone, "#", now)  # '#' commits the pending letter and saves
    assert drain(phone) == [P.SaveContacts([{"name": "A", "uri": "sip:carol@c"}, {"name": "Bob", "uri": "sip:bob@b"}])]
    assert phone.screen(now).title == "Contacts 1/2" and phone.screen(now).lines[0] == "? A"  # the renamed one
    # back out of a rename: '*' on an empty name leaves, nothing saved
    tap(phone, "4", now + 1.0)
    tap(phone, "**", now + 2.0)
    assert phone.screen(now + 2.0).title == "Contacts 1/2" and not drain(phone)
    # '#' with nothing typed saves nothing
    tap(phone, "4*#", now + 3.0)
    assert not drain(phone) and phone.screen(now + 4.0).title == "Contact name"


def test_the_trust_button_saves_and_erases_in_the_name_entry():
    phone = P.Phone(contacts=[{"name": "Bob", "uri": "sip:bob@b"}])
    open_contacts(phone, 0.0)
    tap(phone, "4", 1.0)
    phone.handle(P.TrustPressed(long=True), 2.0)  # erase
    phone.handle(P.TrustPressed(), 2.5)  # save
    assert drain(phone) == [P.SaveContacts([{"name": "Bo", "uri": "sip:bob@b"}])]


def test_unicode_names_are_edited_whole_and_saved():
    phone = P.Phone(contacts=[{"name": "Zoë Ŝtefan", "uri": "sip:zoe@z"}])
    open_contacts(phone, 0.0)
    tap(phone, "4", 1.0)
    assert phone.screen(1.0).lines[0] == "Zoë Ŝtefan_"
    now = tap(phone, "*******", 2.0)
    assert phone.screen(now).lines[0] == "Zoë_"  # seven characters, whatever their encoding
    now = tap(phone, "*", now)
    now = tap(phone, "3333", now)  # d e f 3
    now = tap(phone, "#", now)
    assert drain(phone) == [P.SaveContacts([{"name": "Zo3", "uri": "sip:zoe@z"}])]


def test_save_number_after_a_call_from_the_ended_screen():
    phone = P.Phone()
    phone.handle(P.CallIncoming("sip:dave@d"), 0.0)
    phone.handle(P.Hook(True), 0.5)
    phone.handle(P.Hook(False), 3.0)
    assert phone.state == "ended"
    drain(phone)
    tap(phone, [P.KEY_MENU], 3.5)
    screen = phone.screen(3.5)
    assert phone.state == "menu" and screen.title == "Save number: name" and screen.lines[0] == "dave_"
    assert phone.get_timer() == 3.5 + P.MENU_TIMEOUT  # the ended screen's own timeout is gone
    now = tap(phone, "*", 4.0)
    now = tap(phone, "#", now)
    assert drain(phone) == [P.SaveContacts([{"name": "dav", "uri": "sip:dave@d"}])]
    assert phone.screen(now).title == "Contacts 1/1"
    # the same number again: the menu key renames the contact that has it
    phone.handle(P.KeyPressed(P.KEY_HANGUP), now)
    phone.handle(P.CallIncoming("sip:dave@d"), 20.0)
    assert phone.screen(20.0).lines[0] == "dav"  # named from the book
    phone.handle(P.Hook(True), 20.5)
    phone.handle(P.Hook(False), 21.0)
    tap(phone, [P.KEY_MENU], 21.5)
    assert phone.screen(21.5).title == "Contact name" and phone.screen(21.5).lines[0] == "dav_"
    # '*' on an empty save-number page goes to the main menu
    phone = P.Phone()
    phone.handle(P.CallIncoming("sip:e@e"), 0.0)
    phone.handle(P.KeyPressed(P.KEY_HANGUP), 0.5)
    tap(phone, [P.KEY_MENU], 1.0)
    tap(phone, "**", 1.5)
    assert phone.screen(2.0).title == "Menu"


def test_a_menu_timeout_mid_letter_leaves_without_saving():
    phone = P.Phone(contacts=[{"name": "Bob", "uri": "sip:bob@b"}])
    open_contacts(phone, 0.0)
    tap(phone, "42", 1.0)
    phone.handle_timer(2.3)  # the letter commits
    assert phone.screen(2.3).lines[0] == "Bob" + "a" + "_"
    phone.handle_timer(1.2 + P.MENU_TIMEOUT)
    assert phone.state == "idle" and not drain(phone)
