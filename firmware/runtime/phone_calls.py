"""`sotto run`: the Phone state machine and its device driving calls through the endpoint."""

import logging
import signal
import time

from firmware.errors import LocalProtocolError
from firmware.runtime.call_media import AudioPlan, hex_id
from firmware.runtime.calls import HANGUP_GRACE, CallController
from firmware.runtime.echo_line import ECHO_NUMBER, ECHO_USER, start_echo_line
from firmware.runtime.endpoint import Endpoint, EngineTimer, StartupError
from firmware.runtime.loop import Loop
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

    def call_over(self, result, reason, status=None):
        if self.replaced and result == "completed":
            # RFC 3891 §3: the far end given the transferee ends its dialog with us itself (BYE), often
            # before the REFER's final NOTIFY reaches us: that is the transfer, not a hang-up.
            reason = "transferred"
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
                self.ua.ringing(event.call_id, self.loop.now())
                self.endpoint.pump()

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
        """Transfer (RFC 3515): leave this call's media and let the phone call the target (it shows
        "calling"); the REFER's dialog hears how that call went (NOTIFY, through the Transferee that the
        phone's next call carries) and then ends."""
        if self.front.pending_transfer is not None or (self.transfer is not None and not self.transfer.done):
            CallController.on_refer(self, event)  # one transfer at a time
            return
        log.info("call transferred to %s", event.target)
        self.summary.finish("completed", "transferred")
        self.leave_for_transfer(event)
        self.front.pending_transfer = self.transfer
        self.transfer = None
        self.front.leg_over(self)
        self.feed(self.front.P.TransferTo(event.target, call=self.key))

    def on_call_over(self):
        summary = self.summary
        self.incoming = None
        self.front.leg_over(self)
        if self.front.driver is not None and summary is not None:
            reason = summary.reason or "call ended"
            self.feed(self.front.P.CallEnded(reason, summary.sip_status or None, call=self.key))
        self.front.send_trust_marks()  # the call may have verified a contact, or cached a new key


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


def run_phone(settings, args, provisioning=None):
    """`sotto run`: the phone on its board until the script quits, the user quits, or a signal.

    provisioning: a firmware.runtime.provisioned.ProvisionedRun when a server configures the phone."""
    from boards.schema import load_board
    from firmware.runtime import sdnotify
    from firmware.runtime.desk_store import DeskStore
    from firmware.runtime.device import PhoneDriver, open_device, phone_from_config
    from firmware.runtime.history_store import HistoryStore
    from firmware.runtime.storage import ensure_private_dir

    board = load_board(settings.board.name)
    ensure_private_dir(settings.data_dir)
    history = HistoryStore(settings.data_dir)
    desk_store = DeskStore(settings.data_dir)
    contacts = desk_store.load_contacts()
    desk_store.import_contacts(settings.phone.contacts_file, contacts)
    if board.is_simulated:
        audio = AudioPlan(play=args.play, record=args.record)
    else:
        audio = AudioPlan(devices=(board.capture, board.playback))
    loop = Loop()
    if provisioning is not None:
        try:
            settings = provisioning.start(loop)  # the kept provisioned files merged in
        except BaseException:
            loop.close()
            raise
    endpoint = Endpoint(loop, settings, public_address=args.public_address or settings.sip.public_address or None)
    calls = None
    # Provisioning may replace the endpoint at an idle moment: close the one in use.
    closers = [lambda: (calls.endpoint if calls is not None else endpoint).close(), loop.close]
    try:
        extra_speed_dial = {}
        if board.is_simulated and not settings.account.uri:
            echo = start_echo_line(loop, settings)
            closers.insert(0, echo.endpoint.close)
            extra_speed_dial[ECHO_NUMBER] = "sip:{}@{}".format(ECHO_USER, echo.endpoint.settings.sip.listen)
        calls = PhoneCalls(endpoint, settings, audio, history, desk_store)
        closers.insert(0, calls.stop_tone_player)
        cache = endpoint.zrtp_cache() if settings.media.encryption == "zrtp" else None
        phone = phone_from_config(
            settings,
            history=history.load(),
            extra_speed_dial=extra_speed_dial,
            our_zid=hex_id(cache.zid) if cache is not None else None,
            wall_offset=time.time() - loop.now(),
            desk=desk_store.load_settings(),
            contacts=contacts,
        )
        device = open_device(board, script=args.script, display_log=args.display_log, display_png=args.display_png)
        closers.insert(0, device.close)
        driver = PhoneDriver(phone, device, calls.dispatch)
        calls.bind(driver)
        driver_timer = EngineTimer(loop, _DriverClock(driver), lambda: None)
        if provisioning is not None:
            provisioning.attach(calls, driver, args.public_address)
            closers.insert(0, provisioning.close)
        if device.fileno() is not None:

            def on_keys():
                device.on_readable(loop.now())
                driver.tick(loop.now())
                driver_timer.rearm()

            loop.add_reader(device.fileno(), on_keys)
        stopping = []

        def on_signal():
            sdnotify.sd_notify(sdnotify.STOPPING)
            stopping.append(True)
            calls.hangup("completed", "stopped by signal")

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal)
        driver.start(loop.now())
        calls.send_trust_marks()
        if endpoint.cache_problem:
            from firmware import phone as P

            driver.feed(P.TrustCacheLost(endpoint.cache_problem), loop.now())
        if settings.account.uri:
            endpoint.ua.register(loop.now())
            endpoint.pump()
        sdnotify.sd_notify(sdnotify.READY)  # systemd (Type=notify): we listen now
        sdnotify.keep_alive(loop)  # WATCHDOG=1 from the loop's own timers: a stuck loop gets restarted

        def step():
            if provisioning is not None:
                provisioning.apply_when_idle()
            driver_timer.rearm()
            return device.finished or (stopping and calls.call_id is None)

        loop.run(until=step)
        endpoint, settings = calls.endpoint, calls.settings  # provisioning may have replaced them
        if calls.call_id is not None:
            calls.hangup("completed", "phone stopped")
            loop.run(until=lambda: calls.call_id is None, timeout=HANGUP_GRACE)
        if calls.mwi is not None and calls.mwi.state == "active":
            calls.mwi.unsubscribe(loop.now())
            endpoint.pump()
        if settings.account.uri and endpoint.ua.registered:
            endpoint.ua.unregister(loop.now())
            endpoint.pump()
            loop.run(until=lambda: not endpoint.ua.registered, timeout=2.0)
        endpoint.save_zrtp_cache()
        return device.exit_code if device.finished and device.exit_code is not None else 0
    finally:
        for close in closers:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing one part must not keep the others open
                log.exception("closing failed")


class _DriverClock:
    """Adapts PhoneDriver (timers of the phone and of the device) to EngineTimer."""

    def __init__(self, driver):
        self.driver = driver

    def get_timer(self):
        return self.driver.get_timer()

    def handle_timer(self, now):
        self.driver.tick(now)
