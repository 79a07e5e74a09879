"""`sotto call URI` and `sotto answer`: one call from start to JSON summary (issue 2 contract)."""

import logging
import signal

from firmware.errors import ConfigError, LocalProtocolError
from firmware.runtime.call_media import AudioPlan
from firmware.runtime.calls import HANGUP_GRACE, CallController
from firmware.runtime.endpoint import Endpoint, StartupError
from firmware.runtime.loop import Loop
from firmware.runtime.summary import Summary
from firmware.sip import events as sip_events

log = logging.getLogger("sotto.single-call")


class SingleCall(CallController):
    """`sotto call URI` / `sotto answer`: one call from start to summary (issue 2 contract)."""

    def __init__(self, endpoint, mode, settings, args, audio):
        CallController.__init__(self, endpoint, settings, audio)
        from firmware.runtime.actions import InCallActions

        self.mode = mode  # "call" or "answer"
        self.args = args
        self.actions = InCallActions(self, getattr(args, "at", None) or [])
        self.summary = Summary(settings.media.encryption)
        self.done = False
        self.registered = False
        self.stopped_by_signal = False
        self._duration_timer = None
        self._unregistering = False
        self._began = False

    def start(self):
        if self.endpoint.cache_problem:
            self.summary.alarms.append(self.endpoint.cache_problem)
        if self.settings.account.uri:
            self.ua.register(self.loop.now())
            self.endpoint.pump()
        else:
            self._begin()

    def new_summary(self):
        return self.summary

    def _begin(self):
        self._began = True
        if self.mode == "call":
            self.place(self.args.uri)

    def on_registration(self, event):
        e = sip_events
        if isinstance(event, e.Registered):
            self.registered = self.summary.registered = True
            if not self._began and not self.done:
                self._begin()
        elif isinstance(event, e.RegistrationFailed):
            if not self._began:
                self.registered = self.summary.registered = False
                self.summary.finish("failed", "registration failed: {}".format(event.reason), event.status)
                self.done = True
        elif isinstance(event, e.Unregistered):
            self._unregistering = False

    def on_incoming(self, event):
        if self.mode != "answer" or self.done or not self._began:
            self.ua.reject(event.call_id, 486, self.loop.now())
            return
        if self.take_incoming(event):
            self.ring()
            self.answer()

    def on_refer(self, event):
        """RFC 3515 as transferee: --follow-transfer makes the call it asks for (the run goes on with it;
        if that call fails, the original one goes on: leave_for_transfer(keep_old=True)), otherwise it is
        declined with 603. One transfer at a time."""
        following = getattr(self.args, "follow_transfer", False)
        if not following or self.done or (self.transfer is not None and not self.transfer.done):
            CallController.on_refer(self, event)
            return
        self.leave_for_transfer(event, keep_old=True)
        try:
            self.place(event.target)
        except LocalProtocolError as exc:  # a target we cannot call (too many calls, a bad URI)
            log.warning("transfer to %s failed: %s", event.target, exc)
            self.call_over("failed", "transfer failed: {}".format(exc), 500)

    def on_media_up(self):
        if self.settings.media.encryption == "sdes":
            self._arm_duration()
        self.actions.media_up()

    def on_own_request_outcome(self, event):
        e = sip_events
        if isinstance(event, e.ReinviteAnswered):
            self.actions.reinvite_answered(event.sdp)
        elif isinstance(event, e.ReinviteFailed):
            self.actions.reinvite_failed(event.status)
        elif isinstance(event, e.ReferProgress):
            self.actions.refer_progress(event)

    def on_secure(self, event):
        if self.args.confirm_sas and self.media.secure_at is not None:
            self.media.confirm_sas()
        self._arm_duration()

    def _arm_duration(self):
        if self.args.duration and self._duration_timer is None:
            self._duration_timer = self.loop.call_later(
                self.args.duration, lambda: self.hangup("completed", "duration reached")
            )

    def on_not_secure(self, event):
        self._arm_duration()  # not secure is loud (the call layer said so) but the call goes on

    def on_call_over(self):
        if self.transfer is not None:
            self.transfer.leave_now(self.summary.sip_status)  # the run ends: the REFER dialog's BYE now
        self.actions.cancel()
        self.summary.actions = self.actions.records
        self.done = True

    def on_signal(self):
        """SIGTERM/SIGINT: hang up politely; the summary is still printed."""
        self.stopped_by_signal = True
        if self.call_id is not None:
            up = self.media is not None and self.media.media_up_at is not None
            self.hangup("completed" if up else "failed", "stopped by signal")
        else:
            self.summary.finish("failed", "stopped by signal")
            self.done = True

    def unregister(self):
        if not self.registered:
            return
        self._unregistering = True
        try:
            self.ua.unregister(self.loop.now())
        except LocalProtocolError:
            return
        self.endpoint.pump()
        self.loop.run(until=lambda: not self._unregistering, timeout=2.0)


def run_single_call(settings, args):
    """`sotto call` and `sotto answer`: returns the Summary."""
    if settings.zrtp.secure_only and settings.media.encryption == "none":
        raise ConfigError("command line", "--secure-only", "--encryption zrtp or sdes (a plain call is never secure)")
    loop = Loop()
    try:
        endpoint = Endpoint(loop, settings, public_address=args.public_address or settings.sip.public_address or None)
    except StartupError:
        loop.close()
        raise
    audio = AudioPlan(play=args.play, record=args.record)
    if getattr(args, "follow_transfer", False):
        from firmware.runtime.audio_hub import AudioHub

        # A transfer we follow may fail and give the original call back: both calls' streams then share
        # the one microphone and speaker (the original call waits on hold in the hub, its keys intact).
        audio = AudioHub(audio)
    runner = SingleCall(endpoint, args.command, settings, args, audio)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, runner.on_signal)
    try:
        runner.start()
        finished = loop.run(until=lambda: runner.done, timeout=args.timeout)
        if not finished:
            runner.summary.finish("timeout", "gave up after {:g} s".format(args.timeout))
            runner.hangup()
            loop.run(until=lambda: runner.done, timeout=HANGUP_GRACE)
            if runner.media is not None:
                runner.media.close()
        runner.unregister()
    finally:
        endpoint.save_zrtp_cache()
        endpoint.close()
        loop.close()
    runner.summary.stopped_by_signal = runner.stopped_by_signal
    return runner.summary
