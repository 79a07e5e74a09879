"""Keys, the trust button and the hook switch: one handler per state, chosen through KEY_HANDLERS and
TRUST_HANDLERS (below; by method name, since some handlers live in the other mixins). A mixin of Phone.
"""

from firmware.errors import LocalProtocolError
from firmware.phone import commands, menu
from firmware.phone import contacts as contacts_module
from firmware.phone.desk_handlers import MENU_ACTIONS
from firmware.phone.history import dialed_uri
from firmware.phone.states import (
    ALARM,
    CALL_STATES,
    CALL_WAITING,
    CALLING,
    CONFERENCE,
    DIAL_KEYS,
    DIAL_TIMEOUT,
    DIALING,
    ENDED,
    ENDED_HOLD,
    ERROR,
    HELD,
    IDLE,
    KEY_BACK,
    KEY_CONFERENCE,
    KEY_HANGUP,
    KEY_HOLD,
    KEY_MENU,
    KEY_MUTE,
    KEY_REDIAL,
    KEY_TRANSFER,
    KEY_VOICEMAIL,
    KEY_VOLUME_DOWN,
    KEY_VOLUME_UP,
    MAX_DIGITS,
    MENU,
    MENU_CODE,
    MENU_TIMEOUT,
    NAMED_KEYS,
    OVERLAY_STATES,
    RINGING,
    SAS_ALARMS,
    SECURE,
    VERIFIED,
    VOLUME_MAX,
)

VOLUME_KEYS = (KEY_VOLUME_UP, KEY_VOLUME_DOWN)
VOLUME_STATES = (IDLE, ERROR, ENDED, DIALING, RINGING) + CALL_STATES + OVERLAY_STATES  # volume keys work here


class KeyHandlers:
    def _on_key(self, event, now):
        key = event.key
        if key not in NAMED_KEYS and (len(key) != 1 or key not in DIAL_KEYS):
            raise LocalProtocolError("unknown key {!r}".format(key))
        if key in VOLUME_KEYS and self.state in VOLUME_STATES:
            self._change_volume(key)
            return
        handler = KEY_HANDLERS.get(self.state)
        if handler is not None:
            getattr(self, handler)(key, now)

    def _key_when_idle(self, key, now):
        if key == KEY_VOICEMAIL:
            self._dial_voicemail(now)
        elif key == KEY_MENU:
            if self.state == ENDED and self.remote is not None:
                self._save_number_menu(now)  # "save number": name the call that just ended
            else:
                self._open_menu(now)
        elif key == KEY_REDIAL or key == "#":
            self._redial(now)
        elif key in (KEY_MUTE, KEY_HANGUP, KEY_BACK):
            if self.state == ENDED:
                self._go_idle(now)
        else:
            self._start_dialing(key, now)

    def _key_when_dialing(self, key, now):
        if key == "#":
            self._send_digits(now)
        elif key == KEY_BACK:
            self._erase_digit(now)
        elif key == KEY_HANGUP:
            self._go_idle(now)
        elif key == KEY_REDIAL:
            self._redial(now)
        elif key == KEY_MENU:
            self._open_menu(now)
        elif key == KEY_VOICEMAIL:
            self._dial_voicemail(now)
        elif key != KEY_MUTE:
            if len(self.digits) < MAX_DIGITS:
                self.digits += key
            self._deadline = now + DIAL_TIMEOUT

    def _key_when_calling(self, key, now):
        if key == KEY_HANGUP:
            self._hang_up(now, "cancelled")

    def _key_when_ringing(self, key, now):
        if key == KEY_HANGUP:
            self._decline(now)
        else:
            self._answer(now)

    def _key_in_call(self, key, now):
        if key == KEY_HANGUP:
            self._hang_up(now, "hung up")
        elif key == KEY_HOLD:
            if self.other is None:
                self._hold(now)
            else:
                self._swap(now)
        elif key == KEY_CONFERENCE:
            if self.other is not None and self.other["role"] == "held":
                self._join(now)
        elif key == KEY_TRANSFER:
            if self.other is not None and self.other["role"] == "held" and self.call_key is not None:
                # The session ends both calls once the transfer succeeded (their CallEnded say so).
                self._emit(commands.Transfer(self.other["call_key"], self.call_key))
                self._show_notice("transferring", now)
        elif key == KEY_MUTE:
            self.muted = not self.muted
            self._emit(commands.SetMute(self.muted))
        elif key == KEY_MENU:
            self._save_contact(self.remote, self.remote_name, now)  # add the caller to the address book
        elif len(key) == 1:
            self._emit(commands.SendDtmf(key))

    def _key_in_menu(self, key, now):
        self._deadline = now + MENU_TIMEOUT
        action = self._menu.key(key, self.history, self.contacts, now)
        if action is None:
            return
        verb, argument = action
        if verb == menu.CLOSE:
            self._go_idle(now)
        elif verb == menu.DIAL:
            self._dial(argument, now)
        elif verb == menu.RESET_TRUST:
            self._emit(commands.ResetTrust(argument))
            self._forget_unresolved(argument)
            self._show_notice("trust reset", now)
        else:
            getattr(self, MENU_ACTIONS[verb])(argument, now)

    def _erase_digit(self, now):
        self.digits = self.digits[:-1]
        if self.digits or self.off_hook:
            self._deadline = now + DIAL_TIMEOUT
        else:
            self._go_idle(now)

    def _send_digits(self, now):
        digits = self.digits
        self.digits = ""
        if not digits:
            self._redial(now)
            return
        if digits == MENU_CODE:
            self._open_menu(now)
            return
        uri = dialed_uri(digits, self.speed_dial, self.dial_domain)
        if uri is None:
            self._reset_call()
            self.end_reason = "no dial domain set"
            self._set_state(ENDED, now, now + ENDED_HOLD)
            return
        self._dial(uri, now)

    def _redial(self, now):
        if self.last_dialed is None:
            self._show_notice("nothing to redial", now)
            if self.state == DIALING:
                self._go_idle(now)
            return
        self._dial(self.last_dialed, now)

    def _dial(self, uri, now):
        self._stop_tone()
        self._reset_call()
        self.remote = uri
        self.direction = "out"
        self.call_setup = now
        self.last_dialed = uri
        self._emit(commands.Dial(uri))
        self._set_state(CALLING, now)

    def _change_volume(self, key):
        level = self.volume + (1 if key == KEY_VOLUME_UP else -1)
        level = max(0, min(VOLUME_MAX, level))
        if level != self.volume:
            self.volume = level
            self._emit(commands.SetVolume(level))

    def _dial_voicemail(self, now):
        uri = self.voicemail or (self.messages.account if self.messages is not None else None)
        if uri is None:
            self._show_notice("no voicemail number", now)
            if self.state == DIALING:
                self._go_idle(now)
            return
        self._dial(uri, now)

    def _open_menu(self, now):
        self.digits = ""
        self._menu = menu.Menu()
        self._set_state(MENU, now, now + MENU_TIMEOUT)

    def _save_number_menu(self, now):
        """The menu key on the ended screen: type a name for the number of the call that just ended (a new
        contact), or rename the contact that already has it."""
        remote = self.remote
        self._open_menu(now)
        index = contacts_module.find(self.contacts, remote)
        if index is not None:
            self._menu.name_entry(menu.FIELD_RENAME, self.contacts[index]["name"], index)
        elif contacts_module.is_uri(remote):
            self._menu.name_entry(menu.FIELD_SAVE, self._default_name(remote, self.remote_name), uri=remote)

    def _on_trust(self, event, now):
        handler = TRUST_HANDLERS.get(self.state)
        if handler is not None:
            getattr(self, handler)(bool(event.long), now)

    def _trust_when_dialing(self, long, now):
        if long:
            self._go_idle(now)
        else:
            self._erase_digit(now)

    def _trust_when_ringing(self, long, now):
        if long:
            self._decline(now)
        else:
            self._answer(now)

    def _trust_when_ended(self, long, now):
        self._go_idle(now)

    def _trust_in_menu(self, long, now):
        self._key_in_menu("*" if long else "#", now)

    def _trust_in_call(self, long, now):
        state = self.state
        if long:
            self._sas_did_not_match(now)
        elif state in (SECURE, VERIFIED) or (
            state == ALARM and self.sas is not None and self.alarm_reason in SAS_ALARMS
        ):
            if state != VERIFIED:
                self._confirm_sas(now)
        elif state == ALARM:
            # Not about the SAS: the press acknowledges the alarm and silences the tone; the screen stays
            # on alarm for the rest of the call.
            self.alarm_acknowledged = True
            self._stop_tone()

    def _confirm_sas(self, now):
        self._emit(commands.ConfirmSas())
        self._stop_tone()
        self.verified = True
        self.confirmed_now = True
        self._forget_unresolved(self._peer_key())
        self.alarm_reason = None
        self._set_state(VERIFIED, now)

    def _sas_did_not_match(self, now):
        if self.sas is not None:
            self._emit(commands.RejectSas())
            self.untrusted = True
        self._hang_up(now, "SAS did not match" if self.sas is not None else "hung up")

    def _on_hook(self, event, now):
        off = bool(event.off)
        self.off_hook = off
        state = self.state
        if state == HELD:
            if off:
                self._resume(now)  # lifting the handset takes the held call back
            return
        if state == CALL_WAITING and not off:
            self._on_front(lambda: self._hang_up(now, "hung up"), now)  # the waiting call then rings
            return
        if state == CONFERENCE and not off:
            self._key_in_conference(KEY_HANGUP, now)
            return
        if off:
            if state == RINGING:
                self._answer(now)
            elif state in (IDLE, ERROR, ENDED):
                self._start_dialing("", now)
        elif state == DIALING:
            self._go_idle(now)
        elif state == CALLING:
            self._hang_up(now, "cancelled")
        elif state in CALL_STATES:
            self._hang_up(now, "hung up")
        elif state == ENDED:
            self._go_idle(now)


# Which method handles a key, and a trust press, in each state (by name: the handlers live in the
# mixins of Phone).
KEY_HANDLERS = {
    CALL_WAITING: "_key_when_waiting",
    HELD: "_key_when_held",
    CONFERENCE: "_key_in_conference",
    IDLE: "_key_when_idle",
    ERROR: "_key_when_idle",
    ENDED: "_key_when_idle",
    DIALING: "_key_when_dialing",
    CALLING: "_key_when_calling",
    RINGING: "_key_when_ringing",
    MENU: "_key_in_menu",
}
TRUST_HANDLERS = {
    CALL_WAITING: "_trust_when_waiting",
    CONFERENCE: "_trust_in_conference",
    DIALING: "_trust_when_dialing",
    RINGING: "_trust_when_ringing",
    ENDED: "_trust_when_ended",
    MENU: "_trust_in_menu",
}
for _state in CALL_STATES:
    KEY_HANDLERS[_state] = "_key_in_call"
    TRUST_HANDLERS[_state] = "_trust_in_call"
