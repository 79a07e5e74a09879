"""Address-book continuity between two real `sotto` processes on loopback (issue 11 item 7).

Alice and Bob verify each other once (both press the trust button). Then Mallory, with a fresh ZID,
answers a call to Bob's address, and calls Bob from the same address Alice uses: each side that knew
the contact raises "new key for a verified contact" in its summary's alarms, which is not a cache
mismatch. The binding lives in the cache file, so it crosses process restarts like the retained secrets.
"""

import pytest

from firmware.zrtp.cache import ZrtpCache
from tests.interop import sotto

pytestmark = pytest.mark.interop

PREFIX = "new key for a verified contact"


def _call(tmp_path, caller_cache, answer_cache, caller_args=(), answer_args=()):
    answer_port, caller_port = sotto.free_udp_port(), sotto.free_udp_port()
    answerer = sotto.start(
        [
            "answer",
            "--listen",
            "127.0.0.1:{}".format(answer_port),
            "--timeout",
            "20",
            "--cache",
            str(tmp_path / answer_cache),
            *answer_args,
        ],
        tmp_path / "answer-home",
    )
    sotto.wait_listening(answer_port, answerer)
    caller = sotto.start(
        [
            "call",
            "sip:bob@127.0.0.1:{}".format(answer_port),
            "--listen",
            "127.0.0.1:{}".format(caller_port),
            "--timeout",
            "20",
            "--duration",
            "1",
            "--cache",
            str(tmp_path / caller_cache),
            *caller_args,
        ],
        tmp_path / "caller-home",
    )
    rc_c, caller_summary, err_c = sotto.finish(caller, 30)
    rc_a, answer_summary, err_a = sotto.finish(answerer, 30)
    assert rc_c == 0 and rc_a == 0, err_c[-2000:] + err_a[-2000:]
    for summary in (caller_summary, answer_summary):
        assert summary["secure"] is True, summary
    return caller_summary, answer_summary


def _contact_alarms(summary):
    return [alarm for alarm in summary.get("alarms", []) if alarm.startswith(PREFIX)]


def test_a_verified_contact_with_a_fresh_zid_is_a_loud_alarm_on_both_ends(tmp_path):
    alice, bob = _call(tmp_path, "alice.cache", "bob.cache", ["--confirm-sas"], ["--confirm-sas"])
    assert not _contact_alarms(alice) and not _contact_alarms(bob)
    alice_cache = ZrtpCache.parse((tmp_path / "alice.cache").read_bytes())
    bob_cache = ZrtpCache.parse((tmp_path / "bob.cache").read_bytes())
    assert alice_cache.contact_zid("sip:bob@127.0.0.1") == bob_cache.zid
    assert bob_cache.contact_zid("sip:sotto@127.0.0.1") == alice_cache.zid  # Alice's From, any port

    # Mallory (a fresh ZID) answers a call to Bob's address: Alice's summary says so.
    alice2, mallory = _call(tmp_path, "alice.cache", "mallory.cache")
    alarms = _contact_alarms(alice2)
    assert len(alarms) == 1 and "sip:bob@127.0.0.1" in alarms[0], alice2.get("alarms")
    assert alice2["zrtp"]["verified"] is False and alice2["zrtp"]["cache_mismatch"] is False
    assert alice2["zrtp"]["peer_zid"] != alice["zrtp"]["peer_zid"]
    assert not _contact_alarms(mallory)

    # Mallory calls Bob from Alice's address: Bob's summary says so.
    mallory2, bob2 = _call(tmp_path, "mallory.cache", "bob.cache")
    assert len(_contact_alarms(bob2)) == 1, bob2.get("alarms")
    assert bob2["zrtp"]["verified"] is False

    # The real Bob again: verified, no alarm; the binding was never moved by the unconfirmed calls.
    alice3, bob3 = _call(tmp_path, "alice.cache", "bob.cache")
    assert not _contact_alarms(alice3) and not _contact_alarms(bob3)
    assert alice3["zrtp"]["verified"] is True and bob3["zrtp"]["verified"] is True

    # Accepting Mallory's key deliberately (the trust button on that call) rebinds Bob's address.
    _call(tmp_path, "alice.cache", "mallory.cache", ["--confirm-sas"])
    mallory_cache = ZrtpCache.parse((tmp_path / "mallory.cache").read_bytes())
    assert (
        ZrtpCache.parse((tmp_path / "alice.cache").read_bytes()).contact_zid("sip:bob@127.0.0.1") == mallory_cache.zid
    )
    alice5, _ = _call(tmp_path, "alice.cache", "bob.cache")
    assert len(_contact_alarms(alice5)) == 1
