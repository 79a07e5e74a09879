"""SIP header fields (RFC 3261 §7.3, §20): names, compact forms, multi-values, Via and CSeq.

API
---
canonical_name(name) -> str
    "v" -> "Via", "call-id" -> "Call-ID", "X-Foo" -> "X-Foo" (unknown names keep their spelling).
Headers(pairs=None)
    The ordered header list of one message (a list of [name, value] pairs: MicroPython dicts are
    unordered). Names are stored canonical, values stripped. Methods:
      get(name) -> first value or None          get_all(name) -> every value, comma lists split
      add(name, value)  set(name, value) (replaces all)  remove(name)
      replace_first(name, value) -> bool: the first field named `name` gets `value` in place (its
        position kept, later fields untouched); False when there is none
      count(name)  items() -> list of pairs      len(headers)
    Comma-separated values are split only for the headers whose grammar is a list (Via, Contact,
    Route, Record-Route, Allow, Supported, Require, ...; never WWW-Authenticate, Date, ...).
split_commas(value) -> list of str
    Split at commas outside quoted strings and <...>.
Via / parse_via(value) -> Via
    One Via value: transport ("UDP"...), host, port (or None), params (list of pairs).
    via.branch, via.param(name), via.set_param(name, value), str(via).
parse_cseq(value) -> (number, METHOD)
parse_int_header(value, name, maximum) -> int
token checks: is_token(text)
All parse errors raise RemoteProtocolError(message, 400).
"""

from firmware.digits import parse_decimal, split_lws
from firmware.errors import RemoteProtocolError
from firmware.sip.uri import (
    HasParams,
    format_header_params,
    format_host,
    parse_header_params,
    skip_quoted,
    split_host_port,
)

# §7.3.3 compact forms, plus the ones from later RFCs we may meet.
COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "u": "Allow-Events",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
    "n": "Identity-Info",
}

_KNOWN = (
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "In-Reply-To",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "MIME-Version",
    "Organization",
    "Priority",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reply-To",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Session-Expires",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
)
_BY_LOWER = {}
for _name in _KNOWN:
    _BY_LOWER[_name.lower()] = _name

# Headers whose grammar is a comma-separated list (§7.3.1): get_all() splits them.
LIST_HEADERS = (
    "Via",
    "Contact",
    "Route",
    "Record-Route",
    "Allow",
    "Allow-Events",
    "Supported",
    "Require",
    "Proxy-Require",
    "Unsupported",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Content-Encoding",
    "Content-Language",
    "In-Reply-To",
    "Alert-Info",
    "Call-Info",
    "Error-Info",
    "Reply-To",
)

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"


def is_token(text):
    if not text:
        return False
    for ch in text:
        if ch not in _TOKEN_CHARS:
            return False
    return True


def canonical_name(name):
    lower = name.lower()
    known = _BY_LOWER.get(lower)
    if known is not None:
        return known
    if len(lower) == 1:
        return COMPACT.get(lower, name)
    return name


def known_name(name):
    """The canonical spelling of a header name we know (compact forms included), else None."""
    lower = name.lower()
    known = _BY_LOWER.get(lower)
    if known is None and len(lower) == 1:
        known = COMPACT.get(lower)
    return known


def split_commas(value):
    if '"' not in value and "<" not in value:
        return [part.strip(" \t") for part in value.split(",") if part.strip(" \t")]
    parts = []
    angle = False
    start = 0
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == '"':
            i = skip_quoted(value, i)
            if i < 0:
                raise RemoteProtocolError("unterminated quoted string in header")
            continue
        if ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == "," and not angle:
            part = value[start:i].strip(" \t")
            if part:
                parts.append(part)
            start = i + 1
        i += 1
    part = value[start:].strip(" \t")
    if part:
        parts.append(part)
    return parts


class Headers:
    __slots__ = ("_pairs",)

    def __init__(self, pairs=None):
        self._pairs = []
        if pairs:
            for name, value in pairs:
                self.add(name, value)

    def add(self, name, value):
        self._pairs.append([canonical_name(name), str(value).strip()])

    def set(self, name, value):
        name = canonical_name(name)
        for i in range(len(self._pairs)):
            if self._pairs[i][0] == name:
                self._pairs[i][1] = str(value).strip()
                self._pairs = [p for j, p in enumerate(self._pairs) if j <= i or p[0] != name]
                return
        self._pairs.append([name, str(value).strip()])

    def replace_first(self, name, value):
        # In place: a proxy's Via order must survive (RFC 3261 §18.2.1 stamps only the top Via).
        name = canonical_name(name)
        for pair in self._pairs:
            if pair[0] == name:
                pair[1] = str(value).strip()
                return True
        return False

    def remove(self, name):
        name = canonical_name(name)
        self._pairs = [p for p in self._pairs if p[0] != name]

    def get(self, name):
        name = canonical_name(name)
        for key, value in self._pairs:
            if key == name:
                return value
        return None

    def get_all(self, name):
        name = canonical_name(name)
        out = []
        split = name in LIST_HEADERS
        for key, value in self._pairs:
            if key == name:
                if split:
                    out.extend(split_commas(value))
                else:
                    out.append(value)
        return out

    def count(self, name):
        name = canonical_name(name)
        return len([1 for key, _ in self._pairs if key == name])

    def items(self):
        return [(k, v) for k, v in self._pairs]

    def copy(self):
        h = Headers()
        h._pairs = [list(p) for p in self._pairs]
        return h

    def __len__(self):
        return len(self._pairs)


class Via(HasParams):
    __slots__ = ("protocol", "transport", "host", "port", "params")

    def __init__(self, transport, host, port=None, params=None, protocol="SIP/2.0"):
        self.protocol = protocol
        self.transport = transport
        self.host = host
        self.port = port
        self.params = params if params is not None else []

    @property
    def branch(self):
        return self.param("branch")

    def __str__(self):
        host = format_host(self.host)
        if self.port is not None:
            host = "{}:{}".format(host, self.port)
        return "{}/{} {}{}".format(self.protocol, self.transport, host, format_header_params(self.params))


def parse_via(value):
    value = value.strip(" \t")
    slash1 = value.find("/")
    slash2 = value.find("/", slash1 + 1) if slash1 >= 0 else -1
    if slash1 < 0 or slash2 < 0:
        raise RemoteProtocolError("bad Via protocol")
    name = value[:slash1].strip(" \t")
    version = value[slash1 + 1 : slash2].strip(" \t")
    rest = value[slash2 + 1 :].lstrip(" \t")
    space = 0
    while space < len(rest) and rest[space] not in " \t":
        space += 1
    transport = rest[:space].strip(" \t").upper()
    if name.upper() != "SIP" or version != "2.0" or not is_token(transport):
        raise RemoteProtocolError("bad Via protocol")
    rest = rest[space:].strip(" \t")
    semi = rest.find(";")
    hostport = (rest if semi < 0 else rest[:semi]).strip(" \t")
    hostport = hostport.replace(" ", "").replace("\t", "")
    if not hostport:
        raise RemoteProtocolError("Via without sent-by")
    host, port = split_host_port(hostport)
    params = parse_header_params(rest[semi:]) if semi >= 0 else []
    return Via(transport, host, port, params, "SIP/2.0")


def parse_int_header(value, name, maximum=4294967295):
    """An ASCII decimal header value (firmware.digits: no Unicode digits, no control characters)."""
    return parse_decimal(value, name, maximum)


def parse_cseq(value):
    if value is None:
        raise RemoteProtocolError("missing CSeq")
    parts = split_lws(value)
    if len(parts) != 2:
        raise RemoteProtocolError("bad CSeq")
    number = parse_int_header(parts[0], "CSeq", 2147483647)
    method = parts[1]
    if not is_token(method):
        raise RemoteProtocolError("bad CSeq method")
    return number, method
