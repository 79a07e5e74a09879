"""The second call (issue 15): call waiting, hold and swap, the local conference and the
attended transfer from the phone. A mixin of Phone: the call in front is Phone's own attributes, the other
call a dict of LEG_FIELDS plus its state and role.
"""

from firmware.phone import commands, events, views
from firmware.phone.states import (
    ALARM,
    CALL_STATES,
    CALL_WAITING,
    CALLING,
    CONFERENCE,
    DIALING,
    HELD,
    KEY_BACK,
    KEY_CONFERENCE,
    KEY_HANGUP,
    KEY_HOLD,
    KEY_REDIAL,
    KEY_VOICEMAIL,
    OVERLAY_STATES,
    RINGING,
    SAS_ALARMS,
    SECURE,
    TONE_ALARM,
    TONE_RING,
    TONE_WAITING,
)

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

# The commands that act on the session's focused call (the others name their call, or none).
_FOCUSED_COMMANDS = (commands.Hangup, commands.ConfirmSas, commands.RejectSas, commands.SendDtmf)
_LEG_DEFAULTS = {"far_ringing": False, "verified": False, "secure": False, "confirmed_now": False}
_LEG_DEFAULTS.update(alarm_acknowledged=False, end_duration=0, untrusted=False, to_server_only=False)


class TwoCalls:
    """The call in front is the Phone's own attributes (LEG_FIELDS), as with one call; the second call is
    kept in self.other with its own state and its role: "waiting" (ringing behind the call in front),
    "held", or "conference" (the other leg). In an OVERLAY_STATE the front call's own state is kept in
    self.leg_state; its events and keys are handled in that state, then the overlay is put back."""

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
        self._other_gone(other["role"], now, after["end_reason"])

    def _other_gone(self, role, now, reason=None):
        """The second call ended (the far end hung up, we ended it, the waiting caller gave up, a transfer
        we followed succeeded: reason "transferred")."""
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
            self._show_notice("transferred" if reason == "transferred" else "held call ended", now)

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
            or self.state in (RINGING, CALLING, DIALING)
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
        elif self.other is None and (len(key) == 1 or key in (KEY_REDIAL, KEY_VOICEMAIL)):
            self._dial_while_held(key, now)

    def _dial_while_held(self, key, now):
        """Hold, then dial a new number (as every desk phone allows): the held call steps aside and the key
        starts dialing as on idle ('#' or redial: the last number; voicemail). Abandoning the number brings
        the held call back in front (_after_front_change); once the new call is up, `hold` swaps,
        `conference` joins and `transfer` connects the two (a consultation call, RFC 5589 §7)."""
        held = self._park_front("held")
        self.other = held
        self.leg_state = None
        self._reset_call()
        self._key_when_idle(key, now)
        if self.state == HELD:
            # Nothing to dial (no number to redial, no voicemail number): the held call is in front again.
            self.other = None
            self._load_leg(held)
            self.leg_state = held["state"]

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
