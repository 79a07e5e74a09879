"""ZRTP packets and messages (RFC 6189 §5): framing, codecs, strict length and count checks.

The packet layer is in packet.py and the encrypted Confirm in confirm.py; both are re-exported here,
so this docstring is the whole API.

Packet (§5, Figure 2): 0x10 0x00, 16-bit sequence number, magic cookie "ZRTP" (0x5a525450), 32-bit
source identifier (our SSRC), the message, CRC-32c of everything before it. The CRC is written
LITTLE-endian on the wire (what every deployed implementation does, despite §5's wording).

API:
- is_zrtp_packet(data) -> bool: first byte 0x10 and the magic cookie at offset 4 (RFC 7983 demux).
- encode_packet(sequence, ssrc, message) -> bytes; decode_packet(data) -> (sequence, ssrc, message):
  checks size, header, cookie and CRC, otherwise RemoteProtocolError.
- crc32c(data) -> int.
- decode_message(message) -> one of the message objects below; RemoteProtocolError for anything
  malformed (bad preamble, length field, type block, counts, sizes, non-ASCII names).
- Each message class has `encode(...)` -> message bytes (no packet header), `TYPE` (the 8-byte type
  block) and, after decode_message, `raw` (the message bytes as received, what total_hash, hvi and the
  MACs cover).
  Hello(version, client_id, h3, zid, hashes, ciphers, auth_tags, key_agreements, sas_types,
        signature_capable=False, mitm=False, passive=False); encode(h2) appends the implicit MAC keyed
        with H2; verify_mac(h2) -> bool.
  Commit(h2, zid, hash, cipher, auth_tag, key_agreement, sas, hvi=None, nonce=None, key_id=None);
        key_agreement "Mult" carries a 16-byte nonce, "Prsh" a nonce and an 8-byte key ID, every other
        one a 32-byte hvi; encode(h1); verify_mac(h1).
  DHPart(part (1|2), h1, rs1_id, rs2_id, aux_id, pbx_id, pv); encode(h0); verify_mac(h0).
  Confirm(part (1|2), confirm_mac, iv, encrypted) with seal_confirm()/open_confirm() below.
  Error(code), GoClear(clear_mac), SASrelay(mac, iv, encrypted), Ping(version, endpoint_hash),
  PingACK(version, sender_hash, received_hash, ssrc), and the bare acknowledgements
  Bare(TYPE) for HelloACK, Conf2ACK, ErrorACK, ClearACK, RelayACK.
- ConfirmBody(h0, verified, allow_clear=False, disclosure=False, pbx_enrollment=False,
  cache_expiry=0xFFFFFFFF, signature=b""); seal_confirm(part, body, hash_name, zrtpkey, mackey, iv)
  -> Confirm; open_confirm(confirm, hash_name, zrtpkey, mackey) -> ConfirmBody, RemoteProtocolError
  when the confirm_mac is wrong (§5.7: MAC over the encrypted part, then AES-CFB decryption).
- Error codes: the ERROR_* constants of §5.9.
"""

import struct

from firmware import crypto
from firmware.errors import RemoteProtocolError
from firmware.zrtp import kdf as _kdf
from firmware.zrtp.confirm import Confirm, ConfirmBody, open_confirm, seal_confirm  # noqa: F401 (re-exported)
from firmware.zrtp.packet import (  # noqa: F401 (re-exported: the packet layer is part of this API)
    MAGIC_COOKIE,
    MAX_MESSAGE,
    MAX_PACKET,
    PACKET_OVERHEAD,
    PREAMBLE,
    crc32c,
    decode_packet,
    encode_packet,
    is_zrtp_packet,
    message_header,
)

MAX_ALGORITHMS = 7  # each count in the Hello is 4 bits but "never more than 7" (§5.2)

VERSION = "1.10"

# §5.9 error codes
ERROR_MALFORMED = 0x10
ERROR_SOFTWARE = 0x20
ERROR_VERSION = 0x30
ERROR_HELLO_MISMATCH = 0x40
ERROR_HASH_UNSUPPORTED = 0x51
ERROR_CIPHER_UNSUPPORTED = 0x52
ERROR_KEY_AGREEMENT_UNSUPPORTED = 0x53
ERROR_AUTH_TAG_UNSUPPORTED = 0x54
ERROR_SAS_UNSUPPORTED = 0x55
ERROR_NO_SHARED_SECRET = 0x56
ERROR_BAD_PV = 0x61
ERROR_BAD_HVI = 0x62
ERROR_UNTRUSTED_MITM = 0x63
ERROR_BAD_CONFIRM_MAC = 0x70
ERROR_NONCE_REUSE = 0x80
ERROR_EQUAL_ZID = 0x90
ERROR_SSRC_COLLISION = 0x91
ERROR_SERVICE_UNAVAILABLE = 0xA0
ERROR_PROTOCOL_TIMEOUT = 0xB0
ERROR_GOCLEAR_NOT_ALLOWED = 0x100

ERROR_NAMES = {
    ERROR_MALFORMED: "malformed packet",
    ERROR_SOFTWARE: "critical software error",
    ERROR_VERSION: "unsupported ZRTP version",
    ERROR_HELLO_MISMATCH: "Hello components mismatch",
    ERROR_HASH_UNSUPPORTED: "hash type not supported",
    ERROR_CIPHER_UNSUPPORTED: "cipher type not supported",
    ERROR_KEY_AGREEMENT_UNSUPPORTED: "public key exchange not supported",
    ERROR_AUTH_TAG_UNSUPPORTED: "SRTP auth tag not supported",
    ERROR_SAS_UNSUPPORTED: "SAS rendering scheme not supported",
    ERROR_NO_SHARED_SECRET: "no shared secret available, DH mode required",
    ERROR_BAD_PV: "DH error: bad pvi or pvr",
    ERROR_BAD_HVI: "DH error: hvi != hashed data",
    ERROR_UNTRUSTED_MITM: "received relayed SAS from untrusted MiTM",
    ERROR_BAD_CONFIRM_MAC: "auth error: bad Confirm MAC",
    ERROR_NONCE_REUSE: "nonce reuse",
    ERROR_EQUAL_ZID: "equal ZIDs in Hello",
    ERROR_SSRC_COLLISION: "SSRC collision",
    ERROR_SERVICE_UNAVAILABLE: "service unavailable",
    ERROR_PROTOCOL_TIMEOUT: "protocol timeout error",
    ERROR_GOCLEAR_NOT_ALLOWED: "GoClear received, but not allowed",
}


def _name_bytes(name):
    # Names are kept without padding ("B32"); on the wire they fill 4 bytes with spaces ("B32 ").
    data = name.encode()
    data = data + b" " * (4 - len(data))
    if len(data) != 4:
        from firmware.errors import LocalProtocolError

        raise LocalProtocolError("ZRTP algorithm names have 4 characters: {!r}".format(name))
    return data


def _name(data, what):
    for byte in data:
        if byte < 0x20 or byte > 0x7E:
            raise RemoteProtocolError("{} is not printable ASCII".format(what))
    return bytes(data).decode().rstrip(" ")


def _with_mac(body, key):
    return body + _kdf.implicit_mac(key, body)


def _check_mac(raw, key):
    return crypto.constant_time_equal(_kdf.implicit_mac(key, raw[:-8]), raw[-8:])


class Bare:
    """A message with nothing but its type: HelloACK, Conf2ACK, ErrorACK, ClearACK, RelayACK."""

    __slots__ = ("TYPE", "raw")

    def __init__(self, type_block):
        self.TYPE = type_block
        self.raw = None

    def encode(self):
        return message_header(self.TYPE, 12)


class Hello:
    __slots__ = (
        "version",
        "client_id",
        "h3",
        "zid",
        "signature_capable",
        "mitm",
        "passive",
        "hashes",
        "ciphers",
        "auth_tags",
        "key_agreements",
        "sas_types",
        "mac",
        "raw",
    )
    TYPE = b"Hello   "

    def __init__(
        self,
        version,
        client_id,
        h3,
        zid,
        hashes,
        ciphers,
        auth_tags,
        key_agreements,
        sas_types,
        signature_capable=False,
        mitm=False,
        passive=False,
    ):
        self.version = version
        self.client_id = client_id
        self.h3 = h3
        self.zid = zid
        self.hashes = list(hashes)
        self.ciphers = list(ciphers)
        self.auth_tags = list(auth_tags)
        self.key_agreements = list(key_agreements)
        self.sas_types = list(sas_types)
        self.signature_capable = signature_capable
        self.mitm = mitm
        self.passive = passive
        self.mac = None
        self.raw = None

    def encode(self, h2):
        lists = (self.hashes, self.ciphers, self.auth_tags, self.key_agreements, self.sas_types)
        for names in lists:
            if len(names) > MAX_ALGORITHMS:
                from firmware.errors import LocalProtocolError

                raise LocalProtocolError("at most 7 algorithms of each kind in a Hello")
        client = self.client_id.encode()[:16]
        client = client + b" " * (16 - len(client))
        flags = (int(self.signature_capable) << 6) | (int(self.mitm) << 5) | (int(self.passive) << 4)
        counts = struct.pack(
            ">BBBB",
            flags,
            len(self.hashes),
            (len(self.ciphers) << 4) | len(self.auth_tags),
            (len(self.key_agreements) << 4) | len(self.sas_types),
        )
        names = b"".join(_name_bytes(n) for names in lists for n in names)
        length = 88 + len(names)
        body = b"".join(
            (message_header(self.TYPE, length), _name_bytes(self.version), client, self.h3, self.zid, counts, names)
        )
        return _with_mac(body, h2)

    def verify_mac(self, h2):
        return _check_mac(self.raw, h2)

    @staticmethod
    def decode(msg):
        if len(msg) < 88:
            raise RemoteProtocolError("Hello too short")
        version = _name(msg[12:16], "Hello version")
        client = bytes(msg[16:32])
        flags, hc, cc_ac, kc_sc = struct.unpack(">BBBB", msg[76:80])
        counts = (hc & 0x0F, cc_ac >> 4, cc_ac & 0x0F, kc_sc >> 4, kc_sc & 0x0F)
        for count in counts:
            if count > MAX_ALGORITHMS:
                raise RemoteProtocolError("Hello algorithm count above 7")
        expected = 88 + 4 * sum(counts)
        if len(msg) != expected:
            raise RemoteProtocolError("Hello length {} does not match its counts ({})".format(len(msg), expected))
        lists = []
        offset = 80
        for count in counts:
            names = []
            for _ in range(count):
                names.append(_name(msg[offset : offset + 4], "Hello algorithm name"))
                offset += 4
            lists.append(names)
        hello = Hello(
            version,
            _client_text(client),
            bytes(msg[32:64]),
            bytes(msg[64:76]),
            lists[0],
            lists[1],
            lists[2],
            lists[3],
            lists[4],
            bool(flags & 0x40),
            bool(flags & 0x20),
            bool(flags & 0x10),
        )
        hello.mac = bytes(msg[-8:])
        hello.raw = bytes(msg)
        return hello


def _client_text(data):
    out = []
    for byte in data:
        out.append(chr(byte) if 0x20 <= byte <= 0x7E else "?")
    return "".join(out).strip()


class Commit:
    __slots__ = (
        "h2",
        "zid",
        "hash",
        "cipher",
        "auth_tag",
        "key_agreement",
        "sas",
        "hvi",
        "nonce",
        "key_id",
        "mac",
        "raw",
    )
    TYPE = b"Commit  "

    def __init__(self, h2, zid, hash, cipher, auth_tag, key_agreement, sas, hvi=None, nonce=None, key_id=None):
        self.h2 = h2
        self.zid = zid
        self.hash = hash
        self.cipher = cipher
        self.auth_tag = auth_tag
        self.key_agreement = key_agreement
        self.sas = sas
        self.hvi = hvi
        self.nonce = nonce
        self.key_id = key_id
        self.mac = None
        self.raw = None

    def encode(self, h1):
        algs = b"".join(_name_bytes(n) for n in (self.hash, self.cipher, self.auth_tag, self.key_agreement, self.sas))
        if self.key_agreement == "Mult":
            tail = self.nonce
        elif self.key_agreement == "Prsh":
            tail = self.nonce + self.key_id
        else:
            tail = self.hvi
        length = 12 + 32 + 12 + 20 + len(tail) + 8
        return _with_mac(b"".join((message_header(self.TYPE, length), self.h2, self.zid, algs, tail)), h1)

    def verify_mac(self, h1):
        return _check_mac(self.raw, h1)

    @staticmethod
    def decode(msg):
        if len(msg) < 76:
            raise RemoteProtocolError("Commit too short")
        names = [_name(msg[56 + 4 * i : 60 + 4 * i], "Commit algorithm name") for i in range(5)]
        key_agreement = names[3]
        expected = {"Mult": 100, "Prsh": 108}.get(key_agreement, 116)
        if len(msg) != expected:
            raise RemoteProtocolError("Commit ({}) must be {} bytes, not {}".format(key_agreement, expected, len(msg)))
        hvi = nonce = key_id = None
        if key_agreement == "Mult":
            nonce = bytes(msg[76:92])
        elif key_agreement == "Prsh":
            nonce = bytes(msg[76:92])
            key_id = bytes(msg[92:100])
        else:
            hvi = bytes(msg[76:108])
        commit = Commit(
            bytes(msg[12:44]),
            bytes(msg[44:56]),
            names[0],
            names[1],
            names[2],
            key_agreement,
            names[4],
            hvi,
            nonce,
            key_id,
        )
        commit.mac = bytes(msg[-8:])
        commit.raw = bytes(msg)
        return commit


class DHPart:
    __slots__ = ("part", "h1", "rs1_id", "rs2_id", "aux_id", "pbx_id", "pv", "mac", "raw")

    def __init__(self, part, h1, rs1_id, rs2_id, aux_id, pbx_id, pv):
        self.part = part
        self.h1 = h1
        self.rs1_id = rs1_id
        self.rs2_id = rs2_id
        self.aux_id = aux_id
        self.pbx_id = pbx_id
        self.pv = pv
        self.mac = None
        self.raw = None

    @property
    def TYPE(self):
        return b"DHPart1 " if self.part == 1 else b"DHPart2 "

    def encode(self, h0):
        length = 12 + 32 + 32 + len(self.pv) + 8
        body = b"".join(
            (message_header(self.TYPE, length), self.h1, self.rs1_id, self.rs2_id, self.aux_id, self.pbx_id, self.pv)
        )
        return _with_mac(body, h0)

    def verify_mac(self, h0):
        return _check_mac(self.raw, h0)

    @staticmethod
    def decode(msg, part):
        # The smallest public value ZRTP defines is X25519's 32 bytes; the largest DH3k's 384 (§5.1.5).
        if len(msg) < 12 + 64 + 32 + 8:
            raise RemoteProtocolError("DHPart{} too short".format(part))
        if len(msg) > 12 + 64 + 512 + 8:
            raise RemoteProtocolError("DHPart{} too long".format(part))
        dh = DHPart(
            part,
            bytes(msg[12:44]),
            bytes(msg[44:52]),
            bytes(msg[52:60]),
            bytes(msg[60:68]),
            bytes(msg[68:76]),
            bytes(msg[76:-8]),
        )
        dh.mac = bytes(msg[-8:])
        dh.raw = bytes(msg)
        return dh


class Error:
    __slots__ = ("code", "raw")
    TYPE = b"Error   "

    def __init__(self, code):
        self.code = code
        self.raw = None

    def encode(self):
        return message_header(self.TYPE, 16) + struct.pack(">I", self.code)

    @staticmethod
    def decode(msg):
        if len(msg) != 16:
            raise RemoteProtocolError("Error message must be 16 bytes")
        error = Error(struct.unpack(">I", msg[12:16])[0])
        error.raw = bytes(msg)
        return error


class GoClear:
    __slots__ = ("clear_mac", "raw")
    TYPE = b"GoClear "

    def __init__(self, clear_mac):
        self.clear_mac = clear_mac
        self.raw = None

    def encode(self):
        return message_header(self.TYPE, 20) + self.clear_mac

    @staticmethod
    def decode(msg):
        if len(msg) != 20:
            raise RemoteProtocolError("GoClear must be 20 bytes")
        message = GoClear(bytes(msg[12:20]))
        message.raw = bytes(msg)
        return message


class SASrelay:
    __slots__ = ("mac", "iv", "encrypted", "raw")
    TYPE = b"SASrelay"

    def __init__(self, mac, iv, encrypted):
        self.mac = mac
        self.iv = iv
        self.encrypted = encrypted
        self.raw = None

    def encode(self):
        return message_header(self.TYPE, 36 + len(self.encrypted)) + self.mac + self.iv + self.encrypted

    @staticmethod
    def decode(msg):
        if len(msg) < 76:
            raise RemoteProtocolError("SASrelay too short")
        message = SASrelay(bytes(msg[12:20]), bytes(msg[20:36]), bytes(msg[36:]))
        message.raw = bytes(msg)
        return message


class Ping:
    __slots__ = ("version", "endpoint_hash", "raw")
    TYPE = b"Ping    "

    def __init__(self, version, endpoint_hash):
        self.version = version
        self.endpoint_hash = endpoint_hash
        self.raw = None

    def encode(self):
        return message_header(self.TYPE, 24) + _name_bytes(self.version) + self.endpoint_hash

    @staticmethod
    def decode(msg):
        if len(msg) != 24:
            raise RemoteProtocolError("Ping must be 24 bytes")
        message = Ping(_name(msg[12:16], "Ping version"), bytes(msg[16:24]))
        message.raw = bytes(msg)
        return message


class PingACK:
    __slots__ = ("version", "sender_hash", "received_hash", "ssrc", "raw")
    TYPE = b"PingACK "

    def __init__(self, version, sender_hash, received_hash, ssrc):
        self.version = version
        self.sender_hash = sender_hash
        self.received_hash = received_hash
        self.ssrc = ssrc
        self.raw = None

    def encode(self):
        return (
            message_header(self.TYPE, 36)
            + _name_bytes(self.version)
            + self.sender_hash
            + self.received_hash
            + struct.pack(">I", self.ssrc)
        )

    @staticmethod
    def decode(msg):
        if len(msg) != 36:
            raise RemoteProtocolError("PingACK must be 36 bytes")
        message = PingACK(
            _name(msg[12:16], "PingACK version"),
            bytes(msg[16:24]),
            bytes(msg[24:32]),
            struct.unpack(">I", msg[32:36])[0],
        )
        message.raw = bytes(msg)
        return message


BARE_TYPES = (b"HelloACK", b"Conf2ACK", b"ErrorACK", b"ClearACK", b"RelayACK")


def decode_message(msg):
    if len(msg) < 12:
        raise RemoteProtocolError("ZRTP message too short")
    if len(msg) > MAX_MESSAGE:
        raise RemoteProtocolError("ZRTP message too long")
    preamble, words = struct.unpack(">HH", msg[:4])
    if preamble != PREAMBLE:
        raise RemoteProtocolError("ZRTP message preamble is not 0x505a")
    if words * 4 != len(msg):
        raise RemoteProtocolError(
            "ZRTP message length field ({} words) does not match {} bytes".format(words, len(msg))
        )
    type_block = bytes(msg[4:12])
    if type_block in BARE_TYPES:
        if len(msg) != 12:
            raise RemoteProtocolError("{} must be 12 bytes".format(type_block.decode()))
        bare = Bare(type_block)
        bare.raw = bytes(msg)
        return bare
    if type_block == Hello.TYPE:
        return Hello.decode(msg)
    if type_block == Commit.TYPE:
        return Commit.decode(msg)
    if type_block == b"DHPart1 ":
        return DHPart.decode(msg, 1)
    if type_block == b"DHPart2 ":
        return DHPart.decode(msg, 2)
    if type_block == b"Confirm1":
        return Confirm.decode(msg, 1)
    if type_block == b"Confirm2":
        return Confirm.decode(msg, 2)
    if type_block == Error.TYPE:
        return Error.decode(msg)
    if type_block == GoClear.TYPE:
        return GoClear.decode(msg)
    if type_block == SASrelay.TYPE:
        return SASrelay.decode(msg)
    if type_block == Ping.TYPE:
        return Ping.decode(msg)
    if type_block == PingACK.TYPE:
        return PingACK.decode(msg)
    raise RemoteProtocolError("unknown ZRTP message type")
