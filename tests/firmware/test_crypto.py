"""The crypto backend against published vectors (runs under MicroPython too, on its fallback path)."""

from firmware import crypto
from firmware.errors import LocalProtocolError
from tests.portable import raises, unhex

MICROPYTHON = True


def test_hmac_sha1_rfc2202_case_2():
    mac = crypto.hmac_digest("sha1", b"Jefe", b"what do ya want for nothing?")
    assert mac == unhex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")


def test_hmac_sha256_rfc4231_case_2():
    mac = crypto.hmac_digest("sha256", b"Jefe", b"what do ya want for nothing?")
    assert mac == unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_keyed_context_matches_one_shot_hmac():
    key = crypto.HmacKey("sha1", b"k" * 20)
    assert key.digest(b"abc", b"def") == crypto.hmac_digest("sha1", b"k" * 20, b"abcdef")
    assert key.digest(b"abcdef") == key.digest(b"abc", b"def")


def test_aes_ecb_fips197_vector():
    key = unhex("000102030405060708090a0b0c0d0e0f")
    out = crypto.aes_ecb_encrypt(key, unhex("00112233445566778899aabbccddeeff"))
    assert out == unhex("69c4e0d86a7b0430d8cdb78070b4c55a")


def test_aes_ctr_sp800_38a_f51():
    key = unhex("2b7e151628aed2a6abf7158809cf4f3c")
    ctr = unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
    plain = unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
    expected = unhex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff")
    assert crypto.aes_ctr(key, ctr, plain) == expected
    assert crypto.aes_ctr(key, ctr, expected) == plain
    # a partial block uses a prefix of the keystream
    assert crypto.aes_ctr(key, ctr, plain[:5]) == expected[:5]


def test_aes_cfb128_sp800_38a_f33_round_trip():
    key = unhex("2b7e151628aed2a6abf7158809cf4f3c")
    iv = unhex("000102030405060708090a0b0c0d0e0f")
    plain = unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
    expected = unhex("3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b")
    assert crypto.aes_cfb_encrypt(key, iv, plain) == expected
    assert crypto.aes_cfb_decrypt(key, iv, expected) == plain


def test_constant_time_equal():
    assert crypto.constant_time_equal(b"abc", b"abc")
    assert not crypto.constant_time_equal(b"abc", b"abd")
    assert not crypto.constant_time_equal(b"abc", b"ab")


def test_bad_key_length_is_a_local_error():
    raises(LocalProtocolError, crypto.aes_ecb_encrypt, b"short", bytes(16))
    raises(LocalProtocolError, crypto.digest, "sha999", b"")


def test_keyed_ctr_matches_one_shot_ctr_across_packets_and_the_counter_wrap():
    key = unhex("2b7e151628aed2a6abf7158809cf4f3c")
    keyed = crypto.AesCtrKey(key)
    ctr = unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
    plain = unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
    expected = unhex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff")
    assert keyed.crypt(ctr, plain) == expected
    assert keyed.crypt(ctr, expected) == plain  # the context is reusable, packet after packet
    near_wrap = b"\xff" * 15 + b"\xfe"
    data = bytes(range(50))
    assert keyed.crypt(near_wrap, data) == crypto.aes_ctr(key, near_wrap, data)
    assert keyed.crypt(ctr, b"") == b""
    raises(LocalProtocolError, keyed.crypt, b"short", data)
