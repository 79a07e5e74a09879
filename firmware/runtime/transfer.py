"""Transfer in the shell, host-only: both ends of a REFER (RFC 3515, RFC 5589) and the record a summary keeps
of it. The target's side (an INVITE with Replaces, RFC 3891) is CallController.take_replacing.

Transferor(ua, call_id, target_uri, now, replaces=None): sends our REFER on `call_id` (blind; attended with
    replaces=our other call, whose far end is then the target unless target_uri names one). progress(event)
    takes the ReferProgress events of that call and returns the outcome so far, also kept in `result`:
    "accepted: STATUS" (202, then the transferee's provisional sipfrags), "ok" (a 2xx sipfrag: the
    transfer is done, the caller ends `call_id` with BYE, RFC 5589 §6.1) or "failed: STATUS" (the
    caller keeps the call); None for an event that is not ours. `done` once ok or failed.

Transferee(ua, loop, pump, refer, keep_old=False): we were asked (ReferReceived) to call `refer.target`,
    with `refer.replaces` when the transfer is attended. The REFER's dialog stays up while the new call
    is made: RFC 3515 §2.4.4 wants its outcome reported there. The UA already sent
    "100 Trying"; observe(event) turns the new call's events into NOTIFYs (Event: refer, message/sipfrag):
    a provisional status as "active", the final one as "terminated;reason=noresource" (§2.4.5).
    After the final NOTIFY the transferor ends the old dialog (RFC 5589 §6.1); if it has not within
    LEAVE_GRACE seconds we send the BYE. A failed transfer leaves the old dialog up when keep_old (the
    front end parked the old call and takes it back: RFC 5589 §6.1 has the transferor resume it, so our
    leg must still be there), else we send the BYE at once.
    - leave_now(status=None): the front end stops: report a transfer still open as failed (`status`, or
      487) and send the BYE
    - new_call: the call id of the new call once placed (CallController.place sets it)
    - status: the final sipfrag status once known, else None
    - record: {"role": "transferee", "target", "attended", "status"}, the JSON summary's "transfer" (the
      status filled in when known)
"""

import logging

from firmware.errors import LocalProtocolError
from firmware.sip import events as sip_events

log = logging.getLogger("sotto.transfer")

# How long the transferor has to end the old dialog after a successful transfer before we do.
LEAVE_GRACE = 4.0


class Transferor:
    def __init__(self, ua, call_id, target_uri, now, replaces=None):
        ua.refer(call_id, target_uri, now, replaces=replaces)
        self.call_id = call_id
        self.replaces = replaces
        self.result = "pending"

    @property
    def done(self):
        return self.result == "ok" or self.result.startswith("failed")

    def progress(self, event):
        if self.done or not isinstance(event, sip_events.ReferProgress) or event.call_id != self.call_id:
            return None
        if event.status >= 300 or (event.final and event.status < 200):
            self.result = "failed: {}".format(event.status)  # a final report that is no success
        elif event.final:
            self.result = "ok"
        else:
            self.result = "accepted: {}".format(event.status)
        return self.result


class Transferee:
    def __init__(self, ua, loop, pump, refer, keep_old=False):
        self.ua = ua
        self.keep_old = keep_old
        self.loop = loop
        self.pump = pump
        self.old_call = refer.call_id
        self.target = refer.target
        self.replaces = refer.replaces
        self.new_call = None
        self.status = None
        self._last_reported = 100  # the UA sent 100 Trying when it accepted the REFER
        self.record = {
            "role": "transferee",
            "target": self.target,
            "attended": self.replaces is not None,
            "status": None,
        }

    @property
    def done(self):
        return self.status is not None

    def observe(self, event):
        """One SIP event: the ones of the new call are reported to the transferor."""
        if self.done or self.new_call is None or getattr(event, "call_id", None) != self.new_call:
            return
        e = sip_events
        if isinstance(event, e.CallRinging):
            if event.status > self._last_reported:
                self._notify(event.status)
        elif isinstance(event, e.CallAnswered):
            self.finish(200)
        elif isinstance(event, e.CallFailed):
            self.finish(event.status if event.status >= 300 else 500)
        elif isinstance(event, e.CallEnded):
            self.finish(487)  # gone before it was answered (cancelled, no answer)

    def finish(self, status):
        """The new call's final status: the last NOTIFY, then the old dialog is left behind."""
        if self.done:
            return
        self.status = self.record["status"] = status
        self._notify(status)
        if 200 <= status < 300:
            self.loop.call_later(LEAVE_GRACE, self._leave_old_dialog)
        elif not self.keep_old:
            self._leave_old_dialog()

    def _notify(self, status):
        self._last_reported = status
        try:
            self.ua.notify_refer(self.old_call, status, self.loop.now())
        except LocalProtocolError as exc:
            # The transferor already ended the dialog (some do right after 202): nobody left to tell.
            log.info("transfer progress %d not reported: %s", status, exc)
            return
        self.pump()

    def leave_now(self, status=None):
        """End the REFER's dialog now (the front end is done), reporting the transfer first if nothing has
        been: as `status` when that is a failure, else 487 (the new call never got an answer)."""
        if not self.done:
            self.keep_old = False  # nobody will take the old call back
            self.finish(status if status is not None and status >= 300 else 487)
        self._leave_old_dialog()

    def _leave_old_dialog(self):
        if self.old_call not in self.ua.calls:
            return
        try:
            self.ua.hangup(self.old_call, self.loop.now())
        except LocalProtocolError:
            return
        self.pump()
