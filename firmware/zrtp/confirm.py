"""The ZRTP Confirm1/Confirm2 messages (RFC 6189 §5.7, §4.6): the only encrypted message, sealed and
opened with the keys of the exchange.

Apart from messages.py because it is the one message whose body is secret: AES-CFB under the ZRTP
key and an HMAC under the MAC key, checked before anything inside is decoded. messages.py re-exports
its API.

API: ConfirmBody(h0, verified, allow_clear=False, disclosure=False, pbx_enrollment=False,
cache_expiry=0xFFFFFFFF, signature=b""); Confirm(part (1|2), confirm_mac, iv, encrypted);
seal_confirm(part, body, hash_name, zrtpkey, mackey, iv) -> Confirm;
open_confirm(confirm, hash_name, zrtpkey, mackey) -> ConfirmBody, RemoteProtocolError when the
confirm_mac is wrong (§5.7: MAC over the encrypted part, then AES-CFB decryption).
"""

import struct

from firmware import crypto
from firmware.errors import RemoteProtocolError
from firmware.zrtp import kdf as _kdf
from firmware.zrtp.packet import message_header


class ConfirmBody:
    """The encrypted part of Confirm1/Confirm2 (§5.7)."""

    __slots__ = ("h0", "verified", "allow_clear", "disclosure", "pbx_enrollment", "cache_expiry", "signature")

    def __init__(
        self,
        h0,
        verified,
        allow_clear=False,
        disclosure=False,
        pbx_enrollment=False,
        cache_expiry=0xFFFFFFFF,
        signature=b"",
    ):
        self.h0 = h0
        self.verified = verified
        self.allow_clear = allow_clear
        self.disclosure = disclosure
        self.pbx_enrollment = pbx_enrollment
        self.cache_expiry = cache_expiry
        self.signature = signature

    def encode(self):
        flags = (
            (int(self.pbx_enrollment) << 3)
            | (int(self.verified) << 2)
            | (int(self.allow_clear) << 1)
            | int(self.disclosure)
        )
        sig_words = len(self.signature) // 4
        # 15 unused bits, 9-bit signature length in words, 8 flag bits (0 0 0 0 E V A D).
        word = ((sig_words & 0x1FF) << 8) | flags
        return self.h0 + struct.pack(">II", word, self.cache_expiry) + self.signature

    @staticmethod
    def decode(data):
        if len(data) < 40:
            raise RemoteProtocolError("Confirm body too short")
        (word,) = struct.unpack(">I", data[32:36])
        sig_words = (word >> 8) & 0x1FF
        flags = word & 0xFF
        if 40 + 4 * sig_words != len(data):
            raise RemoteProtocolError("Confirm signature length does not match the message")
        (expiry,) = struct.unpack(">I", data[36:40])
        return ConfirmBody(
            bytes(data[:32]),
            bool(flags & 4),
            bool(flags & 2),
            bool(flags & 1),
            bool(flags & 8),
            expiry,
            bytes(data[40:]),
        )


class Confirm:
    __slots__ = ("part", "confirm_mac", "iv", "encrypted", "raw")

    def __init__(self, part, confirm_mac, iv, encrypted):
        self.part = part
        self.confirm_mac = confirm_mac
        self.iv = iv
        self.encrypted = encrypted
        self.raw = None

    @property
    def TYPE(self):
        return b"Confirm1" if self.part == 1 else b"Confirm2"

    def encode(self):
        length = 12 + 8 + 16 + len(self.encrypted)
        return b"".join((message_header(self.TYPE, length), self.confirm_mac, self.iv, self.encrypted))

    @staticmethod
    def decode(msg, part):
        if len(msg) < 76:
            raise RemoteProtocolError("Confirm{} too short".format(part))
        confirm = Confirm(part, bytes(msg[12:20]), bytes(msg[20:36]), bytes(msg[36:]))
        confirm.raw = bytes(msg)
        return confirm


def seal_confirm(part, body, hash_name, zrtpkey, mackey, iv):
    encrypted = crypto.aes_cfb_encrypt(zrtpkey, iv, body.encode())
    mac = _kdf.zrtp_mac(hash_name, mackey, encrypted)[:8]
    return Confirm(part, mac, iv, encrypted)


def open_confirm(confirm, hash_name, zrtpkey, mackey):
    mac = _kdf.zrtp_mac(hash_name, mackey, confirm.encrypted)[:8]
    if not crypto.constant_time_equal(mac, confirm.confirm_mac):
        raise RemoteProtocolError("Confirm{} MAC is wrong".format(confirm.part))
    return ConfirmBody.decode(crypto.aes_cfb_decrypt(zrtpkey, confirm.iv, confirm.encrypted))
