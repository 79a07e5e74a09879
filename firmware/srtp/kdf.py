"""SRTP key derivation (RFC 3711 §4.3, AES-CM PRF; RFC 6188 §5.1 for AES-192/256 master keys).

API:
    derive(master_key, master_salt, label, length, index=0, kdr=0) -> bytes
        AES-CM keystream of `length` octets keyed with the master key, starting at
        x = (label << 48 | index DIV kdr) XOR master_salt, shifted left 16 bits.
    session_keys(master_key, master_salt, cipher_key_length, rtcp=False) -> (cipher_key, auth_key, salt)
        the three session keys (labels 0/1/2 for SRTP, 3/4/5 for SRTCP); auth key 20 octets
        (HMAC-SHA1), salt 14 octets.

Only key derivation rate 0 is used by Sotto (keys derived once per master key; RFC 4568 offers
no KDR by default and ZRTP never uses one), but `index`/`kdr` are implemented for the vectors.
"""

from firmware import crypto
from firmware.errors import LocalProtocolError

LABEL_RTP_ENCRYPTION = 0x00
LABEL_RTP_AUTH = 0x01
LABEL_RTP_SALT = 0x02
LABEL_RTCP_ENCRYPTION = 0x03
LABEL_RTCP_AUTH = 0x04
LABEL_RTCP_SALT = 0x05

SALT_LENGTH = 14
AUTH_KEY_LENGTH = 20


def derive(master_key, master_salt, label, length, index=0, kdr=0):
    if len(master_salt) != SALT_LENGTH:
        raise LocalProtocolError("SRTP master salt must be 14 octets")
    if len(master_key) not in (16, 24, 32):
        raise LocalProtocolError("SRTP master key must be 16, 24 or 32 octets")
    r = index // kdr if kdr else 0
    key_id = (label << 48) | r
    x = int.from_bytes(master_salt, "big") ^ key_id
    counter_block = (x << 16).to_bytes(16, "big")
    return crypto.aes_ctr_keystream(master_key, counter_block, length)


def session_keys(master_key, master_salt, cipher_key_length, rtcp=False):
    base = LABEL_RTCP_ENCRYPTION if rtcp else LABEL_RTP_ENCRYPTION
    cipher_key = derive(master_key, master_salt, base, cipher_key_length)
    auth_key = derive(master_key, master_salt, base + 1, AUTH_KEY_LENGTH)
    salt = derive(master_key, master_salt, base + 2, SALT_LENGTH)
    return cipher_key, auth_key, salt
