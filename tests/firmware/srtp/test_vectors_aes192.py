"""RFC 6188 §7.4 AES-192 key derivation (CPython only: MicroPython's cryptolib has no AES-192)."""

from firmware.srtp import kdf
from tests.portable import unhex


def test_rfc6188_7_4_aes_192_key_derivation():
    master_key = unhex("73edc66c4fa15776fb57f9505c17136550ffda71f3e8e5f1")
    master_salt = unhex("c8522f3acd4ce86d5add78edbb11")
    cipher_key, auth_key, salt = kdf.session_keys(master_key, master_salt, 24)
    assert cipher_key == unhex("31874736a8f1143870c26e4857d8a5b2c4a354407faadabb")
    assert salt == unhex("2372b82d639b6d8503a47adc0a6c")
    assert auth_key == unhex("355b10973cd95b9eacf4061c7e1a7151e7cfbfcb")
