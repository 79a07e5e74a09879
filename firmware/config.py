"""Configuration: one TOML file, validated against a schema at load time.

A bad file gets one ConfigError naming the file, the key and what was expected; the CLI prints it as one
line and exits 2. Without a file the embedded default applies: simulated board, no registrar, SIP on
127.0.0.1:5060, calls by IP, ZRTP on, data in a per-user directory created with mode 0700.

The schema is data (SCHEMA below): section -> key -> Field. Unknown sections and keys are errors, so a
typo never silently falls back to a default.
"""

import os
import tomllib

from firmware.errors import ConfigError

CODECS = ("PCMU", "PCMA", "G722", "opus")
ENCRYPTIONS = ("zrtp", "sdes", "none")
TRANSPORTS = ("udp", "tcp", "tls")
ZRTP_KEY_AGREEMENTS = ("DH3k", "DH2k", "EC25", "EC38", "X255", "E255", "X448")
ZRTP_CIPHERS = ("AES1", "AES3")
ZRTP_HASHES = ("S256", "S384")
ZRTP_AUTH_TAGS = ("HS32", "HS80")
ZRTP_SAS = ("B32", "B256")


class Field:
    __slots__ = ("kind", "default", "check", "expected")

    def __init__(self, kind, default, expected, check=None):
        self.kind = kind
        self.default = default
        self.expected = expected
        self.check = check


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
    return bool(value) and (":" not in value or _is_host_port(value))


def _one_of(choices):
    return lambda value: value in choices


def _list_of(choices):
    return lambda value: bool(value) and all(item in choices for item in value) and len(set(value)) == len(value)


def is_sip_uri(value):
    return value == "" or (value.startswith(("sip:", "sips:")) and "@" in value and len(value) > 6)


def _is_port(value):
    return 0 <= value < 65536


def _speed_dial(value):
    return all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items())


SCHEMA = {
    "account": {
        "uri": Field(str, "", "a SIP address of record like sip:alice@example.org, or empty", is_sip_uri),
        "password": Field(str, "", "a string"),
        "proxy": Field(str, "", "HOST:PORT of an outbound proxy, or empty", lambda v: v == "" or _is_host_port(v)),
        "transport": Field(str, "udp", "one of udp, tcp, tls", _one_of(TRANSPORTS)),
        "display_name": Field(str, "", "a string"),
        "tls_certificate": Field(str, "", "a PEM file with the registrar's certificate to pin, or empty "
                                 "(verify against the system's CAs)"),
    },
    "sip": {
        "listen": Field(str, "127.0.0.1:5060", "HOST:PORT", _is_host_port),
    },
    "media": {
        "codecs": Field(list, list(CODECS), "a list of codecs from PCMU, PCMA, G722, opus", _list_of(CODECS)),
        "rtp_port": Field(int, 0, "a UDP port number (0: any free port)", _is_port),
        "capture_device": Field(str, "default", "an ALSA device name"),
        "playback_device": Field(str, "default", "an ALSA device name"),
        "encryption": Field(str, "zrtp", "one of zrtp, sdes, none", _one_of(ENCRYPTIONS)),
    },
    "zrtp": {
        "key_agreements": Field(list, ["X255", "DH3k"], "a list from " + ", ".join(ZRTP_KEY_AGREEMENTS),
                                _list_of(ZRTP_KEY_AGREEMENTS)),
        "ciphers": Field(list, ["AES1", "AES3"], "a list from AES1, AES3", _list_of(ZRTP_CIPHERS)),
        "hashes": Field(list, ["S256", "S384"], "a list from S256, S384", _list_of(ZRTP_HASHES)),
        "auth_tags": Field(list, ["HS80", "HS32"], "a list from HS32, HS80", _list_of(ZRTP_AUTH_TAGS)),
        "sas": Field(list, ["B32", "B256"], "a list from B32, B256", _list_of(ZRTP_SAS)),
        "cache": Field(str, "", "a file path (empty: zrtp-cache in the data directory)"),
        "secure_only": Field(bool, False, "true or false"),
    },
    "board": {
        "name": Field(str, "sim", "a board name (a file in boards/) or a path to a board TOML file",
                      lambda v: bool(v)),
    },
    "dial": {
        "domain": Field(str, "", "HOST or HOST:PORT to complete dialled numbers, or empty",
                        lambda v: v == "" or is_host_optional_port(v)),
        "speed_dial": Field(dict, {}, "a table of key = \"sip:...\" entries", _speed_dial),
    },
    "data": {
        "dir": Field(str, "", "a directory path (empty: the per-user data directory)"),
    },
}


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


def _type_name(kind):
    return {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a table"}[kind]


def _validate_value(where, key, field, value):
    # bool is a subclass of int in CPython: an int field must not accept true/false.
    if field.kind is int and isinstance(value, bool) or not isinstance(value, field.kind):
        raise ConfigError(where, key, "expected {}, got {!r}".format(field.expected or _type_name(field.kind), value))
    if field.check is not None and not field.check(value):
        raise ConfigError(where, key, "expected {}, got {!r}".format(field.expected, value))
    return value


def validate(data, where="<default>"):
    """Validate a parsed TOML document (a dict) and return a Config."""
    if not isinstance(data, dict):
        raise ConfigError(where, "<top>", "a TOML document")
    for section in data:
        if section not in SCHEMA:
            raise ConfigError(where, section, "a known section ({})".format(", ".join(SCHEMA)))
    sections = {}
    for section, fields in SCHEMA.items():
        given = data.get(section, {})
        if not isinstance(given, dict):
            raise ConfigError(where, section, "a [{}] table".format(section))
        for key in given:
            if key not in fields:
                raise ConfigError(where, "{}.{}".format(section, key),
                                  "a known key ({})".format(", ".join(fields)))
        values = {}
        for key, field in fields.items():
            name = "{}.{}".format(section, key)
            if key in given:
                values[key] = _validate_value(where, name, field, given[key])
            else:
                default = field.default
                values[key] = list(default) if isinstance(default, list) else (
                    dict(default) if isinstance(default, dict) else default)
        sections[section] = values
    if sections["account"]["password"] and not sections["account"]["uri"]:
        raise ConfigError(where, "account.uri", "an address of record when account.password is set")
    return Config(where, sections)


def load(path=None):
    """Load and validate the configuration file at `path`, or the embedded default when None."""
    if path is None:
        return validate({})
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(path, "<file>", "an existing, readable TOML file") from None
    except PermissionError:
        raise ConfigError(path, "<file>", "a readable file (permission denied)") from None
    except IsADirectoryError:
        raise ConfigError(path, "<file>", "a file, not a directory") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "<syntax>", "valid TOML ({})".format(exc)) from None
    except UnicodeDecodeError:
        raise ConfigError(path, "<file>", "UTF-8 text") from None
    return validate(data, path)


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

[media]
# codecs = ["PCMU", "PCMA", "G722", "opus"]
# rtp_port = 0                      # 0: any free port
# capture_device = "default"
# playback_device = "default"
# encryption = "zrtp"               # zrtp, sdes or none

[zrtp]
# key_agreements = ["X255", "DH3k"]
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
"""
