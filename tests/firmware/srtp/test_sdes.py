"""SDES a=crypto (RFC 4568): generate, parse, choose; keys usable by SrtpContext."""

from firmware.errors import RemoteProtocolError
from firmware.srtp import sdes
from firmware.srtp.context import SrtpContext
from tests.portable import raises

MICROPYTHON = True


class CountingRng:
    def __init__(self):
        self.counter = 0

    def __call__(self, n):
        out = bytes((self.counter + i) & 0xFF for i in range(n))
        self.counter += n
        return out


def test_rfc4568_example_line_parses():
    value = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4"
    attr = sdes.parse_crypto(value)
    assert attr.tag == 1 and attr.suite == "AES_CM_128_HMAC_SHA1_80"
    assert len(attr.master_key) == 16 and len(attr.master_salt) == 14
    assert attr.lifetime == "2^20" and attr.mki == "1:4"
    assert "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR" in attr.value()


def test_offer_answer_accept_gives_matching_contexts():
    rng = CountingRng()
    offer = sdes.make_offer(rng)
    values = [a.value() for a in offer]
    assert values[0].startswith("1 AES_256_CM_HMAC_SHA1_80 inline:")
    theirs, ours = sdes.answer_offer(values, CountingRng())
    assert theirs.tag == 1 and ours.suite == theirs.suite
    offer_side, answer_side = sdes.accept_answer(offer, ours.value())
    assert offer_side.master_key == theirs.master_key
    assert answer_side.master_key == ours.master_key
    # The offerer sends with its own key; the answerer receives with the offerer's key.
    tx = SrtpContext(*offer_side.params())
    rx = SrtpContext(*theirs.params())
    rtp = b"\x80\x00\x00\x01" + bytes(8) + b"voice"
    assert rx.unprotect(tx.protect(rtp)) == rtp


def test_answer_skips_unusable_lines_and_follows_offer_order():
    good = sdes.CryptoAttribute(7, "AES_CM_128_HMAC_SHA1_32", bytes(16), bytes(14)).value()
    values = [
        "1 F8_128_HMAC_SHA1_80 inline:AAAA",
        "2 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
        good + " UNENCRYPTED_SRTP",
        good,
    ]
    theirs, ours = sdes.answer_offer(values, CountingRng())
    assert theirs.tag == 7 and ours.suite == "AES_CM_128_HMAC_SHA1_32"
    assert sdes.answer_offer(values[:3], CountingRng()) is None


def test_malformed_lines_each_raise():
    key = sdes.CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14)).value().split()[2]
    for bad in [
        "",
        "1 AES_CM_128_HMAC_SHA1_80",
        "x AES_CM_128_HMAC_SHA1_80 " + key,
        "1 NOPE " + key,
        "1 AES_CM_128_HMAC_SHA1_80 uri:" + key[7:],
        "1 AES_256_CM_HMAC_SHA1_80 " + key,
        "1 AES_CM_128_HMAC_SHA1_80 " + key + "|2^x",
        "1 AES_CM_128_HMAC_SHA1_80 " + key + "|1:999",
        "1 AES_CM_128_HMAC_SHA1_80 " + key + ";" + key,
        "1 AES_CM_128_HMAC_SHA1_80 " + key + " KDR=1",
        "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!",
    ]:
        raises(RemoteProtocolError, sdes.parse_crypto, bad)


def test_key_without_base64_padding_is_accepted():
    # rtpengine passes SDES keys on without the "=" padding (46 bytes of AES-256 key and salt).
    attr = sdes.CryptoAttribute(1, "AES_256_CM_HMAC_SHA1_80", bytes(range(32)), bytes(range(14)))
    padded = attr.value()
    assert padded.endswith("==")
    parsed = sdes.parse_crypto(padded.rstrip("="))
    assert parsed.master_key == bytes(range(32)) and parsed.master_salt == bytes(range(14))
    key = padded.split()[2].rstrip("=")
    raises(RemoteProtocolError, sdes.parse_crypto, "1 AES_256_CM_HMAC_SHA1_80 " + key + "AAA")  # 4n + 1 chars


def test_accept_answer_rejects_unknown_tag_or_changed_suite():
    offer = sdes.make_offer(CountingRng())
    other = sdes.CryptoAttribute(9, "AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14)).value()
    raises(RemoteProtocolError, sdes.accept_answer, offer, other)
    changed = sdes.CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14)).value()
    raises(RemoteProtocolError, sdes.accept_answer, offer, changed)


def test_repr_never_shows_keys():
    attr = sdes.CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", b"K" * 16, b"S" * 14)
    assert "K" not in repr(attr).replace("CryptoAttribute", "")


def test_alias_spelling_is_accepted_and_echoed():
    offered = sdes.CryptoAttribute(3, "AES_CM_256_HMAC_SHA1_80", bytes(32), bytes(14)).value()
    theirs, ours = sdes.answer_offer([offered], CountingRng())
    assert ours.suite == "AES_CM_256_HMAC_SHA1_80" and ours.value().startswith("3 AES_CM_256_HMAC_SHA1_80 ")
    assert theirs.params()[0] == "AES_256_CM_HMAC_SHA1_80" and len(ours.master_key) == 32
    SrtpContext(*ours.params())


def test_zrtp_names_and_params_tuples():
    from firmware.errors import LocalProtocolError
    from firmware.srtp.context import context_from_params, zrtp_profile

    assert zrtp_profile("AES3", "HS32") == "AES_256_CM_HMAC_SHA1_32"
    assert zrtp_profile("AES1", "HS80") == "AES_CM_128_HMAC_SHA1_80"
    raises(LocalProtocolError, zrtp_profile, "2FS1", "HS80")
    ctx = context_from_params(("AES_CM_128_HMAC_SHA1_32", bytes(16), bytes(14), 4))
    assert ctx.tag_length == 4 and ctx.rtcp_tag_length == 4
    assert context_from_params(("AES_CM_128_HMAC_SHA1_32", bytes(16), bytes(14))).rtcp_tag_length == 10
    raises(LocalProtocolError, context_from_params, ("AES_CM_128_HMAC_SHA1_32", bytes(16)))
