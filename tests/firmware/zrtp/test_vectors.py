"""The ZRTP conformance data (tests/vectors/zrtp.json, see tests/vectors/README.md): a real DH3k transcript
between two Linphone endpoints, GNU ZRTP KDF vectors and a SAS rendering."""

import json
import pathlib

import pytest

from firmware import crypto
from firmware.errors import RemoteProtocolError
from firmware.zrtp import kdf, messages, sas
from tests.portable import unhex

VECTORS = pathlib.Path(__file__).resolve().parents[2] / "vectors" / "zrtp.json"
DATA = json.loads(VECTORS.read_text())
T = DATA["transcript"]
PACKETS = {name: unhex(value) for name, value in T["packets"].items()}
SECRETS = {name: unhex(value) for name, value in T["secrets"].items()}


def message(name):
    return messages.decode_packet(PACKETS[name])[2]


@pytest.mark.parametrize("name", sorted(PACKETS))
def test_crc_of_every_packet(name):
    packet = PACKETS[name]
    sequence, ssrc, msg = messages.decode_packet(packet)
    assert msg == packet[12:-4]
    assert ssrc in (0x12345678, 0x87654321, 0x76DCA7BD)
    # Re-framing reproduces the packet byte for byte, CRC little-endian.
    assert messages.encode_packet(sequence, ssrc, msg) == packet
    corrupted = bytearray(packet)
    corrupted[20] ^= 1
    with pytest.raises(RemoteProtocolError, match="CRC"):
        messages.decode_packet(bytes(corrupted))


@pytest.mark.parametrize("role", ["initiator", "responder"])
def test_hash_chain(role):
    chain = [SECRETS["H{}_{}".format(i, role)] for i in range(4)]
    for k in range(3):
        assert kdf.implicit_hash(chain[k]) == chain[k + 1]


@pytest.mark.parametrize("role", ["initiator", "responder"])
def test_hello_decodes_and_mac_and_sdp_hash(role):
    hello = messages.decode_message(message("hello_" + role))
    assert isinstance(hello, messages.Hello)
    assert hello.version == "1.10"
    assert hello.client_id == "LINPHONE-ZRTPCPP"
    assert hello.h3 == SECRETS["H3_" + role]
    assert hello.verify_mac(SECRETS["H2_" + role])
    assert not hello.verify_mac(SECRETS["H1_" + role])
    sdp = "1.10 " + kdf.implicit_hash(hello.raw).hex()
    assert sdp == T["zrtp_hash_sdp"]["hello_" + role]


def test_hello_reencodes_identically():
    for name in ("hello_initiator", "hello_responder", "pjs_hello"):
        hello = messages.decode_message(message(name))
        clone = messages.Hello(
            hello.version,
            "",
            hello.h3,
            hello.zid,
            hello.hashes,
            hello.ciphers,
            hello.auth_tags,
            hello.key_agreements,
            hello.sas_types,
            hello.signature_capable,
            hello.mitm,
            hello.passive,
        )
        encoded = clone.encode(b"k" * 32)
        # Everything but the client id and the MAC is reproduced.
        assert encoded[:16] == hello.raw[:16] and encoded[32:-8] == hello.raw[32:-8]


def test_pjsip_hello_sdp_hash():
    hello = messages.decode_message(message("pjs_hello"))
    assert "1.10 " + kdf.implicit_hash(hello.raw).hex() == T["zrtp_hash_sdp"]["pjs_hello"]


def test_commit_fields_mac_and_hvi():
    commit = messages.decode_message(message("commit"))
    negotiated = T["negotiated"]
    assert (commit.hash, commit.cipher, commit.auth_tag, commit.key_agreement, commit.sas) == (
        negotiated["hash"],
        negotiated["cipher"],
        negotiated["auth_tag"],
        negotiated["key_agreement"],
        negotiated["sas"],
    )
    assert commit.h2 == SECRETS["H2_initiator"]
    assert commit.verify_mac(SECRETS["H1_initiator"])
    assert not commit.verify_mac(SECRETS["H1_responder"])
    assert commit.hvi == unhex(T["commit_hvi"])
    hvi = kdf.zrtp_hash("S256", message("dhpart2") + message("hello_responder"))
    assert hvi == commit.hvi
    assert commit.encode(SECRETS["H1_initiator"]) == commit.raw


@pytest.mark.parametrize("part,role", [(1, "responder"), (2, "initiator")])
def test_dhpart_mac(part, role):
    dh = messages.decode_message(message("dhpart{}".format(part)))
    assert dh.part == part and len(dh.pv) == 384
    assert dh.h1 == SECRETS["H1_" + role]
    assert dh.verify_mac(SECRETS["H0_" + role])
    assert dh.encode(SECRETS["H0_" + role]) == dh.raw


@pytest.mark.parametrize("part,role,suffix", [(1, "responder", "r"), (2, "initiator", "i")])
def test_confirm_decryption(part, role, suffix):
    confirm = messages.decode_message(message("confirm{}".format(part)))
    body = messages.open_confirm(confirm, "S256", SECRETS["zrtpkey" + suffix], SECRETS["mackey" + suffix])
    assert body.h0 == SECRETS["H0_" + role]
    assert body.cache_expiry == 0xFFFFFFFF
    assert not body.verified and body.signature == b""
    # Sealing the same body with the same IV reproduces the message.
    again = messages.seal_confirm(
        part, body, "S256", SECRETS["zrtpkey" + suffix], SECRETS["mackey" + suffix], confirm.iv
    )
    assert again.encode() == confirm.raw
    other = "i" if suffix == "r" else "r"
    with pytest.raises(RemoteProtocolError, match="MAC"):
        messages.open_confirm(confirm, "S256", SECRETS["zrtpkey" + suffix], SECRETS["mackey" + other])


def test_bare_acks():
    assert messages.decode_message(message("helloack")).TYPE == b"HelloACK"
    assert messages.decode_message(message("conf2ack")).TYPE == b"Conf2ACK"


@pytest.mark.parametrize("vector", DATA["kdf"]["vectors"], ids=lambda v: v["label"])
def test_kdf_vectors(vector):
    out = kdf.kdf(
        "S256",
        unhex(DATA["kdf"]["ki"]),
        vector["label"].encode(),
        unhex(DATA["kdf"]["context"]),
        vector["length_bytes"],
    )
    assert out == unhex(vector["output"])


def test_sas_rendering():
    value = sas.sas_value("S256", unhex(DATA["kdf"]["ki"]), unhex(DATA["kdf"]["context"]))
    assert value == unhex(DATA["sas"]["sasvalue"])
    assert sas.render("B32", value) == DATA["sas"]["b32"]
    assert sas.render("B256", value) == DATA["sas"]["b256"].replace(":", " ")


def test_crypto_backend_is_used_for_hmac():
    assert crypto.hmac_digest("sha256", b"k", b"d") == kdf.zrtp_mac("S256", b"k", b"d")
