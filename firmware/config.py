"""Configuration: one TOML file, validated against a schema at load time.

A bad file gets one ConfigError naming the file, the key and what was expected; the CLI prints it as one
line and exits 2. Without a file the embedded default applies: simulated board, no registrar, SIP on
127.0.0.1:5060, calls by IP, ZRTP on, data in a per-user directory created with mode 0700.

The schema is data (SCHEMA below): section -> key -> Field. Unknown sections and keys are errors, so a
typo never silently falls back to a default.
"""

import os

from firmware.errors import ConfigError
from firmware.validation import (
    MAX_FILE_BYTES,  # noqa: F401 (config.MAX_FILE_BYTES: the file size cap)
    Field,
    check_keys,
    check_table,
    check_value,
    in_range,
    is_text,
    list_of,
    one_of,
    printable,
    read_toml,
    with_value,
)
from firmware.zrtp import algorithms as _zrtp_algorithms

CODECS = ("PCMU", "PCMA", "G722", "opus")
ENCRYPTIONS = ("zrtp", "sdes", "none")
TRANSPORTS = ("udp", "tcp", "tls")
# The ZRTP vocabulary and default preferences have one home: firmware/zrtp/algorithms.py.
ZRTP_KEY_AGREEMENTS = _zrtp_algorithms.SUPPORTED["key_agreement"] + ("E255",)  # E255: GNU ZRTP's X255
ZRTP_CIPHERS = _zrtp_algorithms.SUPPORTED["cipher"]
ZRTP_HASHES = _zrtp_algorithms.SUPPORTED["hash"]
ZRTP_AUTH_TAGS = _zrtp_algorithms.SUPPORTED["auth_tag"]
ZRTP_SAS = _zrtp_algorithms.SUPPORTED["sas"]
_ZRTP_DEFAULTS = _zrtp_algorithms.DEFAULTS


def host_port(text):
    """Split "HOST:PORT" (or "[v6]:PORT"); raise ValueError when it is not that."""
    if not isinstance(text, str) or ":" not in text:
        raise ValueError(text)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if not rest.startswith(":"):
            raise ValueError(text)
        port_text = rest[1:]
    else:
        host, _, port_text = text.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(text)
    return host, int(port_text)


def _is_host_port(value):
    try:
        host_port(value)
    except ValueError:
        return False
    return True


def is_host_optional_port(value):
    return (
        bool(value)
        and is_text(value, MAX_HOST_PORT)
        and " " not in value
        and (":" not in value or _is_host_port(value))
    )


# Bounds for every free-text value: a configuration file is operator input, but a 100 KB display name
# would still end up in every SIP From header and on a 21-character display, and a control character
# (CR, LF) in a value that goes into a SIP header would inject header lines (RFC 3261 §25.1: no CTLs
# in a token or quoted-string).
MAX_URI = 256
MAX_HOST_PORT = 262  # a 253-character DNS name (RFC 1035 §2.3.4), ':' and a 5-digit port
MAX_DISPLAY_NAME = 64
MAX_PASSWORD = 128
MAX_DEVICE_NAME = 128
MAX_PATH = 4096  # PATH_MAX on Linux
MAX_SPEED_DIAL_ENTRIES = 100
MAX_SPEED_DIAL_DIGITS = 32  # the keypad's dialling buffer (firmware.phone.MAX_DIGITS)
SPEED_DIAL_KEYS = "0123456789*"  # what the keypad can dial; '#' sends the digits
DEFAULT_CONTACTS_FILE = "/boot/firmware/sotto-contacts.csv"  # on the boot partition, editable from any PC


def is_sip_uri(value):
    if value == "":
        return True
    return (
        is_text(value, MAX_URI)
        and " " not in value
        and value.startswith(("sip:", "sips:"))
        and "@" in value
        and len(value) > 6
    )


def is_speed_dial_key(key):
    return isinstance(key, str) and 0 < len(key) <= MAX_SPEED_DIAL_DIGITS and all(ch in SPEED_DIAL_KEYS for ch in key)


def is_provisioning_url(value):
    """An http(s):// URL of the directory holding the provisioned files (whether http is allowed is a
    rule across keys: provisioning.allow_http)."""
    if value == "":
        return True
    if not is_text(value, MAX_URI) or " " in value:
        return False
    for scheme in ("https://", "http://"):
        if value.startswith(scheme):
            host = value[len(scheme) :].split("/", 1)[0]
            return bool(host) and "@" not in host
    return False


def _speed_dial(value):
    return len(value) <= MAX_SPEED_DIAL_ENTRIES and all(
        is_speed_dial_key(k) and isinstance(v, str) and v and is_sip_uri(v) for k, v in value.items()
    )


SCHEMA = {
    "account": {
        "uri": Field(
            str,
            "",
            "a SIP address of record like sip:alice@example.org (at most {} characters), or empty".format(MAX_URI),
            is_sip_uri,
        ),
        "password": Field(
            str,
            "",
            "a string of at most {} characters without control characters".format(MAX_PASSWORD),
            printable(MAX_PASSWORD),
        ),
        "proxy": Field(
            str,
            "",
            "HOST:PORT of an outbound proxy, or empty",
            printable(MAX_HOST_PORT, lambda v: v == "" or _is_host_port(v)),
        ),
        "transport": Field(str, "udp", "one of udp, tcp, tls", one_of(TRANSPORTS)),
        "display_name": Field(
            str,
            "",
            "a name of at most {} characters without control characters".format(MAX_DISPLAY_NAME),
            printable(MAX_DISPLAY_NAME),
        ),
        "tls_certificate": Field(
            str,
            "",
            "a PEM file with the registrar's certificate to pin, or empty (verify against the system's CAs)",
            printable(MAX_PATH),
        ),
    },
    "sip": {
        "listen": Field(str, "127.0.0.1:5060", "HOST:PORT", printable(MAX_HOST_PORT, _is_host_port)),
        # Behind a NAT with a static port mapping: the address (and RTP port) to advertise in SDP, as
        # --public-address does on the command line (which wins when both are given).
        "public_address": Field(
            str,
            "",
            "HOST or HOST:PORT, or empty",
            printable(MAX_HOST_PORT, lambda v: v == "" or is_host_optional_port(v)),
        ),
        # RFC 3262 §3: a UAS MUST send its provisional responses reliably when the INVITE requires 100rel
        # and MAY when the INVITE only supports it. Desk phones leave that option off by default (Yealink's
        # account.X.100rel_enable = 0): a reliable 180 costs a PRACK round trip per call and only helps a
        # caller that needs it, and such a caller says Require.
        "reliable_provisional": Field(
            str,
            "required",
            "one of required, supported (when our 180 is sent reliably: the caller requires 100rel, or supports it)",
            one_of(("required", "supported")),
        ),
    },
    "media": {
        "codecs": Field(list, list(CODECS), "a list of codecs from PCMU, PCMA, G722, opus", list_of(CODECS)),
        "redundancy": Field(bool, True, "true or false"),
        "rtp_port": Field(int, 0, "a UDP port number (0: any free port)", in_range(0, 65535)),
        "capture_device": Field(
            str,
            "default",
            "an ALSA device name (at most {} characters)".format(MAX_DEVICE_NAME),
            printable(MAX_DEVICE_NAME, bool),
        ),
        "playback_device": Field(
            str,
            "default",
            "an ALSA device name (at most {} characters)".format(MAX_DEVICE_NAME),
            printable(MAX_DEVICE_NAME, bool),
        ),
        "encryption": Field(str, "zrtp", "one of zrtp, sdes, none", one_of(ENCRYPTIONS)),
        "inactivity_timeout": Field(
            int,
            30,
            "seconds from 0 (never) to 3600: a call with no media from the peer for that long (not on hold) is ended",
            in_range(0, 3600),
        ),
    },
    "zrtp": {
        "key_agreements": Field(
            list,
            list(_ZRTP_DEFAULTS["key_agreement"]),
            "a list from " + ", ".join(ZRTP_KEY_AGREEMENTS),
            list_of(ZRTP_KEY_AGREEMENTS),
        ),
        "ciphers": Field(
            list, list(_ZRTP_DEFAULTS["cipher"]), "a list from " + ", ".join(ZRTP_CIPHERS), list_of(ZRTP_CIPHERS)
        ),
        "hashes": Field(
            list, list(_ZRTP_DEFAULTS["hash"]), "a list from " + ", ".join(ZRTP_HASHES), list_of(ZRTP_HASHES)
        ),
        "auth_tags": Field(
            list, list(_ZRTP_DEFAULTS["auth_tag"]), "a list from " + ", ".join(ZRTP_AUTH_TAGS), list_of(ZRTP_AUTH_TAGS)
        ),
        "sas": Field(list, list(_ZRTP_DEFAULTS["sas"]), "a list from " + ", ".join(ZRTP_SAS), list_of(ZRTP_SAS)),
        "cache": Field(str, "", "a file path (empty: zrtp-cache in the data directory)", printable(MAX_PATH)),
        "secure_only": Field(bool, False, "true or false"),
    },
    "board": {
        "name": Field(
            str, "sim", "a board name (a file in boards/) or a path to a board TOML file", printable(MAX_PATH, bool)
        ),
    },
    "dial": {
        "domain": Field(
            str,
            "",
            "HOST or HOST:PORT to complete dialled numbers, or empty",
            printable(MAX_HOST_PORT, lambda v: v == "" or is_host_optional_port(v)),
        ),
        "speed_dial": Field(
            dict,
            {},
            'a table of at most {} key = "sip:..." entries, each key 1 to {} of the keypad\'s 0-9 and *'.format(
                MAX_SPEED_DIAL_ENTRIES, MAX_SPEED_DIAL_DIGITS
            ),
            _speed_dial,
        ),
    },
    "data": {
        "dir": Field(str, "", "a directory path (empty: the per-user data directory)", printable(MAX_PATH)),
    },
    # Provisioning from a server (firmware/provisioning, README "Provisioning an office").
    "provisioning": {
        "url": Field(
            str,
            "",
            "an https:// URL of the directory holding <mac>.toml and common.toml, or empty",
            printable(MAX_URI, is_provisioning_url),
        ),
        "allow_http": Field(bool, False, "true or false"),
        "public_key": Field(
            str,
            "/boot/firmware/sotto-provisioning.pub",
            "a path to the Ed25519 public key (PEM) the files must be signed with",
            printable(MAX_PATH, bool),
        ),
        "ca": Field(
            str, "", "a PEM file with the CA the server's certificate must chain to, or empty", printable(MAX_PATH)
        ),
        "dhcp_lease": Field(
            str,
            "",
            "a dhclient lease file to take the URL from (DHCP option 66) when url is empty, or empty",
            printable(MAX_PATH),
        ),
        "mac": Field(
            str,
            "",
            "the MAC address naming this phone's file, or empty",
            printable(17, lambda v: v == "" or _is_mac(v)),
        ),
        "interface": Field(
            str, "eth0", "a network interface name", printable(15, lambda v: bool(v) and "/" not in v and v[0] != ".")
        ),
        "interval": Field(int, 86400, "seconds between two fetches, from 60 to 604800", in_range(60, 604800)),
    },
    # The desk features (issue 15): voicemail and message waiting (RFC 3842), the address book's import file.
    "phone": {
        "voicemail": Field(
            str,
            "",
            "the voicemail's SIP URI the voicemail key dials (empty: the Message-Account of the last NOTIFY)",
            is_sip_uri,
        ),
        "message_waiting": Field(
            bool, True, "true or false (subscribe to message-summary at the registrar after registration)"
        ),
        "message_account": Field(
            str, "", "the SIP URI to subscribe to for message-summary (empty: the account's address)", is_sip_uri
        ),
        "unsolicited_notify": Field(
            bool, False, "true or false (accept a message-summary NOTIFY that no subscription asked for)"
        ),
        "contacts_file": Field(
            str,
            DEFAULT_CONTACTS_FILE,
            "a path to a contacts CSV file to import at start (empty: none)",
            printable(MAX_PATH),
        ),
        "call_waiting": Field(bool, True, "true or false (false: one call at a time, a second caller gets 486)"),
    },
}


def _is_mac(value):
    digits = value.replace(":", "").replace("-", "")
    return len(digits) == 12 and all(ch in "0123456789abcdefABCDEF" for ch in digits)


class Section:
    """One validated section: its keys as attributes."""

    def __init__(self, name, values):
        self._name = name
        for key, value in values.items():
            setattr(self, key, value)

    def __repr__(self):
        items = ", ".join("{}={!r}".format(k, v) for k, v in vars(self).items() if not k.startswith("_"))
        return "Section({}: {})".format(self._name, items)


class Config:
    """The whole configuration: `config.account.uri`, `config.zrtp.secure_only`, ..."""

    def __init__(self, source, sections):
        self.source = source
        for name, values in sections.items():
            setattr(self, name, Section(name, values))

    @property
    def data_dir(self):
        return self.data.dir or default_data_dir()

    @property
    def cache_path(self):
        return self.zrtp.cache or os.path.join(self.data_dir, "zrtp-cache")


def default_data_dir():
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "sotto")


def recheck(config, where="command line"):
    """Check the values of a Config again after the command line changed some (--register, --password,
    --dial-domain, ...): the same bounds as in a file, the same one-line ConfigError."""
    for section, fields in SCHEMA.items():
        values = getattr(config, section)
        for key, field in fields.items():
            check_value(where, "{}.{}".format(section, key), field, getattr(values, key), with_value)


def validate(data, where="<default>"):
    """Validate a parsed TOML document (a dict) and return a Config."""
    if not isinstance(data, dict):
        raise ConfigError(where, "<top>", "a TOML document")
    check_keys(where, data, "", tuple(SCHEMA), "a known section ({})")
    sections = {}
    for section, fields in SCHEMA.items():
        given = data.get(section, {})
        if not isinstance(given, dict):
            raise ConfigError(where, section, "a [{}] table".format(section))
        sections[section] = check_table(where, given, fields, section + ".", "a known key ({})", with_value)
    if sections["account"]["password"] and not sections["account"]["uri"]:
        raise ConfigError(where, "account.uri", "an address of record when account.password is set")
    if sections["provisioning"]["url"].startswith("http://") and not sections["provisioning"]["allow_http"]:
        raise ConfigError(
            where, "provisioning.url", "an https:// URL (plain http needs provisioning.allow_http = true)"
        )
    return Config(where, sections)


def load_data(path=None):
    """The parsed but not yet validated file at `path` ({} without one): what provisioning merges over."""
    return {} if path is None else read_toml(path)


def load(path=None):
    """Load and validate the configuration file at `path`, or the embedded default when None."""
    if path is None:
        return validate({})
    return validate(read_toml(path), path)


DEFAULT_TEMPLATE = """\
# Sotto configuration. Every key is optional; the values shown are the defaults.

[account]
# uri = "sip:alice@example.org"     # register with this address of record (empty: calls by IP only)
# password = ""
# proxy = "sip.example.org:5060"    # outbound proxy, HOST:PORT
# transport = "udp"                 # udp, tcp or tls
# display_name = ""
# tls_certificate = ""              # with transport = "tls": pin this PEM certificate instead of the CAs

[sip]
# listen = "127.0.0.1:5060"         # local SIP address (use 0.0.0.0:5060 on a real phone)
# public_address = ""               # behind a NAT: the public HOST[:RTP PORT] to put in SDP
# reliable_provisional = "required" # 180 with PRACK (RFC 3262) when the caller requires 100rel; "supported":
#                                   # also when it only supports it

[media]
# codecs = ["PCMU", "PCMA", "G722", "opus"]
# redundancy = true                 # RFC 2198: offer red/8000 for G.711 and G.722; when the peer takes it,
#                                   # each packet repeats the previous frame (a lone loss is rebuilt; twice
#                                   # the payload bandwidth)
# rtp_port = 0                      # 0: any free port
# capture_device = "default"
# playback_device = "default"
# encryption = "zrtp"               # zrtp, sdes or none
# inactivity_timeout = 30           # seconds without media from the peer (not on hold): end the call

[zrtp]
# key_agreements = ["X255", "EC25", "X448", "EC38", "DH3k", "DH2k"]
# ciphers = ["AES1", "AES3"]
# hashes = ["S256", "S384"]
# auth_tags = ["HS80", "HS32"]
# sas = ["B32", "B256"]
# cache = ""                        # empty: zrtp-cache in the data directory
# secure_only = false               # true: end every call that does not become secure

[board]
# name = "sim"                      # a file in boards/, or a path to your own board TOML

[dial]
# domain = ""                       # dialled digits become sip:DIGITS@domain
# [dial.speed_dial]
# 1 = "sip:bob@example.org"

[data]
# dir = ""                          # empty: ~/.local/share/sotto

[provisioning]
# url = "https://prov.example.org/sotto/"   # fetch <mac>.toml then common.toml from here, signed
# allow_http = false                # true: a plain http:// url is accepted (a lab, never an office)
# public_key = "/boot/firmware/sotto-provisioning.pub"   # the Ed25519 key the files must be signed with
# ca = ""                           # the CA the server must chain to (empty: the system's CAs)
# dhcp_lease = ""                   # with url empty: take it from DHCP option 66 in this dhclient lease
# mac = ""                          # empty: the MAC address of `interface`
# interface = "eth0"
# interval = 86400                  # seconds between fetches (plus up to an hour of jitter)

[phone]
# voicemail = ""                    # the voicemail key dials this (empty: the NOTIFY's Message-Account)
# message_waiting = true            # with an account: SUBSCRIBE to message-summary (RFC 3842)
# message_account = ""              # empty: the account's address
# unsolicited_notify = false        # true: also take a message-summary NOTIFY nobody subscribed to
# contacts_file = "/boot/firmware/sotto-contacts.csv"   # imported at start when it changed
# call_waiting = true               # false: one call at a time, a second caller gets 486 Busy Here
"""
