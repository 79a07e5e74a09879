"""In-call actions for automation: `sotto call|answer --at T:ACTION` (issue 12), host-only.

ACTION is one of hold, resume, `dtmf DIGITS`, `transfer URI`, confirm-sas, reject-sas, hangup; T is seconds
after the media is up. parse_at() checks the text (the CLI turns its ValueError into a usage error);
InCallActions runs the schedule against a SingleCall and records each outcome for the JSON summary's
"actions" list: {"at": T, "action": "hold", "result": "ok" | "failed: WHY" | "sent"}.
"""

import logging

from firmware.errors import LocalProtocolError

log = logging.getLogger("sotto.actions")

SIMPLE = ("hold", "resume", "confirm-sas", "reject-sas", "hangup")
WITH_ARGUMENT = ("dtmf", "transfer")
DTMF_DIGITS = "0123456789*#ABCD"
MAX_DTMF = 32
MAX_AT = 86400.0
MAX_ACTIONS = 64
DTMF_SPACING = 0.25  # RFC 4733 events one after another: 100 ms tone, then a gap


class Action:
    __slots__ = ("at", "name", "argument")

    def __init__(self, at, name, argument=None):
        self.at = at
        self.name = name
        self.argument = argument

    def label(self):
        return self.name if self.argument is None else "{} {}".format(self.name, self.argument)


def parse_at(text):
    """ "T:ACTION" -> Action; ValueError with the reason when it is not one."""
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text):
        raise ValueError("control characters are not allowed")
    when, sep, action = text.partition(":")
    if not sep:
        raise ValueError("expected T:ACTION, e.g. 2:hold or 5:dtmf 123")
    try:
        at = float(when)
    except ValueError:
        raise ValueError("T must be seconds after media up, got {!r}".format(when)) from None
    if not 0 <= at <= MAX_AT:  # also refuses NaN
        raise ValueError("T must be between 0 and {:g} seconds".format(MAX_AT))
    name, _, argument = action.strip(" ").partition(" ")
    argument = argument.strip(" ")
    if name in SIMPLE:
        if argument:
            raise ValueError("{} takes no argument".format(name))
        return Action(at, name)
    if name == "dtmf":
        if not argument or len(argument) > MAX_DTMF or any(c not in DTMF_DIGITS for c in argument):
            raise ValueError("dtmf needs 1 to {} digits from {}".format(MAX_DTMF, DTMF_DIGITS))
        return Action(at, name, argument)
    if name == "transfer":
        if not argument:
            raise ValueError("transfer needs a SIP URI")
        return Action(at, name, argument)
    raise ValueError("unknown action {!r} (expected one of {})".format(name, ", ".join(SIMPLE + WITH_ARGUMENT)))


class InCallActions:
    """Runs the --at schedule on one SingleCall (a CallController with one call)."""

    def __init__(self, controller, actions):
        self.controller = controller
        self.actions = sorted(actions, key=lambda a: a.at)[:MAX_ACTIONS]
        self.records = []
        self._handles = []
        self._hold_pending = None  # (record, on_hold) while our re-INVITE is out
        self._pending_transfer = None  # (transfer.Transferor, record) while our REFER is out
        self._started = False

    def media_up(self):
        if self._started:
            return
        self._started = True
        loop = self.controller.loop
        for action in self.actions:
            record = {"at": action.at, "action": action.label(), "result": "pending"}
            self.records.append(record)
            self._handles.append(loop.call_later(action.at, lambda a=action, r=record: self._run(a, r)))

    def cancel(self):
        for handle in self._handles:
            handle.cancel()
        for record in self.records:
            if record["result"] == "pending":
                record["result"] = "failed: the call ended first"

    # -- running one action -------------------------------------------------------------------------------
    def _run(self, action, record):
        c = self.controller
        if c.call_id is None or c.media is None:
            record["result"] = "failed: no call"
            return
        log.info("--at %g: %s", action.at, action.label())
        try:
            getattr(self, "_" + action.name.replace("-", "_"))(action, record)
        except LocalProtocolError as exc:
            record["result"] = "failed: {}".format(exc)
        c.endpoint.pump()

    def _hold(self, action, record, on_hold=True):
        c = self.controller
        if self._hold_pending is not None:
            record["result"] = "failed: a hold or resume is in progress"
            return
        c.ua.reinvite(c.call_id, c.media.reoffer("sendonly" if on_hold else "sendrecv"), c.loop.now())
        self._hold_pending = (record, on_hold)

    def _resume(self, action, record):
        self._hold(action, record, on_hold=False)

    def _dtmf(self, action, record):
        c = self.controller
        stream = c.media.stream
        for index, digit in enumerate(action.argument):
            c.loop.call_later(index * DTMF_SPACING, lambda d=digit: stream.send_dtmf(d))
        record["result"] = "sent"

    def _transfer(self, action, record):
        from firmware.runtime.transfer import Transferor

        c = self.controller
        self._pending_transfer = (Transferor(c.ua, c.call_id, action.argument, c.loop.now()), record)

    def _confirm_sas(self, action, record, matches=True):
        media = self.controller.media
        if media.secure_at is None:
            record["result"] = "failed: no SAS (the call is not secure)"
            return
        if matches:
            media.confirm_sas()
        else:
            media.reject_sas()
        record["result"] = "ok"

    def _reject_sas(self, action, record):
        self._confirm_sas(action, record, matches=False)

    def _hangup(self, action, record):
        record["result"] = "ok"
        self.controller.hangup("completed", "hung up (--at)")

    # -- outcomes from SIP ------------------------------------------------------------------------------
    def reinvite_answered(self, sdp):
        if self._hold_pending is None:
            return
        record, on_hold = self._hold_pending
        self._hold_pending = None
        self.controller.media.accept_reanswer(sdp, on_hold)
        record["result"] = "ok"

    def reinvite_failed(self, status):
        if self._hold_pending is None:
            return
        record, _on_hold = self._hold_pending
        self._hold_pending = None
        record["result"] = "failed: {}".format(status)

    def refer_progress(self, event):
        """RFC 3515: 202 accepts the REFER; the NOTIFY sipfrag says how the new call went. A transfer that
        succeeded ends our call (we were the transferor); a failed one leaves it as it is."""
        if self._pending_transfer is None:
            return
        transferor, record = self._pending_transfer
        result = transferor.progress(event)
        if result is None:
            return
        record["result"] = result
        if transferor.done:
            self._pending_transfer = None
        if result == "ok":
            self.controller.hangup("completed", "transferred")
