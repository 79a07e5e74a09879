"""The one way a number in a peer's text becomes an int (SIP headers, URIs, SDP).

Every grammar Sotto parses spells numbers with ASCII digits only: RFC 3261 §25.1 and RFC 4566 §9 use
RFC 5234's DIGIT = %x30-39. Python's own tools accept far more, and that difference was a remote crash
(issue 11, `a=ptime:²`):
- str.isdigit() is true for superscripts ("²") and other digit-like characters that int() rejects with
  ValueError, which is not our RemoteProtocolError;
- int() silently accepts Arabic-Indic, fullwidth and other Unicode decimal digits, underscores, signs
  and surrounding Unicode whitespace;
- str.strip() and str.split() remove control characters such as \\x1c-\\x1f, \\x85 and NBSP, so
  "20\\x1d" used to pass as 20.
A value is also bounded before it is converted, so a peer's 10^100 costs no bignum arithmetic.

API
---
parse_decimal(text, what, maximum, minimum=0, status=400) -> int
    `text` (str or bytes) must be 1 to MAX_DIGITS ASCII digits after removing SIP linear white space
    (spaces and tabs only, RFC 3261 §25.1 LWS) at both ends; leading zeros are allowed (1*DIGIT). The
    value must lie in [minimum, maximum]. Anything else raises RemoteProtocolError("bad <what>",
    status) or RemoteProtocolError("<what> out of range", status).
decimal_or_none(text, maximum, minimum=0) -> int or None
    The same check for optional values a receiver may ignore (e.g. SDP a=ptime): None instead of raising.
strip_lws(text) -> str or bytes
    `text` without spaces and tabs at either end (and nothing else: see split_lws).
is_ascii_digits(text) -> bool
    True when `text` is a non-empty run of ASCII digits (nothing stripped).
split_lws(text) -> list of str
    Split at runs of spaces and tabs only (str.split() would also split at control characters and
    Unicode spaces, which then vanish from a value instead of making it invalid).
"""

from firmware.errors import RemoteProtocolError

# Enough for any field we read (2^32 is 10 digits) plus leading zeros; longer is refused unread.
MAX_DIGITS = 20

_LWS = " \t"


def strip_lws(text):
    start = 0
    end = len(text)
    if isinstance(text, str):
        while start < end and text[start] in _LWS:
            start += 1
        while end > start and text[end - 1] in _LWS:
            end -= 1
    else:
        while start < end and text[start] in (0x20, 0x09):
            start += 1
        while end > start and text[end - 1] in (0x20, 0x09):
            end -= 1
    return text[start:end]


def _value(text):
    """The value of `text` if it is 1..MAX_DIGITS ASCII digits, else None."""
    n = len(text)
    if n == 0 or n > MAX_DIGITS:
        return None
    value = 0
    if isinstance(text, str):
        for ch in text:
            code = ord(ch)
            if code < 0x30 or code > 0x39:
                return None
            value = value * 10 + (code - 0x30)
    else:
        for code in text:
            if code < 0x30 or code > 0x39:
                return None
            value = value * 10 + (code - 0x30)
    return value


def is_ascii_digits(text):
    if not isinstance(text, (str, bytes, bytearray)) or not text:
        return False
    if isinstance(text, str):
        for ch in text:
            if ch < "0" or ch > "9":
                return False
        return True
    for code in text:
        if code < 0x30 or code > 0x39:
            return False
    return True


def parse_decimal(text, what, maximum, minimum=0, status=400):
    if text is None:
        raise RemoteProtocolError("missing " + what, status)
    if not isinstance(text, (str, bytes, bytearray)):
        raise RemoteProtocolError("bad " + what, status)
    value = _value(strip_lws(text))
    if value is None:
        raise RemoteProtocolError("bad " + what, status)
    if value < minimum or value > maximum:
        raise RemoteProtocolError(what + " out of range", status)
    return value


def decimal_or_none(text, maximum, minimum=0):
    if not isinstance(text, (str, bytes, bytearray)):
        return None
    value = _value(strip_lws(text))
    if value is None or value < minimum or value > maximum:
        return None
    return value


def split_lws(text):
    parts = []
    start = -1
    i = 0
    n = len(text)
    while i < n:
        if text[i] in _LWS:
            if start >= 0:
                parts.append(text[start:i])
                start = -1
        elif start < 0:
            start = i
        i += 1
    if start >= 0:
        parts.append(text[start:])
    return parts
