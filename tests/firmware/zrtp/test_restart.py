"""ZRTP restart and re-keying on an established stream (issue 12; RFC 6189 §4.6.1.1 for the secrets).

The peer restarts the way GNU ZRTP does after hold/retrieve: a fresh ZRTP session (new hash chain, new
Hello, same ZID and cache) on a stream our engine already secured. Fake clock, fake network.
"""

import pytest

from firmware.zrtp import events, messages
from firmware.zrtp.cache import ZrtpCache
from firmware.zrtp.engine import ReceiveKeys
from tests.firmware.zrtp.pair import FakeNetwork, Side, make_engine, pair, run, run_restart, seeded_rng


def _type(packet):
    return packet[16:24]


def _first_call(seed=20, confirm=False, **kwargs):
    cache_a, cache_b = ZrtpCache.create(seeded_rng(1)), ZrtpCache.create(seeded_rng(2))
    a, b = pair(seed=seed, cache_a=cache_a, cache_b=cache_b, **kwargs)
    run(a, b)
    assert len(a.secure()) == 1 and len(b.secure()) == 1
    if confirm:
        for side in (a, b):
            side.engine.confirm_sas(1.0)
            side.drain()
    return a, b


def _restarted(side, seed, **kwargs):
    """The peer's fresh ZRTP session on the same stream: same cache (so same ZID), new engine."""
    return Side(side.name, make_engine(seed, cache=side.engine.cache, **kwargs))


def _assert_new_keys(kept, fresh, old):
    new = kept.secure()[-1]
    other = fresh.secure()[-1]
    assert new.rekey and new.exchange == 2 and kept.engine.exchange == 2
    assert not other.rekey and other.exchange == 1
    assert new.sas == other.sas
    assert new.send_key == other.receive_key and new.receive_key == other.send_key
    assert new.send_salt == other.receive_salt
    assert new.send_key != old.send_key and new.receive_key != old.receive_key
    assert not kept.failed() and not [e for e in kept.alarms()]
    return new


@pytest.mark.parametrize("restarting", ["a", "b"])
def test_restart_by_either_side_rekeys_and_keeps_verified(restarting):
    a, b = _first_call(confirm=True)
    old = {"a": a.secure()[0], "b": b.secure()[0]}
    if restarting == "b":
        b = _restarted(b, 91)
        run_restart(a, b, started=("a",))
        new = _assert_new_keys(a, b, old["a"])
    else:
        a = _restarted(a, 92)
        run_restart(a, b, started=("b",))
        new = _assert_new_keys(b, a, old["b"])
    # §4.6.1.1: rs1 from the first exchange matched, both V flags are set: the new SAS is verified.
    assert new.verified and not new.cache_mismatch
    assert a.secure()[-1].verified and b.secure()[-1].verified


def test_restart_without_confirmation_is_not_verified_and_rotates_the_secrets():
    a, b = _first_call()
    rs_first = a.engine.cache.get(b.engine.zid).rs1
    b = _restarted(b, 93)
    run_restart(a, b)
    new = a.secure()[-1]
    assert new.rekey and not new.verified and not new.cache_mismatch
    record = a.engine.cache.get(b.engine.zid)
    # §4.6.1: rs2 = the first exchange's secret, rs1 = the new one, and the peer agrees.
    assert record.rs2 == rs_first and record.rs1 != rs_first
    assert b.engine.cache.get(a.engine.zid).rs1 == record.rs1
    assert len(a.cache_updates()) == 2  # one per exchange
    # Confirming now applies to the exchange on display (the re-key) and marks the peer verified.
    a.engine.confirm_sas(20.0)
    assert a.engine.cache.get(b.engine.zid).verified


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_restart_completes_over_a_lossy_network(seed):
    a, b = _first_call(seed=30 + seed)
    old = a.secure()[0]
    b = _restarted(b, 100 + seed)
    network = FakeNetwork(seed=seed, loss=0.25, reorder=0.1, duplicate=0.1, jitter=0.02)
    run_restart(a, b, network, until=60.0)
    _assert_new_keys(a, b, old)


def test_initiator_gets_receive_keys_when_it_sends_confirm2():
    a, b = _first_call()
    b = _restarted(b, 94)
    run_restart(a, b)
    for side in (a, b):
        secure = side.secure()[-1]
        keys = [e for e in side.events if isinstance(e, ReceiveKeys)]
        if secure.role == "initiator":
            last = keys[-1]
            assert (last.receive_key, last.receive_salt) == (secure.receive_key, secure.receive_salt)
            assert side.events.index(last) < side.events.index(secure)
            assert last.rekey == secure.rekey
        else:
            assert len(keys) == len([e for e in side.secure() if e.role == "initiator"])


def test_failed_restart_keeps_the_old_keys_and_alarms():
    a, b = _first_call()
    before = a.secure()[0]
    b = _restarted(b, 95)
    # The restarting peer's Hello gets through, then it goes silent (or was a spoofed Hello).
    sent = []

    def drop(sender, packet):
        if sender != "b":
            return False
        sent.append(packet)
        return len(sent) > 1

    run_restart(a, b, FakeNetwork(drop=drop), until=60.0)
    assert a.engine.state == "Secure" and not a.failed()
    assert [e.kind for e in a.alarms()] == [events.REKEY_FAILED]
    assert len(a.secure()) == 1 and a.engine._secure_event is before
    # GoClear is still authenticated with the kept exchange's key, and a later restart still works.
    b2 = _restarted(b, 96)
    run_restart(a, b2, start=70.0, until=100.0)
    assert a.secure()[-1].rekey and a.secure()[-1].sas == b2.secure()[-1].sas


def test_a_late_copy_of_the_completed_hello_is_no_restart():
    a, b = _first_call()
    old_hello = [p for _, p in b.sent if _type(p) == b"Hello   "][0]
    a.engine.receive_datagram(old_hello, 20.0)
    a.drain()
    assert a.engine.state == "Secure" and a.engine.datagrams_to_send(20.0) == []
    # Nor is an old Hello after a re-key.
    b2 = _restarted(b, 97)
    run_restart(a, b2)
    a.engine.receive_datagram(old_hello, 40.0)
    a.engine.receive_datagram([p for _, p in b2.sent if _type(p) == b"Hello   "][0], 40.0)
    assert a.engine.state == "Secure" and a.engine.datagrams_to_send(40.0) == []


def test_unresolved_cache_mismatch_is_not_alarmed_again_by_a_rekey():
    a, b = _first_call(confirm=True)
    # A second call where b's secrets are broken: mismatch, update held back (§4.6.1.1).
    record = b.engine.cache.get(a.engine.zid)
    record.rs1, record.rs2 = b"\x01" * 32, b"\x02" * 32
    held_rs = a.engine.cache.get(b.engine.zid).rs1
    a2, b2 = Side("a", make_engine(40, cache=a.engine.cache)), Side("b", make_engine(41, cache=b.engine.cache))
    run(a2, b2)
    assert a2.secure()[0].cache_mismatch and [e.kind for e in a2.alarms()] == [events.CACHE_MISMATCH]
    b3 = _restarted(b2, 42)
    run_restart(a2, b3, start=20.0, until=60.0)
    new = a2.secure()[-1]
    assert new.rekey and new.cache_mismatch and not new.verified
    assert [e.kind for e in a2.alarms()] == [events.CACHE_MISMATCH]  # still only the one
    assert a2.engine.cache.get(b2.engine.zid).rs1 == held_rs  # still held back
    a2.engine.confirm_sas(61.0)
    record = a2.engine.cache.get(b2.engine.zid)
    assert record.verified and record.rs1 not in (held_rs, None)


def test_restart_hello_is_checked_against_a_new_sdp_zrtp_hash():
    a, b = _first_call()
    a.engine.set_peer_hello_hash(b.engine.hello_hash())  # the first answer's a=zrtp-hash (consumed)
    a.drain()
    assert not a.alarms()
    b2 = _restarted(b, 98)
    # A re-INVITE repeats the old a=zrtp-hash: ignored. A new, wrong one: alarm.
    a.engine.set_peer_hello_hash(b.engine.hello_hash())
    run_restart(a, b2)
    assert a.secure()[-1].rekey and not a.alarms()
    a.engine.set_peer_hello_hash("1.10 " + "ab" * 32)
    a.drain()
    assert [e.kind for e in a.alarms()] == [events.ZRTP_HASH_MISMATCH]


def test_goclear_after_a_rekey_is_authenticated_with_the_new_keys():
    from firmware.zrtp import kdf

    a, b = _first_call()
    b2 = _restarted(b, 99)
    run_restart(a, b2)
    clear_mac = kdf.zrtp_mac("S256", a.engine._peer_mackey, b"GoClear ")[:8]
    a.engine.receive_datagram(messages.encode_packet(9, 2, messages.GoClear(clear_mac).encode()), 50.0)
    a.drain()
    assert [e.kind for e in a.alarms()] == [events.GOCLEAR]
