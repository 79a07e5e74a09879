"""`sotto run`: the Phone state machine and its device driving calls through the endpoint."""

import logging
import signal
import time

from firmware.runtime.call_media import AudioPlan, hex_id
from firmware.runtime.calls import HANGUP_GRACE, CallController
from firmware.runtime.echo_line import ECHO_NUMBER, ECHO_USER, start_echo_line
from firmware.runtime.endpoint import Endpoint, EngineTimer, StartupError
from firmware.runtime.loop import Loop
from firmware.sip import events as sip_events

log = logging.getLogger("sotto.phone-calls")


class PhoneCalls(CallController):
    """`sotto run`: the Phone state machine and its device, driving calls through the endpoint."""

    def __init__(self, endpoint, settings, audio, history, desk_store=None):
        from firmware import phone as P

        CallController.__init__(self, endpoint, settings, audio)
        self.P = P
        self.history = history  # history_store.HistoryStore
        self.desk_store = desk_store  # desk_store.DeskStore: desk settings and contacts
        self._known_peers = frozenset()  # peers (ZID hex) with a retained secret when this call began
        self.mwi = None  # firmware.sip.subscription.MessageSummarySubscription, once set up
        phone_settings = settings.phone
        if phone_settings.unsolicited_notify or (phone_settings.message_waiting and settings.account.uri):
            from firmware.sip.subscription import MessageSummarySubscription

            target = phone_settings.message_account or settings.account.uri or "sip:{}".format(settings.sip.listen)
            self.mwi = MessageSummarySubscription(self.ua, target, accept_unsolicited=phone_settings.unsolicited_notify)
        self.volume = None  # the phone's, once bound
        self.muted = False
        self.driver = None
        self._incoming = None
        self._tone_player = None  # a tone outside a call (ring, ringback): tone_player.TonePlayer

    def bind(self, driver):
        self.driver = driver
        self.volume = driver.phone.volume
        self.muted = driver.phone.muted

    def feed(self, event):
        self.driver.feed(event, self.loop.now())

    # -- phone commands -> the call ---------------------------------------------------------------
    def dispatch(self, command, now):
        P = self.P
        if isinstance(command, P.Dial):
            if self.call_id is None:
                self._known_peers = self._cached_peers()
                self.place(command.uri)
        elif isinstance(command, P.Forward):
            if self.call_id is not None and self._incoming is not None:
                # A local call forward: 302 with the target in Contact (RFC 3261 §21.3.3).
                self._incoming = None
                self.ua.reject(self.call_id, command.status, now, contact=command.uri)
                self.endpoint.pump()
                self.call_over("rejected", "forwarded")
        elif isinstance(command, P.SaveSettings):
            self._save(self.desk_store.save_settings, command.settings, "desk settings")
        elif isinstance(command, P.SaveContacts):
            self._save(self.desk_store.save_contacts, command.entries, "contacts")
            self.send_trust_marks()
        elif isinstance(command, P.Answer):
            if self.call_id is not None and self._incoming is not None:
                self._incoming = None
                self.answer()
        elif isinstance(command, P.Reject):
            if self.call_id is not None:
                self.ua.reject(self.call_id, command.status, now)
                self.endpoint.pump()
                self.call_over("rejected", "declined")
        elif isinstance(command, P.Hangup):
            self.hangup("completed", "hung up")
        elif isinstance(command, P.ConfirmSas):
            if self.media is not None:
                self.media.confirm_sas()
        elif isinstance(command, P.RejectSas):
            if self.media is not None:
                self.media.reject_sas()
        elif isinstance(command, P.SendDtmf):
            if self.media is not None and self.media.stream is not None:
                self.media.stream.send_dtmf(command.digit)
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
            self._apply_audio_settings()
        elif isinstance(command, P.SetMute):
            self.muted = command.muted
            self._apply_audio_settings()

    def _save(self, save, data, what):
        if self.desk_store is None:
            return
        try:
            save(data)
        except OSError as exc:
            log.error("could not save the %s in %s: %s", what, self.desk_store.data_dir, exc)

    def _cache(self):
        return self.endpoint.zrtp_cache() if self.settings.media.encryption == "zrtp" else None

    def _cached_peers(self):
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

    def on_busy(self, event):
        """A second INVITE while a call is up: call forward on busy when set (302), else 486 Busy Here."""
        target = self.driver.phone.busy_forward() if self.driver is not None else None
        if target is None:
            CallController.on_busy(self, event)
            return
        log.info("busy: forwarding the call from %s to %s", event.from_uri, target)
        self.ua.reject(event.call_id, 302, self.loop.now(), contact=target)
        self.endpoint.pump()

    def _apply_audio_settings(self):
        """Volume and mute live on the phone; each call's stream takes them over when it starts."""
        from audio.gain import volume_gain

        if self.media is not None and self.media.stream is not None:
            self.media.stream.set_volume(volume_gain(self.volume))
            self.media.stream.set_mute(self.muted)

    def _tone(self, name):
        """PlayTone/StopTone: in a call the stream mixes the tone in; outside one (the ring, ringback
        while the far end rings) a TonePlayer plays it on the speaker until the media takes over."""
        from audio import tones
        from firmware.runtime.tone_player import TonePlayer

        cadence = {"ringback": tones.RINGBACK, "alarm": tones.ERROR, "ring": tones.RING}.get(name)
        self.stop_tone_player()
        if self.media is not None and self.media.stream is not None:
            self.media.stream.set_tone(cadence)
            return
        if cadence is None:
            return
        try:
            sink = self.audio.open_speaker()
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

    def on_media_starting(self):
        self.stop_tone_player()  # the call's stream needs the speaker

    def _reset_trust(self, peer_zid):
        import binascii

        cache = self.endpoint.zrtp_cache()
        try:
            cache.reset(binascii.unhexlify(peer_zid))
        except (ValueError, TypeError, binascii.Error):
            log.warning("reset trust: not a ZID: %r", peer_zid)
            return
        self.endpoint.save_zrtp_cache()

    # -- call events -> the phone -----------------------------------------------------------------
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
        elif kind == "sip" and isinstance(payload, subscription.SubscriptionFailed):
            log.warning(
                "message-summary subscription failed: %s %s%s",
                payload.status,
                payload.reason,
                "" if payload.retry_in is None else " (again in {:g} s)".format(payload.retry_in),
            )
        else:
            CallController.on_event(self, kind, media, payload)

    def on_registration(self, event):
        e = sip_events
        if isinstance(event, e.Registered):
            self.feed(self.P.Registered())
            if self.mwi is not None and self.settings.phone.message_waiting and self.mwi.state == "idle":
                # RFC 3842 §4: subscribe to our mailbox once the registrar knows us.
                self.mwi.subscribe(self.loop.now())
                self.endpoint.pump()
        elif isinstance(event, e.RegistrationFailed):
            self.feed(self.P.RegistrationFailed(event.reason))

    def on_incoming(self, event):
        self._known_peers = self._cached_peers()
        if self.take_incoming(event):
            self._incoming = event
            self.feed(self.P.CallIncoming(str(event.from_uri), event.from_display))
            # The phone may have refused it at once (do not disturb: 486, forward always: 302): then it
            # never rang.
            if self.call_id == event.call_id and self._incoming is event:
                self.ua.ringing(event.call_id, self.loop.now())
                self.endpoint.pump()

    def on_ringing(self):
        self.feed(self.P.CallRinging())

    def on_media_up(self):
        self._apply_audio_settings()
        self.feed(self.P.CallAnswered())

    def on_secure(self, event):
        peer_zid = event.peer_zid if isinstance(event.peer_zid, str) else hex_id(event.peer_zid)
        algorithms = " ".join((event.key_agreement, event.cipher, event.hash, event.auth_tag))
        known = peer_zid in self._known_peers and not event.cache_mismatch
        self.feed(
            self.P.CallSecure(
                event.sas,
                event.sas_type,
                bool(event.verified),
                bool(event.cache_mismatch),
                algorithms,
                peer_zid,
                known=known,
            )
        )

    def on_not_secure(self, event):
        if self.call_id is not None:
            self.feed(self.P.CallNotSecure(event.kind, event.reason))

    def on_alarm(self, event):
        # The call layer's alarm kinds are the phone's ALARM_* names.
        if self.call_id is not None:
            self.feed(self.P.CallAlarm(event.kind))

    def on_audio_missing(self, why):
        self.feed(self.P.AudioDeviceMissing(why))

    def on_refer(self, event):
        """Transfer (RFC 3515): leave this call's media and let the phone call the target (it shows
        "calling"); the REFER's dialog hears how that call went (NOTIFY) and then ends."""
        if self.transfer is not None and not self.transfer.done:
            CallController.on_refer(self, event)  # one transfer at a time
            return
        log.info("call transferred to %s", event.target)
        self.summary.finish("completed", "transferred")
        self.leave_for_transfer(event)
        self.feed(self.P.TransferTo(event.target))

    def on_call_over(self):
        summary = self.summary
        self._incoming = None
        if self.driver is not None and summary is not None:
            self.feed(self.P.CallEnded(summary.reason or "call ended", summary.sip_status or None))
        self.send_trust_marks()  # the call may have verified a contact, or cached a new key


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
