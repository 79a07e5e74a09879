"""The phone's application state machine (sans-I/O, MicroPython-clean); firmware/phone/__init__.py
describes its states, keys and contract. Each event type has one handler; keys and the trust button are
then dispatched through a table keyed by state."""

from firmware.errors import LocalProtocolError
from firmware.phone import commands, conditions, desk, desk_events, events, menu, views
from firmware.phone import contacts as contacts_module
from firmware.phone.desk import DeskSettings as _DeskSettings
from firmware.phone.history import call_entry, dialed_uri, last_dialed, load_history, record_call, speed_dial_pairs
from firmware.phone.states import (
    ALARM,
    ALARM_CACHE_MISMATCH,
    ALARM_NOT_SECURE,
    CALL_STATES,
    CALL_WAITING,
    CALLING,
    COMMAND_QUEUE_LIMIT,
    CONFERENCE,
    DIAL_KEYS,
    DIAL_TIMEOUT,
    DIALING,
    ENDED,
    ENDED_HOLD,
    ERROR,
    ERROR_TRUST_CACHE,
    HELD,
    IDLE,
    IN_CALL,
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
    NOT_SECURE_ALARMS,
    NOTICE_HOLD,
    OVERLAY_STATES,
    RINGING,
    SAS_ALARMS,
    SECURE,
    TONE_ALARM,
    TONE_RING,
    TONE_RINGBACK,
    TONE_WAITING,
    UNRESOLVED_LIMIT,
    VERIFIED,
    VOLUME_MAX,
    lookup,
)

VOLUME_KEYS = (KEY_VOLUME_UP, KEY_VOLUME_DOWN)
VOLUME_STATES = (IDLE, ERROR, ENDED, DIALING, RINGING) + CALL_STATES + OVERLAY_STATES  # volume keys work here
TICK_STATES = CALL_STATES + OVERLAY_STATES  # the call duration on the screen advances once a second

# What one call is to the phone. The call in front is these attributes of the Phone itself; a second call
# (waiting, held, or the other leg of a conference) is kept as a dict of them plus its "state" (issue 15).
LEG_FIELDS = (
    "call_key",
    "remote",
    "remote_name",
    "direction",
    "call_setup",
    "call_start",
    "far_ringing",
    "sas",
    "sas_type",
    "verified",
    "secure",
    "confirmed_now",
    "algorithms",
    "peer_zid",
    "alarm_reason",
    "alarm_acknowledged",
    "end_reason",
    "end_duration",
    "end_status",
    "untrusted",
    "to_server_only",
    "known_key",
)


class Phone:
    """The phone's application state machine.

    dial_domain: host[:port] that dialed digits are called at (sip:<digits>@<dial_domain>), or None.
    speed_dial: a dict or a list of (digits, uri) pairs; dialing those digits then '#' calls the uri.
    secure_only: end every call that cannot become secure.
    history: the persisted call history (list of dicts, newest first), or None.
    our_zid: our ZID as hex, or None until OurZid arrives.
    identity: what idle shows as our address (e.g. the AOR), or None.
    wall_offset: added to `now` to stamp history entries with wall-clock seconds, or None.
    call_waiting: a second incoming call during a call is shown (call-waiting) and may be answered; False:
        one call at a time, a second one gets 486 Busy Here.
    desk: the saved desk settings (DeskSettings.to_dict(): do not disturb, call forward), or None.
    contacts: the saved address book (a list of {"name", "uri"} dicts), or None.
    voicemail: the URI the voicemail key dials, or None (then the Message-Account of the last
    message-summary NOTIFY, RFC 3842 §3.5).
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
        call_waiting=True,
        desk=None,
        contacts=None,
        voicemail=None,
    ):
        self.dial_domain = dial_domain
        self.speed_dial = speed_dial_pairs(speed_dial)
        self.secure_only = bool(secure_only)
        self.history = load_history(history)
        self.our_zid = our_zid
        self.identity = identity
        self.wall_offset = wall_offset
        self.call_waiting = bool(call_waiting)
        self.state = IDLE
        self.other = None  # the second call: a dict of LEG_FIELDS and its "state", or None
        self.leg_state = None  # in an OVERLAY_STATE: the front call's own state (in-call, secure, ...)
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
        self.desk = desk if isinstance(desk, _DeskSettings) else _DeskSettings.from_dict(desk)[0]
        self.contacts = contacts_module.load_contacts(contacts)
        self.voicemail = voicemail
        self.messages = None  # the last MessageSummary, or None
        self.trust_marks = {}  # contact address (contacts.aor_key) -> mark, from TrustMarks
        self._reset_call()
        self._menu = menu.Menu()

    # -- public API ---------------------------------------------------------------------------------

    def handle(self, event, now):
        """Feed one input or call event that happened at monotonic time `now` (seconds)."""
        handler = _EVENT_HANDLERS.get(type(event))
        if handler is None:
            raise LocalProtocolError("Phone.handle: unknown event {!r}".format(event))
        if type(event) in _LEG_EVENTS:
            self._leg_event(handler, event, now)
        else:
            handler(self, event, now)
            self._after_front_change(now)

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
        elif self.state == RINGING and self.desk.no_answer:
            # Call forward on no answer: nobody picked up within no_answer_seconds.
            self._forward(self.desk.no_answer, now, "forwarded (no answer)")

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
            other=self._other_view(),
            errors=tuple(self.errors),
            history=tuple(self.history),
            menu_page=self._menu.page,
            menu_index=self._menu.index,
            menu_typed=self._menu.typed,
            menu_field=self._menu.field,
            contacts=tuple(self.contacts),
            contact_marks=tuple(self.contact_mark(contact["uri"]) for contact in self.contacts),
            desk=self.desk.to_dict(),
            desk_line=self.desk.summary(),
            messages=self.messages,
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
        if state in TICK_STATES:
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
        self.call_key = None
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
        self.known_key = None

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
        if key == KEY_VOICEMAIL:
            self._dial_voicemail(now)
        elif key == KEY_MENU:
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
        action = self._menu.key(key, self.history, self.contacts)
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
            _MENU_ACTIONS[verb](self, argument, now)

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

    # -- call events --------------------------------------------------------------------------------

    def _on_incoming(self, event, now):
        verdict = desk.incoming_verdict(self.desk, busy=False)
        if verdict is not None:
            self._refuse_incoming(event, verdict, now)  # do not disturb, forward always: it never rings
            return
        if self.state == HELD and self.other is None and self.call_waiting and event.call is not None:
            self._take_held_front_aside()  # our only call is held: the new one rings as any call
        elif self.state not in (IDLE, ERROR, ENDED, MENU, DIALING):
            if event.call is not None and self.busy_forward() is not None:
                # A forward on busy the user set wins over call waiting: on the phone means busy to them.
                self._emit(desk_events.Forward(self.busy_forward(), desk.FORWARD_STATUS, event.call))
            elif self.call_waiting and event.call is not None and self.other is None and self.state in CALL_STATES:
                self._call_waiting(event, now)
            elif event.call is not None:
                self._emit(commands.Busy(event.call))  # no room for it: 486 Busy Here
            # (a session that names no call answers a second INVITE with 486 itself: one call at a time)
            return
        self._reset_call()
        self.call_key = event.call
        self.digits = ""
        self.remote = event.remote
        self.remote_name = event.display_name or contacts_module.name_of(self.contacts, event.remote)
        self.direction = "in"
        self.call_setup = now
        deadline = now + self.desk.no_answer_seconds if self.desk.no_answer else None
        self._set_state(RINGING, now, deadline)
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
        if event.known is not None:
            self.known_key = bool(event.known)
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

    # -- the desk features: do not disturb, call forward, contacts, message waiting -------------------

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
        if not contacts_module.is_name(name):
            name = views.display_uri(uri).split("@", 1)[0][: contacts_module.MAX_NAME] or "contact"
        if contacts_module.add_contact(self.contacts, name, uri) is None:
            self._show_notice("contacts full" if contacts_module.is_uri(uri) else "not a SIP address", now)
            return
        self._emit(desk_events.SaveContacts(self.contacts))
        self._show_notice("contact saved", now)

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

    # -- two calls (issue 15): call waiting, hold, swap, the local conference -----------------------
    #
    # The call in front is the Phone's own attributes (LEG_FIELDS), as with one call; the second call is
    # kept in self.other with its own state and its role: "waiting" (ringing behind the call in front),
    # "held", or "conference" (the other leg). In an OVERLAY_STATE the front call's own state is kept in
    # self.leg_state; its events and keys are handled in that state, then the overlay is put back.

    def _save_leg(self):
        return {name: getattr(self, name) for name in LEG_FIELDS}

    def _load_leg(self, leg):
        for name in LEG_FIELDS:
            setattr(self, name, leg[name])

    def _other_view(self):
        other = self.other
        if other is None:
            return None
        label = other["remote_name"] or views.display_uri(other["remote"])
        return views.Leg(label, other["state"], other["role"], other["sas"], other["verified"], other["alarm_reason"])

    def _leg_event(self, handler, event, now):
        """A call event: for the second call, the call in front, or a call the phone no longer follows."""
        key = event.call
        other = self.other
        if other is not None and key is not None and key == other["call_key"]:
            if type(event) is events.TransferTo:
                # The session ended that call for the transfer; a second call is not transferred from the
                # background: it is recorded as transferred and the call in front goes on.
                self._on_other(lambda: self._finish_call(now, "transferred"), now)
            else:
                self._on_other(lambda: handler(self, event, now), now)
            return
        if key is not None and type(event) is not events.CallIncoming:
            if self.call_key is None and self.state == CALLING:
                self.call_key = key  # our INVITE's call: the session names it with its first event
            elif key != self.call_key:
                return  # a call that already ended here (its late CallEnded, say)
        if self.state in OVERLAY_STATES and type(event) is not events.CallIncoming:
            self._on_front(lambda: handler(self, event, now), now)
        else:
            handler(self, event, now)
            self._after_front_change(now)

    def _on_front(self, action, now):
        """Run `action` on the front call in its own state, then put the overlay state back (or, when the
        front call ended, let the second call take its place)."""
        overlay = self.state
        self.state = self.leg_state
        action()
        if self.state in CALL_STATES:
            self.leg_state = self.state
            tick = self._tick
            self.state = overlay
            self._tick = tick
            if overlay == CALL_WAITING and self._tone is None:
                self._play(TONE_WAITING)
        else:
            self.leg_state = None
            self._after_front_change(now)

    def _on_other(self, action, now):
        """Run `action` with the second call swapped in front (its events, a key meant for it). Commands it
        issues that act on the focused call are framed by Focus, so they reach that call."""
        other = self.other
        front = self._save_leg()
        saved = (self.state, self.leg_state, self._deadline, self._tick, self._tone)
        mark = len(self._commands)
        self.other = None
        self._load_leg(other)
        self.state = other["state"]
        self.leg_state = None
        action()
        leg_state = self.state
        after = self._save_leg()
        self._load_leg(front)
        self.state, self.leg_state, self._deadline, self._tick, tone = saved
        focused = [c for c in self._commands[mark:] if type(c) in _FOCUSED_COMMANDS]
        if focused:
            self._commands.insert(mark, commands.Focus(other["call_key"]))
            self._emit(commands.Focus(self.call_key))
        if leg_state in CALL_STATES or leg_state == RINGING:
            after["state"] = leg_state
            after["role"] = other["role"]
            self.other = after
            return
        if self._tone is None and tone is not None and tone != TONE_WAITING:
            self._play(tone)  # the tone of the call in front (its alarm) goes on
        self._other_gone(other["role"], now)

    def _other_gone(self, role, now):
        """The second call ended (the far end hung up, we ended it, the waiting caller gave up)."""
        if role == "waiting":
            if self._tone == TONE_WAITING:
                self._stop_tone()
            self._set_state(self.leg_state, now)
            self.leg_state = None
            self._show_notice("missed call", now)
        elif role == "conference":
            self._emit(commands.Conference(False))
            self._set_state(self.leg_state, now)
            self.leg_state = None
            self._show_notice("other call ended", now)
        else:
            self._show_notice("held call ended", now)

    def _after_front_change(self, now):
        """The front call ended (or left for a transfer) while a second call is up: that one comes in front.
        A waiting call now rings as any call; a held call stays held until a key resumes it (as a Yealink
        or Snom does: nobody is put through to a person who did not ask for it); a conference goes on as
        the other leg's call."""
        other = self.other
        if (
            other is None
            or self.state in CALL_STATES
            or self.state in OVERLAY_STATES
            or self.state in (RINGING, CALLING)
        ):
            return
        self.other = None
        self.leg_state = None
        self._load_leg(other)
        role = other["role"]
        if other["state"] == RINGING:
            self._set_state(RINGING, now)
            self._play(TONE_RING)
            return
        if role == "conference":
            self._emit(commands.Conference(False))
            self._emit(commands.Focus(self.call_key))
            self._set_state(other["state"], now)
            if self.state == ALARM and not self.alarm_acknowledged:
                self._play(TONE_ALARM)
            return
        self.leg_state = other["state"]
        self._emit(commands.Focus(self.call_key))
        self._set_state(HELD, now)

    def _new_leg(self, event, now, role):
        leg = self._save_leg()
        for name in LEG_FIELDS:
            leg[name] = _LEG_DEFAULTS.get(name)
        leg.update(call_key=event.call, remote=event.remote, remote_name=event.display_name, direction="in")
        leg.update(call_setup=now, state=RINGING, role=role)
        return leg

    def _park_front(self, role):
        """The front call as the second call (held, or the other leg of a conference)."""
        leg = self._save_leg()
        leg["state"] = self.leg_state if self.state in OVERLAY_STATES else self.state
        leg["role"] = role
        return leg

    def _call_waiting(self, event, now):
        self.other = self._new_leg(event, now, "waiting")
        self.leg_state = self.state
        self._set_state(CALL_WAITING, now)
        if self._tone is None:
            self._play(TONE_WAITING)  # an alarm tone of the call in front is not covered by it

    def _take_held_front_aside(self):
        """A call arrives while our only call is held: the held call steps aside and the new one rings."""
        self.other = self._park_front("held")
        self.leg_state = None

    def _hold(self, now):
        self._emit(commands.Hold(self.call_key))
        self._stop_tone()
        self.leg_state = self.state
        self._set_state(HELD, now)

    def _resume(self, now):
        self._emit(commands.Resume(self.call_key))
        self._set_state(self.leg_state, now)
        self.leg_state = None
        if self.state == ALARM and not self.alarm_acknowledged:
            self._play(TONE_ALARM)

    def _swap(self, now):
        """Hold the call in front, resume the held one (the hold key with two calls)."""
        other = self.other
        self._emit(commands.Hold(self.call_key))
        self._emit(commands.Resume(other["call_key"]))
        self._emit(commands.Focus(other["call_key"]))
        self.other = self._park_front("held")
        self._stop_tone()
        self._load_leg(other)
        self._set_state(other["state"], now)
        if self.state == ALARM and not self.alarm_acknowledged:
            self._play(TONE_ALARM)

    def _answer_waiting(self, now):
        """Answer the waiting call, holding the one in front (RFC 3264 §8.4 hold by re-INVITE)."""
        waiting = self.other
        self._emit(commands.Hold(self.call_key))
        self.other = self._park_front("held")
        self.leg_state = None
        self._load_leg(waiting)
        self._set_state(RINGING, now)
        self._answer(now)

    def _busy_waiting(self, now):
        """Refuse the waiting call (486 Busy Here); it is a missed call in the history."""
        key = self.other["call_key"]
        self._on_other(lambda: (self._emit(commands.Busy(key)), self._finish_call(now, "busy", missed=True)), now)

    def _join(self, now):
        """The local three-way conference: the held call comes back and both are mixed."""
        self.other["role"] = "conference"
        self._emit(commands.Resume(self.other["call_key"]))
        self._emit(commands.Conference(True))
        self.leg_state = self.state
        self._set_state(CONFERENCE, now)

    def _split(self, now):
        """Out of the conference: the other leg is held again, the front one stays."""
        self._emit(commands.Conference(False))
        self._emit(commands.Hold(self.other["call_key"]))
        self.other["role"] = "held"
        self._set_state(self.leg_state, now)
        self.leg_state = None

    def _key_when_waiting(self, key, now):
        if key == KEY_HOLD:
            self._answer_waiting(now)
        elif key == KEY_BACK:
            self._busy_waiting(now)
        elif key != KEY_CONFERENCE:
            self._on_front(lambda: self._key_in_call(key, now), now)

    def _key_when_held(self, key, now):
        if key == KEY_HOLD:
            self._resume(now)
        elif key == KEY_HANGUP:
            self._on_front(lambda: self._hang_up(now, "hung up"), now)

    def _key_in_conference(self, key, now):
        if key in (KEY_HOLD, KEY_CONFERENCE):
            self._split(now)
        elif key == KEY_HANGUP:
            self._on_other(lambda: self._hang_up(now, "hung up"), now)
            self._hang_up(now, "hung up")
        else:
            self._on_front(lambda: self._key_in_call(key, now), now)

    def _trust_when_waiting(self, long, now):
        self._on_front(lambda: self._trust_in_call(long, now), now)

    def _trust_in_conference(self, long, now):
        """Each leg's SAS is its own: a press is for the first leg (front, then other) whose SAS is not
        confirmed yet; the screen marks that leg."""
        if self._sas_pending(self.leg_state, self.sas, self.verified, self.alarm_reason):
            self._on_front(lambda: self._trust_in_call(long, now), now)
            return
        o = self.other
        if self._sas_pending(o["state"], o["sas"], o["verified"], o["alarm_reason"]):
            self._on_other(lambda: self._trust_in_call(long, now), now)

    @staticmethod
    def _sas_pending(state, sas, verified, alarm_reason):
        return sas is not None and not verified and (state == SECURE or alarm_reason in SAS_ALARMS)


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
    desk_events.MessageSummary: Phone._on_message_summary,
    desk_events.TrustMarks: Phone._on_trust_marks,
}
_MENU_ACTIONS = {
    menu.ADD_CONTACT: Phone._add_contact_from_history,
    menu.TOGGLE_DND: Phone._toggle_dnd,
    menu.SET_FORWARD: Phone._set_forward,
    menu.SET_NO_ANSWER: Phone._set_no_answer,
    menu.SET_CONTACT_NUMBER: Phone._set_contact_number,
    menu.DELETE_CONTACT: Phone._delete_contact,
}
for _condition in conditions.CONDITION_EVENTS:
    _EVENT_HANDLERS[_condition] = Phone._on_condition

_LEG_EVENTS = (
    events.CallIncoming,
    events.CallRinging,
    events.CallAnswered,
    events.CallSecure,
    events.CallAlarm,
    events.CallNotSecure,
    events.CallEnded,
    events.TransferTo,
)
# The commands that act on the session's focused call (the others name their call, or none).
_FOCUSED_COMMANDS = (commands.Hangup, commands.ConfirmSas, commands.RejectSas, commands.SendDtmf)
_LEG_DEFAULTS = {"far_ringing": False, "verified": False, "secure": False, "confirmed_now": False}
_LEG_DEFAULTS.update(alarm_acknowledged=False, end_duration=0, untrusted=False, to_server_only=False)

_KEYS = {
    CALL_WAITING: Phone._key_when_waiting,
    HELD: Phone._key_when_held,
    CONFERENCE: Phone._key_in_conference,
    IDLE: Phone._key_when_idle,
    ERROR: Phone._key_when_idle,
    ENDED: Phone._key_when_idle,
    DIALING: Phone._key_when_dialing,
    CALLING: Phone._key_when_calling,
    RINGING: Phone._key_when_ringing,
    MENU: Phone._key_in_menu,
}
_TRUST = {
    CALL_WAITING: Phone._trust_when_waiting,
    CONFERENCE: Phone._trust_in_conference,
    DIALING: Phone._trust_when_dialing,
    RINGING: Phone._trust_when_ringing,
    ENDED: Phone._trust_when_ended,
    MENU: Phone._trust_in_menu,
}
for _state in CALL_STATES:
    _KEYS[_state] = Phone._key_in_call
    _TRUST[_state] = Phone._trust_in_call
