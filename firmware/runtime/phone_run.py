"""`sotto run`: the board, the Phone and its calls on one loop, until the script quits, the user quits
or a signal ends it."""

import logging
import signal
import time

from firmware.runtime.call_media import AudioPlan, hex_id
from firmware.runtime.calls import HANGUP_GRACE
from firmware.runtime.echo_line import ECHO_NUMBER, ECHO_USER, start_echo_line
from firmware.runtime.endpoint import Endpoint, EngineTimer
from firmware.runtime.loop import Loop
from firmware.runtime.phone_calls import PhoneCalls

log = logging.getLogger("sotto.phone-calls")


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
