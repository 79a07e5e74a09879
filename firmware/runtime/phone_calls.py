"""`sotto run`'s calls: PhoneCalls turns the Phone's commands into calls through the endpoint (at most two
PhoneLegs, phone_leg.py) and their events into the Phone's; run_phone (phone_run.py) puts it on the loop."""

import logging

from firmware.runtime.call_media import hex_id
from firmware.runtime.endpoint import StartupError
from firmware.runtime.phone_leg import PhoneLeg
from firmware.sip import events as sip_events

log = logging.getLogger("sotto.phone-calls")


class PhoneCalls:
    """`sotto run`: the Phone state machine and its device, driving its calls (at most MAX_LEGS at once:
    call waiting, hold, swap, the local conference) through the endpoint. The calls share the microphone
    and earpiece through an AudioHub."""

    MAX_LEGS = 2

    def __init__(self, endpoint, settings, audio, history, desk_store=None):
        from firmware import phone as P
        from firmware.runtime.audio_hub import AudioHub

        self.P = P
        self.endpoint = endpoint
        self.loop = endpoint.loop
        self.ua = endpoint.ua
        self.settings = settings
        self.hub = AudioHub(audio)
        self.history = history  # history_store.HistoryStore
        self.desk_store = desk_store  # desk_store.DeskStore: desk settings and contacts
        self.mwi = None  # firmware.sip.subscription.MessageSummarySubscription, once set up
        phone_settings = settings.phone
        if phone_settings.unsolicited_notify or (phone_settings.message_waiting and settings.account.uri):
            from firmware.sip.subscription import MessageSummarySubscription

            target = phone_settings.message_account or settings.account.uri or "sip:{}".format(settings.sip.listen)
            self.mwi = MessageSummarySubscription(self.ua, target, accept_unsolicited=phone_settings.unsolicited_notify)
        self.volume = None  # the phone's, once bound
        self.muted = False
        self.driver = None
        self.legs = []
        self.focus = None  # the leg Hangup, ConfirmSas, RejectSas and SendDtmf act on
        self.pending_transfer = None  # a Transferee (transfer.py) for the phone's next Dial: the REFERred call
        self._transfers = []  # Transferees still reporting to their REFER's dialog
        self._keys = 0
        self._tone_player = None  # a tone outside a call (ring, ringback): tone_player.TonePlayer
        endpoint.listen(self.on_event)

    def bind(self, driver):
        self.driver = driver
        self.volume = driver.phone.volume
        self.muted = driver.phone.muted

    def feed(self, event):
        self.driver.feed(event, self.loop.now())

    @property
    def call_id(self):
        """The SIP Call-ID of a call still up (the focused one first), or None when there is none."""
        for leg in [self.focus] + self.legs:
            if leg is not None and leg.call_id is not None:
                return leg.call_id
        return None

    def hangup(self, result=None, reason=None):
        """End every call (the phone stops, a signal)."""
        for leg in list(self.legs):
            leg.hangup(result, reason)

    def _new_leg(self):
        self._keys += 1
        leg = PhoneLeg(self, "call-{}".format(self._keys))
        self.legs.append(leg)
        return leg

    def leg_over(self, leg):
        if leg in self.legs:
            self.legs.remove(leg)
        if self.focus is leg:
            self.focus = self.legs[-1] if self.legs else None

    def _leg(self, key):
        for leg in self.legs:
            if leg.key == key:
                return leg
        return None

    def _focused(self):
        if self.focus is not None and self.focus in self.legs:
            return self.focus
        return self.legs[-1] if self.legs else None

    def _ringing_leg(self):
        for leg in self.legs:
            if leg.incoming is not None:
                return leg
        return None

    # -- events from the endpoint -> the calls ------------------------------------------------------
    def on_event(self, kind, media, payload):
        from firmware.sip import subscription

        if kind == "sip" and isinstance(payload, subscription.MessageWaiting):
            log.info(
                "message waiting: %s, voice %s new / %s old",
                "yes" if payload.waiting else "no",
                payload.new,
                payload.old,
            )
            self.feed(self.P.MessageSummary(payload.waiting, payload.new, payload.old, payload.account))
            return
        if kind == "sip" and isinstance(payload, subscription.SubscriptionFailed):
            log.warning(
                "message-summary subscription failed: %s %s%s",
                payload.status,
                payload.reason,
                "" if payload.retry_in is None else " (again in {:g} s)".format(payload.retry_in),
            )
            return
        if kind == "sip":
            self._on_sip(payload)
            return
        for leg in list(self.legs):
            if leg.media is media:
                leg.on_event(kind, media, payload)
                return

    def _on_sip(self, event):
        e = sip_events
        if isinstance(event, e.IncomingCall):
            self._on_incoming(event)
            return
        if isinstance(event, (e.Registered, e.RegistrationFailed, e.Unregistered)):
            if isinstance(event, e.Registered):
                log.info("registered as %s for %d s", self.settings.account.uri, event.expires)
                self.feed(self.P.Registered())
                if self.mwi is not None and self.settings.phone.message_waiting and self.mwi.state == "idle":
                    # RFC 3842 §4: subscribe to our mailbox once the registrar knows us.
                    self.mwi.subscribe(self.loop.now())
                    self.endpoint.pump()
            elif isinstance(event, e.RegistrationFailed):
                log.warning("registration failed: %s", event.reason)
                self.feed(self.P.RegistrationFailed(event.reason))
            return
        call_id = getattr(event, "call_id", None)
        for leg in list(self.legs):
            if call_id is not None and leg.call_id == call_id:
                leg._on_sip(event)
                break
        # A transfer we follow hears every SIP event (its new call's outcome, its REFER dialog's end), after
        # the call's own handling: a 488 retried with SDES is not the outcome.
        for transfer in list(self._transfers):
            transfer.observe(event)
            if transfer.done:
                self._transfers.remove(transfer)
                for leg in list(self.legs):
                    leg.transfer_outcome(transfer)  # the call it was referred away from, if kept

    def _on_incoming(self, event):
        """A new call: taken when the phone can show it (call waiting), else 486 Busy Here as with one call.
        An INVITE with Replaces naming one of our calls (RFC 3891, matched by the UA) takes that call over."""
        replaces = getattr(event, "replaces", None)
        for leg in self.legs:
            if replaces is not None and leg.call_id == replaces:
                leg.take_replacing(event)
                return
        busy = len(self.legs) >= self.MAX_LEGS
        if self.legs and not busy:
            phone = self.driver.phone if self.driver is not None else None
            busy = phone is None or not phone.call_waiting or self._ringing_leg() is not None
        if busy:
            # Call forward on busy when set (302, RFC 3261 §21.3.3), else 486 Busy Here.
            target = self.driver.phone.busy_forward() if self.driver is not None else None
            if target is None:
                self.ua.reject(event.call_id, 486, self.loop.now())
            else:
                log.info("busy: forwarding the call from %s to %s", event.from_uri, target)
                self.ua.reject(event.call_id, 302, self.loop.now(), contact=target)
            self.endpoint.pump()
            return
        self._new_leg().on_incoming(event)

    # -- phone commands -> the calls ----------------------------------------------------------------
    def dispatch(self, command, now):
        P = self.P
        focused = self._focused()
        if isinstance(command, P.Dial):
            leg = self._new_leg()
            self.focus = leg
            leg.known_peers = self.cached_peers()
            transfer, self.pending_transfer = self.pending_transfer, None
            if transfer is not None and not transfer.done:
                leg.transfer = transfer  # place() sends its Replaces; it reports the outcome (NOTIFY)
                self._transfers.append(transfer)
            leg.place(command.uri)
        elif isinstance(command, P.Forward):
            leg = self._leg(command.call) if command.call is not None else self._ringing_leg()
            if leg is not None and leg.incoming is not None:
                # A local call forward: 302 with the target in Contact (RFC 3261 §21.3.3).
                leg.incoming = None
                leg.ua.reject(leg.call_id, command.status, now, contact=command.uri)
                leg.endpoint.pump()
                leg.call_over("rejected", "forwarded")
        elif isinstance(command, P.SaveSettings):
            self._save(self.desk_store.save_settings, command.settings, "desk settings")
        elif isinstance(command, P.SaveContacts):
            self._save(self.desk_store.save_contacts, command.entries, "contacts")
            self.send_trust_marks()
        elif isinstance(command, P.Answer):
            leg = self._ringing_leg()
            if leg is not None:
                leg.incoming = None
                self.focus = leg
                leg.answer()
        elif isinstance(command, P.Reject):
            leg = self._ringing_leg()
            if leg is not None:
                self._refuse(leg, command.status, "declined")
        elif isinstance(command, P.Busy):
            leg = self._leg(command.call)
            if leg is not None and leg.incoming is not None:
                self._refuse(leg, 486, "busy")
        elif isinstance(command, P.Focus):
            leg = self._leg(command.call)
            if leg is not None:
                self.focus = leg
        elif isinstance(command, (P.Hold, P.Resume)):
            leg = self._leg(command.call) if command.call is not None else focused
            if leg is not None:
                leg.set_hold(isinstance(command, P.Hold))
        elif isinstance(command, P.Transfer):
            leg, other = self._leg(command.call), self._leg(command.to)
            if leg is not None and other is not None and leg is not other:
                leg.transfer_to_other(other)
        elif isinstance(command, P.Conference):
            self.hub.set_conference(command.on)
            log.info("conference %s", "on" if command.on else "off")
        elif isinstance(command, P.Hangup):
            if focused is not None:
                focused.hangup("completed", "hung up")
        elif isinstance(command, P.ConfirmSas):
            if focused is not None and focused.media is not None:
                focused.media.confirm_sas()
        elif isinstance(command, P.RejectSas):
            if focused is not None and focused.media is not None:
                focused.media.reject_sas()
        elif isinstance(command, P.SendDtmf):
            if focused is not None and focused.media is not None and focused.media.stream is not None:
                focused.media.stream.send_dtmf(command.digit)
        elif isinstance(command, P.ResetTrust):
            self._reset_trust(command.peer_zid)
            self.send_trust_marks()
        elif isinstance(command, P.SaveHistory):
            try:
                self.history.save(command.entries)
            except OSError as exc:
                log.error("could not save the call history %s: %s", self.history.path, exc)
        elif isinstance(command, P.PlayTone):
            self._tone(command.name)
        elif isinstance(command, P.StopTone):
            self._tone(None)
        elif isinstance(command, P.SetVolume):
            self.volume = command.level
            for leg in self.legs:
                self.apply_audio_settings(leg)
        elif isinstance(command, P.SetMute):
            self.muted = command.muted
            for leg in self.legs:
                self.apply_audio_settings(leg)

    def _save(self, save, data, what):
        if self.desk_store is None:
            return
        try:
            save(data)
        except OSError as exc:
            log.error("could not save the %s in %s: %s", what, self.desk_store.data_dir, exc)

    def _cache(self):
        return self.endpoint.zrtp_cache() if self.settings.media.encryption == "zrtp" else None

    def cached_peers(self):
        """The peers (ZID hex) whose retained secret the cache holds now: a peer among them that secures the
        next call is a "known key" in the history (as it was at the time of the call)."""
        cache = self._cache()
        if cache is None:
            return frozenset()
        return frozenset(hex_id(record.zid) for record in cache.peers() if record.rs1 is not None)

    def send_trust_marks(self):
        """Every contact's trust mark from the ZRTP cache and its contact bindings (TrustMarks)."""
        cache = self._cache()
        if cache is None or self.driver is None:
            return
        uris = [contact["uri"] for contact in self.driver.phone.contacts]
        self.feed(self.P.TrustMarks(cache.trust_marks(uris)))

    def _refuse(self, leg, status, reason):
        leg.incoming = None
        leg.ua.reject(leg.call_id, status, self.loop.now())
        leg.endpoint.pump()
        leg.call_over("rejected", reason)

    def apply_audio_settings(self, leg):
        """Volume and mute live on the phone; each call's stream takes them over when it starts."""
        from audio.gain import volume_gain

        if leg.media is not None and leg.media.stream is not None:
            leg.media.stream.set_volume(volume_gain(self.volume))
            leg.media.stream.set_mute(self.muted)

    def _tone(self, name):
        """PlayTone/StopTone. The call-waiting tone is mixed softly into the earpiece over the calls. In a
        call the focused call's stream plays a tone instead of the far end (the alarm); a call ringing
        while another holds the audio device gets its ring mixed in there; with no call's media running a
        TonePlayer plays it on the speaker until the media takes over."""
        from audio import tones
        from firmware.runtime.tone_player import TonePlayer

        cadence = {
            "ringback": tones.RINGBACK,
            "alarm": tones.ERROR,
            "ring": tones.RING,
            "call-waiting": tones.CALL_WAITING,
        }.get(name)
        self.stop_tone_player()
        if self.hub.busy:
            self.hub.set_tone(None)
        for leg in self.legs:
            if leg.media is not None and leg.media.stream is not None:
                leg.media.stream.set_tone(None)
        if cadence is None:
            return
        focused = self._focused()
        if name != "call-waiting" and focused is not None and focused.media is not None:
            if focused.media.stream is not None:
                focused.media.stream.set_tone(cadence)
                return
        if self.hub.busy:
            self.hub.set_tone(cadence)
            return
        try:
            sink = self.hub.open_speaker()
        except StartupError as exc:
            log.warning("tone %s not played: %s", name, exc)
            return
        self._tone_player = TonePlayer(sink, cadence)
        self._tone_player.start()

    def stop_tone_player(self):
        player, self._tone_player = self._tone_player, None
        if player is not None:
            player.stop()
            player.sink.close()

    def _reset_trust(self, peer_zid):
        import binascii

        cache = self.endpoint.zrtp_cache()
        try:
            cache.reset(binascii.unhexlify(peer_zid))
        except (ValueError, TypeError, binascii.Error):
            log.warning("reset trust: not a ZID: %r", peer_zid)
            return
        self.endpoint.save_zrtp_cache()
