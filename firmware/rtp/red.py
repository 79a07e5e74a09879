"""RTP payload for redundant audio data (RFC 2198): the current frame as primary, earlier frames as
redundant blocks, so a lone lost packet is rebuilt exactly from the next one.

Apart from packet.py because it reads a payload, not a packet: the RTP header and SRTP are unchanged
(SRTP protects the whole RED packet, RFC 2198 §3 and RFC 3711 §3.1).

API (sans-I/O, MicroPython-compatible):
    pack_red(primary_pt, primary, redundant=()) -> bytes
        redundant: (payload_type, timestamp_offset, data) blocks, oldest first (RFC 2198 §3 orders them
        so); timestamp_offset 1..16383, len(data) 0..1023. LocalProtocolError when out of range.
    parse_red(payload) -> (primary_pt, primary, [(payload_type, timestamp_offset, data), ...])
        strict: RemoteProtocolError for a truncated header, a block running past the end, or more than
        MAX_BLOCKS redundant blocks.
"""

from firmware.errors import LocalProtocolError, RemoteProtocolError

# RFC 2198 §3: a redundant block header is 4 octets: F (1 bit, set: another header follows), block PT
# (7), timestamp offset (14), block length (10). The last header is 1 octet: F = 0 and the primary's PT.
MAX_OFFSET = 0x3FFF
MAX_BLOCK = 0x3FF
# A phone sends one or two levels of redundancy; more is no telephone stream, and bounds the parse.
MAX_BLOCKS = 8


def pack_red(primary_pt, primary, redundant=()):
    if not 0 <= primary_pt <= 127:
        raise LocalProtocolError("RED primary payload type out of range")
    headers = bytearray()
    for pt, offset, data in redundant:
        if not 0 <= pt <= 127 or not 0 < offset <= MAX_OFFSET or len(data) > MAX_BLOCK:
            raise LocalProtocolError("RED redundant block out of range")
        word = (offset << 10) | len(data)
        headers += bytes((0x80 | pt, (word >> 16) & 0xFF, (word >> 8) & 0xFF, word & 0xFF))
    headers.append(primary_pt)
    return bytes(headers) + b"".join(block[2] for block in redundant) + bytes(primary)


def parse_red(payload):
    length = len(payload)
    position = 0
    headers = []
    while True:
        if position >= length:
            raise RemoteProtocolError("RED header runs past the end of the payload")
        first = payload[position]
        if not first & 0x80:
            primary_pt = first
            position += 1
            break
        if len(headers) >= MAX_BLOCKS:
            raise RemoteProtocolError("RED packet with more than {} redundant blocks".format(MAX_BLOCKS))
        if position + 4 > length:
            raise RemoteProtocolError("RED block header runs past the end of the payload")
        word = (payload[position + 1] << 16) | (payload[position + 2] << 8) | payload[position + 3]
        headers.append((first & 0x7F, word >> 10, word & MAX_BLOCK))
        position += 4
    blocks = []
    for pt, offset, size in headers:
        if position + size > length:
            raise RemoteProtocolError("RED block runs past the end of the payload")
        if offset == 0:
            # A redundant block is older than the primary (RFC 2198 §3); offset 0 would claim the
            # primary's own timestamp.
            raise RemoteProtocolError("RED redundant block with a zero timestamp offset")
        blocks.append((pt, offset, bytes(payload[position : position + size])))
        position += size
    return primary_pt, bytes(payload[position:]), blocks
