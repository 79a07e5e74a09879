"""One of the phone's calls (issue 15): the CallController that PhoneCalls (phone_calls.py) hands
its events and that tells the Phone what happens to it."""

import logging

from firmware.errors import LocalProtocolError
from firmware.runtime.call_media import hex_id
from firmware.runtime.calls import CallController
from firmware.sip import events as sip_events

log = logging.getLogger("sotto.phone-calls")


class PhoneLeg(CallController):
    """One of the phone's calls (at most two, issue 15): a CallController that PhoneCalls hands its events.
    `key` names it to the phone (the SIP Call-ID changes when an offer is retried with SDES; the key does
    not)."""

    def __init__(self, front, key):
        CallController.__init__(self, front.endpoint, front.settings, front.hub, listen=False)
        self.front = front
        self.key = key
        self.incoming = None  # the IncomingCall not answered yet
        self.want_hold = False  # what the phone asked for
        self.on_hold = False  # what the peer accepted (our last re-INVITE's answer)
        self.hold_pending = None  # True/False while our hold/resume re-INVITE is out
        self.known_peers = frozenset()  # peers (ZID hex) with a retained secret when this call began
        self.transfer_to = None  # the other leg while our attended-transfer REFER is out on this one
        self.replaced = False  # this call's far end is being given another caller (attended transfer)
        self.referred = None  # the Transferee of a REFER we follow while this call waits on hold for its outcome

    def feed(self, event):
        self.front.feed(event)

    # -- hold and resume: a re-INVITE a=sendonly / a=sendrecv (RFC 3264 §8.4), one at a time ----------
    def set_hold(self, on_hold):
        self.want_hold = bool(on_hold)
        if self.media is not None:
            self.front.hub.set_active(self.front.hub.port_of(self.media.stream), not self.want_hold)
        self._sync_hold()

    def _sync_hold(self):
        if self.call_id is None or self.media is None or self.media.stream is None or self.hanging_up:
            return
        if self.hold_pending is not None or self.want_hold == self.on_hold:
            return
        direction = "sendonly" if self.want_hold else "sendrecv"
        try:
            self.ua.reinvite(self.call_id, self.media.reoffer(direction), self.loop.now())
        except LocalProtocolError as exc:
            log.warning("cannot %s the call: %s", "hold" if self.want_hold else "resume", exc)
            return
        self.hold_pending = self.want_hold
        self.endpoint.pump()

    def on_own_request_outcome(self, event):
        if isinstance(event, sip_events.ReferProgress):
            self._transfer_progress(event)
            return
        if self.hold_pending is None:
            return
        on_hold, self.hold_pending = self.hold_pending, None
        if isinstance(event, sip_events.ReinviteAnswered):
            self.media.accept_reanswer(event.sdp, on_hold)
            self.on_hold = on_hold
            log.info("call %s %s", self.key, "on hold" if on_hold else "resumed")
        elif isinstance(event, sip_events.ReinviteFailed):
            log.warning("the peer refused our %s re-INVITE: %s", "hold" if on_hold else "resume", event.status)
            self.on_hold = on_hold  # the audio is switched here either way; do not ask again and again
        self._sync_hold()

    # -- attended transfer (RFC 5589 §7): REFER this (held) call to the other leg's far end -------------
    def transfer_to_other(self, other):
        try:
            self.ua.refer(self.call_id, None, self.loop.now(), replaces=other.call_id)
        except LocalProtocolError as exc:
            log.warning("transfer not possible: %s", exc)
            self.feed(self.front.P.TransferFailed(None, call=self.key))
            return
        self.transfer_to = other
        other.replaced = True
        self.endpoint.pump()

    def _transfer_progress(self, event):
        """202, then NOTIFY sipfrag statuses (RFC 3515 §2.4.5): a final 2xx means the far ends talk to each
        other; both our calls end (the other far end sends its own BYE too, for the replaced dialog)."""
        other = self.transfer_to
        if other is None or not event.final:
            return
        self.transfer_to = None
        if 200 <= event.status < 300:
            log.info("attended transfer done")
            for leg in (self, other):
                leg.hangup("completed", "transferred")
        else:
            other.replaced = False
            log.warning("attended transfer failed: %s", event.status)
            self.feed(self.front.P.TransferFailed(event.status, call=self.key))

    def call_over(self, result, reason, status=None):
        if self.replaced and result == "completed":
            # RFC 3891 §3: the far end given the transferee ends its dialog with us itself (BYE), often
            # before the REFER's final NOTIFY reaches us: that is the transfer, not a hang-up.
            reason = "transferred"
        referred = self.referred
        if referred is not None and referred.status is not None and 200 <= referred.status < 300:
            reason = "transferred"  # we followed a REFER and the new call was answered (RFC 5589 §6.1)
        CallController.call_over(self, result, reason, status)

    # -- call events -> the phone ------------------------------------------------------------------
    def on_incoming(self, event):
        self.known_peers = self.front.cached_peers()
        if self.take_incoming(event):
            self.incoming = event
            self.feed(self.front.P.CallIncoming(str(event.from_uri), event.from_display, call=self.key))
            # The phone may have refused it at once (do not disturb: 486, forward always: 302, no room
            # for a second call: 486): then it never rang.
            if self.call_id == event.call_id and self.incoming is event:
                self.ring()

    def on_ringing(self):
        self.feed(self.front.P.CallRinging(call=self.key))

    def on_media_starting(self):
        self.front.stop_tone_player()  # the call's stream needs the speaker

    def on_media_up(self):
        self.front.apply_audio_settings(self)
        if self.want_hold:
            self.front.hub.set_active(self.front.hub.port_of(self.media.stream), False)
        self.feed(self.front.P.CallAnswered(call=self.key))

    def on_secure(self, event):
        peer_zid = event.peer_zid if isinstance(event.peer_zid, str) else hex_id(event.peer_zid)
        algorithms = " ".join((event.key_agreement, event.cipher, event.hash, event.auth_tag))
        known = peer_zid in self.known_peers and not event.cache_mismatch
        P = self.front.P
        self.feed(
            P.CallSecure(
                event.sas,
                event.sas_type,
                bool(event.verified),
                bool(event.cache_mismatch),
                algorithms,
                peer_zid,
                known=known,
                call=self.key,
            )
        )

    def on_not_secure(self, event):
        if self.call_id is not None:
            self.feed(self.front.P.CallNotSecure(event.kind, event.reason, call=self.key))

    def on_alarm(self, event):
        # The call layer's alarm kinds are the phone's ALARM_* names.
        if self.call_id is not None:
            self.feed(self.front.P.CallAlarm(event.kind, call=self.key))

    def on_audio_missing(self, why):
        self.feed(self.front.P.AudioDeviceMissing(why))

    def on_refer(self, event):
        """Transfer (RFC 3515): the phone calls the target (it shows "calling"); the REFER's dialog hears how
        that call went (NOTIFY, through the Transferee that the phone's next call carries).

        With room for a second call, this one is kept, silenced in the hub, until the new call is answered
        (RFC 5589 §6.1: if the transfer fails the transferor still has its call with us): the phone holds
        it behind the new call and gets it back if that fails (TransferFailed). Otherwise (two calls
        already) this call is left at once, as a blind transfer from the background always was."""
        busy = self.referred is not None and not self.referred.done
        if busy or self.front.pending_transfer is not None or (self.transfer is not None and not self.transfer.done):
            CallController.on_refer(self, event)  # one transfer at a time
            return
        if len(self.front.legs) < self.front.MAX_LEGS and self.media is not None and self.media.stream is not None:
            from firmware.runtime.transfer import Transferee

            log.info("call transferred to %s; kept on hold until the new call is answered", event.target)
            self.referred = Transferee(self.ua, self.loop, self.endpoint.pump, event, keep_old=True)
            self.front.pending_transfer = self.referred
            # Silenced here, without a re-INVITE of ours (the transferor holds the call itself if it wants
            # to); on_hold so that the resume key, after a failed transfer, sends the re-INVITE that takes
            # it off hold (RFC 3264 §8.4).
            self.want_hold = self.on_hold = True
            self.front.hub.set_active(self.front.hub.port_of(self.media.stream), False)
            self.feed(self.front.P.TransferTo(event.target, call=self.key, kept=True))
            return
        log.info("call transferred to %s", event.target)
        self.summary.finish("completed", "transferred")
        self.leave_for_transfer(event)
        self.front.pending_transfer = self.transfer
        self.transfer = None
        self.front.leg_over(self)
        self.feed(self.front.P.TransferTo(event.target, call=self.key))

    def transfer_outcome(self, transfer):
        """The Transferee of the REFER this call follows (`referred`) is done. A failure gives the call back
        to the phone (it is in front again, held: TransferFailed shows why). A success ends the call for
        the phone now, as "transferred" (its media too); its SIP dialog is left to the transferor's BYE, or
        the Transferee's after LEAVE_GRACE (RFC 5589 §6.1)."""
        if transfer is not self.referred or transfer.status is None:
            return
        if transfer.status < 300:
            self.call_over("completed", "transferred")
            return
        self.referred = None
        log.warning("transfer to %s failed (%s): the call goes on, held", transfer.target, transfer.status)
        self.feed(self.front.P.TransferFailed(transfer.status, call=self.key))

    def on_call_over(self):
        summary = self.summary
        self.incoming = None
        self.front.leg_over(self)
        if self.front.driver is not None and summary is not None:
            reason = summary.reason or "call ended"
            self.feed(self.front.P.CallEnded(reason, summary.sip_status or None, call=self.key))
        self.front.send_trust_marks()  # the call may have verified a contact, or cached a new key
