"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966) and name-addr values (§20.10, §25.1).

API
---
parse_uri(text) -> Uri
    Parse "sip:user:password@host:port;param=value?header=value", "sips:..." or "tel:+1-555;param".
    Raises RemoteProtocolError(message, 400) for anything malformed (416 for an unknown scheme).
Uri(scheme, user=None, host=None, port=None, params=None, headers=None, password=None)
    Attributes: scheme ("sip", "sips", "tel"), user (unescaped, or the number for tel), password,
    host (lower-cased; IPv6 without brackets), port (int or None), params (list of [name, value-or-None]
    pairs, names lower-cased), headers (list of [name, value] pairs, unescaped).
    str(uri) serializes with escaping; uri.param(name) -> value, "" for a flag, None when absent;
    uri.set_param(name, value); uri.copy(); uri.host_port() -> "host[:port]"; uri.transport() ->
    "udp"/"tcp"/"tls"; equality follows §19.1.4 loosely (scheme, user, host, port, transport, user,
    ttl, method, maddr params compared; other params ignored).
parse_name_addr(text) -> NameAddr
    Parse a From/To/Contact/Route/Refer-To value: '"Display" <sip:...>;tag=x' or 'sip:...;tag=x' (in
    the latter form, parameters belong to the header, §20.10). Also accepts "*" for Contact (uri None).
NameAddr(uri, display=None, params=None)
    Attributes: display (unquoted str or None), uri (Uri), params (list of pairs, names lower-cased).
    na.param(name), na.set_param(name, value), na.tag (shortcut for param "tag"), str(na) serializes
    (always with angle brackets).
"""

from firmware.digits import is_ascii_digits, parse_decimal
from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.text import decode_utf8

_HEX = "0123456789abcdefABCDEF"
# Characters allowed unescaped in the user part (§25.1: unreserved / user-unreserved).
_USER_SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+$,;?/"
_PARAM_SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()[]/:&+$"
_HOST_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-."
_TEL_CHARS = "0123456789+-.()*#abcdefABCDEFpPwW"
_MAX_URI = 2048


def parse_local_uri(value, what):
    """A URI our own caller gave us (str or Uri): a parse error is API misuse (LocalProtocolError,
    message `what` + the reason), not the peer's."""
    if not isinstance(value, str):
        return value
    error = None
    try:
        return parse_uri(value)
    except RemoteProtocolError as exc:
        error = exc.message
    raise LocalProtocolError(what + error)


def _unescape(text):
    if "%" not in text:
        return text
    out = bytearray()
    i = 0
    raw = text.encode()
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == 0x25:  # '%'
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2 or chr(pair[0]) not in _HEX or chr(pair[1]) not in _HEX:
                raise RemoteProtocolError("bad escape in URI")
            out.append(int(pair.decode(), 16))
            i += 3
        else:
            out.append(c)
            i += 1
    text = decode_utf8(bytes(out))
    if text is None:
        raise RemoteProtocolError("escaped URI part is not UTF-8")
    return text


def _escape(text, safe):
    out = []
    for ch in text:
        if ch in safe:
            out.append(ch)
        else:
            for b in ch.encode():
                out.append("%{:02X}".format(b))
    return "".join(out)


def _check_host(host):
    if not host:
        raise RemoteProtocolError("URI without host")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 4:
            raise RemoteProtocolError("bad IPv6 reference in URI")
        inner = host[1:-1]
        for ch in inner:
            if ch not in "0123456789abcdefABCDEF:.":
                raise RemoteProtocolError("bad IPv6 address in URI")
        return inner.lower()
    for ch in host:
        if ch not in _HOST_CHARS:
            raise RemoteProtocolError("bad character in URI host")
    return host.lower()


def _parse_params(text, lower_values=False):
    """';a=b;c' (the leading ';' already removed) -> list of [name, value-or-None]."""
    params = []
    if text == "":
        return params
    for item in text.split(";"):
        if item == "":
            raise RemoteProtocolError("empty URI parameter")
        name, eq, value = item.partition("=")
        name = _unescape(name).lower()
        if not name:
            raise RemoteProtocolError("URI parameter without name")
        params.append([name, _unescape(value) if eq else None])
    return params


def _parse_port(text):
    if not is_ascii_digits(text):  # no white space inside a hostport (§25.1)
        raise RemoteProtocolError("bad port in URI")
    return parse_decimal(text, "port in URI", 65535, minimum=1)


def split_host_port(text):
    """'host', 'host:port', '[v6]:port' -> (host, port-or-None); host validated and lower-cased."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise RemoteProtocolError("bad IPv6 reference")
        host = text[: end + 1]
        rest = text[end + 1 :]
        if rest == "":
            return _check_host(host), None
        if not rest.startswith(":"):
            raise RemoteProtocolError("junk after IPv6 reference")
        return _check_host(host), _parse_port(rest[1:])
    host, colon, port = text.partition(":")
    return _check_host(host), (_parse_port(port) if colon else None)


def format_host(host):
    return "[" + host + "]" if ":" in host else host


def get_param(params, name):
    """The value of parameter `name` in a list of [name, value] pairs: "" for a flag, None if absent."""
    for key, value in params:
        if key == name:
            return "" if value is None else value
    return None


def set_param(params, name, value=None):
    """Set (or add) parameter `name` in a list of [name, value] pairs, keeping the order."""
    for pair in params:
        if pair[0] == name:
            pair[1] = value
            return
    params.append([name, value])


class HasParams:
    """A URI, name-addr or Via with its parameters in `params`, a list of [name, value] pairs."""

    __slots__ = ()

    def param(self, name):
        return get_param(self.params, name)

    def set_param(self, name, value=None):
        set_param(self.params, name, value)


class Uri(HasParams):
    __slots__ = ("scheme", "user", "password", "host", "port", "params", "headers")

    def __init__(self, scheme, user=None, host=None, port=None, params=None, headers=None, password=None):
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params = params if params is not None else []
        self.headers = headers if headers is not None else []

    def copy(self):
        return Uri(
            self.scheme,
            self.user,
            self.host,
            self.port,
            [list(p) for p in self.params],
            [list(h) for h in self.headers],
            self.password,
        )

    def host_port(self):
        if self.host is None:
            return ""
        if self.port is None:
            return format_host(self.host)
        return "{}:{}".format(format_host(self.host), self.port)

    def transport(self):
        value = self.param("transport")
        if value:
            return value.lower()
        return "tls" if self.scheme == "sips" else "udp"

    def __str__(self):
        if self.scheme == "tel":
            out = ["tel:", self.user or ""]
        else:
            out = [self.scheme, ":"]
            if self.user is not None:
                out.append(_escape(self.user, _USER_SAFE))
                if self.password is not None:
                    out.append(":")
                    out.append(_escape(self.password, _USER_SAFE.replace(";", "").replace("?", "").replace("/", "")))
                out.append("@")
            out.append(self.host_port())
        for name, value in self.params:
            out.append(";")
            out.append(_escape(name, _PARAM_SAFE))
            if value is not None:
                out.append("=")
                out.append(_escape(value, _PARAM_SAFE))
        if self.headers:
            out.append("?")
            out.append("&".join(_escape(n, _PARAM_SAFE) + "=" + _escape(v, _PARAM_SAFE) for n, v in self.headers))
        return "".join(out)

    def __repr__(self):
        return "Uri({!r})".format(str(self))

    def _key(self):
        comparable = []
        for name in ("transport", "user", "ttl", "method", "maddr"):
            value = self.param(name)
            comparable.append(value.lower() if value is not None else None)
        return (self.scheme, self.user, self.host, self.port, tuple(comparable))

    def __eq__(self, other):
        return isinstance(other, Uri) and self._key() == other._key()

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self._key())


def parse_uri(text):
    if not isinstance(text, str):
        raise RemoteProtocolError("URI is not text")
    text = text.strip()
    if len(text) > _MAX_URI:
        raise RemoteProtocolError("URI too long")
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or not scheme:
        raise RemoteProtocolError("URI without scheme")
    # min() runs in C: one pass finds any control character or space.
    if min(text) <= " " or "\x7f" in text or "<" in text or ">" in text or '"' in text:
        raise RemoteProtocolError("bad character in URI")
    if scheme == "tel":
        return _parse_tel(rest)
    if scheme not in ("sip", "sips"):
        raise RemoteProtocolError("unsupported URI scheme " + scheme, 416)
    rest, qmark, header_text = rest.partition("?")
    headers = []
    if qmark:
        for item in header_text.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq:
                raise RemoteProtocolError("bad URI header")
            headers.append([_unescape(name), _unescape(value)])
    user = password = None
    at = rest.rfind("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1 :]
        user_text, pcolon, password_text = userinfo.partition(":")
        if not user_text:
            raise RemoteProtocolError("empty user in URI")
        user = _unescape(user_text)
        if pcolon:
            password = _unescape(password_text)
    hostport, semi, param_text = rest.partition(";")
    host, port = split_host_port(hostport)
    params = _parse_params(param_text) if semi else []
    if semi and not params:
        raise RemoteProtocolError("empty URI parameter")
    return Uri(scheme, user, host, port, params, headers, password)


def _parse_tel(rest):
    number, semi, param_text = rest.partition(";")
    if not number:
        raise RemoteProtocolError("empty tel number")
    for ch in number:
        if ch not in _TEL_CHARS:
            raise RemoteProtocolError("bad character in tel number")
    params = _parse_params(param_text) if semi else []
    return Uri("tel", number, None, None, params)


def skip_quoted(text, i):
    """The index just after the quoted-string that opens at text[i] (a double quote; backslash escapes the
    next character, RFC 3261 §25.1), or -1 when it is never closed."""
    i += 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i + 1
        i += 1
    return -1


def _find_unquoted(text, char, start=0):
    """Index of `char` in `text` outside double quotes (with backslash escapes), or -1."""
    if '"' not in text:
        return text.find(char, start)
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i = skip_quoted(text, i)
            if i < 0:
                return -1
            continue
        if ch == char:
            return i
        i += 1
    return -1


def unquote(text):
    """'"a \\"b\\""' -> 'a "b"'. Raises RemoteProtocolError when the quotes do not close."""
    if len(text) < 2 or not text.startswith('"') or not text.endswith('"'):
        raise RemoteProtocolError("unterminated quoted string")
    out = []
    i = 1
    end = len(text) - 1
    while i < end:
        ch = text[i]
        if ch == "\\":
            i += 1
            if i >= end:
                raise RemoteProtocolError("dangling escape in quoted string")
            out.append(text[i])
        elif ch == '"':
            raise RemoteProtocolError("stray quote in quoted string")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_header_params(text):
    """'; a=b ; c="d;e"' -> [["a","b"],["c","d;e"]]; names lower-cased, quoted values unquoted."""
    params = []
    text = text.strip()
    if text == "":
        return params
    if not text.startswith(";"):
        raise RemoteProtocolError("junk before header parameters")
    pos = 1
    n = len(text)
    while pos <= n:
        end = _find_unquoted(text, ";", pos)
        if end < 0:
            end = n
        item = text[pos:end].strip()
        if item == "":
            raise RemoteProtocolError("empty header parameter")
        name, eq, value = item.partition("=")
        name = name.strip().lower()
        if not name or " " in name or '"' in name:
            raise RemoteProtocolError("bad header parameter name")
        if eq:
            value = value.strip()
            if value.startswith('"'):
                value = unquote(value)
            elif '"' in value:
                raise RemoteProtocolError("bad quoted header parameter")
            params.append([name, value])
        else:
            params.append([name, None])
        pos = end + 1
    return params


def format_header_params(params):
    out = []
    for name, value in params:
        out.append(";")
        out.append(name)
        if value is not None:
            out.append("=")
            if value == "" or any(ch in value for ch in ' ";,<>@:\\'):
                out.append(quote(value))
            else:
                out.append(value)
    return "".join(out)


class NameAddr(HasParams):
    __slots__ = ("display", "uri", "params")

    def __init__(self, uri, display=None, params=None):
        self.uri = uri
        self.display = display
        self.params = params if params is not None else []

    @property
    def tag(self):
        return self.param("tag")

    def copy(self):
        return NameAddr(self.uri.copy() if self.uri is not None else None, self.display, [list(p) for p in self.params])

    def __str__(self):
        if self.uri is None:
            return "*" + format_header_params(self.params)
        head = quote(self.display) + " " if self.display else ""
        return head + "<" + str(self.uri) + ">" + format_header_params(self.params)

    def __repr__(self):
        return "NameAddr({!r})".format(str(self))


def parse_name_addr(text):
    if not isinstance(text, str):
        raise RemoteProtocolError("address is not text")
    text = text.strip()
    if text == "":
        raise RemoteProtocolError("empty address")
    if text == "*" or (text.startswith("*") and text[1:].strip().startswith(";")):
        return NameAddr(None, None, parse_header_params(text[1:]))
    lt = _find_unquoted(text, "<")
    if lt >= 0:
        display_text = text[:lt].strip()
        gt = text.find(">", lt)
        if gt < 0:
            raise RemoteProtocolError("unclosed < in address")
        uri = parse_uri(text[lt + 1 : gt])
        params = parse_header_params(text[gt + 1 :])
        display = None
        if display_text:
            if display_text.startswith('"'):
                display = unquote(display_text)
            else:
                for ch in display_text:
                    if ch in '"<>;@:':
                        raise RemoteProtocolError("bad display name")
                display = display_text
        return NameAddr(uri, display, params)
    # addr-spec form: the parameters after the first ';' belong to the header (§20.10).
    semi = text.find(";")
    if semi < 0:
        return NameAddr(parse_uri(text), None, [])
    uri_text = text[:semi]
    if "?" in uri_text or "," in uri_text:
        raise RemoteProtocolError("addr-spec with URI headers must use angle brackets")
    return NameAddr(parse_uri(uri_text), None, parse_header_params(text[semi:]))
