"""The shell side of provisioning (host-only): the pinned Ed25519 key, HTTPS fetches on a worker thread,
the last accepted files kept in the data directory, and the Provisioner that hands the loop a new
configuration when the server has one.

Fetching never blocks the loop: each round runs on a short-lived daemon thread (urllib with a timeout),
and its results come back through Loop.call_soon_threadsafe. Every read is bounded (MAX_DOCUMENT_BYTES for
a file, SIGNATURE_BYTES for a signature): a server that sends more is refused without reading it all.

What the phone keeps: data_dir/provisioning/<name> and <name>.sig, the last accepted version of each file,
re-verified at every start, so a phone that boots without its server runs the configuration it was given.
"""

import hashlib
import logging
import os
import ssl
import threading
import urllib.error
import urllib.request

from firmware import config as configuration
from firmware.errors import ConfigError
from firmware.provisioning import document as doc
from firmware.provisioning import merge as merging
from firmware.provisioning.schedule import Schedule
from firmware.runtime import storage
from firmware.validation import parse_toml

log = logging.getLogger("sotto.provisioning")

FETCH_TIMEOUT = 15.0  # s per HTTP request: a stalled server fails the round, the schedule retries
MAX_KEY_BYTES = 4096
MAX_LEASE_BYTES = 256 * 1024


class FetchFailed(Exception):
    """The server could not be reached or answered with an error (not: the file does not exist)."""


# -- the pinned key -------------------------------------------------------------------------------
def load_verifier(path, where="provisioning.public_key"):
    """verify(message, signature) -> bool with the Ed25519 public key (PEM) at `path`; a ConfigError
    (one line) when the file is missing or is not an Ed25519 public key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        raw = storage.read_bytes(path, limit=MAX_KEY_BYTES)
    except (OSError, ValueError) as exc:
        raise ConfigError(path, where, "a readable Ed25519 public key file ({})".format(exc)) from None
    if raw is None:
        raise ConfigError(path, where, "an existing Ed25519 public key file (PEM)")
    try:
        key = load_pem_public_key(raw)
    except (ValueError, TypeError):
        raise ConfigError(path, where, "an Ed25519 public key in PEM form") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(path, where, "an Ed25519 public key, not {}".format(type(key).__name__))

    def verify(message, signature):
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    return verify


# -- where the server is --------------------------------------------------------------------------
def dhcp_option_66(lease_path):
    """The TFTP server name (DHCP option 66, RFC 2132 §9.4) from a dhclient lease file: the value of the
    last lease's `option tftp-server-name "...";`, or None. dhclient writes it only when asked:
    `also request tftp-server-name;` in /etc/dhcp/dhclient.conf (README "Provisioning an office")."""
    try:
        raw = storage.read_bytes(lease_path, limit=MAX_LEASE_BYTES)
    except (OSError, ValueError) as exc:
        log.warning("cannot read the DHCP lease %s: %s", lease_path, exc)
        return None
    if raw is None:
        return None
    value = None
    for line in raw.decode("utf-8", "replace").splitlines():
        words = line.strip().rstrip(";").split(None, 2)
        if len(words) == 3 and words[0] == "option" and words[1] == "tftp-server-name":
            value = words[2].strip().strip('"')
    return value or None


def provisioning_url(settings):
    """The base URL: [provisioning] url, else DHCP option 66 when a lease file is named; a value from
    DHCP must pass the same checks (https unless allow_http). None when there is no server."""
    section = settings.provisioning
    url = section.url
    if not url and section.dhcp_lease:
        url = dhcp_option_66(section.dhcp_lease)
        if url and not configuration.is_provisioning_url(url):
            log.error("DHCP option 66 is not a provisioning URL: %r", url[:80])
            return None
        if url and url.startswith("http://") and not section.allow_http:
            log.error("DHCP option 66 names a plain http:// server and provisioning.allow_http is false")
            return None
    if not url:
        return None
    return url if url.endswith("/") else url + "/"


def mac_address(settings, sys_class_net="/sys/class/net"):
    """This phone's MAC: [provisioning] mac, else the address of the interface (Linux sysfs)."""
    if settings.provisioning.mac:
        return settings.provisioning.mac
    path = os.path.join(sys_class_net, settings.provisioning.interface, "address")
    try:
        raw = storage.read_bytes(path, limit=64)
    except (OSError, ValueError):
        raw = None
    if raw is None:
        raise ConfigError(settings.source, "provisioning.mac", "set (no interface {})".format(path))
    return raw.decode("ascii", "replace").strip()


# -- fetching -------------------------------------------------------------------------------------
def tls_context(ca_path):
    """Verify the server against the system's CAs, or only against the pinned CA file on the boot
    partition when one is given; host names are checked either way."""
    context = ssl.create_default_context(cafile=ca_path or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def fetch(url, limit, context=None, timeout=FETCH_TIMEOUT):
    """GET `url`: its bytes, or None when the server says it does not exist (404, 410). FetchFailed
    when the server cannot be reached or answers with another error; ProvisioningRefused when the body
    is larger than `limit` (only limit + 1 bytes are ever read)."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout, context=context)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in (404, 410):
            return None
        raise FetchFailed("HTTP {} for {}".format(exc.code, url)) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise FetchFailed("{}: {}".format(url, getattr(exc, "reason", exc))) from None
    with response:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise doc.ProvisioningRefused("{}: {} bytes, more than the {} allowed".format(url, length, limit))
        try:
            body = response.read(limit + 1)
        except (OSError, ValueError) as exc:
            raise FetchFailed("{}: {}".format(url, exc)) from None
    if len(body) > limit:
        raise doc.ProvisioningRefused("{}: more than the {} bytes allowed".format(url, limit))
    return body


def fetch_file(base, name, context):
    """(body, signature) of one provisioned file; (None, None) when the server has no such file."""
    body = fetch(base + name, doc.MAX_DOCUMENT_BYTES, context)
    if body is None:
        return None, None
    return body, fetch(base + name + ".sig", doc.SIGNATURE_BYTES, context)


# -- what the phone keeps -------------------------------------------------------------------------
class Store:
    """The last accepted version of each file (and its signature) in data_dir/provisioning."""

    def __init__(self, data_dir):
        self.directory = os.path.join(data_dir, "provisioning")

    def load(self, name):
        try:
            body = storage.read_bytes(os.path.join(self.directory, name), limit=doc.MAX_DOCUMENT_BYTES)
            signature = storage.read_bytes(os.path.join(self.directory, name + ".sig"), limit=doc.SIGNATURE_BYTES)
        except (OSError, ValueError) as exc:
            log.error("provisioning: cannot read the kept %s: %s", name, exc)
            return None, None
        return body, signature

    def save(self, name, body, signature):
        storage.ensure_private_dir(self.directory)
        # The signature first: a power cut between the two leaves a file that fails its check at the
        # next start (and is fetched again), never an unchecked one.
        storage.atomic_write(os.path.join(self.directory, name + ".sig"), signature)
        storage.atomic_write(os.path.join(self.directory, name), body)


def _parse(text):
    try:
        return parse_toml(text, "provisioned file")
    except ConfigError as exc:
        raise ValueError(exc.expected) from None


class Provisioner:
    """Keeps this phone's provisioned configuration: the files kept from last time at start, the server's
    at boot and every `interval` seconds (jittered), on the loop's thread.

    on_config(config, account_changed): a new validated Config to apply (at the next idle moment: the
        front end decides when; never mid-call).
    on_refused(message): a file was refused or the server is unreachable; the running configuration
        stays. One line, for the display and the journal.
    on_firmware(path, version): a `[firmware]` table (per-MAC over common) names a version other than
        `firmware_version`; its tarball and signature were downloaded to data_dir/update/ and verified
        (signature, sha256 when the table gives one, members, the version inside). Installing it (A/B,
        firmware/runtime/update.py) needs root: the front end asks tools/abupdate.py through the spool.
    idle(): whether the phone is idle (no call); the firmware download waits for it (download_if_idle).
    A version the installer refused or rolled back (the spool's result) is not downloaded again: the
    server must name another version.
    """

    def __init__(
        self,
        loop,
        settings,
        local_data,
        rng=os.urandom,
        on_config=None,
        on_refused=None,
        verify=None,
        firmware_version=None,
        on_firmware=None,
        idle=None,
    ):
        self.loop = loop
        self.local_settings = settings
        self.local_data = local_data
        self.base = provisioning_url(settings)
        self.names = (doc.mac_name(mac_address(settings)), doc.COMMON_NAME)
        self.verify = verify or load_verifier(settings.provisioning.public_key)
        self.context = tls_context(settings.provisioning.ca) if (self.base or "").startswith("https://") else None
        self.store = Store(settings.data_dir)
        self.on_config = on_config or (lambda config, account_changed: None)
        self.on_refused = on_refused or (lambda message: None)
        self.schedule = Schedule(loop.now(), rng, interval=float(settings.provisioning.interval))
        self.documents = {}
        self.firmware_version = firmware_version
        self.on_firmware = on_firmware
        self.firmware_downloaded = None  # (version, path) once a wanted tarball is here and verified
        self.idle = idle or (lambda: True)
        self.firmware_deferred = None  # (wanted, failed) while a download waits for the phone to be idle
        from firmware.runtime import update

        self.spool = os.path.join(settings.data_dir, "update")
        self.firmware_result = update.read_result(self.spool)  # what the installer said last time
        bad = self.firmware_result is not None and self.firmware_result["status"] in ("refused", "rolled-back")
        self.firmware_refused = self.firmware_result["version"] if bad else None
        self.rounds = 0
        self.last_error = None
        self._timer = None
        self._busy = False
        self._closed = False
        for name in self.names:
            body, signature = self.store.load(name)
            if body is None:
                continue
            try:
                self.documents[name] = doc.read_document(name, body, signature, self.verify, _parse)
            except doc.ProvisioningRefused as exc:
                log.error("provisioning: the kept %s is refused (%s); fetching it again", name, exc)
        self.config = self._merged(self.documents)

    def _merged(self, documents):
        ordered = [documents.get(name) for name in reversed(self.names)]  # common, then <mac>
        data = merging.merge(self.local_data, *ordered)
        config = configuration.validate(data, "provisioned configuration")
        # [data], [board] and [provisioning] never come from the server; the command line's changes to
        # the local settings (--listen, --register...) still win.
        return config

    def start(self):
        if self.base is None:
            log.info("provisioning: no server (no url, no DHCP option 66)")
            return
        self._arm()

    def _arm(self):
        if self._closed:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(self.schedule.get_timer(), self.fetch_now)

    def fetch_now(self):
        """Start one round on a worker thread (nothing happens if one is running)."""
        if self._busy or self._closed or self.base is None:
            return
        self._busy = True
        base, names, context = self.base, self.names, self.context

        def work():
            results = []
            for name in names:
                try:
                    body, signature = fetch_file(base, name, context)
                    results.append((name, body, signature, None))
                except (FetchFailed, doc.ProvisioningRefused) as exc:
                    results.append((name, None, None, exc))
            self.loop.call_soon_threadsafe(lambda: self._round_done(results))

        threading.Thread(target=work, name="sotto-provisioning", daemon=True).start()

    def _refuse(self, message):
        self.last_error = message
        log.error("provisioning: %s", message)
        self.on_refused(message)

    def _round_done(self, results):
        self._busy = False
        if self._closed:
            return
        self.rounds += 1
        failed = False
        accepted = dict(self.documents)
        fresh = []
        for name, body, signature, error in results:
            if error is not None:
                failed = True
                if isinstance(error, doc.ProvisioningRefused):
                    self._refuse("refused, configuration kept: {}".format(error))
                else:
                    self._refuse("{} not fetched, configuration kept: {}".format(name, error))
                continue
            if body is None:
                # No such file on the server: a kept one stays (a server hiccup must not take the account).
                log.info("provisioning: the server has no %s", name)
                continue
            try:
                document = doc.read_document(name, body, signature, self.verify, _parse)
                previous = self.documents.get(name)
                doc.check_not_older(document, None if previous is None else (previous.serial, previous.body))
            except doc.ProvisioningRefused as exc:
                failed = True
                self._refuse("refused, configuration kept: {}".format(exc))
                continue
            if name not in self.documents or self.documents[name].body != body:
                accepted[name] = document
                fresh.append((name, body, signature))
        if fresh:
            try:
                config = self._merged(accepted)
            except ConfigError as exc:
                failed = True
                self._refuse("refused, configuration kept: {}".format(exc))
                fresh = []
            else:
                for name, body, signature in fresh:
                    try:
                        self.store.save(name, body, signature)
                    except OSError as exc:  # a full data partition: used now, fetched again at the next start
                        log.error("provisioning: cannot keep %s: %s", name, exc)
                account_changed = merging.account_of(self._data(accepted)) != merging.account_of(
                    self._data(self.documents)
                )
                self.documents = accepted
                self.config = config
                log.warning(
                    "provisioning: new configuration from %s (%s)",
                    self.base,
                    ", ".join("{} serial {}".format(n, accepted[n].serial) for n, _b, _s in fresh),
                )
                self.on_config(config, account_changed)
        if not failed:
            self.last_error = None
        wanted = self.wanted_firmware()
        if wanted is not None and self._needs_download(wanted):
            if self.idle():
                self._busy = True  # the next round waits for the download
                self._download_firmware(wanted, failed)
                return
            # Mid-call: no download competing with the voice; download_if_idle starts it after the call.
            log.info("provisioning: firmware %s waits for the call to end", wanted["version"])
            self.firmware_deferred = (wanted, failed)
            self._busy = True
            return
        (self.schedule.failed if failed else self.schedule.succeeded)(self.loop.now())
        self._arm()

    # -- firmware ---------------------------------------------------------------------------------
    def wanted_firmware(self):
        """The [firmware] table in force: the per-MAC file's, else common.toml's, else None."""
        for name in self.names:
            document = self.documents.get(name)
            if document is not None and document.firmware is not None:
                return document.firmware
        return None

    def _needs_download(self, wanted):
        if self.on_firmware is None or wanted["version"] == self.firmware_version:
            return False
        if wanted["version"] == self.firmware_refused:
            log.warning(
                "provisioning: firmware %s was refused or rolled back before: not taken again", wanted["version"]
            )
            return False
        return self.firmware_downloaded is None or self.firmware_downloaded[0] != wanted["version"]

    def download_if_idle(self):
        """Start the download that waits for the end of a call, once the phone is idle (the loop calls
        this on every turn; nothing happens when no download waits)."""
        if self.firmware_deferred is None or self._closed or not self.idle():
            return
        wanted, failed = self.firmware_deferred
        self.firmware_deferred = None
        self._download_firmware(wanted, failed)

    def _download_firmware(self, wanted, failed_before):
        from firmware.runtime import update

        base, context, verify = self.base, self.context, self.verify
        directory = os.path.join(self.local_settings.data_dir, "update")
        path = os.path.join(directory, wanted["file"])

        def work():
            error = None
            try:
                body = fetch(base + wanted["file"], update.MAX_FIRMWARE_BYTES, context)
                signature = fetch(base + wanted["file"] + ".sig", doc.SIGNATURE_BYTES, context)
                if body is None:
                    raise FetchFailed("the server has no {}".format(wanted["file"]))
                # Checked in memory before a byte is written where the installer looks; the installer
                # (as root) checks again.
                if signature is None:
                    raise update.UpdateRefused("{}: unsigned".format(wanted["file"]))
                if len(signature) != doc.SIGNATURE_BYTES or not verify(
                    doc.signed_message(wanted["file"], body), signature
                ):
                    raise update.UpdateRefused("{}: bad signature".format(wanted["file"]))
                if wanted.get("sha256") and hashlib.sha256(body).hexdigest() != wanted["sha256"]:
                    raise update.UpdateRefused("{}: not the sha256 the provisioned file names".format(wanted["file"]))
                # What the installer will check (members, SOTTO_VERSION) is checked here too, so that a
                # bad tarball is refused on the display instead of only in the installer's journal.
                inside = update.check_tarball(body)
                if inside != wanted["version"]:
                    raise update.UpdateRefused(
                        "{} holds version {}, not {}".format(wanted["file"], inside[:40], wanted["version"])
                    )
                storage.ensure_private_dir(directory)
                storage.atomic_write(path + ".sig", signature, mode=0o644)
                storage.atomic_write(path, body, mode=0o644)
            except (FetchFailed, doc.ProvisioningRefused, update.UpdateRefused, OSError) as exc:
                error = exc
            self.loop.call_soon_threadsafe(lambda: self._firmware_done(wanted, path, error, failed_before))

        threading.Thread(target=work, name="sotto-firmware-download", daemon=True).start()

    def _firmware_done(self, wanted, path, error, failed_before):
        self._busy = False
        if self._closed:
            return
        failed = failed_before
        if error is not None:
            failed = True
            self._refuse("firmware {} not taken: {}".format(wanted["version"], error))
            try:
                os.unlink(path)  # never leave an unverified tarball where the installer looks
            except OSError:
                pass
        else:
            self.firmware_downloaded = (wanted["version"], path)
            log.warning("provisioning: firmware %s downloaded and verified: %s", wanted["version"], path)
            self.on_firmware(path, wanted["version"])
        (self.schedule.failed if failed else self.schedule.succeeded)(self.loop.now())
        self._arm()

    def _data(self, documents):
        return merging.merge(self.local_data, *[documents.get(name) for name in reversed(self.names)])

    def close(self):
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
