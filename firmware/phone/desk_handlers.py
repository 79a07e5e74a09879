"""The desk features' handlers (issue 15): do not disturb and call forward, the address book and its
trust marks, message waiting. A mixin of Phone; the rules themselves are in desk.py and contacts.py.
"""

from firmware.phone import commands, desk, desk_events, menu, views
from firmware.phone import contacts as contacts_module
from firmware.phone.history import dialed_uri, record_call


class DeskHandlers:
    def busy_forward(self):
        """The URI a call that finds us busy is forwarded to (call forward on busy), or None: the session
        asks before it answers a second INVITE 486 (RFC 3261 §21.4.24)."""
        verdict = desk.incoming_verdict(self.desk, busy=True)
        return verdict[1] if verdict is not None and verdict[0] == desk.FORWARD_STATUS else None

    def _refuse_incoming(self, event, verdict, now):
        """Do not disturb (486) or forward always (302): the call never rings; the history says so."""
        status, uri = verdict
        if uri is not None:
            self._emit(desk_events.Forward(uri, status, event.call))
            reason = "forwarded to " + views.display_uri(uri)
        else:
            # A call that is not the only one (call waiting) is named: Busy(call) is its 486.
            self._emit(commands.Busy(event.call) if event.call is not None else commands.Reject(status))
            reason = "do not disturb"
        entry = {"dir": "missed", "remote": event.remote, "duration": 0, "secure": False, "verified": False}
        entry["reason"] = reason
        if self.wall_offset is not None:
            entry["at"] = int(now + self.wall_offset)
        record_call(self.history, entry)
        self._emit(commands.SaveHistory(self.history))

    def _forward(self, uri, now, reason):
        self._emit(desk_events.Forward(uri, desk.FORWARD_STATUS, self.call_key))
        self._stop_tone()
        self._finish_call(now, reason, missed=True)

    def _toggle_dnd(self, argument, now):
        self.desk.dnd = not self.desk.dnd
        self._save_settings(now, "do not disturb " + ("on" if self.desk.dnd else "off"))

    def _set_forward(self, argument, now):
        kind, digits = argument
        if not digits:
            self.desk.set_forward(kind, None)
            self._save_settings(now, "forward off")
            return
        uri = dialed_uri(digits, self.speed_dial, self.dial_domain)
        if uri is None or not desk.is_target(uri):
            self._show_notice("no dial domain set", now)
            return
        self.desk.set_forward(kind, uri)
        self._save_settings(now, "forward set")

    def _set_no_answer(self, argument, now):
        try:
            self.desk.set_no_answer_seconds(int(argument))
        except ValueError:
            self._show_notice("{}-{} seconds".format(desk.NO_ANSWER_MIN, desk.NO_ANSWER_MAX), now)
            return
        self._save_settings(now, "after {} s".format(self.desk.no_answer_seconds))

    def _save_settings(self, now, notice):
        self._emit(desk_events.SaveSettings(self.desk.to_dict()))
        self._show_notice(notice, now)

    def _add_contact_from_history(self, entry, now):
        self._save_contact(entry.get("remote"), None, now)
        index = contacts_module.find(self.contacts, entry.get("remote"))
        if index is not None:
            self._menu.page = menu.CONTACTS
            self._menu.index = index

    def _save_contact(self, uri, name, now):
        """Add `uri` to the address book, named by the caller's display name or the URI's user part (the
        keypad has no letters; a name is edited in the imported file)."""
        if uri is None:
            return
        if contacts_module.find(self.contacts, uri) is not None:
            self._show_notice("already a contact", now)
            return
        name = self._default_name(uri, name)
        if contacts_module.add_contact(self.contacts, name, uri) is None:
            self._show_notice("contacts full" if contacts_module.is_uri(uri) else "not a SIP address", now)
            return
        self._emit(desk_events.SaveContacts(self.contacts))
        self._show_notice("contact saved", now)

    @staticmethod
    def _default_name(uri, name):
        """The caller's display name, else the user part of the address: what a saved number is called
        until it is renamed."""
        if contacts_module.is_name(name):
            return name
        return views.display_uri(uri).split("@", 1)[0][: contacts_module.MAX_NAME] or "contact"

    def _new_contact(self, argument, now):
        """A contact typed in the menu: its name (multi-tap), then its number."""
        name, digits = argument
        uri = dialed_uri(digits, self.speed_dial, self.dial_domain)
        if uri is None:
            self._show_notice("no dial domain set", now)
            return
        if contacts_module.find(self.contacts, uri) is not None:
            self._show_notice("already a contact", now)
            self._menu.index = contacts_module.find(self.contacts, uri)
            return
        self._store_contact(name, uri, now, "contact saved")

    def _rename_contact(self, argument, now):
        index, name = argument
        if not 0 <= index < len(self.contacts):
            return
        self._store_contact(name, self.contacts[index]["uri"], now, "name saved")

    def _save_number(self, argument, now):
        """The number of a call, named in the menu: a new contact, or the contact that has it renamed."""
        uri, name = argument
        self._store_contact(name, uri, now, "contact saved")

    def _store_contact(self, name, uri, now, notice):
        """Add or rename (contacts.add_contact), persist, and show the contact on the contacts page."""
        index = contacts_module.add_contact(self.contacts, name, uri)
        if index is None:
            full = (
                contacts_module.find(self.contacts, uri) is None
                and len(self.contacts) >= contacts_module.CONTACTS_LIMIT
            )
            self._show_notice("contacts full" if full else "not saved", now)
            return
        self._emit(desk_events.SaveContacts(self.contacts))
        self._menu.page = menu.CONTACTS
        self._menu.index = index
        self._show_notice(notice, now)

    def _set_contact_number(self, argument, now):
        index, digits = argument
        uri = dialed_uri(digits, self.speed_dial, self.dial_domain)
        if uri is None or not contacts_module.set_uri(self.contacts, index, uri):
            self._show_notice("number not changed", now)
            return
        self._emit(desk_events.SaveContacts(self.contacts))
        self._show_notice("number saved", now)

    def _delete_contact(self, index, now):
        contacts_module.delete(self.contacts, index)
        self._emit(desk_events.SaveContacts(self.contacts))
        self._show_notice("contact deleted", now)

    def _on_message_summary(self, event, now):
        was = self.messages is not None and self.messages.waiting
        self.messages = event
        if bool(event.waiting) != was:
            self._emit(desk_events.MessageLight(event.waiting))

    def _on_trust_marks(self, event, now):
        marks = {}
        for uri, mark in event.marks:
            if mark in contacts_module.MARKS:
                marks[contacts_module.aor_key(uri)] = mark
        self.trust_marks = marks

    def contact_mark(self, uri):
        """A contact's trust mark now: an unresolved continuity alarm first, then the cache's mark."""
        key = contacts_module.aor_key(uri)
        for unresolved in self.unresolved:
            if contacts_module.aor_key(unresolved) == key:
                return contacts_module.MARK_ALARM
        for entry in self.history:
            if entry.get("peer_zid") in self.unresolved and contacts_module.aor_key(entry.get("remote")) == key:
                return contacts_module.MARK_ALARM
        return self.trust_marks.get(key, contacts_module.MARK_NEW)


# The menu's actions that change desk settings and contacts, by handler name.
MENU_ACTIONS = {
    menu.ADD_CONTACT: "_add_contact_from_history",
    menu.TOGGLE_DND: "_toggle_dnd",
    menu.SET_FORWARD: "_set_forward",
    menu.SET_NO_ANSWER: "_set_no_answer",
    menu.SET_CONTACT_NUMBER: "_set_contact_number",
    menu.DELETE_CONTACT: "_delete_contact",
    menu.NEW_CONTACT: "_new_contact",
    menu.RENAME_CONTACT: "_rename_contact",
    menu.SAVE_NUMBER: "_save_number",
}
