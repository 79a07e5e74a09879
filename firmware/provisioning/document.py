"""One provisioned file: its signature, its serial number and what it may set (sans-I/O, MicroPython-clean).

What is signed is not the bare file but `CONTEXT || name || NUL || body`: the file name is bound into
the signature, so a server (or anyone between it and the phone) cannot hand one phone's `<mac>.toml`,
with its SIP password, to another phone, nor pass `common.toml` off as a per-phone file. The context
string keeps a provisioning signature from ever being valid for anything else signed with the same key.

A document is TOML with a top-level `serial` (a positive integer the operator raises with every change;
tools/provision can stamp it) and the configuration sections a server may set. The phone remembers the
serial of each file it accepted and refuses an older one: a captured, validly signed old file (an old
password, an old server) cannot be replayed to roll a phone back.
"""

from firmware.errors import RemoteProtocolError

CONTEXT = b"sotto-provisioning-v1\x00"
SIGNATURE_BYTES = 64  # Ed25519 (RFC 8032 §5.1.6)
MAX_DOCUMENT_BYTES = 64 * 1024  # a provisioned file is a few hundred bytes; the read is bounded to this
MAX_SERIAL = (1 << 53) - 1  # what every TOML reader keeps exactly
COMMON_NAME = "common.toml"
# What a server may set. Not [board] (the hardware), [data] (where the trust cache lives) nor
# [provisioning] itself (the server and the pinned key): those stay with whoever holds the SD card,
# so a compromised server can change accounts but never move the trust anchor or the ZRTP cache.
PROVISIONED_SECTIONS = ("account", "sip", "media", "zrtp", "dial", "phone")
# Keys inside those sections a server may not set either: the ZRTP cache's path is where the trust lives;
# the contacts file is a path on this phone's boot partition, read with the phone's rights.
LOCAL_ONLY_KEYS = (("zrtp", "cache"), ("phone", "contacts_file"))
FIRMWARE_KEYS = ("version", "file")
# Optional: the tarball's SHA-256 (64 lowercase hex digits), which ties the exact bytes to this signed file
# (the tarball's own signature proves only that the office signed it, not that this is the one meant).
FIRMWARE_OPTIONAL_KEYS = ("sha256",)
MAX_FIRMWARE_TEXT = 128


class ProvisioningRefused(RemoteProtocolError):
    """The server sent something the phone will not use (unsigned, badly signed, older, malformed)."""


def mac_name(mac):
    """`<mac>.toml` for a MAC address: 12 lower-case hex digits without separators (the convention of
    Yealink, Snom and Polycom servers), e.g. b827eb123456.toml. ValueError when `mac` is not a MAC."""
    digits = mac.replace(":", "").replace("-", "").lower()
    if len(digits) != 12 or any(ch not in "0123456789abcdef" for ch in digits):
        raise ValueError("not a MAC address: {!r}".format(mac))
    return digits + ".toml"


def is_file_name(name):
    """A plain file name a server can be asked for: no path, no control characters, bounded."""
    if not isinstance(name, str) or not 0 < len(name) <= 64 or name.startswith("."):
        return False
    for ch in name:
        if not ("a" <= ch <= "z" or "A" <= ch <= "Z" or "0" <= ch <= "9" or ch in "._-"):
            return False
    return True


def signed_message(name, body):
    """The bytes the Ed25519 signature covers: the context, the file name, NUL, the file."""
    if not is_file_name(name):
        raise ValueError("not a plain file name: {!r}".format(name))
    return CONTEXT + name.encode() + b"\x00" + body


def check_signature(name, body, signature, verify):
    """Raise ProvisioningRefused unless `signature` is a valid Ed25519 signature of `name` + `body`.

    verify(message, signature) -> bool is the shell's Ed25519 check with the pinned public key."""
    if signature is None:
        raise ProvisioningRefused("{}: unsigned (no {}.sig)".format(name, name))
    if len(signature) != SIGNATURE_BYTES:
        raise ProvisioningRefused("{}: the signature is {} bytes, not {}".format(name, len(signature), SIGNATURE_BYTES))
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ProvisioningRefused("{}: more than {} bytes".format(name, MAX_DOCUMENT_BYTES))
    if not verify(signed_message(name, body), signature):
        raise ProvisioningRefused("{}: bad signature (not signed with the pinned key)".format(name))


class Document:
    """A verified, parsed provisioned file: its name, serial, settings {section: {key: value}} and the
    firmware it asks for ({"version", "file", "sha256" (None when not given)} or None)."""

    __slots__ = ("name", "serial", "settings", "firmware", "body")

    def __init__(self, name, serial, settings, firmware, body):
        self.name = name
        self.serial = serial
        self.settings = settings
        self.firmware = firmware
        self.body = body

    def __repr__(self):  # never the settings: they may hold a SIP password
        return "Document({}, serial {})".format(self.name, self.serial)


def read_document(name, body, signature, verify, parse):
    """Verify and parse one file: a Document, or ProvisioningRefused saying what is wrong.

    parse(text) -> dict is the shell's TOML reader; it raises ValueError on bad TOML. The signature is
    checked before a single byte is parsed: an attacker's bytes never reach the parser."""
    check_signature(name, body, signature, verify)
    try:
        text = body.decode("utf-8")
    except UnicodeError:
        raise ProvisioningRefused("{}: not UTF-8 text".format(name)) from None
    try:
        data = parse(text)
    except ValueError as exc:
        raise ProvisioningRefused("{}: not valid TOML ({})".format(name, exc)) from None
    serial = data.get("serial")
    if not isinstance(serial, int) or isinstance(serial, bool) or not 0 < serial <= MAX_SERIAL:
        raise ProvisioningRefused("{}: serial: expected a positive integer".format(name))
    settings = {}
    firmware = None
    for key, value in data.items():
        if key == "serial":
            continue
        if key == "firmware":
            firmware = _firmware(name, value)
        elif key in PROVISIONED_SECTIONS:
            if not isinstance(value, dict):
                raise ProvisioningRefused("{}: {}: expected a table".format(name, key))
            for section, local_key in LOCAL_ONLY_KEYS:
                if section == key and local_key in value:
                    raise ProvisioningRefused("{}: {}.{}: not something a server may set".format(name, key, local_key))
            settings[key] = value
        else:
            raise ProvisioningRefused(
                "{}: {}: not something a server may set (only serial, firmware, {})".format(
                    name, key, ", ".join(PROVISIONED_SECTIONS)
                )
            )
    return Document(name, serial, settings, firmware, body)


def _firmware(name, value):
    if (
        not isinstance(value, dict)
        or not set(FIRMWARE_KEYS) <= set(value)
        or not set(value) <= set(FIRMWARE_KEYS + FIRMWARE_OPTIONAL_KEYS)
    ):
        raise ProvisioningRefused(
            "{}: firmware: expected a table with version, file and optionally sha256".format(name)
        )
    for key in FIRMWARE_KEYS:
        text = value[key]
        if not isinstance(text, str) or not 0 < len(text) <= MAX_FIRMWARE_TEXT:
            raise ProvisioningRefused("{}: firmware.{}: expected a short string".format(name, key))
    if not is_file_name(value["file"]):
        raise ProvisioningRefused("{}: firmware.file: expected a plain file name".format(name))
    digest = value.get("sha256")
    if digest is not None and not (
        isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
    ):
        raise ProvisioningRefused("{}: firmware.sha256: expected 64 lowercase hex digits".format(name))
    return {"version": value["version"], "file": value["file"], "sha256": digest}


def check_not_older(document, previous_serial):
    """Refuse a document older than the one accepted before (a replay, a rollback). The same serial is
    fine only for the same bytes (a server that changed a file must raise its serial)."""
    if previous_serial is None:
        return
    serial, body = previous_serial
    if document.serial < serial:
        raise ProvisioningRefused(
            "{}: serial {} is older than the {} in use (a replayed file?)".format(
                document.name, document.serial, serial
            )
        )
    if document.serial == serial and body is not None and document.body != body:
        raise ProvisioningRefused(
            "{}: changed without a new serial ({}): refused, raise the serial".format(document.name, serial)
        )
