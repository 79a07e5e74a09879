"""Engine negative paths: a scripted fake peer sends exactly the messages each test needs."""

import pytest

from firmware.zrtp import events, kdf, keyagreement, messages
from firmware.zrtp.engine import Alarm, Failed, Preferences, Secure
from tests.firmware.zrtp.pair import FakeNetwork, make_engine, pair, run, seeded_rng


class FakePeer:
    """Builds a peer's side of the handshake by hand (initiator role) with valid chain and MACs."""

    def __init__(self, seed=7, zid=b"P" * 12, version="1.10", key_agreement="DH3k"):
        self.rng = seeded_rng(seed)
        self.h0 = self.rng(32)
        self.h1 = kdf.implicit_hash(self.h0)
        self.h2 = kdf.implicit_hash(self.h1)
        self.h3 = kdf.implicit_hash(self.h2)
        self.zid = zid
        self.hello = messages.Hello(
            version, "FakePeer", self.h3, zid, ["S256"], ["AES1"], ["HS80"], [key_agreement], ["B32"]
        )
        self.hello_raw = self.hello.encode(self.h2)
        self.key_agreement = key_agreement
        self.seq = 0

    def packet(self, raw):
        self.seq += 1
        return messages.encode_packet(self.seq, 0xABCD, raw)

    def commit_for(self, engine_hello_raw, key_agreement=None, dhpart2_pv=None, hvi=None, algorithms=None, zid=None):
        ka = key_agreement or self.key_agreement
        self.keypair = keyagreement.generate(ka if ka not in ("Mult", "Prsh") else "DH3k", self.rng)
        pv = dhpart2_pv if dhpart2_pv is not None else self.keypair.public
        self.dhpart2 = messages.DHPart(2, self.h1, b"1" * 8, b"2" * 8, b"3" * 8, b"4" * 8, pv)
        self.dhpart2_raw = self.dhpart2.encode(self.h0)
        algs = dict({"hash": "S256", "cipher": "AES1", "auth_tag": "HS80", "sas": "B32"}, **(algorithms or {}))
        zid = zid or self.zid
        if ka == "Mult":
            commit = messages.Commit(self.h2, zid, "S256", "AES1", "HS80", ka, "B32", nonce=b"n" * 16)
        else:
            real_hvi = kdf.zrtp_hash("S256", self.dhpart2_raw + engine_hello_raw)[:32]
            commit = messages.Commit(
                self.h2, zid, algs["hash"], algs["cipher"], algs["auth_tag"], ka, algs["sas"], hvi=hvi or real_hvi
            )
        return commit.encode(self.h1)


def _sent(engine, now=0.0):
    out = []
    for packet in engine.datagrams_to_send(now):
        out.append(messages.decode_message(messages.decode_packet(packet)[2]))
    return out


def _events(engine):
    out = []
    while True:
        event = engine.next_event()
        if event is None:
            return out
        out.append(event)


def _engine_after_hello(peer, **kwargs):
    engine = make_engine(3, **kwargs)
    engine.start(0.0)
    _sent(engine)
    engine.receive_datagram(peer.packet(peer.hello_raw), 0.01)
    return engine


def _error_codes(sent):
    return [m.code for m in sent if isinstance(m, messages.Error)]


def test_responder_full_handshake_with_fake_peer():
    peer = FakePeer()
    engine = _engine_after_hello(peer, prefs=Preferences(key_agreements=["DH3k"]))
    sent = _sent(engine)
    assert [m.TYPE for m in sent].count(b"HelloACK") == 1
    # our Commit went out too (we got no HelloACK yet, so not necessarily); send the peer's Commit.
    engine.receive_datagram(peer.packet(peer.commit_for(engine._hello_raw)), 0.02)
    dhpart1 = [m for m in _sent(engine) if isinstance(m, messages.DHPart)][0]
    assert dhpart1.part == 1 and len(dhpart1.pv) == 384
    engine.receive_datagram(peer.packet(peer.dhpart2_raw), 0.03)
    confirm1 = [m for m in _sent(engine) if isinstance(m, messages.Confirm)][0]
    assert confirm1.part == 1


def test_bad_hvi_gets_error_0x62():
    peer = FakePeer()
    engine = _engine_after_hello(peer)
    engine.receive_datagram(peer.packet(peer.commit_for(engine._hello_raw, hvi=b"\x01" * 32)), 0.02)
    _sent(engine)
    engine.receive_datagram(peer.packet(peer.dhpart2_raw), 0.03)
    assert _error_codes(_sent(engine)) == [messages.ERROR_BAD_HVI]
    failed = [e for e in _events(engine) if isinstance(e, Failed)]
    assert failed and failed[0].code == 0x62 and failed[0].kind == events.AUTHENTICATION


@pytest.mark.parametrize("bad", ["one", "p-1", "zero"])
def test_dh_public_value_1_and_p_minus_1_rejected(bad):
    prime = keyagreement.dh_prime("DH3k")
    value = {"one": 1, "p-1": prime - 1, "zero": 0}[bad]
    peer = FakePeer()
    engine = _engine_after_hello(peer)
    # The hvi covers the bad DHPart2, so the hvi check passes and the value check must catch it.
    engine.receive_datagram(
        peer.packet(peer.commit_for(engine._hello_raw, dhpart2_pv=value.to_bytes(384, "big"))), 0.02
    )
    _sent(engine)
    engine.receive_datagram(peer.packet(peer.dhpart2_raw), 0.03)
    assert _error_codes(_sent(engine)) == [messages.ERROR_BAD_PV]


@pytest.mark.parametrize(
    "ka,pv",
    [
        ("X255", bytes(32)),
        ("X255", b"\x01" + bytes(31)),
        ("EC25", b"\x01" * 64),
        ("EC25", bytes(64)),
        ("X448", bytes(56)),
    ],
)
def test_bad_ecdh_values_rejected(ka, pv):
    peer = FakePeer(key_agreement=ka)
    engine = _engine_after_hello(peer, prefs=Preferences(key_agreements=[ka]))
    engine.receive_datagram(peer.packet(peer.commit_for(engine._hello_raw, dhpart2_pv=pv)), 0.02)
    _sent(engine)
    engine.receive_datagram(peer.packet(peer.dhpart2_raw), 0.03)
    assert _error_codes(_sent(engine)) == [messages.ERROR_BAD_PV]


def test_commit_with_bad_chain_preimage_is_discarded():
    peer = FakePeer()
    engine = _engine_after_hello(peer)
    _sent(engine)
    forged = messages.Commit(b"\x02" * 32, peer.zid, "S256", "AES1", "HS80", "DH3k", "B32", hvi=b"h" * 32)
    engine.receive_datagram(peer.packet(forged.encode(peer.h1)), 0.02)
    assert not [m for m in _sent(engine) if isinstance(m, messages.DHPart)]
    assert engine.state == "Discovery"


def test_hello_with_bad_mac_is_caught_at_commit():
    peer = FakePeer()
    bad_hello = peer.hello_raw[:-1] + bytes([peer.hello_raw[-1] ^ 1])
    engine = make_engine(3)
    engine.start(0.0)
    engine.receive_datagram(peer.packet(bad_hello), 0.01)
    _sent(engine)
    engine.receive_datagram(peer.packet(peer.commit_for(engine._hello_raw)), 0.02)
    assert not [m for m in _sent(engine) if isinstance(m, messages.DHPart)]


def test_commit_with_bad_mac_is_caught_at_dhpart2():
    peer = FakePeer()
    engine = _engine_after_hello(peer)
    commit = peer.commit_for(engine._hello_raw)
    commit = commit[:-1] + bytes([commit[-1] ^ 1])
    engine.receive_datagram(peer.packet(commit), 0.02)
    _sent(engine)
    engine.receive_datagram(peer.packet(peer.dhpart2_raw), 0.03)
    assert not [m for m in _sent(engine) if isinstance(m, messages.Confirm)]


def test_bad_crc_is_dropped():
    peer = FakePeer()
    engine = make_engine(3)
    engine.start(0.0)
    _sent(engine)
    packet = peer.packet(peer.hello_raw)
    engine.receive_datagram(packet[:-4] + b"\x00\x00\x00\x00", 0.01)
    assert _sent(engine) == [] and engine._peer_hello is None


def test_truncated_and_oversized_packets_are_dropped():
    peer = FakePeer()
    engine = make_engine(3)
    engine.start(0.0)
    _sent(engine)
    raw = peer.hello_raw
    for packet in (
        peer.packet(raw)[:30],
        peer.packet(raw[:-4]),
        messages.encode_packet(1, 2, raw + bytes(3000)),
        b"",
        b"\x10",
    ):
        engine.receive_datagram(packet, 0.01)
    assert _sent(engine) == [] and engine.state == "Discovery"


def test_mult_and_prsh_commit_get_error_0x56():
    peer = FakePeer()
    engine = _engine_after_hello(peer)
    engine.receive_datagram(peer.packet(peer.commit_for(engine._hello_raw, key_agreement="Mult")), 0.02)
    assert _error_codes(_sent(engine)) == [messages.ERROR_NO_SHARED_SECRET]


def test_unsupported_key_agreement_gets_error_0x53():
    peer = FakePeer(key_agreement="X448")
    engine = _engine_after_hello(peer, prefs=Preferences(key_agreements=["X255"]))
    engine.receive_datagram(peer.packet(peer.commit_for(engine._hello_raw)), 0.02)
    assert messages.ERROR_KEY_AGREEMENT_UNSUPPORTED in _error_codes(_sent(engine))
    assert [e.kind for e in _events(engine) if isinstance(e, Failed)] == [events.NO_COMMON_ALGORITHM]


def test_old_version_gets_error_0x30_and_newer_is_ignored_and_1_1x_accepted():
    engine = _engine_after_hello(FakePeer(version="1.00"))
    assert _error_codes(_sent(engine)) == [messages.ERROR_VERSION]
    engine = _engine_after_hello(FakePeer(version="1.20"))
    assert _sent(engine) == [] and engine.state == "Discovery"
    engine = _engine_after_hello(FakePeer(version="1.11"))
    assert [m.TYPE for m in _sent(engine)] == [b"HelloACK"]


def test_equal_zid_hello_gets_error_0x90():
    engine = make_engine(3)
    peer = FakePeer(zid=engine.zid)
    engine.start(0.0)
    _sent(engine)
    engine.receive_datagram(peer.packet(peer.hello_raw), 0.01)
    assert _error_codes(_sent(engine)) == [messages.ERROR_EQUAL_ZID]
    assert [e.kind for e in _events(engine) if isinstance(e, Failed)] == [events.PROTOCOL]


def test_zrtp_hash_mismatch_raises_alarm_and_match_does_not():
    peer = FakePeer()
    good = "1.10 " + kdf.implicit_hash(peer.hello_raw).hex()
    engine = _engine_after_hello(peer, peer_hello_hash=good)
    assert not [e for e in _events(engine) if isinstance(e, Alarm)]
    engine = _engine_after_hello(peer, peer_hello_hash="1.10 " + "00" * 32)
    assert [e.kind for e in _events(engine) if isinstance(e, Alarm)] == [events.ZRTP_HASH_MISMATCH]
    # The SDP answer may come after the Hello.
    engine = _engine_after_hello(peer)
    engine.set_peer_hello_hash("1.10 " + "11" * 32)
    assert [e.kind for e in _events(engine) if isinstance(e, Alarm)] == [events.ZRTP_HASH_MISMATCH]
    engine = _engine_after_hello(peer)
    engine.set_peer_hello_hash("1.10 zz")
    assert [e.kind for e in _events(engine) if isinstance(e, Alarm)] == [events.ZRTP_HASH_MISMATCH]


def test_ping_answered_with_pingack():
    engine = make_engine(3)
    engine.start(0.0)
    _sent(engine)
    engine.receive_datagram(messages.encode_packet(1, 0x55, messages.Ping("1.10", b"e" * 8).encode()), 0.1)
    (ack,) = _sent(engine)
    assert isinstance(ack, messages.PingACK) and ack.received_hash == b"e" * 8 and ack.ssrc == 0x55


def test_error_received_is_acked_and_fails():
    engine = make_engine(3)
    engine.start(0.0)
    _sent(engine)
    engine.receive_datagram(messages.encode_packet(1, 2, messages.Error(0x40).encode()), 0.1)
    assert [m.TYPE for m in _sent(engine)] == [b"ErrorACK"]
    failed = [e for e in _events(engine) if isinstance(e, Failed)]
    assert failed and failed[0].code == 0x40 and failed[0].kind == events.PEER_ERROR


def test_error_in_secure_state_is_acked_and_ignored():
    # An Error carries no MAC: obeying it in Secure would let anyone on the path undo a secure call.
    a, b = _secure_pair()
    a.engine.receive_datagram(messages.encode_packet(9, 2, messages.Error(0x70).encode()), 5.0)
    assert [m.TYPE for m in _sent(a.engine)] == [b"ErrorACK"]
    assert not [e for e in _events(a.engine) if isinstance(e, (Failed, Alarm))]
    assert a.engine.state == "Secure"


def _secure_pair():
    a, b = pair(seed=70)
    run(a, b)
    assert a.secure() and b.secure()
    return a, b


def _peer_mackey(side):
    return side.engine._peer_mackey


def test_goclear_is_never_obeyed():
    a, b = _secure_pair()
    # b's mackey is what a holds as the peer's key: a GoClear made with it is authentic.
    clear_mac = kdf.zrtp_mac("S256", _peer_mackey(a), b"GoClear ")[:8]
    a.engine.receive_datagram(messages.encode_packet(9, 2, messages.GoClear(clear_mac).encode()), 5.0)
    sent = _sent(a.engine)
    assert _error_codes(sent) == [messages.ERROR_GOCLEAR_NOT_ALLOWED]
    assert not any(m.TYPE == b"ClearACK" for m in sent)
    assert [e.kind for e in _events(a.engine) if isinstance(e, Alarm)] == [events.GOCLEAR]
    assert a.engine.state == "Secure"


def test_forged_goclear_and_sasrelay_are_dropped():
    a, b = _secure_pair()
    a.engine.receive_datagram(messages.encode_packet(9, 2, messages.GoClear(b"c" * 8).encode()), 5.0)
    relay = messages.SASrelay(b"m" * 8, b"i" * 16, b"e" * 40)
    a.engine.receive_datagram(messages.encode_packet(9, 2, relay.encode()), 5.0)
    assert _sent(a.engine) == [] and not [e for e in _events(a.engine) if isinstance(e, Alarm)]
    assert a.engine.state == "Secure"


def test_sasrelay_from_unknown_mitm_refused():
    a, b = _secure_pair()
    encrypted = b"e" * 40
    mac = kdf.zrtp_mac("S256", _peer_mackey(a), encrypted)[:8]
    a.engine.receive_datagram(messages.encode_packet(9, 2, messages.SASrelay(mac, b"i" * 16, encrypted).encode()), 5.0)
    assert _error_codes(_sent(a.engine)) == [messages.ERROR_UNTRUSTED_MITM]
    assert [e.kind for e in _events(a.engine) if isinstance(e, Alarm)] == [events.UNTRUSTED_MITM]


def test_bad_confirm_mac_gets_error_0x70():
    corrupted = []

    class Tamper(FakeNetwork):
        def send(self, now, sender, receiver, packet):
            if packet[16:24] == b"Confirm1" and not corrupted:
                raw = bytearray(messages.decode_packet(packet)[2])
                raw[-1] ^= 1  # inside the encrypted part, so the confirm_mac no longer holds
                packet = messages.encode_packet(1, 2, bytes(raw))
                corrupted.append(True)
            FakeNetwork.send(self, now, sender, receiver, packet)

    a, b = pair(seed=80)
    run(a, b, Tamper())
    assert corrupted
    codes = [e.code for side in (a, b) for e in side.failed()]
    assert messages.ERROR_BAD_CONFIRM_MAC in codes
    assert not a.secure() and not b.secure()


def test_retransmitted_messages_are_answered_again():
    # Drop the first Conf2ACK: the initiator retransmits Confirm2 and the secure responder re-acks.
    dropped = []

    def drop(sender, packet):
        if packet[16:24] == b"Conf2ACK" and not dropped:
            dropped.append(True)
            return True
        return False

    a, b = pair(seed=90)
    run(a, b, FakeNetwork(drop=drop))
    assert dropped and a.secure() and b.secure()
    assert isinstance(a.secure()[0], Secure)


def test_hello_before_start_is_kept_and_acked_on_start():
    peer = FakePeer()
    engine = make_engine(3)
    engine.receive_datagram(peer.packet(peer.hello_raw), 0.0)
    assert _sent(engine) == [] and engine.state == "Idle"
    engine.start(0.1)
    assert [m.TYPE for m in _sent(engine)] == [b"Hello   ", b"HelloACK"]
    # The peer's HelloACK now lets us commit at once.
    engine.receive_datagram(peer.packet(messages.Bare(b"HelloACK").encode()), 0.11)
    assert [m.TYPE for m in _sent(engine)] == [b"Commit  "]


def test_nothing_is_sent_before_start():
    engine = make_engine(3)
    for raw in (
        FakePeer(version="1.00").hello_raw,
        FakePeer(zid=engine.zid).hello_raw,
        messages.Error(0x20).encode(),
        messages.Ping("1.10", b"e" * 8).encode(),
        messages.Commit(b"2" * 32, b"P" * 12, "S256", "AES1", "HS80", "DH3k", "B32", hvi=b"h" * 32).encode(b"1" * 32),
    ):
        engine.receive_datagram(messages.encode_packet(1, 2, raw), 0.0)
    assert _sent(engine) == [] and engine.state == "Idle" and _events(engine) == []


def test_gnu_zrtp_spelling_e255_is_accepted_and_echoed():
    # GNU ZRTP calls Curve25519 "E255", bzrtp "X255": we answer either, in the peer's spelling.
    peer = FakePeer(key_agreement="E255")
    engine = _engine_after_hello(peer, prefs=Preferences(key_agreements=["X255"]))
    _sent(engine)
    engine.receive_datagram(peer.packet(messages.Bare(b"HelloACK").encode()), 0.02)
    (commit,) = [m for m in _sent(engine) if isinstance(m, messages.Commit)]
    assert commit.key_agreement == "E255"
    responder = _engine_after_hello(FakePeer(seed=8, key_agreement="E255"), prefs=Preferences(key_agreements=["X255"]))
    peer2 = FakePeer(seed=8, key_agreement="E255")
    responder.receive_datagram(peer2.packet(peer2.commit_for(responder._hello_raw)), 0.02)
    (dhpart1,) = [m for m in _sent(responder) if isinstance(m, messages.DHPart)]
    assert len(dhpart1.pv) == 32
    responder.receive_datagram(peer2.packet(peer2.dhpart2_raw), 0.03)
    assert [m for m in _sent(responder) if isinstance(m, messages.Confirm)]


@pytest.mark.parametrize(
    "prefs,algorithms,code",
    [
        ({"hashes": ["S256"]}, {"hash": "S384"}, messages.ERROR_HASH_UNSUPPORTED),
        ({"hashes": ["S256"]}, {"hash": "N256"}, messages.ERROR_HASH_UNSUPPORTED),
        ({"ciphers": ["AES1"]}, {"cipher": "AES3"}, messages.ERROR_CIPHER_UNSUPPORTED),
        ({}, {"auth_tag": "SK32"}, messages.ERROR_AUTH_TAG_UNSUPPORTED),
        ({"sas_types": ["B32"]}, {"sas": "B256"}, messages.ERROR_SAS_UNSUPPORTED),
    ],
)
def test_commit_with_unoffered_algorithm_gets_its_error(prefs, algorithms, code):
    peer = FakePeer()
    engine = _engine_after_hello(peer, prefs=Preferences(**prefs))
    engine.receive_datagram(peer.packet(peer.commit_for(engine._hello_raw, algorithms=algorithms)), 0.02)
    assert _error_codes(_sent(engine)) == [code]
    assert [e.code for e in _events(engine) if isinstance(e, Failed)] == [code]


def test_commit_zid_differing_from_hello_gets_error_0x40():
    peer = FakePeer()
    engine = _engine_after_hello(peer)
    engine.receive_datagram(peer.packet(peer.commit_for(engine._hello_raw, zid=b"Q" * 12)), 0.02)
    assert _error_codes(_sent(engine)) == [messages.ERROR_HELLO_MISMATCH]


def test_dhpart_with_wrong_pv_length_gets_error_0x10():
    peer = FakePeer()
    engine = _engine_after_hello(peer)
    engine.receive_datagram(peer.packet(peer.commit_for(engine._hello_raw, dhpart2_pv=b"\x05" * 256)), 0.02)
    _sent(engine)
    engine.receive_datagram(peer.packet(peer.dhpart2_raw), 0.03)
    assert _error_codes(_sent(engine)) == [messages.ERROR_MALFORMED]


def test_error_is_retransmitted_until_error_ack():
    peer = FakePeer()
    engine = _engine_after_hello(peer)
    engine.receive_datagram(peer.packet(peer.commit_for(engine._hello_raw, key_agreement="Mult")), 0.02)
    assert _error_codes(_sent(engine)) == [messages.ERROR_NO_SHARED_SECRET]
    deadline = engine.get_timer()
    assert abs(deadline - (0.02 + 0.15)) < 1e-9
    engine.handle_timer(deadline)
    assert _error_codes(_sent(engine)) == [messages.ERROR_NO_SHARED_SECRET]
    engine.receive_datagram(peer.packet(messages.Bare(b"ErrorACK").encode()), deadline + 0.01)
    assert engine.get_timer() is None
