"""The phone's application state machine (sans-I/O, MicroPython-clean); firmware/phone/__init__.py
describes its states, keys and contract. Each event type has one handler; keys and the trust button are
then dispatched through a table keyed by state."""

from firmware.errors import LocalProtocolError
from firmware.phone import commands, conditions, events, menu, views
from firmware.phone.history import call_entry, dialed_uri, last_dialed, load_history, record_call, speed_dial_pairs
from firmware.phone.states import (
    ALARM,
    ALARM_CACHE_MISMATCH,
    ALARM_NOT_SECURE,
    CALL_STATES,
    CALLING,
    COMMAND_QUEUE_LIMIT,
    DIAL_KEYS,
    DIAL_TIMEOUT,
    DIALING,
    ENDED,
    ENDED_HOLD,
    ERROR,
    ERROR_TRUST_CACHE,
    IDLE,
    IN_CALL,
    KEY_BACK,
    KEY_HANGUP,
    KEY_MENU,
    KEY_MUTE,
    KEY_REDIAL,
    KEY_VOLUME_DOWN,
    KEY_VOLUME_UP,
    MAX_DIGITS,
    MENU,
    MENU_CODE,
    MENU_TIMEOUT,
    NAMED_KEYS,
    NOT_SECURE_ALARMS,
    NOTICE_HOLD,
    RINGING,
    SAS_ALARMS,
    SECURE,
    TONE_ALARM,
    TONE_RING,
    TONE_RINGBACK,
    UNRESOLVED_LIMIT,
    VERIFIED,
    VOLUME_MAX,
    lookup,
)

VOLUME_KEYS = (KEY_VOLUME_UP, KEY_VOLUME_DOWN)
VOLUME_STATES = (IDLE, ERROR, ENDED, DIALING, RINGING) + CALL_STATES  # where the volume keys set the volume


class Phone:
    """The phone's application state machine.

    dial_domain: host[:port] that dialed digits are called at (sip:<digits>@<dial_domain>), or None.
    speed_dial: a dict or a list of (digits, uri) pairs; dialing those digits then '#' calls the uri.
    secure_only: end every call that cannot become secure.
    history: the persisted call history (list of dicts, newest first), or None.
    our_zid: our ZID as hex, or None until OurZid arrives.
    identity: what idle shows as our address (e.g. the AOR), or None.
    wall_offset: added to `now` to stamp history entries with wall-clock seconds, or None.
    """

    def __init__(
        self,
        dial_domain=None,
        speed_dial=None,
        secure_only=False,
        history=None,
        our_zid=None,
        identity=None,
        wall_offset=None,
    ):
        self.dial_domain = dial_domain
        self.speed_dial = speed_dial_pairs(speed_dial)
        self.secure_only = bool(secure_only)
        self.history = load_history(history)
        self.our_zid = our_zid
        self.identity = identity
        self.wall_offset = wall_offset
        self.state = IDLE
        self.volume = 6
        self.muted = False
        self.off_hook = False
        self.digits = ""
        self.last_dialed = last_dialed(self.history)
        self.errors = []  # (kind, title, detail) triples; shown as the error state when no call is up
        self.unresolved = []  # peer ZIDs (or URIs) whose alarm was never resolved, newest last
        self.notice = None  # a short message shown in idle/menu for NOTICE_HOLD seconds: (text, until)
        self._commands = []
        self._deadline = None
        self._tick = None
        self._tone = None
        self._reset_call()
        self._menu = menu.Menu()

    # -- public API ---------------------------------------------------------------------------------

    def handle(self, event, now):
        """Feed one input or call event that happened at monotonic time `now` (seconds)."""
        handler = _EVENT_HANDLERS.get(type(event))
        if handler is None:
            raise LocalProtocolError("Phone.handle: unknown event {!r}".format(event))
        handler(self, event, now)

    def get_timer(self):
        """The next absolute time handle_timer() wants to run, or None."""
        best = None
        for when in (self._deadline, self._tick, self.notice[1] if self.notice is not None else None):
            if when is not None and (best is None or when < best):
                best = when
        return best

    def handle_timer(self, now):
        """Run the timers due at `now`: dial timeout, end of the ended screen, menu timeout, notices, and
        the once-a-second tick that advances the call duration on the screen."""
        if self._tick is not None and now >= self._tick:
            self._tick = self._next_tick(now)
        if self.notice is not None and now >= self.notice[1]:
            self.notice = None
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        if self.state in (DIALING, ENDED, MENU):
            self._go_idle(now)

    def next_command(self):
        """The next command for the session, or None."""
        if not self._commands:
            return None
        return self._commands.pop(0)

    def view(self, now=None):
        """What the screens may read at `now` (None: the notice shows, the call time is unknown)."""
        notice = self.notice
        if notice is not None and (now is None or now < notice[1]):
            notice = notice[0]
        else:
            notice = None
        call_seconds = None if self.call_start is None or now is None else now - self.call_start
        return views.ViewModel(
            notice=notice,
            call_seconds=call_seconds,
            errors=tuple(self.errors),
            history=tuple(self.history),
            menu_page=self._menu.page,
            menu_index=self._menu.index,
            **{name: getattr(self, name) for name in views.ViewModel.COPIED},
        )

    def screen(self, now=None):
        """What the display shows now (a firmware.screens.Screen)."""
        return views.screen(self.view(now))

    # -- internals: plumbing ------------------------------------------------------------------------

    def _emit(self, command):
        if len(self._commands) >= COMMAND_QUEUE_LIMIT:
            # The session stopped draining commands; keep the newest (hang-ups matter most).
            self._commands.pop(0)
        self._commands.append(command)

    def _play(self, name):
        if self._tone != name:
            self._tone = name
            self._emit(commands.PlayTone(name))

    def _stop_tone(self):
        if self._tone is not None:
            self._tone = None
            self._emit(commands.StopTone())

    def _set_state(self, state, now, deadline=None):
        self.state = state
        self._deadline = deadline
        if state in CALL_STATES:
            self._tick = self._next_tick(now)
        else:
            self._tick = None

    def _next_tick(self, now):
        if self.call_start is None:
            return None
        elapsed = now - self.call_start
        tick = self.call_start + int(elapsed) + 1
        if tick <= now:
            # Floating point: at a whole second, now - call_start can round just below it (0.3 + 2 - 0.3 is
            # 1.9999999999999998), which would give the same tick again and spin the timer forever.
            tick += 1
        return tick

    def _reset_call(self):
        self.remote = None
        self.remote_name = None
        self.direction = None
        self.call_setup = None
        self.call_start = None
        self.far_ringing = False
        self.sas = None
        self.sas_type = None
        self.verified = False
        self.secure = False
        self.confirmed_now = False
        self.algorithms = None
        self.peer_zid = None
        self.alarm_reason = None
        self.alarm_acknowledged = False
        self.end_reason = None
        self.end_duration = 0
        self.end_status = None
        self.untrusted = False
        self.to_server_only = False

    def _go_idle(self, now):
        self._stop_tone()
        self.digits = ""
        if self.errors:
            self._set_state(ERROR, now)
        else:
            self._set_state(IDLE, now)

    def _show_notice(self, text, now):
        self.notice = (text, now + NOTICE_HOLD)

    def _start_dialing(self, digits, now):
        self.digits = digits
        self._set_state(DIALING, now, now + DIAL_TIMEOUT)

    # -- keys: KeyPressed, then a handler per state -------------------------------------------------

    def _on_key(self, event, now):
        key = event.key
        if key not in NAMED_KEYS and (len(key) != 1 or key not in DIAL_KEYS):
            raise LocalProtocolError("unknown key {!r}".format(key))
        if key in VOLUME_KEYS and self.state in VOLUME_STATES:
            self._change_volume(key)
            return
        handler = _KEYS.get(self.state)
        if handler is not None:
            handler(self, key, now)

    def _key_when_idle(self, key, now):
        if key == KEY_MENU:
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
        elif key == KEY_MUTE:
            self.muted = not self.muted
            self._emit(commands.SetMute(self.muted))
        elif len(key) == 1:
            self._emit(commands.SendDtmf(key))

    def _key_in_menu(self, key, now):
        self._deadline = now + MENU_TIMEOUT
        action = self._menu.key(key, self.history)
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

    def _open_menu(self, now):
        self.digits = ""
        self._menu = menu.Menu()
        self._set_state(MENU, now, now + MENU_TIMEOUT)

    # -- the trust button: TrustPressed, then a handler per state -----------------------------------

    def _on_trust(self, event, now):
        handler = _TRUST.get(self.state)
        if handler is not None:
            handler(self, bool(event.long), now)

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

    # -- the hook switch ----------------------------------------------------------------------------

    def _on_hook(self, event, now):
        off = bool(event.off)
        self.off_hook = off
        state = self.state
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

    # -- call events --------------------------------------------------------------------------------

    def _on_incoming(self, event, now):
        if self.state not in (IDLE, ERROR, ENDED, MENU, DIALING):
            # Busy: the session answers a second INVITE with 486 itself (one call at a time).
            return
        self._reset_call()
        self.digits = ""
        self.remote = event.remote
        self.remote_name = event.display_name
        self.direction = "in"
        self.call_setup = now
        self._set_state(RINGING, now)
        self._play(TONE_RING)

    def _on_ringing(self, event, now):
        if self.state == CALLING:
            self.far_ringing = True
            self._play(TONE_RINGBACK)

    def _answer(self, now):
        self._emit(commands.Answer())
        self._stop_tone()
        self._media_up(now)

    def _decline(self, now):
        self._emit(commands.Reject(603))
        self._stop_tone()
        self._finish_call(now, "declined", missed=True)

    def _on_answered(self, event, now):
        if self.state == CALLING:
            self._stop_tone()
            self._media_up(now)

    def _media_up(self, now):
        # The call layer gives its verdict (CallSecure or CallNotSecure) in time; no second timer here.
        self.call_start = now
        self._set_state(IN_CALL, now)

    def _on_not_secure(self, event, now):
        if event.kind == "sdes-only":
            self.to_server_only = True  # encrypted hop by hop: said on the screen, not an alarm
            return
        self._alarm(lookup(NOT_SECURE_ALARMS, event.kind, ALARM_NOT_SECURE), now)

    def _peer_key(self):
        return self.peer_zid or self.remote

    def _on_secure(self, event, now):
        if self.state not in (IN_CALL, CALLING, SECURE, VERIFIED, ALARM):
            return
        if self.call_start is None:
            self.call_start = now
        self.errors = conditions.without(self.errors, ERROR_TRUST_CACHE)
        self.secure = True
        self.sas = event.sas
        self.sas_type = event.sas_type
        self.verified = bool(event.verified)
        self.algorithms = event.algorithms
        self.peer_zid = event.peer_zid
        if self.state == ALARM:
            # An alarm raised before SecureState (e.g. zrtp-hash mismatch) stays up; now with the SAS.
            return
        if event.cache_mismatch:
            self._raise_alarm(ALARM_CACHE_MISMATCH, now)
        elif not self.verified and self._peer_key() in self.unresolved:
            self._raise_alarm(ALARM_CACHE_MISMATCH, now)
        elif self.verified:
            self._set_state(VERIFIED, now)
        else:
            self._set_state(SECURE, now)

    def _on_alarm(self, event, now):
        self._alarm(event.reason, now)

    def _alarm(self, reason, now):
        if self.state not in CALL_STATES and self.state != CALLING:
            return
        if reason in SAS_ALARMS and self.confirmed_now:
            # The user compared the SAS and confirmed it in this call: that resolved the mismatch. A
            # report of it arriving afterwards (queued behind the Secure event) is stale.
            return
        if self.secure_only and reason not in SAS_ALARMS:
            # Not secure (or no longer): secure_only ends the call instead of sounding the alarm.
            self.alarm_reason = reason
            self._hang_up(now, "not secure: " + reason)
            return
        self._raise_alarm(reason, now)

    def _raise_alarm(self, reason, now):
        if self.state == ALARM and self.alarm_reason == reason:
            return  # the same alarm reported twice
        if self.call_start is None:
            self.call_start = now
        self.alarm_reason = reason
        self.alarm_acknowledged = False
        self.verified = False
        key = self._peer_key()
        if key is not None and key not in self.unresolved:
            self.unresolved.append(key)
            if len(self.unresolved) > UNRESOLVED_LIMIT:
                self.unresolved.pop(0)
        self._set_state(ALARM, now)
        self._play(TONE_ALARM)

    def _forget_unresolved(self, key):
        self.unresolved = [k for k in self.unresolved if k != key and k != self.remote]

    def _hang_up(self, now, reason):
        self._emit(commands.Hangup())
        self._stop_tone()
        self._finish_call(now, reason)

    def _on_ended(self, event, now):
        if self.state not in (CALLING, RINGING) and self.state not in CALL_STATES:
            return
        self._stop_tone()
        missed = self.state == RINGING
        self.end_status = event.sip_status
        self._finish_call(now, event.reason or "ended", missed=missed)

    def _on_transfer(self, event, now):
        if self.state not in CALL_STATES:
            return
        self._stop_tone()
        self._finish_call(now, "transferred")
        self._dial(event.uri, now)

    def _on_our_zid(self, event, now):
        self.our_zid = event.zid

    def _finish_call(self, now, reason, missed=False):
        self.end_duration = int(now - self.call_start) if self.call_start is not None else 0
        self.end_reason = reason
        record_call(self.history, call_entry(self, now, missed))
        self._emit(commands.SaveHistory(self.history))
        self._set_state(ENDED, now, now + ENDED_HOLD)

    # -- conditions: registration, network, audio device, trust cache -------------------------------

    def _on_condition(self, event, now):
        self.errors = conditions.apply(self.errors, event)
        if self.state == IDLE and self.errors:
            self._set_state(ERROR, now)
        elif self.state == ERROR and not self.errors:
            self._set_state(IDLE, now)


_EVENT_HANDLERS = {
    events.KeyPressed: Phone._on_key,
    events.TrustPressed: Phone._on_trust,
    events.Hook: Phone._on_hook,
    events.CallIncoming: Phone._on_incoming,
    events.CallRinging: Phone._on_ringing,
    events.CallAnswered: Phone._on_answered,
    events.CallSecure: Phone._on_secure,
    events.CallAlarm: Phone._on_alarm,
    events.CallNotSecure: Phone._on_not_secure,
    events.CallEnded: Phone._on_ended,
    events.TransferTo: Phone._on_transfer,
    events.OurZid: Phone._on_our_zid,
}
for _condition in conditions.CONDITION_EVENTS:
    _EVENT_HANDLERS[_condition] = Phone._on_condition

_KEYS = {
    IDLE: Phone._key_when_idle,
    ERROR: Phone._key_when_idle,
    ENDED: Phone._key_when_idle,
    DIALING: Phone._key_when_dialing,
    CALLING: Phone._key_when_calling,
    RINGING: Phone._key_when_ringing,
    MENU: Phone._key_in_menu,
}
_TRUST = {
    DIALING: Phone._trust_when_dialing,
    RINGING: Phone._trust_when_ringing,
    ENDED: Phone._trust_when_ended,
    MENU: Phone._trust_in_menu,
}
for _state in CALL_STATES:
    _KEYS[_state] = Phone._key_in_call
    _TRUST[_state] = Phone._trust_in_call
