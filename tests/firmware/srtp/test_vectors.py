"""SRTP/SRTCP against the published vectors: RFC 3711 appendix B, RFC 6188 §7, libsrtp's driver vector."""

from firmware import crypto
from firmware.errors import RemoteProtocolError
from firmware.srtp import kdf
from firmware.srtp.context import SrtpContext
from tests.portable import raises, unhex

MICROPYTHON = True

RFC3711_MASTER_KEY = unhex("E1F97A0D3E018BE0D64FA32C06DE4139")
RFC3711_MASTER_SALT = unhex("0EC675AD498AFEEBB6960B3AABE6")


def test_rfc3711_b2_aes_cm_keystream():
    key = unhex("2B7E151628AED2A6ABF7158809CF4F3C")
    iv = unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
    stream = crypto.aes_ctr_keystream(key, iv, 32)
    assert stream == unhex("E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB")


def test_rfc3711_b3_key_derivation():
    cipher_key, auth_key, salt = kdf.session_keys(RFC3711_MASTER_KEY, RFC3711_MASTER_SALT, 16)
    assert cipher_key == unhex("C61E7A93744F39EE10734AFE3FF7A087")
    assert salt == unhex("30CBBC08863D8C85D49DB34A9AE1")
    assert auth_key == unhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")


def test_rfc3711_b3_auth_key_spans_several_blocks():
    long_key = kdf.derive(RFC3711_MASTER_KEY, RFC3711_MASTER_SALT, kdf.LABEL_RTP_AUTH, 94)
    assert long_key == unhex(
        "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE"
        "E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25"
        "6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2"
    )


def test_rfc6188_7_2_aes_256_key_derivation():
    master_key = unhex("f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6")
    master_salt = unhex("3b04803de51ee7c96423ab5b78d2")
    cipher_key, auth_key, salt = kdf.session_keys(master_key, master_salt, 32)
    assert cipher_key == unhex("5ba1064e30ec51613cad926c5a28ef731ec7fb397f70a960653caf06554cd8c4")
    assert salt == unhex("fa31791685ca444a9e07c6c64e93")
    assert auth_key == unhex("fd9c32d39ed5fbb5a9dc96b30818454d1313dc05")


LIBSRTP_PLAINTEXT = unhex("800f1234decafbad cafebabe abababab abababababababab abababab")
LIBSRTP_CIPHERTEXT = unhex("800f1234decafbad cafebabe 4e55dc4c e79978d88ca4d215 949d2402b78d6acc 99ea179b8dbb")


def test_libsrtp_driver_vector_protect_and_unprotect():
    tx = SrtpContext("AES_CM_128_HMAC_SHA1_80", RFC3711_MASTER_KEY, RFC3711_MASTER_SALT)
    assert tx.protect(LIBSRTP_PLAINTEXT) == LIBSRTP_CIPHERTEXT
    rx = SrtpContext("AES_CM_128_HMAC_SHA1_80", RFC3711_MASTER_KEY, RFC3711_MASTER_SALT)
    assert rx.unprotect(LIBSRTP_CIPHERTEXT) == LIBSRTP_PLAINTEXT
    raises(RemoteProtocolError, rx.unprotect, LIBSRTP_CIPHERTEXT)
    assert rx.replays == 1 and rx.auth_failures == 0
    tampered = bytearray(LIBSRTP_CIPHERTEXT)
    tampered[2] ^= 1
    raises(RemoteProtocolError, rx.unprotect, bytes(tampered))
    assert rx.auth_failures == 1


def test_srtcp_32_bit_tag_is_accepted_only_for_32_bit_profiles():
    key, salt = bytes(range(16)), bytes(range(14))
    rtcp = unhex("80c90001 cafebabe")
    sender = SrtpContext("AES_CM_128_HMAC_SHA1_32", key, salt, rtcp_tag_length=4)
    receiver = SrtpContext("AES_CM_128_HMAC_SHA1_32", key, salt)
    assert receiver.rtcp_tag_length == 10
    assert receiver.unprotect_rtcp(sender.protect_rtcp(rtcp)) == rtcp
    assert receiver.rtcp_tag_length == 4 and receiver.auth_failures == 0
    strict = SrtpContext("AES_CM_128_HMAC_SHA1_80", key, salt)
    short = SrtpContext("AES_CM_128_HMAC_SHA1_80", key, salt, rtcp_tag_length=4)
    raises(RemoteProtocolError, strict.unprotect_rtcp, short.protect_rtcp(rtcp))
    assert strict.auth_failures == 1
