"""The crypto backend: the one module of Sotto that imports `cryptography`.

The core (SIP digest, SRTP, ZRTP) calls only the functions below. On CPython they run on `cryptography`
and `hashlib`; on MicroPython (no `cryptography`) the same names fall back to `hashlib` and `cryptolib`
(AES-ECB), with CTR, CFB and HMAC built on top, so the core and its tests run there too. Anything a
platform cannot do raises LocalProtocolError("... not available on this platform").

Key material passes through here and must never be logged by callers (DESIGN.md, security rules).
"""

import hashlib

from firmware.errors import LocalProtocolError, RemoteProtocolError

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


def _probe_capabilities():
    """What this platform can do, probed once at import (issue 13): the hashes hashlib has, the AES key
    sizes the block cipher accepts, and the curves, which only `cryptography` provides. MicroPython has
    sha1/sha256/md5 and `cryptolib` AES-128/256 (no AES-192), and no curves. Finite-field DH always works
    (Python's own `pow`)."""
    found = ["ffdh"]
    for name in _HASHES:
        if getattr(hashlib, name, None) is not None:
            found.append(name)
    if HAVE_CRYPTOGRAPHY:
        found.extend(("aes128", "aes192", "aes256", "x25519", "x448", "p256", "p384"))
        return frozenset(found)
    try:
        import cryptolib
    except ImportError:
        return frozenset(found)
    for size in (16, 24, 32):
        try:
            cryptolib.aes(bytes(size), 1).encrypt(bytes(16))
        except Exception:  # any refusal means "not available"
            continue
        found.append("aes{}".format(size * 8))
    return frozenset(found)


# Names: "sha1", "sha256", "sha384", "md5", "aes128", "aes192", "aes256", "x25519", "x448", "p256",
# "p384", "ffdh". The ZRTP algorithm lists (firmware/zrtp/algorithms.py) are filtered with it.
CAPABILITIES = _probe_capabilities()


def available(capability):
    """True when this platform can do `capability` (a CAPABILITIES name)."""
    return capability in CAPABILITIES


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

    The inner and outer hash states after absorbing the padded key (RFC 2104 §2: H(K ^ opad, H(K ^ ipad,
    text))) are kept, so a message costs two hash-state copies and no key-block compressions; working on
    hashlib's objects directly also skips the hmac module's Python layer (5.4 -> 2.1 µs per SRTP packet
    here).
    """

    __slots__ = ("name", "_key", "_inner", "_outer")

    def __init__(self, name, key):
        constructor = _hash_constructor(name)
        self.name = name
        self._key = key
        self._inner = self._outer = None
        if HAVE_CRYPTOGRAPHY:
            inner = constructor()
            block = inner.block_size
            if len(key) > block:
                key = constructor(key).digest()
            key = key + bytes(block - len(key))
            inner.update(bytes(b ^ 0x36 for b in key))
            outer = constructor()
            outer.update(bytes(b ^ 0x5C for b in key))
            self._inner, self._outer = inner, outer

    def digest(self, *parts):
        if self._inner is None:
            data = b"".join(parts)
            return _hmac_portable(self.name, self._key, data)
        inner = self._inner.copy()
        for part in parts:
            inner.update(part)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


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


_MASK_128 = (1 << 128) - 1


def _counter_blocks(counter_block, count):
    value = int.from_bytes(counter_block, "big")
    return b"".join(((value + i) & _MASK_128).to_bytes(16, "big") for i in range(count))


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


class AesCtrKey:
    """AES counter mode under one key, for a stream of packets (SRTP encrypts every packet with the
    same session key, RFC 3711 §4.1.1).

    The cipher is set up once: each packet only encrypts its counter blocks with the kept AES-ECB
    context and XORs. Building a fresh cipher object per packet costs ~170 µs when the CPU cache is
    cold (every 20 ms in the audio loop), which dominated the media thread's CPU time.
    """

    __slots__ = ("_ecb", "_key")

    def __init__(self, key):
        _check_aes_key(key)
        self._key = key
        self._ecb = _Cipher(_algorithms.AES(key), _modes.ECB()).encryptor() if HAVE_CRYPTOGRAPHY else None

    def crypt(self, counter_block, data):
        """XOR `data` with the keystream that starts at `counter_block` (encrypt = decrypt)."""
        if len(counter_block) != 16:
            raise LocalProtocolError("AES-CTR counter block must be 16 bytes")
        if self._ecb is None:
            return aes_ctr(self._key, counter_block, data)
        size = len(data)
        if not size:
            return b""
        stream = self._ecb.update(_counter_blocks(counter_block, (size + 15) // 16))
        mixed = int.from_bytes(data, "big") ^ int.from_bytes(stream[:size], "big")
        return mixed.to_bytes(size, "big")


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


# --- Key agreement for ZRTP (RFC 6189 §5.1.5). Private keys come from the caller's rng so that the
# core stays deterministic under test; every peer public value is validated before use and a bad one
# raises RemoteProtocolError. Results are the raw shared secrets ZRTP calls DHResult.

_FFDH_BACKEND = None


def _ffdh_backend():
    """The `cryptography` finite-field DH module, or False once it is gone (it is deprecated)."""
    global _FFDH_BACKEND
    if _FFDH_BACKEND is None:
        _FFDH_BACKEND = False
        if HAVE_CRYPTOGRAPHY:
            try:
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    from cryptography.hazmat.primitives.asymmetric import dh as _dh
                _FFDH_BACKEND = _dh
            except ImportError:  # pragma: no cover - cryptography without FFDH
                _FFDH_BACKEND = False
    return _FFDH_BACKEND


def ffdh_modexp(base, exponent, prime, length):
    """`base ** exponent mod prime` as `length` big-endian bytes, on `cryptography` when it still has
    finite-field DH (about 4x faster than `pow`), else None so the caller uses its own `pow` path.

    `base` must already be validated by the caller (2 <= base <= prime - 2).
    """
    dh = _ffdh_backend()
    if not dh:
        return None
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params = dh.DHParameterNumbers(prime, 2)
            # Any public value satisfies the constructor; only `exponent` is used by exchange().
            private = dh.DHPrivateNumbers(exponent, dh.DHPublicNumbers(2, params)).private_key()
            out = private.exchange(dh.DHPublicNumbers(base, params).public_key())
    except (ValueError, TypeError):
        return None
    return bytes(length - len(out)) + out


def _x_curve(name):
    if not HAVE_CRYPTOGRAPHY:
        raise LocalProtocolError("{} not available on this platform".format(name))
    if name == "x25519":
        from cryptography.hazmat.primitives.asymmetric import x25519 as module

        return module.X25519PrivateKey, module.X25519PublicKey
    from cryptography.hazmat.primitives.asymmetric import x448 as module

    return module.X448PrivateKey, module.X448PublicKey


def _raw_public(key):
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def x25519_public(private):
    """Our X25519 public value (32 bytes) for the 32-byte `private` scalar."""
    priv_cls, _ = _x_curve("x25519")
    return _raw_public(priv_cls.from_private_bytes(private).public_key())


def x25519_exchange(private, peer_public):
    """X25519 shared secret; RemoteProtocolError for a malformed or low-order peer value."""
    return _x_exchange("x25519", 32, private, peer_public)


def x448_public(private):
    """Our X448 public value (56 bytes) for the 56-byte `private` scalar."""
    priv_cls, _ = _x_curve("x448")
    return _raw_public(priv_cls.from_private_bytes(private).public_key())


def x448_exchange(private, peer_public):
    """X448 shared secret; RemoteProtocolError for a malformed or low-order peer value."""
    return _x_exchange("x448", 56, private, peer_public)


def _x_exchange(name, size, private, peer_public):
    priv_cls, pub_cls = _x_curve(name)
    if len(peer_public) != size:
        raise RemoteProtocolError("{} public value must be {} bytes".format(name, size))
    shared = None
    try:
        shared = priv_cls.from_private_bytes(private).exchange(pub_cls.from_public_bytes(peer_public))
    except ValueError:
        pass  # cryptography refuses an all-zero result (a low-order point, RFC 7748 §6).
    if shared is None:
        raise RemoteProtocolError("{} public value is a low-order point".format(name))
    if not any(shared):
        raise RemoteProtocolError("{} shared secret is zero".format(name))
    return shared


_EC_SIZES = {"p256": 32, "p384": 48}


def _ec_curve(name):
    if not HAVE_CRYPTOGRAPHY:
        raise LocalProtocolError("{} not available on this platform".format(name))
    from cryptography.hazmat.primitives.asymmetric import ec

    if name == "p256":
        return ec, ec.SECP256R1()
    if name == "p384":
        return ec, ec.SECP384R1()
    raise LocalProtocolError("unknown curve {}".format(name))


def ecdh_private_scalar(name, seed):
    """A private scalar in [1, n-1] for curve `name` from random bytes `seed` (>= 64 bits longer than
    the order, so the reduction bias is negligible, FIPS 186-4 B.4.1)."""
    orders = {
        "p256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        "p384": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
    }
    if name not in orders:
        raise LocalProtocolError("unknown curve {}".format(name))
    return int.from_bytes(seed, "big") % (orders[name] - 1) + 1


def ecdh_public(name, scalar):
    """Our ECDH public value as ZRTP carries it: x || y, each coordinate big-endian, no 0x04 prefix."""
    ec, curve = _ec_curve(name)
    numbers = ec.derive_private_key(scalar, curve).public_key().public_numbers()
    size = _EC_SIZES[name]
    return numbers.x.to_bytes(size, "big") + numbers.y.to_bytes(size, "big")


def ecdh_exchange(name, scalar, peer_xy):
    """ECDH on P-256/P-384: the x-coordinate of scalar * peer (RFC 6189 §5.1.5: DHResult is x).

    The peer value must be x || y of a point on the curve (checked by `cryptography`, which also
    rejects the point at infinity); otherwise RemoteProtocolError.
    """
    ec, curve = _ec_curve(name)
    size = _EC_SIZES[name]
    if len(peer_xy) != 2 * size:
        raise RemoteProtocolError("{} public value must be {} bytes".format(name, 2 * size))
    shared = None
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + peer_xy)
        shared = ec.derive_private_key(scalar, curve).exchange(ec.ECDH(), peer)
    except ValueError:
        pass
    if shared is None:
        raise RemoteProtocolError("{} public value is not a point on the curve".format(name))
    return shared
