"""A UDP man in the middle between two real `sotto` processes (issue 11): a relay on the media path (and one
in front of the answerer's SIP port) that terminates ZRTP itself, rewrites a=zrtp-hash in the SDP, or
tampers with ZRTP messages in flight (re-computing the packet CRC so the tampering reaches the protocol
checks instead of being dropped as damage). Every attack must be caught: an alarm in the summaries, SAS
that differ, or a call that never becomes secure. None may end with two secure ends that agree.
"""

import re

import pytest

from firmware.zrtp.cache import ZrtpCache
from firmware.zrtp.keyagreement import dh_prime
from tests.hostile import totals
from tests.hostile.calls import Ports, relayed_call
from tests.hostile.relay import ZrtpMitm, fix_zrtp_crc, with_content_length, zrtp_message_type

pytestmark = pytest.mark.interop

HASH_ALARM = "does not match its SDP a=zrtp-hash"
CAUGHT = {}  # attack -> how it was caught, for the totals


def _record(attack, how):
    CAUGHT[attack] = how
    totals.record("mitm: " + attack, caught=how)


def _alarms(summary):
    return summary.get("alarms") or []


def _rewrite_zrtp_hash(change):
    """A SIP rewrite that applies `change(match) -> bytes` to every a=zrtp-hash line, both ways."""

    def rewrite(direction, data):
        if b"a=zrtp-hash:" not in data:
            return data
        return with_content_length(re.sub(rb"a=zrtp-hash:[^\r\n]*\r\n", change, data))

    return rewrite


STRIP = _rewrite_zrtp_hash(lambda match: b"")


def _flip_hash(match):
    line = bytearray(match.group(0))
    at = line.index(b"1.10 ") + 5  # first hex digit of the hash
    line[at] = ord("0") if line[at] != ord("0") else ord("1")
    return bytes(line)


def _zid(path):
    return ZrtpCache.parse(path.read_bytes()).zid


def _verified_first_call(tmp_path, ports):
    """A clean call through the (transparent) relays in which both users confirm the SAS."""
    (rc_a, alice, err_a), (rc_b, bob, err_b), _ = relayed_call(
        tmp_path, ports=ports, caller_args=["--confirm-sas"], answer_args=["--confirm-sas"], duration=1
    )
    assert rc_a == 0 and rc_b == 0, err_a[-2000:] + err_b[-2000:]
    assert alice["secure"] and bob["secure"] and alice["sas"] == bob["sas"]
    assert _alarms(alice) == [] and _alarms(bob) == []


def test_a_relay_that_terminates_zrtp_is_caught_by_the_zrtp_hash_binding(tmp_path):
    mitm = ZrtpMitm()
    (rc_a, alice, err_a), (rc_b, bob, err_b), _ = relayed_call(tmp_path, mitm=mitm, duration=2, timeout=30)
    assert mitm.secure("a") and mitm.secure("b"), mitm.events  # the attack really ran: ZRTP with each end
    assert any(HASH_ALARM in alarm for alarm in _alarms(alice)), alice
    assert any(HASH_ALARM in alarm for alarm in _alarms(bob)), bob
    assert alice["sas"] != bob["sas"]  # and the users, reading their SAS to each other, would hear it
    _record("ZRTP terminated by the relay, SDP intact", "a=zrtp-hash alarm at both ends, SAS differ")


def test_an_altered_zrtp_hash_in_the_sdp_is_an_alarm(tmp_path):
    (rc_a, alice, err_a), (rc_b, bob, err_b), _ = relayed_call(
        tmp_path, sip_rewrite=_rewrite_zrtp_hash(_flip_hash), duration=2, timeout=30
    )
    assert any(HASH_ALARM in alarm for alarm in _alarms(alice)), alice  # its answer was altered
    assert any(HASH_ALARM in alarm for alarm in _alarms(bob)), bob  # its offer was altered
    _record("a=zrtp-hash altered in offer and answer", "a=zrtp-hash alarm at both ends")


def test_a_removed_zrtp_hash_alone_changes_nothing_the_keys_are_end_to_end(tmp_path):
    """RFC 6189 §8.1: a=zrtp-hash is optional, so its absence is not an alarm by itself. Without a relay
    that also terminates ZRTP the keys stay end to end: the same SAS at both ends (the next test strips
    the binding AND terminates ZRTP: the cache catches that)."""
    (rc_a, alice, err_a), (rc_b, bob, err_b), _ = relayed_call(tmp_path, sip_rewrite=STRIP, duration=2)
    assert rc_a == 0 and rc_b == 0
    assert alice["secure"] and bob["secure"] and alice["sas"] == bob["sas"]


def test_a_relay_that_strips_the_binding_and_impersonates_both_zids_is_caught_by_the_cache(tmp_path):
    ports = Ports()
    _verified_first_call(tmp_path, ports)
    mitm = ZrtpMitm(zid_towards_a=_zid(tmp_path / "bob.cache"), zid_towards_b=_zid(tmp_path / "alice.cache"))
    (rc_a, alice, err_a), (rc_b, bob, err_b), _ = relayed_call(
        tmp_path, ports=ports, mitm=mitm, sip_rewrite=STRIP, duration=2, timeout=30
    )
    assert mitm.secure("a") and mitm.secure("b"), mitm.events
    for summary in (alice, bob):
        assert summary["zrtp"]["cache_mismatch"] is True, summary
        assert summary["zrtp"]["verified"] is False
        assert any("cache mismatch" in alarm for alarm in _alarms(summary)), summary
    assert alice["sas"] != bob["sas"]
    _record("binding stripped, both ZIDs impersonated", "cache mismatch at both ends, verified cleared")


ZRTP_TAMPERS = ("Hello", "Commit", "DHPart1", "DHPart2", "Confirm1", "Confirm2")


@pytest.mark.parametrize("message", ZRTP_TAMPERS)
def test_each_zrtp_message_tampered_in_flight_fails_closed(tmp_path, message):
    tampered = []

    def tamper(direction, data):
        kind = zrtp_message_type(data)
        if kind is None or kind.strip() != message:
            return [data]
        flipped = bytearray(data)
        # 24 bytes into the message body: Hello's H3, Commit's H2, DHPart's H1, Confirm's encrypted part.
        flipped[12 + 12 + 24] ^= 0x01
        tampered.append(direction)
        return [fix_zrtp_crc(bytes(flipped))]

    (rc_a, alice, err_a), (rc_b, bob, err_b), _ = relayed_call(tmp_path, tamper, duration=2, timeout=30)
    assert tampered, "no {} crossed the relay".format(message)
    for summary in (alice, bob):
        assert summary["secure"] is False, (message, summary)
        assert _alarms(summary), summary  # "not secure: ..." / "ZRTP failed: ..." is reported
    _record("{} tampered ({}x)".format(message, len(tampered)), "not secure at either end")


@pytest.mark.parametrize("value", ["0", "1", "p-1"])
def test_a_dh3k_public_value_of_0_1_or_p_minus_1_fails_closed(tmp_path, value):
    """RFC 6189 §4.4.1.1: a DH public value of 0, 1 or p-1 must be refused (Error 0x61)."""
    prime = dh_prime("DH3k")
    pv = {"0": 0, "1": 1, "p-1": prime - 1}[value].to_bytes(384, "big")
    tampered = []

    def tamper(direction, data):
        kind = zrtp_message_type(data)
        if kind is None or not kind.startswith("DHPart"):
            return [data]
        # header 12, message head 12, H1 32, four secret IDs 32, then pv (384 bytes for DH3k), MAC 8, CRC 4
        assert len(data) == 12 + 12 + 64 + 384 + 8 + 4, len(data)
        tampered.append(kind.strip())
        return [fix_zrtp_crc(data[:88] + pv + data[88 + 384 :])]

    args = ["--zrtp-key-agreements", "DH3k"]
    (rc_a, alice, err_a), (rc_b, bob, err_b), _ = relayed_call(
        tmp_path, tamper, caller_args=args, answer_args=args, duration=2, timeout=30
    )
    assert tampered
    for summary in (alice, bob):
        assert summary["secure"] is False, summary
    reports = " ".join(_alarms(alice) + _alarms(bob))
    assert "0x61" in reports or "DH" in reports, reports
    _record("DH3k public value {} in {}".format(value, "/".join(sorted(set(tampered)))), "not secure, DH error")


def test_a_verified_contact_with_a_new_zid_is_a_new_key_alarm(tmp_path):
    """Address-book continuity: Bob was verified; a relay strips the a=zrtp-hash binding and presents a
    fresh ZID of its own in Bob's name (no cache entry to mismatch). Alice's summary must hold the
    "new key for a verified contact" alarm."""
    ports = Ports()
    _verified_first_call(tmp_path, ports)
    mitm = ZrtpMitm()  # fresh random ZIDs towards both ends
    (rc_a, alice, err_a), (rc_b, bob, err_b), _ = relayed_call(
        tmp_path, ports=ports, mitm=mitm, sip_rewrite=STRIP, duration=2, timeout=30
    )
    assert mitm.secure("a") and mitm.secure("b"), mitm.events
    assert any(alarm.startswith("new key for a verified contact") for alarm in _alarms(alice)), alice
    assert alice["zrtp"]["verified"] is False and alice["sas"] != bob["sas"]
    how = "new key for a verified contact at Alice"
    if any(alarm.startswith("new key for a verified contact") for alarm in _alarms(bob)):
        how += " and at Bob"
    _record("binding stripped, fresh ZID for a verified contact", how)
