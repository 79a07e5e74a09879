"""What every front end does with one call at a time: place it, answer it, follow re-INVITEs, hang it up
(CallController). The front ends are single_call (`sotto call/answer`), phone_calls with phone_leg and
phone_run (`sotto run`) and echo_line. Everything runs on the Loop's thread, except the audio loop
inside MediaStream."""

import logging

from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.runtime.call_media import CallMedia
from firmware.runtime.endpoint import StartupError
from firmware.runtime.summary import Summary
from firmware.sip import events as sip_events

log = logging.getLogger("sotto.calls")


# After a hang-up, how long we keep pumping for the BYE transaction to finish.
HANGUP_GRACE = 3.0


REJECTIONS = (403, 404, 410, 480, 486, 600, 603, 604)


class CallController:
    """What every front end does with one call at a time: place it, answer it, follow re-INVITEs,
    hang it up. Subclasses decide what the events mean for them (a summary, a phone screen)."""

    def __init__(self, endpoint, settings, audio, listen=True):
        """listen=False: a front end with several calls (phone_calls) hands each its own events."""
        self.endpoint = endpoint
        self.loop = endpoint.loop
        self.ua = endpoint.ua
        self.settings = settings
        self.audio = audio
        self.call_id = None
        self.media = None
        self.summary = None
        self.hanging_up = False
        self._target = None
        self.transfer = None  # firmware.runtime.transfer.Transferee while we make a call we were referred to
        self.parked = None  # _ParkedCall: the call we were referred away from, kept until the transfer succeeds
        # A late-offer INVITE (no SDP, RFC 3261 §13.2.1): None, "2xx" (our offer goes in the 2xx, the answer
        # comes in the ACK), "183" (our offer went in a reliable 183, the answer comes in its PRACK, RFC 3262
        # §5) or "pracked" (it came).
        self._late_offer = None
        self._answer_when_pracked = False
        if listen:
            endpoint.listen(self.on_event)

    # -- commands ---------------------------------------------------------------------------------
    def new_summary(self):
        """The record of the next call (the phone keeps one per call; `sotto call` only ever has one)."""
        return Summary(self.settings.media.encryption)

    def place(self, uri, offer_sdes=False):
        self.summary = self.new_summary()
        self.hanging_up = False
        self._late_offer, self._answer_when_pracked = None, False
        self._target = uri
        self.media = CallMedia(self.endpoint, self.summary, uri, offer_sdes=offer_sdes)
        transfer = self.transfer if self.transfer is not None and not self.transfer.done else None
        replaces = transfer.replaces if transfer is not None else None  # RFC 3891: attended transfer
        self.call_id = self.ua.invite(uri, self.media.offer(), self.loop.now(), replaces=replaces)
        if transfer is not None:
            transfer.new_call = self.call_id
        self.endpoint.pump()

    def _retry_with_sdes(self, event):
        """A phone without ZRTP that insists on SRTP (SDES mandatory) refuses a ZRTP-only offer with 488 (RFC
        3261 §21.4.26). Every peer gets a working call: offer again, ZRTP and SDES together (RFC 4568)."""
        if (
            event.status != 488
            or self.media is None
            or self.media.offer_sdes
            or self.media.encryption != "zrtp"
            or self.settings.zrtp.secure_only
        ):
            return False
        log.warning("the peer refused our ZRTP offer (488): offering SDES-SRTP as well")
        self.media.close()
        self.call_id = None
        summary = self.summary
        self.place(self._target, offer_sdes=True)
        self.summary = summary
        self.media.summary = summary
        return True

    def take_incoming(self, event):
        """Adopt an incoming call and prepare our answer (or, to an INVITE without SDP, our offer); False
        (and the call refused) if we cannot."""
        now = self.loop.now()
        self.summary = self.new_summary()
        self.hanging_up = False
        self.call_id = event.call_id
        self.media = CallMedia(self.endpoint, self.summary, str(event.from_uri))
        self._late_offer, self._answer_when_pracked = None, False
        if not event.sdp:
            self._late_offer = "2xx"  # ring() moves it to a reliable 183 when the caller supports 100rel
            self._answer_sdp = self.media.offer()
            return True
        try:
            self._answer_sdp = self.media.answer(event.sdp)
        except RemoteProtocolError as exc:
            self.ua.reject(event.call_id, exc.status if exc.status >= 400 else 488, now)
            self.call_over("failed", "cannot answer the offer: {}".format(exc), exc.status)
            return False
        return True

    def ring(self):
        """180 Ringing. To a late-offer INVITE from a caller that supports 100rel, a reliable 183 with our
        offer instead, so the answer comes early, in the PRACK (RFC 3262 §5); without 100rel the offer
        waits for the 2xx."""
        now = self.loop.now()
        if self._late_offer == "2xx":
            try:
                self.ua.ringing(self.call_id, now, sdp=self._answer_sdp)
            except LocalProtocolError:
                pass
            else:
                self._late_offer = "183"
                self.endpoint.pump()
                return
        self.ua.ringing(self.call_id, now)
        self.endpoint.pump()

    def answer(self):
        if self._late_offer == "183":
            self._answer_when_pracked = True  # RFC 3262 §3: no 2xx before the PRACK of the 183 with our offer
            return
        now = self.loop.now()
        self.ua.answer(self.call_id, self._answer_sdp, now)
        self.summary.sip_status = 200
        self.endpoint.pump()
        if self._late_offer == "2xx":
            return  # the answer comes in the ACK (CallConfirmed); the media starts then
        self._start_media()

    def _late_answer(self, sdp, where):
        """The answer to our offer of a late-offer call, from the PRACK or the ACK: False when unusable (the
        call is then refused or ended)."""
        try:
            if not sdp:
                raise RemoteProtocolError("no SDP answer in the " + where, 488)
            self.media.accept_answer(sdp)
        except RemoteProtocolError as exc:
            reason = "unusable SDP answer in the {}: {}".format(where, exc)
            if where == "PRACK":
                self.ua.reject(self.call_id, 488, self.loop.now())
                self.endpoint.pump()
                self.call_over("failed", reason, 488)
            else:
                self.hangup("failed", reason)
            return False
        return True

    def hangup(self, result=None, reason=None):
        """End the call politely (BYE, CANCEL or a decline); the summary keeps the first reason."""
        if result is not None and self.summary is not None:
            self.summary.finish(result, reason)
        if self.call_id is None or self.hanging_up:
            return
        self.hanging_up = True
        call_id = self.call_id
        try:
            self.ua.hangup(call_id, self.loop.now())
        except LocalProtocolError:
            self.call_over(result or "completed", reason or "hung up")
            return
        self.endpoint.pump()
        self.loop.call_later(HANGUP_GRACE, lambda: self._hangup_grace_over(call_id))

    def _hangup_grace_over(self, call_id):
        if self.call_id == call_id:
            self.call_over("failed", "the peer did not confirm the hang-up")

    # -- events -----------------------------------------------------------------------------------
    def on_event(self, kind, media, payload):
        if kind == "sip":
            self._on_sip(payload)
            if self.transfer is not None:
                self.transfer.observe(payload)  # after _on_sip: a 488 retried with SDES is not the outcome
        elif media is not None and media is not self.media:
            return
        elif kind == "secure":
            self.on_secure(payload)
        elif kind == "not-secure":
            self.on_not_secure(payload)
        elif kind == "alarm":
            self.on_alarm(payload)
        elif kind == "end":
            self.hangup(payload.result, payload.reason)

    def _on_sip(self, event):
        e = sip_events
        if isinstance(event, e.IncomingCall):
            if event.replaces is not None and event.replaces == self.call_id:
                self.take_replacing(event)
            elif self.call_id is not None:
                self.on_busy(event)
            else:
                self.on_incoming(event)
            return
        if isinstance(event, (e.Registered, e.RegistrationFailed, e.Unregistered)):
            if isinstance(event, e.Registered):
                log.info("registered as %s for %d s", self.settings.account.uri, event.expires)
            elif isinstance(event, e.RegistrationFailed):
                log.warning("registration failed: %s", event.reason)
            self.on_registration(event)
            return
        if self.parked is not None and getattr(event, "call_id", None) == self.parked.call_id:
            self._on_parked_sip(event)
            return
        if getattr(event, "call_id", None) != self.call_id or self.call_id is None:
            return
        if isinstance(event, e.PrackAnswer) and self._late_offer == "183":
            if self._late_answer(event.sdp, "PRACK"):
                self._late_offer = "pracked"
                if self._answer_when_pracked:
                    self._answer_when_pracked = False
                    self.answer()
        elif isinstance(event, e.CallConfirmed) and self._late_offer == "2xx":
            self._late_offer = None
            if self._late_answer(event.sdp, "ACK"):
                self._start_media()
        elif isinstance(event, e.CallRinging):
            self.on_ringing()
        elif isinstance(event, e.CallAnswered):
            try:
                self.media.accept_answer(event.sdp)
            except RemoteProtocolError as exc:
                self.hangup("failed", "unusable SDP answer: {}".format(exc))
                return
            self.summary.sip_status = 200
            self._start_media()
        elif isinstance(event, e.CallFailed):
            if self._retry_with_sdes(event):
                return
            result = "rejected" if event.status in REJECTIONS else "failed"
            self.call_over(result, event.reason or "call failed", event.status)
        elif isinstance(event, e.CallEnded):
            if self.summary.sip_status == 0 and event.sip_status:
                self.summary.sip_status = event.sip_status
            if self.media is None or self.media.media_up_at is None:
                self.call_over("failed", event.reason, event.sip_status)
            else:
                self.call_over(*self.media.policy.result_of_hangup(event.reason))
        elif isinstance(event, e.ReinviteReceived):
            self._on_reinvite(event)
        elif isinstance(event, e.ReferReceived):
            self.on_refer(event)
        elif isinstance(event, (e.ReinviteAnswered, e.ReinviteFailed, e.ReferProgress)):
            self.on_own_request_outcome(event)

    def _start_media(self):
        self.on_media_starting()
        try:
            self.media.start(self.audio)
        except StartupError as exc:
            self.hangup("failed", str(exc))
            self.on_audio_missing(str(exc))
            return
        self.on_media_up()
        self.media.open_policy()

    def _on_reinvite(self, event):
        """A re-INVITE (hold, resume, new address); the call policy judges what it does to the keying."""
        now = self.loop.now()
        try:
            answer = self.media.answer_reinvite(event.sdp)
        except RemoteProtocolError as exc:
            self.ua.reject_reinvite(event.call_id, 488, now)
            log.warning("re-INVITE refused: %s", exc)
            return
        self.ua.answer_reinvite(event.call_id, answer, now)

    def call_over(self, result, reason, status=None):
        if self._transfer_failed_now():
            self.resume_after_failed_transfer(status, reason)
            return
        self._drop_parked()  # a call we were transferred away from goes with it (on_call_over's leave_now: BYE)
        if self.summary is not None:
            self.summary.finish(result, reason, status)
        if self.media is not None:
            self.media.close()
        self.call_id = None
        self.on_call_over()

    def leave_for_transfer(self, event, keep_old=False):
        """We accept a transfer (ReferReceived): the REFER's dialog stays up until the new call's outcome is
        reported there (RFC 3515 §2.4.4); the next place() makes that call (with the Replaces of an
        attended transfer) and the Transferee reports it.

        keep_old=False: the old call's media ends now. keep_old=True: it is parked, on hold in the AudioHub
        (`self.audio`), so that a transfer that fails (the target refuses, never answers, is unreachable)
        gives us the old call back (RFC 5589 §6.1: the transferor may take it off hold); a transfer that
        succeeds ends it when its dialog ends."""
        from firmware.runtime.transfer import Transferee

        log.info("transfer to %s accepted%s", event.target, " (attended)" if event.replaces else "")
        keep_old = keep_old and self.media is not None and self.call_id == event.call_id
        self.transfer = Transferee(self.ua, self.loop, self.endpoint.pump, event, keep_old=keep_old)
        old_leg = None
        if self.summary is not None:
            self.summary.transfer = self.transfer.record
            old_leg = self.summary.new_leg()
        if keep_old:
            self.parked = _ParkedCall(self.call_id, self.media, old_leg)
            # Until it is taken back, what the parked media counts is not the summary's (it describes the
            # new call); its own record is dropped with it.
            self.media.summary = Summary(self.media.encryption)
            self._set_audio_active(self.media, False)
        elif self.media is not None:
            self.media.close()
        self.call_id = None
        self.media = None

    def _set_audio_active(self, media, active):
        port_of = getattr(self.audio, "port_of", None)  # an AudioHub: the calls share one device
        if port_of is not None and media is not None and media.stream is not None:
            self.audio.set_active(port_of(media.stream), active)

    def _transfer_failed_now(self):
        """The call we were referred to is failing: do we take the parked call back instead of ending?"""
        transfer = self.transfer
        return (
            self.parked is not None
            and transfer is not None
            and not transfer.done
            and self.parked.call_id in self.ua.calls
            and not (self.summary is not None and self.summary.reason)  # the run is not ending (signal, timeout)
        )

    def resume_after_failed_transfer(self, status, reason):
        """The new call failed (`status`, a SIP final status, or None when it never got one): report it to
        the transferor (the final sipfrag NOTIFY, RFC 3515 §2.4.5) and go back to the parked call, media
        and summary as they were (its keys, SAS and counters never stopped)."""
        status = status if status is not None and status >= 300 else 487
        parked, self.parked = self.parked, None
        if self.media is not None:
            self.media.close()
        log.warning("transfer to %s failed (%s %s): back to the original call", self.transfer.target, status, reason)
        self.transfer.finish(status)
        self.transfer.record["resumed"] = True
        self.call_id, self.media = parked.call_id, parked.media
        self.hanging_up = False
        if self.summary is not None:
            self.summary.resume_leg(parked.leg)
            self.media.summary = self.summary
        self._set_audio_active(self.media, True)
        self.on_transfer_failed(status)

    def _drop_parked(self):
        parked, self.parked = self.parked, None
        if parked is not None:
            parked.media.close()

    def _on_parked_sip(self, event):
        """The parked call's dialog while the transfer is under way: the transferor may end it (a BYE right
        after the 202 is common) or re-INVITE it (hold, resume); it is still a call we answer for."""
        e = sip_events
        if isinstance(event, e.CallEnded):
            log.info("the transferred call ended (%s)", event.reason)
            self._drop_parked()
        elif isinstance(event, e.ReinviteReceived):
            now = self.loop.now()
            try:
                answer = self.parked.media.answer_reinvite(event.sdp)
            except RemoteProtocolError as exc:
                self.ua.reject_reinvite(event.call_id, 488, now)
                log.warning("re-INVITE refused: %s", exc)
                return
            self.ua.answer_reinvite(event.call_id, answer, now)

    def take_replacing(self, event):
        """An INVITE with Replaces naming our call (RFC 3891 §3, already matched by the UA): answer it and
        end the replaced dialog with BYE. The media moves to the new dialog with a new ZRTP session: the
        SAS is per peer, so the new one is read and confirmed afresh."""
        now = self.loop.now()
        old_call, old_media = self.call_id, self.media
        self.call_id = event.call_id
        self.media = CallMedia(self.endpoint, self.summary, str(event.from_uri))
        try:
            self._answer_sdp = self.media.answer(event.sdp)
        except RemoteProtocolError as exc:
            self.media.close()
            self.call_id, self.media = old_call, old_media
            self.ua.reject(event.call_id, exc.status if exc.status >= 400 else 488, now)
            log.warning("call replacement refused: %s", exc)
            return
        log.info("call replaced by %s", event.from_uri)
        if old_media is not None:
            old_media.close()
        if self.summary is not None:
            self.summary.transfer = {"role": "target", "replaced_by": str(event.from_uri)}
            self.summary.new_leg()
        self.ua.answer(event.call_id, self._answer_sdp, now)
        try:
            self.ua.hangup(old_call, now)
        except LocalProtocolError:
            pass
        self.endpoint.pump()
        self._start_media()

    # -- hooks for the front ends -----------------------------------------------------------------
    def on_refer(self, event):
        """A transfer (RFC 3515) we were asked to make: declined unless the front end follows it."""
        log.info("transfer to %s requested; declined", event.target)
        self.ua.notify_refer(event.call_id, 603, self.loop.now())
        self.endpoint.pump()

    def on_incoming(self, event):
        self.ua.reject(event.call_id, 486, self.loop.now())

    def on_busy(self, event):
        """A second incoming call while one is up: one call at a time, Busy Here (the phone may forward it)."""
        self.ua.reject(event.call_id, 486, self.loop.now())

    def on_own_request_outcome(self, event):
        """How our own re-INVITE or REFER went (ReinviteAnswered, ReinviteFailed, ReferProgress)."""

    def on_registration(self, event):
        pass

    def on_ringing(self):
        pass

    def on_media_starting(self):
        pass

    def on_media_up(self):
        pass

    def on_secure(self, event):
        pass

    def on_not_secure(self, event):
        """firmware.call.NotSecure: the call goes on without end-to-end keys (already logged, in the summary)."""

    def on_alarm(self, event):
        """firmware.call.Alarm (already logged, in the summary)."""

    def on_audio_missing(self, why):
        pass

    def on_call_over(self):
        pass

    def on_transfer_failed(self, status):
        """The call we were referred to failed with `status` and the original call is ours again."""


class _ParkedCall:
    """The call a transfer took us away from, kept while the new call is tried: its Call-ID, its CallMedia
    (on hold in the AudioHub) and what the summary said of its media (Summary.new_leg)."""

    __slots__ = ("call_id", "media", "leg")

    def __init__(self, call_id, media, leg):
        self.call_id = call_id
        self.media = media
        self.leg = leg
