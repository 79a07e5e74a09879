"""ZRTP packet framing (RFC 6189 §5): the packet header, the CRC-32c, and the header every message
starts with.

Apart from messages.py because this is the layer below the messages: what tells a ZRTP packet from
RTP on the shared port (RFC 7983), and what is checked (size, cookie, CRC) before any message is
looked at. messages.py re-exports its API.

API:
- is_zrtp_packet(data) -> bool: first byte 0x10 and the magic cookie at offset 4 (RFC 7983 demux).
- encode_packet(sequence, ssrc, message) -> bytes; decode_packet(data) -> (sequence, ssrc, message):
  checks size, header, cookie and CRC, otherwise RemoteProtocolError.
- crc32c(data) -> int.
- message_header(type_block, length) -> the preamble, length in words and type block of a message.
"""

import struct

from firmware.errors import RemoteProtocolError

MAGIC_COOKIE = 0x5A525450
PACKET_OVERHEAD = 16  # 12-byte header + CRC
PREAMBLE = 0x505A
# The largest legal message is a Confirm/SASrelay with a 511-word signature (§5.7): 76 + 2044 bytes.
MAX_MESSAGE = 76 + 4 * 511
MAX_PACKET = MAX_MESSAGE + PACKET_OVERHEAD


def _make_crc_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _make_crc_table()


def crc32c(data):
    """CRC-32c (Castagnoli, RFC 3309), as §5 requires for the packet checksum."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def is_zrtp_packet(data):
    return len(data) >= 12 and data[0] == 0x10 and data[4:8] == b"ZRTP"


def encode_packet(sequence, ssrc, message):
    header = struct.pack(">BBHII", 0x10, 0, sequence & 0xFFFF, MAGIC_COOKIE, ssrc & 0xFFFFFFFF)
    body = header + message
    return body + struct.pack("<I", crc32c(body))


def decode_packet(data):
    if len(data) < PACKET_OVERHEAD + 12:
        raise RemoteProtocolError("ZRTP packet too short ({} bytes)".format(len(data)))
    if len(data) > MAX_PACKET:
        raise RemoteProtocolError("ZRTP packet too long ({} bytes)".format(len(data)))
    if len(data) % 4:
        raise RemoteProtocolError("ZRTP packet length is not a whole number of words")
    if data[0] != 0x10:
        raise RemoteProtocolError("ZRTP packet does not start with 0x10")
    first, _unused, sequence, cookie, ssrc = struct.unpack(">BBHII", data[:12])
    if cookie != MAGIC_COOKIE:
        raise RemoteProtocolError("ZRTP magic cookie missing")
    (crc,) = struct.unpack("<I", data[-4:])
    if crc != crc32c(data[:-4]):
        raise RemoteProtocolError("ZRTP packet CRC mismatch")
    return sequence, ssrc, bytes(data[12:-4])


def message_header(type_block, length):
    return struct.pack(">HH", PREAMBLE, length // 4) + type_block
