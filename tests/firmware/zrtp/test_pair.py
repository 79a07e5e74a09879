"""Pair tests: two ZRTP engines, a fake clock and a fake network (lossy, reordering, duplicating)."""

import itertools

import pytest

from firmware.zrtp import events, messages
from firmware.zrtp.engine import T1_MAX_RETRANSMISSIONS, T2_MAX_RETRANSMISSIONS, Preferences
from tests.firmware.zrtp.pair import FakeNetwork, pair, run


def _type(packet):
    return packet[16:24]


def _assert_agree(a, b):
    assert len(a.secure()) == 1 and len(b.secure()) == 1, (a.events, b.events)
    sa, sb = a.secure()[0], b.secure()[0]
    assert {sa.role, sb.role} == {"initiator", "responder"}
    assert sa.sas == sb.sas
    for field in ("key_agreement", "cipher", "hash", "auth_tag", "sas_type", "send_profile"):
        assert getattr(sa, field) == getattr(sb, field)
    assert sa.send_key == sb.receive_key and sa.send_salt == sb.receive_salt
    assert sa.receive_key == sb.send_key and sa.receive_salt == sb.send_salt
    assert sa.send_key != sa.receive_key
    assert sa.peer_zid == b.engine.zid.hex() and sb.peer_zid == a.engine.zid.hex()
    return sa, sb


COMBINATIONS = list(
    itertools.product(
        ["S256", "S384"],
        ["AES1", "AES3"],
        ["HS32", "HS80"],
        ["DH3k", "DH2k", "EC25", "EC38", "X255", "X448"],
        ["B32", "B256"],
    )
)


@pytest.mark.parametrize(
    "hash_name,cipher,auth_tag,key_agreement,sas_type", COMBINATIONS, ids=["-".join(c) for c in COMBINATIONS]
)
def test_every_algorithm_combination(hash_name, cipher, auth_tag, key_agreement, sas_type):
    prefs = Preferences([hash_name], [cipher], [auth_tag], [key_agreement], [sas_type])
    a, b = pair(prefs_a=prefs, prefs_b=Preferences([hash_name], [cipher], [auth_tag], [key_agreement], [sas_type]))
    run(a, b)
    sa, _ = _assert_agree(a, b)
    assert (sa.hash, sa.cipher, sa.auth_tag, sa.key_agreement, sa.sas_type) == (
        hash_name,
        cipher,
        auth_tag,
        key_agreement,
        sas_type,
    )
    key_len = 16 if cipher == "AES1" else 32
    assert len(sa.send_key) == key_len and len(sa.send_salt) == 14
    assert (
        sa.send_profile
        == {
            ("AES1", "HS80"): "AES_CM_128_HMAC_SHA1_80",
            ("AES1", "HS32"): "AES_CM_128_HMAC_SHA1_32",
            ("AES3", "HS80"): "AES_256_CM_HMAC_SHA1_80",
            ("AES3", "HS32"): "AES_256_CM_HMAC_SHA1_32",
        }[(cipher, auth_tag)]
    )
    if sas_type == "B32":
        assert len(sa.sas) == 4
    else:
        assert len(sa.sas.split(" ")) == 2


def test_faster_first_choice_rule():
    # §4.1.2: the first choices differ (DH3k vs X255) and both support both: the faster, X255, wins.
    a, b = pair(
        prefs_a=Preferences(key_agreements=["DH3k", "X255"]), prefs_b=Preferences(key_agreements=["X255", "DH3k"])
    )
    run(a, b)
    sa, _ = _assert_agree(a, b)
    assert sa.key_agreement == "X255"


def test_mandatory_algorithms_are_implicit():
    # b lists only X448 but DH3k is mandatory (§5.1), so a's DH3k-only preference still meets it.
    a, b = pair(prefs_a=Preferences(key_agreements=["DH3k"]), prefs_b=Preferences(key_agreements=["X448"]))
    run(a, b)
    sa, _ = _assert_agree(a, b)
    assert sa.key_agreement in ("DH3k", "X448")


def test_contention_both_send_commit():
    a, b = pair()
    run(a, b)
    _assert_agree(a, b)
    assert any(_type(p) == b"Commit  " for _, p in a.sent)
    assert any(_type(p) == b"Commit  " for _, p in b.sent)
    # The initiator is the one whose Commit carried the larger hvi.
    commits = {}
    for side in (a, b):
        raw = [p for _, p in side.sent if _type(p) == b"Commit  "][0]
        commits[side.name] = messages.decode_message(messages.decode_packet(raw)[2]).hvi
    winner = "a" if commits["a"] > commits["b"] else "b"
    assert {"a": a, "b": b}[winner].secure()[0].role == "initiator"


def test_late_responder_without_contention():
    # b starts late: a's Hellos are retransmitted until b answers; b's Commit may or may not race.
    a, b = pair(seed=30)
    run(a, b, start_b=0.3)
    _assert_agree(a, b)
    hellos = [t for t, p in a.sent if _type(p) == b"Hello   "]
    assert len(hellos) >= 3


@pytest.mark.parametrize("seed", range(8))
def test_lossy_reordering_duplicating_network(seed):
    a, b = pair(
        seed=100 + 2 * seed, prefs_a=Preferences(key_agreements=["X255"]), prefs_b=Preferences(key_agreements=["X255"])
    )
    network = FakeNetwork(seed=seed, loss=0.3, reorder=0.3, duplicate=0.2, jitter=0.02)
    run(a, b, network, until=60)
    _assert_agree(a, b)


def test_hello_retransmission_schedule_t1():
    a, b = pair()
    network = FakeNetwork(drop=lambda sender, packet: True)
    run(a, b, network, until=30)
    times = [t for t, p in a.sent if _type(p) == b"Hello   "]
    assert len(times) == 1 + T1_MAX_RETRANSMISSIONS
    gaps = [round(y - x, 6) for x, y in zip(times, times[1:])]
    # §6: T1 starts at 50 ms and doubles up to its 200 ms cap.
    assert gaps[:4] == [0.05, 0.1, 0.2, 0.2]
    assert max(gaps) == 0.2
    assert a.failed() and a.failed()[0].code == messages.ERROR_PROTOCOL_TIMEOUT
    assert a.failed()[0].kind == events.NO_ZRTP
    assert a.engine.get_timer() is None


def test_commit_retransmission_schedule_t2_and_timeout_error():
    a, b = pair(seed=50)
    # Everything from b except its Hello and HelloACK is lost: a's Commit is never answered.
    network = FakeNetwork(drop=lambda s, p: s == "b" and _type(p) not in (b"Hello   ", b"HelloACK"))
    run(a, b, network, until=60)
    times = [t for t, p in a.sent if _type(p) == b"Commit  "]
    assert len(times) == 1 + T2_MAX_RETRANSMISSIONS
    gaps = [round(y - x, 6) for x, y in zip(times, times[1:])]
    # §6: T2 starts at 150 ms and doubles up to its 1.2 s cap.
    assert gaps[:5] == [0.15, 0.3, 0.6, 1.2, 1.2]
    assert a.failed()[0].code == messages.ERROR_PROTOCOL_TIMEOUT and a.failed()[0].kind == events.TIMEOUT
    errors = [p for _, p in a.sent if _type(p) == b"Error   "]
    assert errors and messages.decode_message(messages.decode_packet(errors[0])[2]).code == 0xB0


def test_equal_zids_refused():
    a, b = pair()
    b.engine.zid = a.engine.zid
    b.engine.cache = None
    a.engine.cache = None
    # b's Hello must carry the same ZID: rebuild b with a's ZID.
    from firmware.zrtp.engine import ZrtpEngine
    from tests.firmware.zrtp.pair import Side, seeded_rng

    b = Side("b", ZrtpEngine(a.engine.zid, None, None, seeded_rng(99), ssrc=5))
    run(a, b)
    assert a.failed() and a.failed()[0].code == messages.ERROR_EQUAL_ZID
    assert not a.secure() and not b.secure()


@pytest.mark.parametrize(
    "prefs_a,prefs_b,expected",
    [
        ({"ciphers": ["AES1", "AES3"]}, {"ciphers": ["AES3", "AES1"]}, ("cipher", "AES3")),
        ({"hashes": ["S384", "S256"]}, {"hashes": ["S256", "S384"]}, ("hash", "S384")),
        ({"ciphers": ["AES1"]}, {"ciphers": ["AES3"]}, ("cipher", "AES1")),  # only the mandatory one in common
    ],
)
def test_choice_is_the_same_whoever_commits(prefs_a, prefs_b, expected):
    for seed in range(10, 16):
        a, b = pair(seed=seed, prefs_a=Preferences(**prefs_a), prefs_b=Preferences(**prefs_b))
        run(a, b)
        sa, _ = _assert_agree(a, b)
        assert getattr(sa, expected[0]) == expected[1]


def test_auth_tag_and_sas_follow_the_responder():
    a, b = pair(
        seed=12,
        prefs_a=Preferences(auth_tags=["HS80", "HS32"], sas_types=["B32", "B256"]),
        prefs_b=Preferences(auth_tags=["HS32", "HS80"], sas_types=["B256", "B32"]),
    )
    run(a, b)
    sa, sb = _assert_agree(a, b)
    responder = sa if sa.role == "responder" else sb
    expected = ("HS80", "B32") if responder is sa else ("HS32", "B256")
    assert (sa.auth_tag, sa.sas_type) == expected
