"""The crypto backend: the one module of Sotto that imports `cryptography`.

The core (SIP digest, SRTP, ZRTP) calls only the functions below. On CPython they run on `cryptography`
and `hashlib`; on MicroPython (no `cryptography`) the same names fall back to `hashlib` and `cryptolib`
(AES-ECB), with CTR, CFB and HMAC built on top, so the core and its tests run there too. Anything a
platform cannot do raises LocalProtocolError("... not available on this platform").

Key material passes through here and must never be logged by callers (DESIGN.md, security rules).
"""

import hashlib

from firmware.errors import LocalProtocolError

try:
    from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
    from cryptography.hazmat.primitives.ciphers import algorithms as _algorithms
    from cryptography.hazmat.primitives.ciphers import modes as _modes

    try:  # cryptography >= 43 moved CFB to the "decrepit" package (DESIGN.md).
        from cryptography.hazmat.decrepit.ciphers.modes import CFB as _CFB
    except ImportError:  # pragma: no cover - older cryptography
        _CFB = _modes.CFB
    import hmac as _hmac

    HAVE_CRYPTOGRAPHY = True
except ImportError:
    HAVE_CRYPTOGRAPHY = False

_HASHES = {"sha1": 20, "sha256": 32, "sha384": 48, "md5": 16}
_BLOCK_SIZES = {"sha1": 64, "sha256": 64, "sha384": 128, "md5": 64}


def _hash_constructor(name):
    if name not in _HASHES:
        raise LocalProtocolError("unknown hash {}".format(name))
    constructor = getattr(hashlib, name, None)
    if constructor is None:
        raise LocalProtocolError("hash {} not available on this platform".format(name))
    return constructor


def digest(name, data):
    """Hash `data` with `name` (sha1, sha256, sha384, md5)."""
    return _hash_constructor(name)(data).digest()


def digest_size(name):
    _hash_constructor(name)
    return _HASHES[name]


def _xor(a, b):
    out = bytearray(len(a))
    for i in range(len(a)):
        out[i] = a[i] ^ b[i]
    return bytes(out)


def _hmac_portable(name, key, data):
    """RFC 2104 HMAC over hashlib, for platforms without the `hmac` module."""
    constructor = _hash_constructor(name)
    block = _BLOCK_SIZES[name]
    if len(key) > block:
        key = constructor(key).digest()
    key = key + bytes(block - len(key))
    inner = constructor(_xor(key, b"\x36" * block))
    inner.update(data)
    outer = constructor(_xor(key, b"\x5c" * block))
    outer.update(inner.digest())
    return outer.digest()


def hmac_digest(name, key, data):
    """HMAC of `data` under `key` with hash `name`."""
    if HAVE_CRYPTOGRAPHY:
        _hash_constructor(name)
        return _hmac.new(key, data, name).digest()
    return _hmac_portable(name, key, data)


def constant_time_equal(a, b):
    """Compare two MACs without leaking where they differ."""
    if HAVE_CRYPTOGRAPHY:
        return _hmac.compare_digest(a, b)
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


class HmacKey:
    """A keyed HMAC context, reused per packet (SRTP authenticates every packet with one key).

    Copying a keyed context saves the two key-block compressions per message.
    """

    __slots__ = ("name", "_key", "_template")

    def __init__(self, name, key):
        _hash_constructor(name)
        self.name = name
        self._key = key
        self._template = _hmac.new(key, None, name) if HAVE_CRYPTOGRAPHY else None

    def digest(self, *parts):
        if self._template is None:
            data = b"".join(parts)
            return _hmac_portable(self.name, self._key, data)
        ctx = self._template.copy()
        for part in parts:
            ctx.update(part)
        return ctx.digest()


def _check_aes_key(key):
    if len(key) not in (16, 24, 32):
        raise LocalProtocolError("AES key must be 16, 24 or 32 bytes")


def aes_ecb_encrypt(key, data):
    """AES in ECB mode over whole 16-byte blocks (used for key derivation and keystreams)."""
    _check_aes_key(key)
    if len(data) % 16:
        raise LocalProtocolError("AES-ECB input must be whole blocks")
    if HAVE_CRYPTOGRAPHY:
        enc = _Cipher(_algorithms.AES(key), _modes.ECB()).encryptor()
        return enc.update(data) + enc.finalize()
    import cryptolib

    return cryptolib.aes(key, 1).encrypt(data)


def _counter_blocks(counter_block, count):
    value = int.from_bytes(counter_block, "big")
    out = bytearray()
    for i in range(count):
        out.extend(((value + i) & ((1 << 128) - 1)).to_bytes(16, "big"))
    return bytes(out)


def aes_ctr(key, counter_block, data):
    """AES counter mode (RFC 3711 §4.1.1): XOR `data` with the keystream from `counter_block`.

    Encryption and decryption are the same operation.
    """
    _check_aes_key(key)
    if len(counter_block) != 16:
        raise LocalProtocolError("AES-CTR counter block must be 16 bytes")
    if HAVE_CRYPTOGRAPHY:
        enc = _Cipher(_algorithms.AES(key), _modes.CTR(counter_block)).encryptor()
        return enc.update(data) + enc.finalize()
    blocks = (len(data) + 15) // 16
    stream = aes_ecb_encrypt(key, _counter_blocks(counter_block, blocks))
    return _xor(data, stream[: len(data)])


def aes_ctr_keystream(key, counter_block, length):
    """`length` bytes of AES-CTR keystream (SRTP key derivation, RFC 3711 §4.3)."""
    return aes_ctr(key, counter_block, bytes(length))


def aes_cfb_encrypt(key, iv, data):
    """AES in 128-bit CFB mode (ZRTP Confirm messages, RFC 6189 §5.7)."""
    return _aes_cfb(key, iv, data, True)


def aes_cfb_decrypt(key, iv, data):
    return _aes_cfb(key, iv, data, False)


def _aes_cfb(key, iv, data, encrypt):
    _check_aes_key(key)
    if len(iv) != 16:
        raise LocalProtocolError("AES-CFB IV must be 16 bytes")
    if HAVE_CRYPTOGRAPHY:
        cipher = _Cipher(_algorithms.AES(key), _CFB(iv))
        ctx = cipher.encryptor() if encrypt else cipher.decryptor()
        return ctx.update(data) + ctx.finalize()
    out = bytearray()
    feedback = iv
    for start in range(0, len(data), 16):
        chunk = data[start : start + 16]
        stream = aes_ecb_encrypt(key, feedback)
        result = _xor(chunk, stream[: len(chunk)])
        out.extend(result)
        feedback = result if encrypt else chunk
    return bytes(out)
