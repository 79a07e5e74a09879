"""One declarative validator for the TOML files Sotto reads (host-only: tomllib): the configuration
(firmware.config) and the board files (boards.schema).

A schema is data: a dict of key -> Field. A Field has a type, a default (REQUIRED: the key must be given)
and checks in order, each a predicate with the text of what was expected. check_table() refuses unknown
keys, checks every given value and fills in the defaults. Every problem is one ConfigError(where, key,
expected), which the CLI prints as one line. Rules that span several keys (a password needs an address of
record, a pin used twice) are plain code run after the field checks, raising through fail().
"""

import os
import stat
import tomllib

from firmware.errors import ConfigError

REQUIRED = object()  # a Field default: the key must be given
MAX_FILE_BYTES = 1024 * 1024  # a configuration or board file is a few KB; the cap keeps tomllib bounded
TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a table"}


def fail(where, key, expected):
    raise ConfigError(where, key, expected)


def is_text(value, limit):
    """A string of at most `limit` characters with no control characters (C0, DEL, C1)."""
    if not isinstance(value, str) or len(value) > limit:
        return False
    for ch in value:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code < 0xA0:
            return False
    return True


def printable(limit, check=None):
    """A check: bounded printable text (is_text) that also passes `check` when given."""
    return lambda value: is_text(value, limit) and (check is None or check(value))


def one_of(choices):
    return lambda value: value in choices


def list_of(choices):
    """A check: a non-empty list of items from `choices`, each at most once."""
    return lambda value: bool(value) and all(item in choices for item in value) and len(set(value)) == len(value)


def in_range(low, high):
    return lambda value: low <= value <= high


def shown(value, limit=60):
    """repr() of a bad value for a one-line error, cut short: a 100 KB value must not flood the terminal."""
    text = repr(value)
    if len(text) > limit:
        text = "{}... ({} characters)".format(text[:limit], len(value) if isinstance(value, str) else len(text))
    return text


def plain(expected, value):
    """Report style of the board files: only what was expected."""
    return expected


def with_value(expected, value):
    """Report style of the configuration: what was expected and (cut short) what was given."""
    return "expected {}, got {}".format(expected, shown(value))


class Field:
    """One key of a table.

    kind: the Python type the value must have (None: any; an int field refuses true/false).
    default: the value when the key is absent, or REQUIRED (then `required` is the error text).
    expected: the error text when the type is wrong, and when `check` fails.
    checks: more (predicate, expected) pairs, run in order after `check`; `expected` may be a function of
    the value, for a text that names it.
    """

    __slots__ = ("kind", "default", "expected", "check", "checks", "required")

    def __init__(self, kind, default=REQUIRED, expected=None, check=None, checks=(), required="a value (required)"):
        self.kind = kind
        self.default = default
        self.expected = expected
        self.check = check
        self.checks = ((check, expected),) + tuple(checks) if check is not None else tuple(checks)
        self.required = required


def _has_kind(value, kind):
    # bool is a subclass of int in CPython: an int field must not accept true/false.
    return kind is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def check_value(where, key, field, value, say=plain):
    """`value` checked against `field`; a ConfigError naming `key` when it does not pass."""
    if not _has_kind(value, field.kind):
        fail(where, key, say(field.expected or TYPE_NAMES[field.kind], value))
    for check, expected in field.checks:
        if not check(value):
            fail(where, key, say(expected(value) if callable(expected) else expected, value))
    return value


def check_keys(where, table, prefix, allowed, unknown="one of: {}"):
    """Refuse a key of `table` that is not in `allowed`, so a typo never falls back to a default."""
    for key in table:
        if key not in allowed:
            fail(where, prefix + key, unknown.format(", ".join(allowed)))


def check_key(where, table, key, field, prefix="", say=plain):
    """The value of one key of `table`, checked, or a copy of the field's default."""
    if key in table:
        return check_value(where, prefix + key, field, table[key], say)
    if field.default is REQUIRED:
        fail(where, prefix + key, field.required)
    default = field.default
    return list(default) if isinstance(default, list) else (dict(default) if isinstance(default, dict) else default)


def check_table(where, table, fields, prefix="", unknown="one of: {}", say=plain):
    """Validate a table against `fields` (key -> Field): unknown keys refused, every value checked, defaults
    filled in; returns key -> value in the order of `fields`."""
    check_keys(where, table, prefix, tuple(fields), unknown)
    return dict((key, check_key(where, table, key, field, prefix, say)) for key, field in fields.items())


def parse_toml(text, where, syntax_key="<syntax>"):
    """Parse TOML text; a syntax error, or nesting too deep for tomllib's recursion, is one ConfigError."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, syntax_key, "valid TOML ({})".format(exc)) from None
    except RecursionError:
        raise ConfigError(where, syntax_key, "TOML nested less deeply (arrays or tables nested too deep)") from None


def read_toml(path, where=None, limit=MAX_FILE_BYTES, file_key="<file>", syntax_key="<syntax>"):
    """Parse the TOML file at `path`; every problem is a ConfigError (one line), never a traceback.

    The file must be a regular file (a FIFO or a device would block or never end) of at most `limit`
    bytes; tomllib recurses once per nesting level, so a deeply nested document ("a = [[[[...") is
    refused as such instead of ending in a RecursionError.
    """
    where = where or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ConfigError(where, file_key, "an existing, readable TOML file") from None
    except PermissionError:
        raise ConfigError(where, file_key, "a readable file (permission denied)") from None
    except OSError as exc:
        raise ConfigError(where, file_key, "a readable file ({})".format(exc.strerror or exc)) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(where, file_key, "a file, not a directory")
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(where, file_key, "a regular file, not a FIFO or device")
        if info.st_size > limit:
            raise ConfigError(where, file_key, "a TOML file of at most {} bytes, not {}".format(limit, info.st_size))
        with os.fdopen(fd, "rb") as f:
            fd = None
            raw = f.read(limit + 1)
    except OSError as exc:
        raise ConfigError(where, file_key, "a readable file ({})".format(exc.strerror or exc)) from None
    finally:
        if fd is not None:
            os.close(fd)
    if len(raw) > limit:
        raise ConfigError(where, file_key, "a TOML file of at most {} bytes".format(limit))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(where, file_key, "UTF-8 text") from None
    return parse_toml(text, where, syntax_key)
