"""The phone's menu (sans-I/O, MicroPython-clean): our ZID fingerprint, the call history (dial an entry
again, save it as a contact), resetting the trust in a peer, the desk settings (do not disturb, call
forward) and the address book (call, edit the number, delete). The menu only moves between its pages and
collects typed digits; what a key asks the phone to do comes back as an action (verb, argument) or None:
(CLOSE, None), (DIAL, uri), (RESET_TRUST, peer_zid), (ADD_CONTACT, history entry), (TOGGLE_DND, None),
(SET_FORWARD, (kind, digits)), (SET_NO_ANSWER, digits), (SET_CONTACT_NUMBER, (index, digits)),
(DELETE_CONTACT, index), (NEW_CONTACT, (name, digits)), (RENAME_CONTACT, (index, name)),
(SAVE_NUMBER, (uri, name)).

Names are typed on the NAME page by multi-tap (firmware.phone.text_entry): the digits type letters, '#'
saves, '*' (or the back key) erases the last letter and, with nothing left to erase, goes back."""

from firmware.phone.contacts import MAX_NAME
from firmware.phone.desk import FORWARD_ALWAYS, FORWARD_BUSY, FORWARD_NO_ANSWER
from firmware.phone.history import trusted_peers
from firmware.phone.states import KEY_BACK, KEY_HANGUP, KEY_MENU, MAX_DIGITS
from firmware.phone.text_entry import TextEntry

MAIN = "main"
ZID = "zid"
HISTORY = "history"
RESET = "reset"
CONFIRM_RESET = "confirm-reset"
SETTINGS = "settings"
EDIT = "edit"  # typing a number: a forward target, the no-answer seconds or a contact's number
CONTACTS = "contacts"
CONFIRM_DELETE = "confirm-delete"
NAME = "name"  # typing a contact's name by multi-tap (Menu.entry)

CLOSE = "close"
DIAL = "dial"
RESET_TRUST = "reset-trust"
ADD_CONTACT = "add-contact"
TOGGLE_DND = "toggle-dnd"
SET_FORWARD = "set-forward"
SET_NO_ANSWER = "set-no-answer"
SET_CONTACT_NUMBER = "set-contact-number"
DELETE_CONTACT = "delete-contact"
NEW_CONTACT = "new-contact"
RENAME_CONTACT = "rename-contact"
SAVE_NUMBER = "save-number"

# What an EDIT page edits (Menu.field).
FIELD_SECONDS = "seconds"
FIELD_CONTACT = "contact"
FIELD_NEW_NUMBER = "new-number"  # the number of a new contact, after its name
# What a NAME page names (Menu.field).
FIELD_NEW = "new"  # a new contact (its number comes next)
FIELD_RENAME = "rename"  # contact `index`
FIELD_SAVE = "save"  # the address Menu.uri (the call that just ended): a new contact, or renamed
_SETTINGS_KEYS = (("2", FORWARD_ALWAYS), ("3", FORWARD_BUSY), ("4", FORWARD_NO_ANSWER), ("5", FIELD_SECONDS))

_CLOSE_KEYS = (KEY_HANGUP, KEY_MENU)
_BACK_KEYS = ("*", KEY_BACK)
_MOVE = (("2", -1), ("8", 1))
_BACK_TO = ((CONFIRM_RESET, RESET), (EDIT, None), (CONFIRM_DELETE, CONTACTS))


class Menu:
    """The open page, the picked entry of a list, and what an EDIT page edits with the digits typed; on a
    NAME page the name being typed (`entry`, a TextEntry), with the new contact's `name` kept while its
    number is typed and the `uri` a FIELD_SAVE page saves."""

    __slots__ = ("page", "index", "field", "typed", "entry", "name", "uri")

    def __init__(self):
        self.page = MAIN
        self.index = 0
        self.field = None
        self.typed = ""
        self.entry = None
        self.name = None
        self.uri = None

    def key(self, key, history, book=(), now=0.0):
        """Apply one key at `now` (multi-tap timing); `history` is the phone's call history, `book` its
        contacts. Returns an action or None."""
        if key in _CLOSE_KEYS:
            return (CLOSE, None)
        if self.page == NAME:
            return self._on_name(key, now)
        if key in _BACK_KEYS:
            return self._back()
        return _PAGE_KEYS[self.page](self, key, history, book)

    def name_entry(self, field, text, index=0, uri=None):
        """Open the NAME page: a new contact, renaming contact `index`, or saving `uri` (FIELD_SAVE)."""
        self.page = NAME
        self.field = field
        self.index = index
        self.uri = uri
        self.entry = TextEntry(text or "", MAX_NAME)

    def get_timer(self):
        """When the pending multi-tap letter commits, or None."""
        return self.entry.get_timer() if self.page == NAME and self.entry is not None else None

    def handle_timer(self, now):
        if self.page == NAME and self.entry is not None:
            self.entry.handle_timer(now)

    def _on_name(self, key, now):
        entry = self.entry
        if key in _BACK_KEYS:
            if not entry.erase():
                self._leave_name()
            return None
        if key == "#":
            name = entry.value()
            if not name:
                return None  # nothing typed: there is no contact without a name
            field = self.field
            self._leave_name()
            if field == FIELD_NEW:
                self.name = name
                self.page = EDIT
                self.field = FIELD_NEW_NUMBER
                self.typed = ""
                return None
            if field == FIELD_RENAME:
                return (RENAME_CONTACT, (self.index, name))
            return (SAVE_NUMBER, (self.uri, name))
        if len(key) == 1:
            entry.key(key, now)
        return None

    def _leave_name(self):
        self.page = MAIN if self.field == FIELD_SAVE else CONTACTS
        self.entry = None

    def _back(self):
        if self.page == MAIN:
            return (CLOSE, None)
        if self.page == EDIT:
            self.page = CONTACTS if self.field in (FIELD_CONTACT, FIELD_NEW_NUMBER) else SETTINGS
            self.typed = ""
            self.name = None
            return None
        back = MAIN
        for page, to in _BACK_TO:
            if page == self.page:
                back = to
        self.page = back
        return None

    def _open(self, page):
        self.page = page
        self.index = 0

    def _on_main(self, key, history, book):
        page = {"1": ZID, "2": HISTORY, "3": RESET, "4": SETTINGS, "5": CONTACTS}.get(key)
        if page is not None:
            self._open(page)
        return None

    def _on_zid(self, key, history, book):
        return None

    def _move(self, key, count):
        for move_key, step in _MOVE:
            if key == move_key:
                self.index = (self.index + step) % count
                return True
        return False

    def _on_list(self, key, history, book):
        entries = history if self.page == HISTORY else trusted_peers(history)
        if not entries:
            return None
        self.index = min(self.index, len(entries) - 1)
        if self._move(key, len(entries)):
            return None
        if self.page == HISTORY and key == "0":
            return (ADD_CONTACT, entries[self.index]) if entries[self.index].get("remote") else None
        if key != "#":
            return None
        if self.page == RESET:
            self.page = CONFIRM_RESET
            return None
        remote = entries[self.index].get("remote")
        return (DIAL, remote) if remote else None

    def _on_confirm_reset(self, key, history, book):
        if key != "#":
            return None
        self.page = MAIN
        peers = trusted_peers(history)
        if self.index < len(peers):
            return (RESET_TRUST, peers[self.index][0])
        return None

    def _on_settings(self, key, history, book):
        if key == "1":
            return (TOGGLE_DND, None)
        for typed, field in _SETTINGS_KEYS:
            if key == typed:
                self.page = EDIT
                self.field = field
                self.typed = ""
        return None

    def _on_edit(self, key, history, book):
        if key == "#":
            field, typed = self.field, self.typed
            self.typed = ""
            if field == FIELD_CONTACT:
                self.page = CONTACTS
                return (SET_CONTACT_NUMBER, (self.index, typed)) if typed else None
            if field == FIELD_NEW_NUMBER:
                if not typed:
                    self.page = EDIT  # a contact needs a number: keep typing (or * back)
                    return None
                self.page = CONTACTS
                name, self.name = self.name, None
                return (NEW_CONTACT, (name, typed))
            self.page = SETTINGS
            if field == FIELD_SECONDS:
                return (SET_NO_ANSWER, typed) if typed else None
            return (SET_FORWARD, (field, typed))  # no digits: the forward is cleared
        if len(key) == 1 and "0" <= key <= "9" and len(self.typed) < MAX_DIGITS:
            self.typed += key
        return None

    def _on_contacts(self, key, history, book):
        if key == "1":
            self.name_entry(FIELD_NEW, "", min(self.index, max(len(book) - 1, 0)))
            return None
        if not book:
            return None
        self.index = min(self.index, len(book) - 1)
        if self._move(key, len(book)):
            return None
        if key == "#":
            return (DIAL, book[self.index]["uri"])
        if key == "4":
            self.name_entry(FIELD_RENAME, book[self.index]["name"], self.index)
        elif key == "5":
            self.page = EDIT
            self.field = FIELD_CONTACT
            self.typed = ""
        elif key == "0":
            self.page = CONFIRM_DELETE
        return None

    def _on_confirm_delete(self, key, history, book):
        if key != "#":
            return None
        self.page = CONTACTS
        index = self.index
        if index > 0 and index >= len(book) - 1:
            self.index = index - 1
        return (DELETE_CONTACT, index) if index < len(book) else None


_PAGE_KEYS = {
    MAIN: Menu._on_main,
    ZID: Menu._on_zid,
    HISTORY: Menu._on_list,
    RESET: Menu._on_list,
    CONFIRM_RESET: Menu._on_confirm_reset,
    SETTINGS: Menu._on_settings,
    EDIT: Menu._on_edit,
    CONTACTS: Menu._on_contacts,
    CONFIRM_DELETE: Menu._on_confirm_delete,
}
