"""ZRTP message codecs: round trips and strict rejection of malformed input (also run under MicroPython)."""

from firmware.errors import RemoteProtocolError
from firmware.zrtp import kdf, messages, sas
from tests.portable import raises

MICROPYTHON = True

H = [bytes([i]) * 32 for i in range(4)]
ZID = b"z" * 12


def _hello():
    return messages.Hello(
        "1.10",
        "Sotto",
        H[3],
        ZID,
        ["S384", "S256"],
        ["AES3", "AES1"],
        ["HS80", "HS32"],
        ["X255", "DH3k"],
        ["B256", "B32"],
        passive=True,
    )


def test_hello_round_trip_and_mac():
    raw = _hello().encode(H[2])
    hello = messages.decode_message(raw)
    assert hello.version == "1.10" and hello.client_id == "Sotto" and hello.zid == ZID
    assert hello.hashes == ["S384", "S256"] and hello.sas_types == ["B256", "B32"]
    assert hello.key_agreements == ["X255", "DH3k"] and hello.passive and not hello.mitm
    assert hello.verify_mac(H[2]) and not hello.verify_mac(H[1])
    assert len(raw) == 88 + 4 * 10


def test_packet_framing_round_trip_and_checks():
    raw = _hello().encode(H[2])
    packet = messages.encode_packet(7, 0xDEADBEEF, raw)
    assert messages.is_zrtp_packet(packet)
    assert messages.decode_packet(packet) == (7, 0xDEADBEEF, raw)
    assert "CRC" in str(raises(RemoteProtocolError, messages.decode_packet, packet[:-1] + b"\x00"))
    bad = b"\x80" + packet[1:]
    raises(RemoteProtocolError, messages.decode_packet, bad)
    raises(RemoteProtocolError, messages.decode_packet, packet[:20])
    raises(RemoteProtocolError, messages.decode_packet, packet + bytes(4000))


def test_commit_dhpart_confirm_round_trip():
    commit = messages.Commit(H[2], ZID, "S256", "AES1", "HS80", "X255", "B32", hvi=b"h" * 32)
    decoded = messages.decode_message(commit.encode(H[1]))
    assert decoded.hvi == b"h" * 32 and decoded.sas == "B32" and decoded.verify_mac(H[1])
    mult = messages.Commit(H[2], ZID, "S256", "AES1", "HS80", "Mult", "B32", nonce=b"n" * 16)
    assert messages.decode_message(mult.encode(H[1])).nonce == b"n" * 16
    prsh = messages.Commit(H[2], ZID, "S256", "AES1", "HS80", "Prsh", "B32", nonce=b"n" * 16, key_id=b"k" * 8)
    assert messages.decode_message(prsh.encode(H[1])).key_id == b"k" * 8
    dh = messages.DHPart(2, H[1], b"1" * 8, b"2" * 8, b"3" * 8, b"4" * 8, b"p" * 32)
    decoded = messages.decode_message(dh.encode(H[0]))
    assert decoded.part == 2 and decoded.pv == b"p" * 32 and decoded.verify_mac(H[0])
    body = messages.ConfirmBody(H[0], True, cache_expiry=0)
    confirm = messages.seal_confirm(1, body, "S256", b"k" * 32, b"m" * 32, b"i" * 16)
    opened = messages.open_confirm(messages.decode_message(confirm.encode()), "S256", b"k" * 32, b"m" * 32)
    assert opened.h0 == H[0] and opened.verified and opened.cache_expiry == 0


def test_small_messages_round_trip():
    assert messages.decode_message(messages.Error(0x90).encode()).code == 0x90
    assert messages.decode_message(messages.GoClear(b"c" * 8).encode()).clear_mac == b"c" * 8
    ping = messages.decode_message(messages.Ping("1.10", b"e" * 8).encode())
    assert ping.endpoint_hash == b"e" * 8
    ack = messages.decode_message(messages.PingACK("1.10", b"a" * 8, b"b" * 8, 5).encode())
    assert ack.ssrc == 5 and ack.received_hash == b"b" * 8
    for type_block in messages.BARE_TYPES:
        assert messages.decode_message(messages.Bare(type_block).encode()).TYPE == type_block
    relay = messages.decode_message(messages.SASrelay(b"m" * 8, b"i" * 16, b"e" * 40).encode())
    assert relay.encrypted == b"e" * 40


def test_malformed_messages_rejected():
    raw = _hello().encode(H[2])
    raises(RemoteProtocolError, messages.decode_message, raw[:-4])  # length field mismatch
    raises(RemoteProtocolError, messages.decode_message, b"\x50\x5b" + raw[2:])  # preamble
    raises(RemoteProtocolError, messages.decode_message, raw[:4] + b"Hellx   " + raw[12:])  # type
    too_many = bytearray(raw)
    too_many[77] = 8  # hash count above 7
    raises(RemoteProtocolError, messages.decode_message, bytes(too_many))
    counts_off = bytearray(raw)
    counts_off[77] = 1  # counts no longer match the length
    raises(RemoteProtocolError, messages.decode_message, bytes(counts_off))
    commit = messages.Commit(H[2], ZID, "S256", "AES1", "HS80", "DH3k", "B32", hvi=b"h" * 32).encode(H[1])
    short = commit[:2] + b"\x00\x1c" + commit[4:-4]
    raises(RemoteProtocolError, messages.decode_message, short)
    raises(RemoteProtocolError, messages.decode_message, b"\x50\x5a\x00\x04Error   \x00")
    raises(RemoteProtocolError, messages.decode_message, b"\x50\x5a\x00\x04HelloACK\x00\x00\x00\x00")


def test_kdf_and_sas_basics():
    assert len(kdf.kdf("S256", b"k" * 32, b"x", b"c", 32)) == 32  # (S384: no sha384 on MicroPython)
    assert sas.render("B32", b"\x00\x00\x00\x00") == "yyyy"
    assert sas.render("B256", b"\x00\xff\x00\x00") == "aardvark Yucatan"
    assert kdf.srtp_profile("AES3", "HS32") == "AES_256_CM_HMAC_SHA1_32"
