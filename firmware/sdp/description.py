"""SDP (RFC 4566): one session description, parsed and written. The offer/answer rules are in
offer_answer.py; `firmware.sdp` re-exports both (see its docstring for the whole API).

Apart from the offer/answer model because this is the part that reads peer input: every bound, every
number check (firmware/digits.py) and the refusal of anything malformed (RemoteProtocolError, 400)
are here, with nothing about what to answer.

API
---
parse_sdp(data) -> SessionDescription
    bytes (or str) in; RemoteProtocolError(message, 400) out for anything malformed (bounded: 16 KiB,
    64 media sections, 256 attributes each). Unknown lines are kept, not rejected.
SessionDescription
    version, origin (Origin), session_name, connection (Connection or None), times (list of str),
    bandwidths, attributes (list of [name, value-or-None]), media (list of MediaDescription),
    other_lines (list of [type, value] kept as read). to_bytes() serializes (CRLF line ends).
Origin(username, session_id, session_version, address, nettype="IN", addrtype="IP4")
Connection(address, nettype="IN", addrtype="IP4")
MediaDescription
    media ("audio"), port (int), proto ("RTP/AVP", "RTP/SAVP"...), formats (list of str payload
    types), connection, bandwidths, attributes (list of pairs). attribute(name) -> first value,
    "" for a flag, None; attributes_named(name) -> list; rtpmap() -> list of Codec.
Codec(payload_type, name, clock_rate, channels=1, fmtp=None)

CODECS: the codecs Sotto knows by name: PCMU (0), PCMA (8), G722 (9, clock 8000 in SDP, RFC 3551
§4.5.2), opus (dynamic, opus/48000/2, RFC 7587), telephone-event (dynamic, RFC 4733).
REDUNDANT_CODECS, RED_DYNAMIC: the codecs offered with RFC 2198 redundancy (red/8000) and its payload types.
"""

from firmware.digits import decimal_or_none, is_ascii_digits, parse_decimal, split_lws, strip_lws
from firmware.errors import RemoteProtocolError
from firmware.text import decode_utf8

MAX_SDP = 16384
MAX_MEDIA = 64
MAX_ATTRIBUTES = 256
# Bounds on numbers a peer's SDP may carry (anything larger is not a real stream).
MAX_CLOCK_RATE = 1000000  # RFC 4566 §6 rtpmap clock rate; real codecs use at most 192 kHz
MAX_CHANNELS = 255
MAX_PTIME = 1000  # a=ptime in ms; longer packets are no telephone stream

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

# name -> (static payload type or None for dynamic, clock rate, channels)
CODECS = {
    "PCMU": (0, 8000, 1),
    "PCMA": (8, 8000, 1),
    "G722": (9, 8000, 1),
    "opus": (None, 48000, 2),
    "telephone-event": (None, 8000, 1),
}
_STATIC_NAMES = {0: "PCMU", 8: "PCMA", 9: "G722", 3: "GSM", 4: "G723", 18: "G729", 13: "CN"}
DEFAULT_DYNAMIC = {"opus": 111, "telephone-event": 101}
# RFC 2198 redundancy (red/8000, RFC 4102 registers it) for the codecs a lost frame hurts most: one
# payload type per primary codec, since a=fmtp names the primary (RFC 2198 §5). Opus has in-band FEC.
REDUNDANT_CODECS = ("PCMU", "PCMA", "G722")
RED_DYNAMIC = {"PCMU": 121, "PCMA": 122, "G722": 123}


def canonical_codec(name):
    lower = name.lower()
    for known in CODECS:
        if known.lower() == lower:
            return known
    return name


class Codec:
    __slots__ = ("payload_type", "name", "clock_rate", "channels", "fmtp")

    def __init__(self, payload_type, name, clock_rate, channels=1, fmtp=None):
        self.payload_type = payload_type
        self.name = name
        self.clock_rate = clock_rate
        self.channels = channels
        self.fmtp = fmtp

    def __repr__(self):
        return "Codec({} {}/{}/{})".format(self.payload_type, self.name, self.clock_rate, self.channels)


class Origin:
    __slots__ = ("username", "session_id", "session_version", "nettype", "addrtype", "address")

    def __init__(self, username, session_id, session_version, address, nettype="IN", addrtype="IP4"):
        self.username = username
        self.session_id = session_id
        self.session_version = session_version
        self.nettype = nettype
        self.addrtype = addrtype
        self.address = address

    def __str__(self):
        return "{} {} {} {} {} {}".format(
            self.username, self.session_id, self.session_version, self.nettype, self.addrtype, self.address
        )


class Connection:
    __slots__ = ("nettype", "addrtype", "address")

    def __init__(self, address, nettype="IN", addrtype="IP4"):
        self.nettype = nettype
        self.addrtype = addrtype
        self.address = address

    def __str__(self):
        return "{} {} {}".format(self.nettype, self.addrtype, self.address)


def _attribute(attributes, name):
    for key, value in attributes:
        if key == name:
            return "" if value is None else value
    return None


def _direction(attributes):
    """The first direction attribute (sendrecv, sendonly, recvonly, inactive; RFC 4566 §6), or None."""
    for key, _ in attributes:
        if key in DIRECTIONS:
            return key
    return None


class MediaDescription:
    __slots__ = (
        "media",
        "port",
        "port_count",
        "proto",
        "formats",
        "connection",
        "bandwidths",
        "attributes",
        "other_lines",
    )

    def __init__(self, media, port, proto, formats, connection=None, attributes=None):
        self.media = media
        self.port = port
        self.port_count = None
        self.proto = proto
        self.formats = formats
        self.connection = connection
        self.bandwidths = []
        self.attributes = attributes if attributes is not None else []
        self.other_lines = []

    def attribute(self, name):
        return _attribute(self.attributes, name)

    def attributes_named(self, name):
        return ["" if v is None else v for k, v in self.attributes if k == name]

    def direction(self):
        return _direction(self.attributes)

    def rtpmap(self):
        """Codec per payload type in m= order; static types without rtpmap get their RFC 3551 names."""
        maps = []
        for value in self.attributes_named("rtpmap"):
            pt_text, _, encoding = value.partition(" ")
            parts = strip_lws(encoding).split("/")
            # RFC 4566 §6: a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]
            payload_type = decimal_or_none(pt_text, 127)
            rate = decimal_or_none(parts[1], MAX_CLOCK_RATE, minimum=1) if len(parts) >= 2 else None
            if payload_type is None or rate is None:
                raise RemoteProtocolError("bad a=rtpmap")
            channels = decimal_or_none(parts[2], MAX_CHANNELS, minimum=1) if len(parts) > 2 else 1
            if channels is None:
                raise RemoteProtocolError("bad a=rtpmap channels")
            maps.append((payload_type, parts[0], rate, channels))
        fmtps = []
        for value in self.attributes_named("fmtp"):
            pt_text, _, params = value.partition(" ")
            fmtps.append((decimal_or_none(pt_text, 127), strip_lws(params)))
        codecs = []
        for fmt in self.formats:
            payload_type = decimal_or_none(fmt, 127)
            if payload_type is None:
                continue
            found = None
            for mapped_type, name, rate, channels in maps:
                if mapped_type == payload_type:
                    found = Codec(payload_type, canonical_codec(name), rate, channels)
                    break
            if found is None:
                name = _STATIC_NAMES.get(payload_type)
                if name is None:
                    continue  # a dynamic type without rtpmap: unusable
                found = Codec(payload_type, name, 8000, 1)
            for fmtp_type, params in fmtps:
                if fmtp_type == payload_type:
                    found.fmtp = params
            codecs.append(found)
        return codecs


class SessionDescription:
    __slots__ = (
        "version",
        "origin",
        "session_name",
        "connection",
        "times",
        "bandwidths",
        "attributes",
        "media",
        "other_lines",
    )

    def __init__(self, origin, connection=None, session_name="-"):
        self.version = 0
        self.origin = origin
        self.session_name = session_name
        self.connection = connection
        self.times = ["0 0"]
        self.bandwidths = []
        self.attributes = []
        self.media = []
        self.other_lines = []

    def attribute(self, name):
        return _attribute(self.attributes, name)

    def attribute_direction(self):
        return _direction(self.attributes)

    def audio(self):
        for m in self.media:
            if m.media == "audio":
                return m
        return None

    def to_bytes(self):
        lines = ["v=0", "o=" + str(self.origin), "s=" + (self.session_name or "-")]
        _append_other_connection_bandwidths(lines, self)
        for value in self.times:
            lines.append("t=" + value)
        _append_attributes(lines, self.attributes)
        for m in self.media:
            port = str(m.port) if m.port_count is None else "{}/{}".format(m.port, m.port_count)
            lines.append("m={} {} {} {}".format(m.media, port, m.proto, " ".join(m.formats)))
            _append_other_connection_bandwidths(lines, m)
            _append_attributes(lines, m.attributes)
        return ("\r\n".join(lines) + "\r\n").encode()


def _append_other_connection_bandwidths(lines, description):
    """A session's or a media description's kept lines (i=, ...), then c= and b=, in RFC 4566 §5 order."""
    for kind, value in description.other_lines:
        lines.append(kind + "=" + value)
    if description.connection is not None:
        lines.append("c=" + str(description.connection))
    for value in description.bandwidths:
        lines.append("b=" + value)


def _append_attributes(lines, attributes):
    for name, value in attributes:
        lines.append("a=" + name if value is None else "a={}:{}".format(name, value))


def _parse_connection(value):
    parts = split_lws(value)
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise RemoteProtocolError("bad c= line")
    address = parts[2].split("/")[0]
    if not (_is_ip4(address) if parts[1] == "IP4" else _is_ip6(address)):
        # RFC 4566 §5.7 also allows a host name here; we take IP literals only. Media is sent to this
        # address from the real-time loop, which must never wait on DNS, and a name is where a NUL or a
        # lone surrogate would reach the socket layer (a remote crash, issue 11).
        raise RemoteProtocolError("c= address must be an {} literal".format(parts[1]), 488)
    return Connection(address, parts[0], parts[1])


def _is_ip4(text):
    parts = text.split(".")
    if len(parts) != 4:
        return False
    for part in parts:
        if not (1 <= len(part) <= 3 and is_ascii_digits(part)) or int(part) > 255:
            return False
    return True


_HEX = "0123456789abcdefABCDEF"


def _is_ip6(text):
    """An RFC 4291 §2.2 text address: hex groups, one "::" at most, an IPv4 tail allowed."""
    if not 2 <= len(text) <= 45 or text.count("::") > 1 or ":::" in text:
        return False
    groups = text.split(":")
    if "." in groups[-1]:
        if not _is_ip4(groups[-1]):
            return False
        groups = groups[:-1] + ["0", "0"]
    filled = [g for g in groups if g]
    if len(groups) > 8 or (len(groups) < 8 and "::" not in text) or len(filled) > 8:
        return False
    return all(len(g) <= 4 and all(c in _HEX for c in g) for g in filled)


def _parse_origin(value):
    parts = split_lws(value)
    if len(parts) != 6:
        raise RemoteProtocolError("bad o= line")
    return Origin(parts[0], parts[1], parts[2], parts[5], parts[3], parts[4])


def parse_sdp(data):
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, (bytes, bytearray)):
        raise RemoteProtocolError("SDP is not bytes")
    if len(data) > MAX_SDP:
        raise RemoteProtocolError("SDP too large")
    text = decode_utf8(bytes(data))
    if text is None:
        raise RemoteProtocolError("SDP is not UTF-8")
    session = None
    current = None
    seen_version = False
    for raw in text.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if line == "":
            continue
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise RemoteProtocolError("bad SDP line")
        kind = line[0]
        value = line[2:]
        if not seen_version:
            if kind != "v" or strip_lws(value) != "0":
                raise RemoteProtocolError("SDP must start with v=0")
            seen_version = True
            continue
        if session is None:
            if kind != "o":
                raise RemoteProtocolError("SDP o= line must follow v=")
            session = SessionDescription(_parse_origin(value))
            session.session_name = None
            session.times = []
            continue
        if kind == "m":
            if len(session.media) >= MAX_MEDIA:
                raise RemoteProtocolError("too many SDP media sections")
            current = _parse_media_line(value)
            session.media.append(current)
            continue
        target = current if current is not None else session
        if kind == "a":
            if len(target.attributes) >= MAX_ATTRIBUTES:
                raise RemoteProtocolError("too many SDP attributes")
            name, colon, attr_value = value.partition(":")
            if not name:
                raise RemoteProtocolError("empty SDP attribute")
            target.attributes.append([name, attr_value if colon else None])
        elif kind == "c":
            target.connection = _parse_connection(value)
        elif kind == "b":
            target.bandwidths.append(value)
        elif kind == "s" and current is None:
            session.session_name = value
        elif kind == "t" and current is None:
            session.times.append(value)
        elif kind == "v":
            raise RemoteProtocolError("repeated v= line")
        else:
            if len(target.other_lines) >= MAX_ATTRIBUTES:
                raise RemoteProtocolError("too many SDP lines")
            target.other_lines.append([kind, value])
    if session is None:
        raise RemoteProtocolError("SDP without o= line")
    if session.session_name is None:
        session.session_name = "-"
    if not session.times:
        session.times = ["0 0"]
    return session


def _parse_media_line(value):
    parts = split_lws(value)
    if len(parts) < 3:
        raise RemoteProtocolError("bad m= line")
    port_text, slash, count_text = parts[1].partition("/")
    # RFC 4566 §5.14: <port>[/<number of ports>], ASCII digits only.
    port = parse_decimal(port_text, "m= port", 65535) if is_ascii_digits(port_text) else None
    count = parse_decimal(count_text, "m= port count", 65535, minimum=1) if is_ascii_digits(count_text) else None
    if port is None or (slash and count is None):
        raise RemoteProtocolError("bad m= port")
    m = MediaDescription(parts[0], port, parts[2], parts[3:])
    if slash:
        m.port_count = count
    return m
