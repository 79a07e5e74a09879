"""The phone's application state machine (sans-I/O, MicroPython-clean); firmware/phone/__init__.py
describes its states, keys and contract. Each event type has one handler (_EVENT_HANDLERS below); keys
and the trust button are then dispatched through tables keyed by state (keys.py). Phone is this module's
core (its API, timers, plumbing and call events) plus three mixins: keys.py (keys, trust button, hook
switch), two_calls.py (call waiting, hold, swap, conference, attended transfer) and desk_handlers.py (do
not disturb, call forward, contacts, message waiting)."""

from firmware.errors import LocalProtocolError
from firmware.phone import commands, conditions, desk, desk_events, events, menu, views
from firmware.phone import contacts as contacts_module
from firmware.phone.desk import DeskSettings as _DeskSettings
from firmware.phone.desk_handlers import DeskHandlers
from firmware.phone.history import call_entry, last_dialed, load_history, record_call, speed_dial_pairs
from firmware.phone.keys import KeyHandlers
from firmware.phone.states import (
    ALARM,
    ALARM_CACHE_MISMATCH,
    ALARM_NOT_SECURE,
    CALL_STATES,
    CALLING,
    COMMAND_QUEUE_LIMIT,
    DIAL_TIMEOUT,
    DIALING,
    ENDED,
    ENDED_HOLD,
    ERROR,
    ERROR_TRUST_CACHE,
    HELD,
    IDLE,
    IN_CALL,
    MENU,
    NOT_SECURE_ALARMS,
    NOTICE_HOLD,
    OVERLAY_STATES,
    RINGING,
    SAS_ALARMS,
    SECURE,
    TONE_ALARM,
    TONE_RING,
    TONE_RINGBACK,
    UNRESOLVED_LIMIT,
    VERIFIED,
    lookup,
)
from firmware.phone.two_calls import TwoCalls

TICK_STATES = CALL_STATES + OVERLAY_STATES  # the call duration on the screen advances once a second


class Phone(TwoCalls, DeskHandlers, KeyHandlers):
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
        typing = self._menu.get_timer() if self.state == MENU else None  # a multi-tap letter commits
        for when in (self._deadline, self._tick, self.notice[1] if self.notice is not None else None, typing):
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
        if self.state == MENU:
            self._menu.handle_timer(now)
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        if self.state in (DIALING, ENDED, MENU):
            self._go_idle(now)
        elif self.state == RINGING and self.desk.no_answer:
            # Call forward on no answer: nobody picked up within no_answer_seconds.
            self._forward(self.desk.no_answer, now, "forwarded (no answer)")
        self._after_front_change(now)  # a number abandoned while a call is held: the held call comes back

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
            menu_entry=self._menu_entry_view(),
            contacts=tuple(self.contacts),
            contact_marks=tuple(self.contact_mark(contact["uri"]) for contact in self.contacts),
            desk=self.desk.to_dict(),
            desk_line=self.desk.summary(),
            messages=self.messages,
            **{name: getattr(self, name) for name in views.ViewModel.COPIED},
        )

    def _menu_entry_view(self):
        entry = self._menu.entry
        if self._menu.page != menu.NAME or entry is None:
            return None
        return views.NameEntry(entry.shown(), entry.pending_cycle, entry.pending_index, entry.limit)

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
        if event.kept and self.other is None:
            # The session keeps the call until the new one is answered: held behind it, it comes back in
            # front if the new call fails (two_calls._after_front_change), and ends "transferred" if not.
            self.other = self._park_front("held")
            self.leg_state = None
        else:
            self._finish_call(now, "transferred")
        self._dial(event.uri, now)

    def _on_transfer_failed(self, event, now):
        status = "" if event.status is None else " ({})".format(event.status)
        self._show_notice("transfer failed" + status, now)

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
    events.TransferFailed: Phone._on_transfer_failed,
    events.OurZid: Phone._on_our_zid,
    desk_events.MessageSummary: Phone._on_message_summary,
    desk_events.TrustMarks: Phone._on_trust_marks,
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
