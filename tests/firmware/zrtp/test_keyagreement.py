"""Key agreement primitives: RFC 7748 vectors, the MODP primes, both DH paths agree, value checks."""

import os

import pytest

from firmware import crypto
from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.zrtp import keyagreement
from tests.portable import unhex

# RFC 7748 §6.1 (Alice and Bob).
ALICE_PRIVATE = unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PUBLIC = unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


def test_x25519_rfc7748_vector():
    assert crypto.x25519_public(ALICE_PRIVATE) == ALICE_PUBLIC
    assert crypto.x25519_exchange(ALICE_PRIVATE, BOB_PUBLIC) == SHARED


def test_modp_primes_are_rfc3526():
    p2048 = keyagreement.dh_prime("DH2k")
    p3072 = keyagreement.dh_prime("DH3k")
    # RFC 3526 §3/§4: p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + c); check the fixed ends
    # and that 2 generates the prime-order subgroup of a safe prime (2^((p-1)/2) = 1).
    for prime, bits in ((p2048, 2048), (p3072, 3072)):
        assert prime >> (bits - 64) == (1 << 64) - 1 and prime & ((1 << 64) - 1) == (1 << 64) - 1
        assert pow(2, (prime - 1) // 2, prime) == 1
    assert hex(p3072).endswith("a93ad2caffffffffffffffff")
    assert hex(p2048).endswith("15728e5a8aacaa68ffffffffffffffff")


@pytest.mark.parametrize("name", ["DH2k", "DH3k"])
def test_cryptography_and_pow_paths_agree(name):
    prime = keyagreement.dh_prime(name)
    exponent = int.from_bytes(os.urandom(32), "big")
    base = int.from_bytes(os.urandom(64), "big") % (prime - 3) + 2
    length = keyagreement.PV_LENGTHS[name]
    fast = crypto.ffdh_modexp(base, exponent, prime, length)
    assert fast is not None and fast == pow(base, exponent, prime).to_bytes(length, "big")


@pytest.mark.parametrize("name", keyagreement.KEY_AGREEMENTS)
def test_every_key_agreement_agrees_and_rejects_wrong_lengths(name):
    a = keyagreement.generate(name, os.urandom)
    b = keyagreement.generate(name, os.urandom)
    assert len(a.public) == keyagreement.PV_LENGTHS[name]
    assert a.agree(b.public) == b.agree(a.public)
    with pytest.raises(RemoteProtocolError):
        a.agree(b.public[:-1])
    a.erase()
    with pytest.raises(LocalProtocolError):
        a.agree(b.public)


def test_e255_alias():
    assert keyagreement.canonical("E255") == "X255" and keyagreement.is_supported("E255")
    assert keyagreement.generate("E255", os.urandom).name == "X255"


@pytest.mark.parametrize("curve,size", [("p256", 32), ("p384", 48)])
def test_ecdh_rejects_points_off_the_curve(curve, size):
    scalar = crypto.ecdh_private_scalar(curve, os.urandom(size + 8))
    public = crypto.ecdh_public(curve, scalar)
    off = public[:-1] + bytes([public[-1] ^ 1])
    with pytest.raises(RemoteProtocolError):
        crypto.ecdh_exchange(curve, scalar, off)
