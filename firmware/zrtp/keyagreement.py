"""ZRTP key agreement (RFC 6189 §5.1.5, §4.4.1): DH3k, DH2k, EC25, EC38, X255 (alias E255), X448.

API:
- KEY_AGREEMENTS: the names we implement (their default order and measured cost live in
  firmware/zrtp/algorithms.py). canonical(name) maps the GNU ZRTP spelling "E255" to "X255" (bzrtp's);
  is_supported(name).
- PV_LENGTHS: {name: public value length in bytes}.
- generate(name, rng) -> KeyPair; `rng(n)` returns n random bytes.
- KeyPair.public: the pv to send; KeyPair.agree(peer_pv) -> DHResult bytes (for DH the result is
  padded to the prime's length, for ECDH it is the x coordinate, §4.4.1.4). Every peer value is
  validated first: DH 1 < pv < p - 1 (§4.4.1.2), EC points on the curve (§4.4.1.3), X25519/X448 not of
  low order; a bad value raises RemoteProtocolError. KeyPair.erase() drops the private key.

DH3k/DH2k use the RFC 3526 MODP groups 15/14 with generator 2 and 256-bit exponents (§5.1.5: twice
the 128-bit strength). The exponentiation runs on `cryptography` while it still has finite-field DH and
otherwise on Python's own `pow` (always on MicroPython), which gives the same result.
"""

from firmware import crypto
from firmware.errors import LocalProtocolError, RemoteProtocolError

# RFC 3526 §3 (2048-bit MODP group 14) and §4 (3072-bit MODP group 15); generator 2.
_P2048 = int(
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404dd"
    "ef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7ed"
    "ee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da48361c55d39a69163fa8fd24cf5f"
    "83655d23dca3ad961c62f356208552bb9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3b"
    "e39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf6955817183995497cea956ae515d2261898fa0510"
    "15728e5a8aacaa68ffffffffffffffff",
    16,
)
_P3072 = int(
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404dd"
    "ef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7ed"
    "ee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da48361c55d39a69163fa8fd24cf5f"
    "83655d23dca3ad961c62f356208552bb9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3b"
    "e39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf6955817183995497cea956ae515d2261898fa0510"
    "15728e5a8aaac42dad33170d04507a33a85521abdf1cba64ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7"
    "abf5ae8cdb0933d71e8c94e04a25619dcee3d2261ad2ee6bf12ffa06d98a0864d87602733ec86a64521f2b18177b200c"
    "bbe117577a615d6c770988c0bad946e208e24fa074e5ab3143db5bfce0fd108e4b82d120a93ad2caffffffffffffffff",
    16,
)

KEY_AGREEMENTS = ("X255", "EC25", "X448", "EC38", "DH2k", "DH3k")
PV_LENGTHS = {"DH2k": 256, "DH3k": 384, "EC25": 64, "EC38": 96, "X255": 32, "X448": 56}
_ALIASES = {"E255": "X255"}
_DH_PRIMES = {"DH2k": _P2048, "DH3k": _P3072}
_EC_CURVES = {"EC25": "p256", "EC38": "p384"}
DH_EXPONENT_BYTES = 32


def canonical(name):
    return _ALIASES.get(name, name)


def is_supported(name):
    return canonical(name) in PV_LENGTHS


def _int_from_bytes(data):
    return int.from_bytes(data, "big")


class KeyPair:
    __slots__ = ("name", "public", "_private")

    def __init__(self, name, public, private):
        self.name = name
        self.public = public
        self._private = private

    def agree(self, peer_pv):
        if self._private is None:
            raise LocalProtocolError("key pair already erased")
        name = self.name
        if len(peer_pv) != PV_LENGTHS[name]:
            raise RemoteProtocolError(
                "{} public value must be {} bytes, not {}".format(name, PV_LENGTHS[name], len(peer_pv))
            )
        if name in _DH_PRIMES:
            prime = _DH_PRIMES[name]
            value = _int_from_bytes(peer_pv)
            # §4.4.1.2: reject 0, 1 and p-1 (and anything outside the group's range).
            if value < 2 or value > prime - 2:
                raise RemoteProtocolError("{} public value out of range (0, 1 or p-1)".format(name))
            return _modexp(value, self._private, prime, PV_LENGTHS[name])
        if name in _EC_CURVES:
            return crypto.ecdh_exchange(_EC_CURVES[name], self._private, peer_pv)
        if name == "X255":
            return crypto.x25519_exchange(self._private, peer_pv)
        return crypto.x448_exchange(self._private, peer_pv)

    def erase(self):
        """Forget the private key (Python cannot wipe the integer's memory; dropping it is all we can do)."""
        self._private = None


def _modexp(base, exponent, prime, length):
    out = crypto.ffdh_modexp(base, exponent, prime, length)
    if out is None:
        out = pow(base, exponent, prime).to_bytes(length, "big")
    return out


def generate(name, rng):
    name = canonical(name)
    if name in _DH_PRIMES:
        exponent = _int_from_bytes(rng(DH_EXPONENT_BYTES)) | (1 << (8 * DH_EXPONENT_BYTES - 1))
        public = _modexp(2, exponent, _DH_PRIMES[name], PV_LENGTHS[name])
        return KeyPair(name, public, exponent)
    if name in _EC_CURVES:
        curve = _EC_CURVES[name]
        scalar = crypto.ecdh_private_scalar(curve, rng(PV_LENGTHS[name] // 2 + 8))
        return KeyPair(name, crypto.ecdh_public(curve, scalar), scalar)
    if name == "X255":
        private = rng(32)
        return KeyPair(name, crypto.x25519_public(private), private)
    if name == "X448":
        private = rng(56)
        return KeyPair(name, crypto.x448_public(private), private)
    raise LocalProtocolError("unsupported key agreement {}".format(name))


def dh_prime(name):
    """The MODP prime of DH2k/DH3k (tests check p-1 rejection with it)."""
    return _DH_PRIMES[canonical(name)]
