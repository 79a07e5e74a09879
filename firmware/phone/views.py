"""What each phone state shows (sans-I/O, MicroPython-clean): screen builders that read only the phone's
public, read-only view model (Phone.view(now)) and return a firmware.screens.Screen."""

from firmware.events import Event
from firmware.phone import contacts, desk, history, menu
from firmware.phone.states import (
    ALARM,
    ALARM_AUTH_FAILURES,
    ALARM_CACHE_MISMATCH,
    ALARM_DOWNGRADE,
    ALARM_GOCLEAR,
    ALARM_NEW_KEY_FOR_CONTACT,
    ALARM_NO_ZRTP,
    ALARM_NOT_SECURE,
    ALARM_PEER_STOPPED_ENCRYPTING,
    ALARM_REKEY_FAILED,
    ALARM_UNTRUSTED_MITM,
    ALARM_ZRTP_FAILED,
    ALARM_ZRTP_HASH_MISMATCH,
    CALL_WAITING,
    CALLING,
    CONFERENCE,
    DIALING,
    ENDED,
    ERROR,
    ERROR_PROVISIONING,
    ERROR_REGISTRATION,
    ERROR_TRUST_CACHE,
    HELD,
    IDLE,
    IN_CALL,
    MENU,
    RINGING,
    SAS_ALARMS,
    SECURE,
    VERIFIED,
    lookup,
)
from firmware.screens import Screen

ALARM_TITLE = (
    (ALARM_CACHE_MISMATCH, "KEY CHANGED"),
    (ALARM_NEW_KEY_FOR_CONTACT, "NEW KEY"),
    (ALARM_ZRTP_HASH_MISMATCH, "HASH MISMATCH"),
    (ALARM_DOWNGRADE, "DOWNGRADE"),
    (ALARM_GOCLEAR, "GOCLEAR"),
    (ALARM_NOT_SECURE, "NOT SECURE"),
    (ALARM_NO_ZRTP, "NOT SECURE"),
    (ALARM_ZRTP_FAILED, "NOT SECURE"),
    (ALARM_PEER_STOPPED_ENCRYPTING, "NOT SECURE"),
    (ALARM_AUTH_FAILURES, "TAMPERING?"),
    (ALARM_UNTRUSTED_MITM, "UNKNOWN PBX"),
    (ALARM_REKEY_FAILED, "REKEY FAILED"),
)
ALARM_TEXT = (
    (ALARM_CACHE_MISMATCH, "peer key changed"),
    (ALARM_ZRTP_HASH_MISMATCH, "zrtp-hash mismatch"),
    (ALARM_DOWNGRADE, "downgrade mid-call"),
    (ALARM_GOCLEAR, "peer sent GoClear"),
    (ALARM_NOT_SECURE, "not encrypted!"),
    (ALARM_NO_ZRTP, "peer has no ZRTP"),
    (ALARM_ZRTP_FAILED, "ZRTP failed"),
    (ALARM_PEER_STOPPED_ENCRYPTING, "peer stopped encrypt"),
    (ALARM_AUTH_FAILURES, "forged packets"),
    (ALARM_NEW_KEY_FOR_CONTACT, "contact's key is new"),
    (ALARM_UNTRUSTED_MITM, "SAS relay refused"),
    (ALARM_REKEY_FAILED, "old keys kept"),
)


class ViewModel(Event):
    """What the screens may know of the phone at one moment: an immutable snapshot (the event base gives
    immutability, equality and repr). `notice` is the notice text still showing, or None; `call_seconds`
    the time since the media came up, or None; `errors`, `history` are tuples; `menu_page`, `menu_index`
    the menu's open page and picked entry. The COPIED fields are the Phone's attributes of the same name."""

    # The Phone's attributes the view model copies as they are.
    COPIED = (
        "state",
        "identity",
        "digits",
        "remote",
        "remote_name",
        "far_ringing",
        "to_server_only",
        "muted",
        "sas",
        "alarm_reason",
        "alarm_acknowledged",
        "end_reason",
        "end_duration",
        "our_zid",
        "verified",
        "secure",
        "leg_state",
    )
    # The desk features: the menu's typed digits and edited field, the address book with each contact's
    # trust mark, the desk settings (DeskSettings.to_dict() and its idle line), the last MessageSummary.
    DESK = ("menu_typed", "menu_field", "contacts", "contact_marks", "desk", "desk_line", "messages", "menu_entry")
    __slots__ = COPIED + ("notice", "call_seconds", "errors", "history", "menu_page", "menu_index", "other") + DESK

    def __init__(self, **fields):
        for name in self.__slots__:
            self._set(name, fields[name])


class Leg(Event):
    """The second call as the screens see it (ViewModel.other): `label` (name or address), `state` (its own:
    ringing, in-call, secure, verified, alarm), `role` ("waiting", "held" or "conference"), its `sas`,
    `verified` and `alarm_reason`."""

    __slots__ = ("label", "state", "role", "sas", "verified", "alarm_reason")

    def __init__(self, label, state, role, sas=None, verified=False, alarm_reason=None):
        self._init(self.__slots__, (label, state, role, sas, verified, alarm_reason))


class NameEntry(Event):
    """A name being typed by multi-tap (ViewModel.menu_entry on the menu's NAME page): the `text` shown (the
    pending letter last), the pending key's `cycle` and the `index` of the letter picked in it (None when
    no letter is pending), and the `limit` of characters."""

    __slots__ = ("text", "cycle", "index", "limit")

    def __init__(self, text, cycle, index, limit):
        self._init(self.__slots__, (text, cycle, index, limit))


def format_duration(seconds):
    seconds = int(seconds)
    if seconds < 0:
        seconds = 0
    if seconds >= 3600:
        return "{}:{:02d}:{:02d}".format(seconds // 3600, (seconds // 60) % 60, seconds % 60)
    return "{:02d}:{:02d}".format(seconds // 60, seconds % 60)


def zid_fingerprint(zid_hex):
    """A ZID (hex) as groups of four hex digits, at most three groups per row: a list of rows."""
    groups = [zid_hex[i : i + 4] for i in range(0, len(zid_hex), 4)]
    rows = []
    for i in range(0, len(groups), 3):
        rows.append(" ".join(groups[i : i + 3]))
    return rows


def display_uri(uri):
    """A URI as shown on a small display: without the 'sip:' scheme."""
    if uri is None:
        return "unknown"
    if uri.startswith("sip:"):
        return uri[4:]
    return uri


def screen(view):
    """The Screen for a ViewModel."""
    return _SCREENS[view.state](view)


def _remote_label(view):
    if view.remote_name:
        return view.remote_name
    return display_uri(view.remote)


def _duration_line(view):
    if view.call_seconds is None:
        return "00:00"
    return format_duration(view.call_seconds)


def _call_flags(view):
    flags = ["MUTED"] if view.muted else []
    if view.other is not None and view.other.role == "held":
        flags.append("held: " + view.other.label)  # the hold key swaps to it
    return flags


def _trust_mark(state, sas, verified, alarm_reason):
    """One leg's trust in a word or two: what the conference screen shows per leg."""
    if state == ALARM:
        return lookup(ALARM_TITLE, alarm_reason, "ALARM")
    if verified:
        return "verified"
    if sas is not None:
        return "SAS " + sas
    return "not secure"


def _screen_call_waiting(view):
    lines = [view.other.label if view.other is not None else "unknown", "hold=take back=busy"]
    lines.append(
        "{}: {}".format(_trust_mark(view.leg_state, view.sas, view.verified, view.alarm_reason), _remote_label(view))
    )
    return Screen("Call waiting", lines + (["MUTED"] if view.muted else []), alert=view.leg_state == ALARM)


def _screen_held(view):
    return Screen("On hold", [_remote_label(view), _duration_line(view), "hold: resume"])


def _screen_conference(view):
    """Both legs with their own trust mark; "secure" only when both legs are (a '>' marks the leg the trust
    button confirms next)."""
    other = view.other
    front_mark = _trust_mark(view.leg_state, view.sas, view.verified, view.alarm_reason)
    other_mark = _trust_mark(other.state, other.sas, other.verified, other.alarm_reason)
    front_pending = view.sas is not None and not view.verified and view.leg_state != ALARM
    other_pending = other.sas is not None and not other.verified and other.state != ALARM
    both_verified = view.verified and other.verified
    both_secure = view.leg_state in (SECURE, VERIFIED) and other.state in (SECURE, VERIFIED)
    if both_verified:
        summary = "both verified"
    elif both_secure:
        summary = "secure: compare SAS"
    else:
        summary = "NOT all secure"
    # The verdict first (a 16x2 LCD shows only the title and one line), then each leg, its mark before its
    # name so that a long name cannot push it off the display.
    lines = [
        summary,
        "{}{}: {}".format(">" if front_pending else " ", front_mark, _remote_label(view)),
        "{}{}: {}".format(">" if other_pending and not front_pending else " ", other_mark, other.label),
    ]
    alert = ALARM in (view.leg_state, other.state)
    return Screen("Conference", lines + (["MUTED"] if view.muted else []), alert=alert)


def _messages_line(messages):
    """The idle screen's voicemail line (RFC 3842 §3.5 counts), or None when no message waits."""
    if messages is None or not messages.waiting:
        return None
    if messages.new is not None:
        return "Voicemail: {} new".format(messages.new)
    return "Voicemail waiting"


def _screen_idle(view):
    lines = ["Ready"]
    if view.identity:
        lines.append(display_uri(view.identity))
    for extra in (view.desk_line, _messages_line(view.messages)):
        if extra:
            lines.append(extra)
    lines.append(view.notice if view.notice is not None else "dial, # to call")
    return Screen("Sotto", lines)


def _held_line(view):
    """Hold, then dial: the call on hold, under the number being dialed or called."""
    if view.other is not None and view.other.role == "held":
        return ["held: " + view.other.label]
    return []


def _screen_dialing(view):
    return Screen("Dial", [view.digits + "_", "# call  trust: del"] + _held_line(view))


def _screen_calling(view):
    lines = [display_uri(view.remote), "ringing..." if view.far_ringing else "connecting..."]
    return Screen("Calling", lines + _held_line(view))


def _screen_ringing(view):
    return Screen("Incoming call", [_remote_label(view), "lift or key: answer", "hangup: decline"])


def _screen_in_call(view):
    status = "to server only" if view.to_server_only else "not secure yet"
    return Screen("In call", [_remote_label(view), _duration_line(view), status] + _call_flags(view))


def _screen_secure(view):
    return Screen("Compare SAS", ["read it aloud,", "press to confirm"], big=view.sas)


def _screen_verified(view):
    lines = [_remote_label(view), _duration_line(view), "SAS " + (view.sas or "")]
    return Screen("Verified", lines + _call_flags(view))


def _screen_alarm(view):
    reason = lookup(ALARM_TEXT, view.alarm_reason, view.alarm_reason or "security alarm")
    title = lookup(ALARM_TITLE, view.alarm_reason, "ALARM")
    if view.alarm_reason in SAS_ALARMS and view.sas is not None:
        return Screen(title, [reason, "same SAS? press;", "hold 2s: hang up"], big=view.sas, alert=True)
    lines = [reason, _remote_label(view)]
    lines.append("acknowledged" if view.alarm_acknowledged else "press: silence")
    return Screen(title, lines + _call_flags(view), alert=True)


def _screen_ended(view):
    return Screen("Call ended", [view.end_reason or "ended", format_duration(view.end_duration)])


def _screen_error(view):
    if not view.errors:
        return Screen("Error", ["no error"], alert=True)
    kind, title, detail = view.errors[0]
    lines = [detail] if detail else []
    if kind == ERROR_REGISTRATION:
        lines.append("calls by IP only")
    elif kind == ERROR_PROVISIONING:  # the configuration in use is kept: calls work as before
        lines.append("config kept")
    elif kind != ERROR_TRUST_CACHE:  # a lost cache still lets you call; it only forgot who you trusted
        lines.append("calls impossible")
    return Screen(title, lines, alert=True)


def _history_line(entry):
    arrow = {"out": "->", "in": "<-", "missed": "!<"}.get(entry.get("dir"), "  ")
    return "{} {}".format(arrow, display_uri(entry.get("remote")))


# What the history and the address book say for each trust mark (firmware.phone.contacts.MARKS).
MARK_TEXT = (
    (contacts.MARK_VERIFIED, "verified"),
    (contacts.MARK_KNOWN, "known key"),
    (contacts.MARK_NEW, "new key"),
    (contacts.MARK_ALARM, "KEY ALARM"),
    (contacts.MARK_CLEAR, "clear"),
)


def _history_detail(entry):
    if entry.get("untrusted"):
        trust = "UNTRUSTED"
    elif entry.get("mark") in contacts.MARKS:
        trust = lookup(MARK_TEXT, entry.get("mark"))
    elif entry.get("verified"):
        trust = "verified"
    elif entry.get("secure"):
        trust = "secure"
    else:
        trust = "clear"
    return format_duration(entry.get("duration", 0)) + " " + trust


def _menu_zid(view):
    if view.our_zid:
        return Screen("Our ZID", zid_fingerprint(view.our_zid) + ["* back"])
    return Screen("Our ZID", ["not known yet", "* back"])


def _menu_history(view):
    if not view.history:
        return Screen("History", ["no calls yet", "* back"])
    entry = view.history[view.menu_index]
    title = "History {}/{}".format(view.menu_index + 1, len(view.history))
    return Screen(title, [_history_line(entry), _history_detail(entry), "2/8 move # call", "0 save contact"])


def _menu_reset(view):
    peers = history.trusted_peers(view.history)
    if not peers:
        return Screen("Reset trust", ["no known peers", "* back"])
    zid, remote = peers[view.menu_index]
    if view.menu_page == menu.CONFIRM_RESET:
        return Screen("Reset trust?", [display_uri(remote), zid[:12], "# yes  * no"])
    title = "Reset trust {}/{}".format(view.menu_index + 1, len(peers))
    return Screen(title, [display_uri(remote), zid[:12], "2/8 move # pick"])


def _on_off(flag):
    return "on" if flag else "off"


def _target(uri):
    return display_uri(uri) if uri else "-"


def _menu_settings(view):
    settings = view.desk
    lines = [
        "1 DND: " + _on_off(settings["dnd"]),
        "2 Fwd all: " + _target(settings["forward_always"]),
        "3 Fwd busy: " + _target(settings["forward_busy"]),
        "4 No answer: " + _target(settings["forward_no_answer"]),
        "5 after {} s".format(settings["no_answer_seconds"]),
    ]
    if view.notice is not None:
        lines[-1] = view.notice
    return Screen("Settings", lines)


_EDIT_TITLES = (
    (desk.FORWARD_ALWAYS, "Forward all to"),
    (desk.FORWARD_BUSY, "Forward busy to"),
    (desk.FORWARD_NO_ANSWER, "No answer: to"),
    (menu.FIELD_SECONDS, "No answer after s"),
    (menu.FIELD_CONTACT, "Contact number"),
    (menu.FIELD_NEW_NUMBER, "New contact: number"),
)
_NAME_TITLES = (
    (menu.FIELD_NEW, "New contact: name"),
    (menu.FIELD_RENAME, "Contact name"),
    (menu.FIELD_SAVE, "Save number: name"),
)


def _menu_name(view):
    """The name being typed: the text with the pending letter (then a cursor once it is committed), the
    letters of the pending key with the picked one in brackets (or the count of characters), the keys."""
    entry = view.menu_entry
    if entry.cycle is None:
        lines = [entry.text + "_", "{}/{} letters".format(len(entry.text), entry.limit)]
    else:
        cycle = entry.cycle
        picked = cycle[entry.index]
        lines = [entry.text, cycle[: entry.index] + "[" + picked + "]" + cycle[entry.index + 1 :]]
    lines.append("# save  * erase")
    if view.notice is not None:
        lines[-1] = view.notice
    return Screen(lookup(_NAME_TITLES, view.menu_field, "Name"), lines)


def _menu_edit(view):
    hint = "# save  * back"
    if view.menu_field in desk.FORWARD_KINDS:
        hint = "# save (empty: off)"
    return Screen(lookup(_EDIT_TITLES, view.menu_field, "Edit"), [view.menu_typed + "_", hint, "* back"])


def _contact_line(view, index):
    contact = view.contacts[index]
    return contacts.mark_sign(view.contact_marks[index]) + " " + contact["name"]


def _menu_contacts(view):
    if not view.contacts:
        return Screen("Contacts", ["no contacts", "add: history 0", "* back", "1 new contact"])
    index = min(view.menu_index, len(view.contacts) - 1)
    contact = view.contacts[index]
    mark = lookup(MARK_TEXT, view.contact_marks[index], "")
    if view.menu_page == menu.CONFIRM_DELETE:
        return Screen("Delete contact?", [contact["name"], display_uri(contact["uri"]), "# yes  * no"])
    title = "Contacts {}/{}".format(index + 1, len(view.contacts))
    lines = [_contact_line(view, index), display_uri(contact["uri"]), mark, "2/8 # call 5 edit 0 del"]
    if view.notice is not None:
        lines[-1] = view.notice
    lines.append("1 new 4 name")  # appended: the lines above keep their places (display log contract)
    return Screen(title, lines)


def _menu_main(view):
    lines = ["1 Our ZID", "2 History", "3 Reset trust"]
    lines.append(view.notice if view.notice is not None else "* back")
    lines.append("4 Settings 5 Contacts")  # appended: the lines above keep their places (display log contract)
    return Screen("Menu", lines)


_MENU_PAGES = {
    menu.MAIN: _menu_main,
    menu.ZID: _menu_zid,
    menu.HISTORY: _menu_history,
    menu.RESET: _menu_reset,
    menu.CONFIRM_RESET: _menu_reset,
    menu.SETTINGS: _menu_settings,
    menu.EDIT: _menu_edit,
    menu.CONTACTS: _menu_contacts,
    menu.CONFIRM_DELETE: _menu_contacts,
    menu.NAME: _menu_name,
}


def _screen_menu(view):
    return _MENU_PAGES[view.menu_page](view)


_SCREENS = {
    IDLE: _screen_idle,
    DIALING: _screen_dialing,
    CALLING: _screen_calling,
    RINGING: _screen_ringing,
    IN_CALL: _screen_in_call,
    SECURE: _screen_secure,
    VERIFIED: _screen_verified,
    ALARM: _screen_alarm,
    ENDED: _screen_ended,
    MENU: _screen_menu,
    ERROR: _screen_error,
    CALL_WAITING: _screen_call_waiting,
    HELD: _screen_held,
    CONFERENCE: _screen_conference,
}
