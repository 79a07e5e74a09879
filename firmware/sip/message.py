"""SIP requests and responses: parsing, checking and serialization (RFC 3261 §7, §18.3, §20, §25).

API
---
parse_message(data, stream=False) -> Request | Response
    Parse one message from bytes. Leading CRLFs are skipped (§7.5), folded header lines are unfolded,
    compact names expanded (headers.COMPACT), header order kept. The body is cut to Content-Length; a
    missing Content-Length means "the rest of the datagram" unless `stream` is true (then it is an
    error, §18.3). A message whose head parses but is still broken raises BrokenMessage (a
    RemoteProtocolError) carrying the parsed message as `.parsed`, so a UA can answer a request: a
    datagram whose body is shorter than its Content-Length (§18.3: 400), a bad or repeated
    Content-Length, a control character other than HTAB in a header line (§25.1 TEXT-UTF8char, LWS),
    an unknown SIP version (505). Bounds: MAX_MESSAGE (64 KiB,
    status 513), MAX_HEADERS header fields, MAX_LINE
    characters per line. Any malformed input raises RemoteProtocolError(message, status) and nothing
    else; the status is the response we would send (400 by default).
check_request(request)
    The rules a parsed request must also meet before a UA acts on it (§8.2): the mandatory headers
    Via/From/To/Call-ID/CSeq/Max-Forwards parse, the CSeq method matches, Max-Forwards is a number up
    to 255, the Request-URI parses (416 for an unknown scheme), no SINGLE_VALUED header appears twice
    (RFC 4475 §3.3.8 multi01), and every value of every NUMERIC_HEADERS header is an ASCII number in
    range (RFC 4475 §3.1.2.4). Raises RemoteProtocolError(message, status).
check_response(response)
    Via/From/To/Call-ID/CSeq present and parse, no SINGLE_VALUED header repeated. Raises
    RemoteProtocolError.
Request(method, uri, headers=None, body=b"")
    method (str), uri (uri.Uri, or the raw text if it did not parse: see check_request), headers
    (headers.Headers), body (bytes). to_bytes() serializes with a computed Content-Length.
Response(status, reason=None, headers=None, body=b"")
    status (int), reason (str; default from REASONS), headers, body. to_bytes().
Both have the lazily parsed, cached properties: call_id, cseq (number, METHOD), from_addr, to_addr
    (uri.NameAddr), vias (list of headers.Via), top_via, content_type (lower-cased, no params).
stamp_via(request, addr)   note received/rport in the top Via (RFC 3581 §4)
make_response(request, status, reason=None, to_tag=None) -> Response
    A response per §8.2.6.2: Via (all), From, To (+ tag when given and absent), Call-ID, CSeq copied.
StreamFramer(max_buffer=MAX_MESSAGE * 2)
    Framing of TCP/TLS byte streams by Content-Length. feed(data) -> list of items, each either
    message bytes or the keep-alive markers KEEPALIVE_PING (a CRLFCRLF, RFC 5626 §4.4.1; answer it
    with a CRLF) / KEEPALIVE_PONG (a lone CRLF). Raises RemoteProtocolError on a framing error (the
    caller closes the connection). pending() -> bytes of a message begun but not yet complete.
"""

from firmware.digits import is_ascii_digits, parse_decimal, strip_lws
from firmware.errors import RemoteProtocolError
from firmware.sip.headers import (
    Headers,
    is_token,
    known_name,
    parse_cseq,
    parse_int_header,
    parse_via,
    split_commas,
)
from firmware.sip.uri import parse_name_addr, parse_uri
from firmware.text import decode_utf8

MAX_MESSAGE = 65536
MAX_HEADERS = 128
MAX_LINE = 8192

KEEPALIVE_PING = "ping"
KEEPALIVE_PONG = "pong"

REASONS = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")

# Headers whose grammar allows one instance per message (RFC 3261 §20, RFC 4028, RFC 3262, RFC 3515):
# a second one, even with the same value, is a 400 (RFC 4475 §3.3.8 "multi01", §3.3.9 "mcl01"),
# because a peer and a proxy could each act on a different copy.
SINGLE_VALUED = (
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Expires",
    "Min-Expires",
    "Session-Expires",
    "Min-SE",
    "RSeq",
    "RAck",
    "Retry-After",
    "Refer-To",
    "Event",
    "Subscription-State",
)

# Headers that are (or start with) a number in a request, and the largest value each may carry. Every
# value is checked, not just the first (issue 11: "Max-Forwards: 70" then "Max-Forwards: 70000000000000"
# was answered 200). Session-Expires / Min-SE / Retry-After carry parameters or a comment after the
# number (RFC 4028 §4, §5; RFC 3261 §20.33); RSeq and the RAck numbers are 1..2^32-1 (RFC 3262 §7).
NUMERIC_HEADERS = (
    ("Max-Forwards", 255),
    ("Expires", 4294967295),
    ("Min-Expires", 4294967295),
    ("Session-Expires", 4294967295),
    ("Min-SE", 4294967295),
    ("Retry-After", 4294967295),
    ("RSeq", 4294967295),
)


class BrokenMessage(RemoteProtocolError):
    """A message whose head parsed but which is malformed all the same, e.g. a datagram whose body is
    shorter than its Content-Length (RFC 3261 §18.3: a request like that gets 400). `parsed` is the
    Request or Response as far as it was read, so the UA can address its answer."""

    def __init__(self, message, parsed, status=400):
        RemoteProtocolError.__init__(self, message, status)
        self.parsed = parsed


class _Message:
    __slots__ = ("headers", "body", "_cache")

    def __init__(self, headers, body):
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self._cache = []

    def _cached(self, key, build):
        cache = self._cache
        for k, v in cache:
            if k == key:
                return v
        value = build()
        cache.append((key, value))
        return value

    def invalidate(self):
        """Forget parsed header values after editing `headers`."""
        self._cache = []

    @property
    def call_id(self):
        value = self.headers.get("Call-ID")
        if not value:
            raise RemoteProtocolError("missing Call-ID")
        return value

    @property
    def cseq(self):
        return self._cached("cseq", lambda: parse_cseq(self.headers.get("CSeq")))

    @property
    def from_addr(self):
        return self._cached("from", lambda: _parse_single_addr(self.headers, "From"))

    @property
    def to_addr(self):
        return self._cached("to", lambda: _parse_single_addr(self.headers, "To"))

    @property
    def vias(self):
        return self._cached("vias", lambda: [parse_via(v) for v in self.headers.get_all("Via")])

    @property
    def top_via(self):
        vias = self.vias
        if not vias:
            raise RemoteProtocolError("missing Via")
        return vias[0]

    @property
    def content_type(self):
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        return value.split(";")[0].strip().lower()

    def _head_and_body(self, start_line):
        lines = [start_line]
        for name, value in self.headers.items():
            if name == "Content-Length":
                continue
            lines.append(name + ": " + value)
        lines.append("Content-Length: {}".format(len(self.body)))
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def _parse_single_addr(headers, name):
    values = headers.get_all(name)
    if len(values) != 1:
        raise RemoteProtocolError(("missing " if not values else "repeated ") + name)
    return parse_name_addr(values[0])


class Request(_Message):
    __slots__ = ("method", "uri")

    def __init__(self, method, uri, headers=None, body=b""):
        _Message.__init__(self, headers, body)
        self.method = method
        self.uri = uri

    def to_bytes(self):
        return self._head_and_body("{} {} SIP/2.0".format(self.method, self.uri))

    def __repr__(self):
        return "<Request {} {}>".format(self.method, self.uri)


class Response(_Message):
    __slots__ = ("status", "reason")

    def __init__(self, status, reason=None, headers=None, body=b""):
        _Message.__init__(self, headers, body)
        self.status = status
        self.reason = reason if reason is not None else REASONS.get(status, "Unknown")

    def to_bytes(self):
        return self._head_and_body("SIP/2.0 {} {}".format(self.status, self.reason))

    def __repr__(self):
        return "<Response {} {}>".format(self.status, self.reason)


def _find_head_end(data):
    """(end of headers, start of body) or (-1, -1)."""
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, crlf + 4
    if lf >= 0:
        return lf, lf + 2
    return -1, -1


def _content_length(headers):
    values = headers.get_all("Content-Length")
    if not values:
        return None
    if len(values) > 1:
        raise RemoteProtocolError("repeated Content-Length")
    return parse_int_header(values[0], "Content-Length", MAX_MESSAGE)


def has_control_character(line):
    """§25.1: header text is TEXT-UTF8char and LWS; the only control character allowed is HTAB."""
    for ch in line:
        if (ch < " " and ch != "\t") or ch == "\x7f":
            return True
    return False


def parse_message(data, stream=False):
    if not isinstance(data, (bytes, bytearray)):
        raise RemoteProtocolError("message is not bytes")
    if len(data) > MAX_MESSAGE:
        raise RemoteProtocolError("message larger than 64 KiB", 513)
    data = bytes(data)
    start = 0
    while data[start : start + 2] == b"\r\n":
        start += 2
    if start:
        data = data[start:]
    head_end, body_start = _find_head_end(data)
    if head_end < 0:
        # A datagram may end right after the last header line (no body, no empty line).
        if not stream and (data.endswith(b"\r\n") or data.endswith(b"\n")):
            head_end = body_start = len(data)
        else:
            raise RemoteProtocolError("no end of headers")
    head = decode_utf8(data[:head_end])
    if head is None:
        raise RemoteProtocolError("header bytes are not UTF-8")
    lines = head.split("\n")
    if not lines or not lines[0].strip():
        raise RemoteProtocolError("empty start line")
    start_line = lines[0]
    if start_line.endswith("\r"):
        start_line = start_line[:-1]
    if len(start_line) > MAX_LINE:
        raise RemoteProtocolError("start line too long", 414)
    if has_control_character(start_line):
        raise RemoteProtocolError("control character in start line")
    headers = Headers()
    pairs = headers._pairs
    count = 0
    defect = None
    for raw in lines[1:]:
        line = raw[:-1] if raw.endswith("\r") else raw
        if len(line) > MAX_LINE:
            raise RemoteProtocolError("header line too long")
        if defect is None and has_control_character(line):
            defect = "control character in header"  # answered once the head is read
        if line == "":
            raise RemoteProtocolError("empty header line")
        if line[0] in " \t":
            # Folding (§7.3.1): a continuation line joins the previous value with one space.
            if not pairs:
                raise RemoteProtocolError("continuation line before the first header")
            joined = pairs[-1][1] + " " + strip_lws(line)
            if len(joined) > MAX_LINE:
                raise RemoteProtocolError("header line too long")
            pairs[-1][1] = strip_lws(joined)
            continue
        colon = line.find(":")
        if colon <= 0:
            raise RemoteProtocolError("header line without colon")
        name = strip_lws(line[:colon])
        canonical = known_name(name)
        if canonical is None:
            if not is_token(name):
                raise RemoteProtocolError("bad header name")
            canonical = name
        count += 1
        if count > MAX_HEADERS:
            raise RemoteProtocolError("too many header fields")
        pairs.append([canonical, strip_lws(line[colon + 1 :])])
    rest = data[body_start:]
    if start_line.startswith("SIP/"):
        message = _parse_status_line(start_line, headers, b"")
    else:
        message = _parse_request_line(start_line, headers, b"")
    length_error = None
    try:
        length = _content_length(headers)
    except RemoteProtocolError as exc:
        length_error = exc.message  # raised outside the handler: no exception chaining (MicroPython)
    if length_error is not None:
        raise BrokenMessage(length_error, message)
    if defect is not None:
        raise BrokenMessage(defect, message)
    if length is None:
        if stream:
            raise RemoteProtocolError("Content-Length is mandatory on streams")
        message.body = rest
    else:
        if len(rest) < length:
            raise BrokenMessage("body shorter than Content-Length", message)
        message.body = rest[:length]  # §18.3: bytes beyond Content-Length in a datagram are discarded
    return message


def _parse_status_line(line, headers, body):
    parts = line.split(" ", 2)
    if len(parts) < 2 or parts[0] != "SIP/2.0":
        raise RemoteProtocolError("bad status line", 505 if parts and parts[0] != "SIP/2.0" else 400)
    code = parts[1]
    if len(code) != 3 or not is_ascii_digits(code) or code[0] not in "123456":
        raise RemoteProtocolError("bad status code")
    reason = parts[2] if len(parts) == 3 else ""
    for ch in reason:
        if ord(ch) < 32 and ch != "\t":
            raise RemoteProtocolError("control character in reason phrase")
    return Response(int(code), reason, headers, body)


def _parse_request_line(line, headers, body):
    parts = line.split(" ")
    if len(parts) != 3:
        raise RemoteProtocolError("bad request line")
    method, uri_text, version = parts
    if not is_token(method):
        raise RemoteProtocolError("bad method")
    try:
        uri = parse_uri(uri_text)
    except RemoteProtocolError:
        uri = uri_text  # check_request reports it with the right status once we can respond
    request = Request(method, uri, headers, body)
    if version.upper() != "SIP/2.0":
        raise BrokenMessage("unsupported SIP version", request, 505)  # §8.2.? answered, RFC 4475 badvers
    return request


def check_request(request):
    if isinstance(request.uri, str):
        parse_uri(request.uri)  # raises with 400 or 416
        raise RemoteProtocolError("bad Request-URI")
    for name in _MANDATORY:
        if request.headers.get(name) is None:
            raise RemoteProtocolError("missing " + name)
    _parsed = (request.top_via, request.from_addr, request.to_addr, request.call_id)
    number, method = request.cseq
    if method != request.method:
        raise RemoteProtocolError("CSeq method does not match the request method")
    max_forwards = request.headers.get("Max-Forwards")
    if max_forwards is not None:
        # The value must parse; 0 is fine here: the hop limit is a proxy's business (§16.3), and a UA
        # still answers e.g. an OPTIONS sent with Max-Forwards: 0 to probe it.
        parse_int_header(max_forwards, "Max-Forwards", 255)
    _check_single_valued(request)
    for name, maximum in NUMERIC_HEADERS:
        for value in request.headers.get_all(name):
            parse_decimal(_leading_number(value), name, maximum)
    if _parsed[1].uri is None or request.to_addr.uri is None:
        raise RemoteProtocolError("wildcard in From or To")


def _leading_number(value):
    """'1800;refresher=uac' / '120 (lunch)' -> the number part; the parameters are checked elsewhere."""
    end = len(value)
    for stop in (";", "("):
        at = value.find(stop)
        if 0 <= at < end:
            end = at
    return value[:end]


def _check_single_valued(message):
    seen = []
    for name, _ in message.headers.items():
        if name in SINGLE_VALUED:
            if name in seen:
                raise RemoteProtocolError("repeated " + name)
            seen.append(name)


def check_response(response):
    for name in _MANDATORY:
        if response.headers.get(name) is None:
            raise RemoteProtocolError("missing " + name)
    _check_single_valued(response)
    return (response.top_via, response.from_addr, response.to_addr, response.call_id, response.cseq)


def stamp_via(request, addr):
    """§18.2.1 and RFC 3581 §4: note in the top Via where the request really came from, so responses
    (which copy the Via) tell the peer its public address."""
    via = request.top_via
    changed = False
    if via.host != addr[0]:
        via.set_param("received", addr[0])
        changed = True
    if via.param("rport") == "":
        via.set_param("rport", str(addr[1]))
        changed = True
    if not changed:
        return
    # The first Via field may carry several comma-separated values: only its first one is ours to stamp.
    headers = request.headers
    first = headers.get("Via")
    rest = split_commas(first)[1:] if first is not None else []
    headers.replace_first("Via", ", ".join([str(via)] + rest))


def make_response(request, status, reason=None, to_tag=None):
    headers = Headers()
    for name, value in request.headers.items():
        if name == "Via":
            headers.add("Via", value)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        if value is not None:
            if name == "To" and to_tag and status > 100:
                try:
                    to = request.to_addr
                except RemoteProtocolError:
                    to = None
                if to is not None and to.tag is None:
                    to = to.copy()
                    to.set_param("tag", to_tag)
                    value = str(to)
            headers.add(name, value)
    return Response(status, reason, headers)


class StreamFramer:
    __slots__ = ("_buffer", "_max_buffer")

    def __init__(self, max_buffer=MAX_MESSAGE * 2):
        self._buffer = b""
        self._max_buffer = max_buffer

    def pending(self):
        """Bytes of a message that has begun but not yet been framed."""
        return len(self._buffer)

    def feed(self, data):
        self._buffer += data
        if len(self._buffer) > self._max_buffer:
            self._buffer = b""
            raise RemoteProtocolError("stream buffer overflow", 513)
        out = []
        while self._buffer:
            buf = self._buffer
            if buf.startswith(b"\r\n\r\n"):
                out.append(KEEPALIVE_PING)
                self._buffer = buf[4:]
                continue
            if buf in (b"\r", b"\r\n\r"):
                break  # wait: the start of a ping or of a pong
            if buf.startswith(b"\r\n"):
                out.append(KEEPALIVE_PONG)
                self._buffer = buf[2:]
                continue
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                if len(buf) > MAX_MESSAGE:
                    self._buffer = b""
                    raise RemoteProtocolError("headers larger than 64 KiB", 513)
                break
            length = None
            for line in buf[:head_end].split(b"\r\n")[1:]:
                name, colon, value = line.partition(b":")
                if colon and strip_lws(name).lower() in (b"content-length", b"l"):
                    if length is not None:
                        self._buffer = b""
                        raise RemoteProtocolError("repeated Content-Length on a stream")
                    try:
                        length = parse_decimal(value, "Content-Length", MAX_MESSAGE, status=513)
                    except RemoteProtocolError:
                        self._buffer = b""
                        raise
            if length is None:
                self._buffer = b""
                raise RemoteProtocolError("missing Content-Length on a stream")
            total = head_end + 4 + length
            if total > MAX_MESSAGE:
                self._buffer = b""
                raise RemoteProtocolError("message larger than 64 KiB", 513)
            if len(buf) < total:
                break
            out.append(buf[:total])
            self._buffer = buf[total:]
        return out
