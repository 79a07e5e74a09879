"""The offer/answer model (RFC 3264) for one audio stream: our offer, our answer to an offer, and what
the peer's description asks us to send to. Parsing and writing SDP is in description.py.

Apart from description.py because this is policy over parsed descriptions (which codec, which
direction, RFC 3264 §6.1), with no parsing of its own.

API (re-exported by firmware.sdp)
---
build_offer(codecs, address, port, direction="sendrecv", zrtp_hash=None, crypto_lines=(),
            rtcp_mux=False, telephone_event=True, ptime=20, session_id=1, session_version=1,
            username="-", profile=None, redundancy=False, payload_types=None) -> SessionDescription
    `codecs`: names in preference order (e.g. ["PCMU", "PCMA", "G722", "opus"]). `payload_types`:
    {canonical name: payload type} replacing our defaults, for a re-offer in a call whose peer chose
    the numbers (RFC 3264 §8.3.2: the mapping of a number to a format stays the same through the
    session); "telephone-event" may be one of the names. `zrtp_hash` is the
    value of a=zrtp-hash (RFC 6189 §8.1, "1.10 <hex>"); `crypto_lines` the values of a=crypto
    (RFC 4568, "1 AES_CM_128_HMAC_SHA1_80 inline:..."); with crypto lines the profile is RTP/SAVP.
    redundancy: also offer red/8000 (RFC 2198 §5) for each of PCMU, PCMA, G722 offered, after all the
    plain codecs (a peer without RED ignores it), each with a=fmtp:<red> <pt>/<pt>. An int instead of
    True: that payload type for red (a re-offer keeps the one the call uses; give one such codec).
answer_offer(offer, codecs, address, port, direction="sendrecv", zrtp_hash=None, crypto_lines=(),
             telephone_event=True, ptime=20, session_id=1, session_version=1, username="-",
             redundancy=False)
    -> (SessionDescription answer, Codec chosen)
    Picks the first codec in OUR preference order that the offer's audio stream has (keeping the
    offerer's payload type numbers), answers telephone-event when offered, mirrors rtcp-mux, and
    answers the direction per RFC 3264 §6.1 (offer sendonly -> recvonly; recvonly -> sendonly;
    inactive -> inactive; our `direction` otherwise). Raises RemoteProtocolError(..., 488) when no
    codec matches or there is no usable audio stream; other media sections are rejected with port 0.
    redundancy: answer the offer's red for the chosen codec (red_payload_type), when it has one.
red_payload_type(codecs, chosen) -> int or None
    The payload type of red/<chosen's clock> among `codecs` (Codec list, the peer's) whose a=fmtp names
    only `chosen`'s payload type (RFC 2198 §5: "<primary>/<redundant>..."), for a codec in
    REDUNDANT_CODECS; None when there is none (RED is then not used).
remote_media(description) -> RemoteMedia
    What to send to: address, port (0 = stream disabled), codecs (list of Codec, in the peer's order),
    telephone_event (payload type or None), direction (as the peer wrote it), zrtp_hash (str or None),
    crypto_lines (list of str), rtcp_mux (bool), ptime (int or None), proto. Raises
    RemoteProtocolError(..., 488) without an audio stream.
reverse_direction(direction): sendonly <-> recvonly.
same_session(previous, offer) -> bool
    True when the SDP `offer` (bytes) keeps the o= session id and version of `previous`: RFC 3264 §8,
    it changes nothing (an RFC 4028 session refresh). False when either does not parse. The shell
    gives it to the UserAgent, to which bodies are opaque.
"""

from firmware.digits import decimal_or_none
from firmware.errors import RemoteProtocolError
from firmware.sdp.description import (
    CODECS,
    DEFAULT_DYNAMIC,
    DIRECTIONS,
    MAX_PTIME,
    RED_DYNAMIC,
    REDUNDANT_CODECS,
    Connection,
    MediaDescription,
    Origin,
    SessionDescription,
    canonical_codec,
    parse_sdp,
)


def same_session(previous, offer):
    try:
        new = parse_sdp(offer).origin
        old = parse_sdp(previous).origin
    except RemoteProtocolError:
        return False
    return new.session_id == old.session_id and new.session_version == old.session_version


def reverse_direction(direction):
    if direction == "sendonly":
        return "recvonly"
    if direction == "recvonly":
        return "sendonly"
    return direction


def _check_direction(direction):
    if direction not in DIRECTIONS:
        raise RemoteProtocolError("bad direction " + str(direction))


def _address_type(address):
    return "IP6" if ":" in address else "IP4"


def _new_description(address, session_id, session_version, username):
    addrtype = _address_type(address)
    return SessionDescription(
        Origin(username, str(session_id), str(session_version), address, "IN", addrtype),
        Connection(address, "IN", addrtype),
        "Sotto",
    )


def build_offer(
    codecs,
    address,
    port,
    direction="sendrecv",
    zrtp_hash=None,
    crypto_lines=(),
    rtcp_mux=False,
    telephone_event=True,
    ptime=20,
    session_id=1,
    session_version=1,
    username="-",
    profile=None,
    redundancy=False,
    payload_types=None,
):
    _check_direction(direction)
    description = _new_description(address, session_id, session_version, username)
    formats = []
    attributes = []
    chosen = payload_types or {}
    for name in codecs:
        canonical = canonical_codec(name)
        if canonical not in CODECS or canonical == "telephone-event":
            raise RemoteProtocolError("unknown codec " + str(name))
        static, rate, channels = CODECS[canonical]
        pt = chosen.get(canonical, static if static is not None else DEFAULT_DYNAMIC[canonical])
        formats.append(str(pt))
        encoding = "{}/{}".format(canonical, rate) + ("/{}".format(channels) if channels > 1 else "")
        attributes.append(["rtpmap", "{} {}".format(pt, encoding)])
        if canonical == "opus":
            attributes.append(["fmtp", "{} useinbandfec=1".format(pt)])
    if redundancy:
        for name in codecs:
            canonical = canonical_codec(name)
            if canonical in REDUNDANT_CODECS:
                red = RED_DYNAMIC[canonical] if redundancy is True else redundancy
                primary = chosen.get(canonical, CODECS[canonical][0])
                _append_red(formats, attributes, red, primary, CODECS[canonical][1])
    if telephone_event:
        pt = chosen.get("telephone-event", DEFAULT_DYNAMIC["telephone-event"])
        formats.append(str(pt))
        attributes.append(["rtpmap", "{} telephone-event/8000".format(pt)])
        attributes.append(["fmtp", "{} 0-16".format(pt)])
    _append_stream_attributes(attributes, ptime, rtcp_mux, crypto_lines, zrtp_hash)
    attributes.append([direction, None])
    if profile is None:
        profile = "RTP/SAVP" if crypto_lines else "RTP/AVP"
    description.media.append(MediaDescription("audio", port, profile, formats, None, attributes))
    return description


def answer_offer(
    offer,
    codecs,
    address,
    port,
    direction="sendrecv",
    zrtp_hash=None,
    crypto_lines=(),
    telephone_event=True,
    ptime=20,
    session_id=1,
    session_version=1,
    username="-",
    redundancy=False,
):
    _check_direction(direction)
    if not isinstance(offer, SessionDescription):
        offer = parse_sdp(offer)
    description = _new_description(address, session_id, session_version, username)
    chosen = None
    for m in offer.media:
        if m.media != "audio" or m.port == 0 or chosen is not None or not m.proto.startswith("RTP/"):
            description.media.append(MediaDescription(m.media, 0, m.proto, list(m.formats) or ["0"]))
            continue
        offered = m.rtpmap()
        for name in codecs:
            canonical = canonical_codec(name)
            for codec in offered:
                if codec.name == canonical or codec.name.lower() == canonical.lower():
                    chosen = codec
                    break
            if chosen is not None:
                break
        if chosen is None:
            description.media.append(MediaDescription(m.media, 0, m.proto, list(m.formats)))
            continue
        formats = [str(chosen.payload_type)]
        encoding = "{}/{}".format(chosen.name, chosen.clock_rate)
        if chosen.channels > 1:
            encoding += "/{}".format(chosen.channels)
        attributes = [["rtpmap", "{} {}".format(chosen.payload_type, encoding)]]
        if chosen.fmtp:
            attributes.append(["fmtp", "{} {}".format(chosen.payload_type, chosen.fmtp)])
        red = red_payload_type(offered, chosen) if redundancy else None
        if red is not None:
            _append_red(formats, attributes, red, chosen.payload_type, chosen.clock_rate)
        if telephone_event:
            for codec in offered:
                if codec.name == "telephone-event" and codec.clock_rate == 8000:
                    formats.append(str(codec.payload_type))
                    attributes.append(["rtpmap", "{} telephone-event/8000".format(codec.payload_type)])
                    if codec.fmtp:
                        attributes.append(["fmtp", "{} {}".format(codec.payload_type, codec.fmtp)])
                    break
        # RFC 5761 §5.1.1: rtcp-mux in the answer only when the offer has it.
        _append_stream_attributes(attributes, ptime, m.attribute("rtcp-mux") is not None, crypto_lines, zrtp_hash)
        offered_direction = m.direction() or offer.attribute_direction()
        attributes.append([_answer_direction(offered_direction, direction), None])
        description.media.append(MediaDescription("audio", port, m.proto, formats, None, attributes))
    if chosen is None:
        raise RemoteProtocolError("no common codec", 488)
    return description, chosen


def _append_red(formats, attributes, red, primary, clock_rate):
    # RFC 2198 §5: one level of redundancy of the primary encoding itself.
    formats.append(str(red))
    attributes.append(["rtpmap", "{} red/{}".format(red, clock_rate)])
    attributes.append(["fmtp", "{} {}/{}".format(red, primary, primary)])


def red_payload_type(codecs, chosen):
    if canonical_codec(chosen.name) not in REDUNDANT_CODECS:
        return None
    wanted = str(chosen.payload_type)
    for codec in codecs:
        if codec.name.lower() != "red" or codec.clock_rate != chosen.clock_rate or not codec.fmtp:
            continue
        encodings = codec.fmtp.strip().split("/")
        if len(encodings) <= 8 and all(encoding.strip() == wanted for encoding in encodings):
            return codec.payload_type
    return None


def _append_stream_attributes(attributes, ptime, rtcp_mux, crypto_lines, zrtp_hash):
    """The attributes after the codecs, in the same order in an offer and an answer: a=ptime, a=rtcp-mux
    (RFC 5761), a=crypto (RFC 4568), a=zrtp-hash (RFC 6189 §8.1)."""
    if ptime:
        attributes.append(["ptime", str(ptime)])
    if rtcp_mux:
        attributes.append(["rtcp-mux", None])
    for line in crypto_lines:
        attributes.append(["crypto", line])
    if zrtp_hash:
        attributes.append(["zrtp-hash", zrtp_hash])


def _answer_direction(offered, wanted):
    # RFC 3264 §6.1: the answer's direction is compatible with the offer's.
    offered = offered or "sendrecv"
    if offered == "inactive" or wanted == "inactive":
        return "inactive"
    if offered == "sendonly":
        return "recvonly" if wanted in ("sendrecv", "recvonly") else "inactive"
    if offered == "recvonly":
        return "sendonly" if wanted in ("sendrecv", "sendonly") else "inactive"
    return wanted


class RemoteMedia:
    __slots__ = (
        "address",
        "port",
        "codecs",
        "telephone_event",
        "direction",
        "zrtp_hash",
        "crypto_lines",
        "rtcp_mux",
        "ptime",
        "proto",
    )

    def __init__(
        self, address, port, codecs, telephone_event, direction, zrtp_hash, crypto_lines, rtcp_mux, ptime, proto
    ):
        self.address = address
        self.port = port
        self.codecs = codecs
        self.telephone_event = telephone_event
        self.direction = direction
        self.zrtp_hash = zrtp_hash
        self.crypto_lines = crypto_lines
        self.rtcp_mux = rtcp_mux
        self.ptime = ptime
        self.proto = proto


def remote_media(description):
    if not isinstance(description, SessionDescription):
        description = parse_sdp(description)
    m = description.audio()
    if m is None:
        raise RemoteProtocolError("no audio stream in SDP", 488)
    connection = m.connection or description.connection
    if connection is None:
        raise RemoteProtocolError("no c= line for the audio stream", 400)
    codecs = [c for c in m.rtpmap() if c.name != "telephone-event"]
    telephone_event = None
    for c in m.rtpmap():
        if c.name == "telephone-event" and c.clock_rate == 8000:
            telephone_event = c.payload_type
            break
    direction = m.direction() or description.attribute_direction() or "sendrecv"
    zrtp_hash = m.attribute("zrtp-hash")
    if zrtp_hash is None:
        zrtp_hash = description.attribute("zrtp-hash")
    ptime_text = m.attribute("ptime")
    # RFC 4566 §6 a=ptime is a hint: an unreadable or absurd one is ignored, never fatal (issue 11).
    ptime = decimal_or_none(ptime_text, MAX_PTIME, minimum=1)
    return RemoteMedia(
        connection.address,
        m.port,
        codecs,
        telephone_event,
        direction,
        zrtp_hash or None,
        m.attributes_named("crypto"),
        m.attribute("rtcp-mux") is not None,
        ptime,
        m.proto,
    )
