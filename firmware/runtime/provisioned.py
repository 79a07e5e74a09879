"""`sotto run` with a provisioning server (issue 15): the configuration the phone starts with is the
local file with the files kept from the last accepted round merged over it (the command line still wins),
the Provisioner fetches at boot and daily on the phone's own loop (its HTTP requests on a worker thread),
SIGHUP asks for a round at once, and a new configuration is applied at the next idle moment, never
mid-call: the settings swapped in place, or, when the account or the SIP address changed, a new Endpoint
(the old one unregisters first) that registers again. A refused or unreachable server is one line in
the journal and an error on the display ("Provisioning", then why; "config kept"); the running
configuration stays.

A provisioned firmware (issue 15) is downloaded when the phone is idle, checked (signature, sha256,
members, version), and once no call is up the phone asks the root installer for it by writing the spool's
request (firmware/runtime/update.py; sotto-update.path starts tools/abupdate.py apply-spool, which
installs it A/B and restarts this service on the new slot). The installer's refusal, or the start
guard's roll-back (tools/abguard.py), is shown on the display at the next start and not retried."""

import logging
import os
import signal

from firmware import config as configuration
from firmware.errors import ConfigError
from firmware.runtime.endpoint import Endpoint, StartupError
from firmware.runtime.provisioning import Provisioner, provisioning_url

log = logging.getLogger("sotto.provisioned")

UNREGISTER_GRACE = 3.0  # s for the old account's un-REGISTER (and its digest challenge) to complete


def provisioned_run(settings, args, settings_from):
    """A ProvisionedRun when the configuration names a server ([provisioning] url or dhcp_lease), else None."""
    if not (settings.provisioning.url or settings.provisioning.dhcp_lease):
        return None
    return ProvisionedRun(settings, args, settings_from)


def _endpoint_part(settings):
    """What the Endpoint (SIP socket, UserAgent, registration) is built from: a change means a new one."""
    account, sip = settings.account, settings.sip
    return (
        account.uri,
        account.password,
        account.proxy,
        account.transport,
        account.display_name,
        account.tls_certificate,
        sip.listen,
        sip.public_address,
        settings.media.rtp_port,
    )


class ProvisionedRun:
    def __init__(self, settings, args, settings_from):
        self.local_settings = settings
        self.args = args
        self.settings_from = settings_from
        self.local_data = configuration.load_data(getattr(args, "config", None))
        self.provisioner = None
        self.pending = None
        self.loop = None
        self.calls = None
        self.driver = None
        self.public_address = None
        self.applied = 0
        self._retiring = None  # (old endpoint, new settings, deadline) while the old account unregisters
        self.pending_firmware = None  # (path, version): verified, waiting for an idle moment to install
        self.firmware_requested = None  # the version the root installer was asked for

    def start(self, loop):
        """The Provisioner on the phone's loop; returns the settings to start with."""
        self.loop = loop
        if provisioning_url(self.local_settings) is None:
            log.warning("provisioning: no server named (url empty, no DHCP option 66 in the lease)")
        from firmware.runtime import update

        self.provisioner = Provisioner(
            loop,
            self.local_settings,
            self.local_data,
            on_config=self._on_config,
            on_refused=self._on_refused,
            firmware_version=update.running_version(),
            on_firmware=self._on_firmware,
            idle=self._idle,
        )
        result = self.provisioner.firmware_result
        if result is not None:
            log.warning(
                "provisioning: the firmware installer said: %s %s (%s)",
                result["status"],
                result["version"],
                result["message"],
            )
        return self.settings_from(self.args, self.provisioner.config)

    def _idle(self):
        return self.calls is not None and self.calls.call_id is None

    def attach(self, calls, driver, public_address):
        """The phone is up: start fetching (at once: this is the boot fetch), SIGHUP fetches now."""
        self.calls = calls
        self.driver = driver
        self.public_address = public_address
        self.loop.add_signal_handler(signal.SIGHUP, self.provisioner.fetch_now)
        result = self.provisioner.firmware_result
        if result is not None and result["status"] in ("refused", "rolled-back"):
            what = "refused" if result["status"] == "refused" else "rolled back"
            self._on_refused("firmware {} {}: {}".format(result["version"], what, result["message"]))
        self.provisioner.start()

    def _on_config(self, config, account_changed):
        self.pending = config
        self._feed_ok()

    def _on_firmware(self, path, version):
        # Installing needs root (the service may write only the data directory): the request goes to the
        # spool at the next idle moment (request_firmware_when_idle), never mid-call, since the
        # installer restarts the service.
        self.pending_firmware = (path, version)

    def request_firmware_when_idle(self):
        """Ask the root installer for the verified firmware once no call is up; True when asked now."""
        if self.pending_firmware is None or not self._idle():
            return False
        from firmware.runtime import update

        path, version = self.pending_firmware
        self.pending_firmware = None
        try:
            update.write_request(os.path.dirname(path), os.path.basename(path), version)
        except OSError as exc:
            log.error("provisioning: cannot ask for the install of firmware %s: %s", version, exc)
            self._on_refused("firmware {} not installed: {}".format(version, exc))
            return False
        self.firmware_requested = version
        log.warning("provisioning: firmware %s verified; asked the installer (sotto-update) to install it", version)
        return True

    def _on_refused(self, message):
        if self.driver is not None:
            from firmware import phone as P

            self.driver.feed(P.ProvisioningRefused(message), self.loop.now())

    def _feed_ok(self):
        if self.driver is not None:
            from firmware import phone as P

            self.driver.feed(P.ProvisioningOk(), self.loop.now())

    def apply_when_idle(self):
        """Called on every turn of the loop: a pending configuration goes in once no call is up."""
        calls = self.calls
        self.provisioner.download_if_idle()
        self.request_firmware_when_idle()
        if self._retiring is not None:
            self._retire_when_unregistered()
            return
        # call_id is None once a call is over (CallController.call_over), whoever ended it.
        if self.pending is None or calls is None or calls.call_id is not None:
            return
        if self.provisioner.last_error is None:
            self._feed_ok()
        new = self.settings_from(self.args, self.pending)
        self.pending = None
        old = calls.endpoint
        if _endpoint_part(new) == _endpoint_part(old.settings):
            old.settings = new
            calls.settings = new
        else:
            self._replace_endpoint(old, new)
        self._reconfigure_phone(new)
        self.applied += 1
        log.warning("provisioning: configuration applied (account %s)", new.account.uri or "none")

    def _replace_endpoint(self, old, new):
        """RFC 3261 §10.2.2: the old account's binding is removed (Expires: 0, answering the registrar's
        digest challenge on the old socket) before the old endpoint closes; at most UNREGISTER_GRACE s."""
        loop = self.loop
        if old.settings.account.uri and old.ua.registered:
            old.ua.unregister(loop.now())
            old.pump()
            self._retiring = (old, new, loop.now() + UNREGISTER_GRACE)
            loop.call_at(self._retiring[2], lambda: None)  # a loop turn at the deadline, even if all is quiet
            return
        self._open_endpoint(old, new)

    def _retire_when_unregistered(self):
        old, new, deadline = self._retiring
        if old.ua.registered and self.loop.now() < deadline:
            return
        if self.calls.call_id is not None:
            return  # a call came in (or was dialled) on the old endpoint meanwhile: never close it mid-call
        self._retiring = None
        self._open_endpoint(old, new)

    def _open_endpoint(self, old, new):
        calls, loop = self.calls, self.loop
        old.save_zrtp_cache()
        old.close()
        try:
            endpoint = Endpoint(loop, new, public_address=self.public_address or new.sip.public_address or None)
        except (StartupError, ConfigError) as exc:
            log.error("provisioning: cannot use the new configuration (%s); the previous one is back", exc)
            self._on_refused("not applied: {}".format(exc))
            new = old.settings
            endpoint = Endpoint(loop, new, public_address=self.public_address or new.sip.public_address or None)
        endpoint.listen(calls.on_event)
        calls.endpoint = endpoint
        calls.ua = endpoint.ua
        calls.settings = new
        if new.account.uri:
            endpoint.ua.register(loop.now())
            endpoint.pump()

    def _reconfigure_phone(self, settings):
        """What the Phone took from the configuration at start (firmware.runtime.device.phone_from_config):
        our identity on the idle screen, the dial domain, speed dial, secure_only. Set on the Phone directly:
        these are plain settings it reads when the next call is dialled, not state it transitions on."""
        from firmware.runtime.device import phone_from_config

        fresh = phone_from_config(settings)
        phone = self.driver.phone
        phone.identity = fresh.identity
        phone.dial_domain = fresh.dial_domain
        # The configured entries are replaced; the sim's echo test line (not from the configuration) stays.
        from firmware.runtime.echo_line import ECHO_NUMBER

        configured = list(fresh.speed_dial)
        keys = {digits for digits, _uri in configured}
        echo = [(d, u) for d, u in phone.speed_dial if d == ECHO_NUMBER and d not in keys]
        phone.speed_dial = configured + echo
        phone.secure_only = fresh.secure_only

    def close(self):
        if self.provisioner is not None:
            self.provisioner.close()
