"""ZRTP key derivation (RFC 6189 §4.4.1.4, §4.5) and the algorithm tables the engine negotiates.

API:
- HASHES: {"S256": "sha256", "S384": "sha384"}; hash_length(name) -> bytes.
- CIPHER_KEY_LENGTHS: {"AES1": 16, "AES3": 32} (AES key length in bytes).
- AUTH_TAGS: ("HS32", "HS80"); srtp_profile(cipher, auth_tag) -> RFC 3711/6188 profile name,
  e.g. "AES_CM_128_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_32".
- zrtp_hash(hash_name, data) -> digest with the negotiated hash ("S256"/"S384").
- zrtp_mac(hash_name, key, data) -> HMAC with the negotiated hash, full length.
- implicit_hash(data), implicit_mac(key, data) -> SHA-256 / HMAC-SHA-256 truncated to 8 bytes: the
  implicit algorithms of §5.1.2.2, used for the hash chain H0..H3, the Hello/Commit/DHPart MACs and the
  SDP a=zrtp-hash.
- kdf(hash_name, ki, label, context, length) -> bytes: KDF(KI, Label, Context, L) of §4.5.1, `label`
  as bytes, `length` in bytes (at most the hash length, which is all ZRTP ever asks for).
- compute_s0(hash_name, dh_result, zidi, zidr, total_hash, s1, s2, s3) -> s0 of §4.4.1.4; a secret
  that is None is "null" (length 0, omitted).
- secret_id(hash_name, secret, label) -> the 8-byte rs1IDr etc. of §4.3.1 (label b"Initiator" or
  b"Responder", or the H3 of the other side for aux secrets).
"""

import struct

from firmware import crypto
from firmware.errors import LocalProtocolError

HASHES = {"S256": "sha256", "S384": "sha384"}
CIPHER_KEY_LENGTHS = {"AES1": 16, "AES3": 32}
AUTH_TAGS = ("HS32", "HS80")
SRTP_SALT_LENGTH = 14  # 112 bits, §4.5.3

_PROFILES = {
    ("AES1", "HS80"): "AES_CM_128_HMAC_SHA1_80",
    ("AES1", "HS32"): "AES_CM_128_HMAC_SHA1_32",
    ("AES3", "HS80"): "AES_256_CM_HMAC_SHA1_80",
    ("AES3", "HS32"): "AES_256_CM_HMAC_SHA1_32",
}


def _hash_module_name(hash_name):
    name = HASHES.get(hash_name)
    if name is None:
        raise LocalProtocolError("unsupported ZRTP hash {}".format(hash_name))
    return name


def hash_length(hash_name):
    return crypto.digest_size(_hash_module_name(hash_name))


def srtp_profile(cipher, auth_tag):
    profile = _PROFILES.get((cipher, auth_tag))
    if profile is None:
        raise LocalProtocolError("no SRTP profile for {} {}".format(cipher, auth_tag))
    return profile


def zrtp_hash(hash_name, data):
    return crypto.digest(_hash_module_name(hash_name), data)


def zrtp_mac(hash_name, key, data):
    return crypto.hmac_digest(_hash_module_name(hash_name), key, data)


def implicit_hash(data):
    return crypto.digest("sha256", data)


def implicit_mac(key, data):
    return crypto.hmac_digest("sha256", key, data)[:8]


def kdf(hash_name, ki, label, context, length):
    # §4.5.1: HMAC(KI, i || Label || 0x00 || Context || L), i = 1, L in bits; leftmost L bits.
    if length > hash_length(hash_name):
        raise LocalProtocolError("KDF output longer than one hash block")
    data = b"".join((b"\x00\x00\x00\x01", label, b"\x00", context, struct.pack(">I", length * 8)))
    return zrtp_mac(hash_name, ki, data)[:length]


def compute_s0(hash_name, dh_result, zidi, zidr, total_hash, s1, s2, s3):
    # §4.4.1.4: s0 = hash(counter || DHResult || "ZRTP-HMAC-KDF" || ZIDi || ZIDr || total_hash ||
    # len(s1) || s1 || len(s2) || s2 || len(s3) || s3); a null secret has length 0.
    parts = [b"\x00\x00\x00\x01", dh_result, b"ZRTP-HMAC-KDF", zidi, zidr, total_hash]
    for secret in (s1, s2, s3):
        if secret is None:
            parts.append(b"\x00\x00\x00\x00")
        else:
            parts.append(struct.pack(">I", len(secret)))
            parts.append(secret)
    return zrtp_hash(hash_name, b"".join(parts))


def secret_id(hash_name, secret, label):
    return zrtp_mac(hash_name, secret, label)[:8]
