"""A carrier that moves a call's media mid-call: the first re-INVITE is anchored on a second rtpengine
(127.0.0.2, other ports) and the first one forgets the call at once (tests/interop/carrier/stack.py,
reanchor=True). Sotto must follow the new address in the re-INVITE: after the move the audio keeps
flowing both ways, through the second relay only, still under the keys ZRTP agreed before the move.

linphone (registered as bob) holds and resumes the call, so its re-INVITEs carry the move. The new relay
forwards nothing from linphone at first (block_mover), so Sotto cannot find it by symmetric RTP latching:
it must send there because the re-INVITE said so (the relay counts its packets). Then the test lets
linphone's media through. Each side plays its own tone (Sotto 440 Hz, linphone 1000 Hz) and records what
it hears; the last seconds of both recordings, all after the move, must carry the other side's tone.

Ports: as in test_carrier.py (the carrier range 18000-18499); the second relay's media 18200-18299.
"""

import time

import pytest

from tests.interop import sotto
from tests.interop.carrier.stack import Carrier
from tests.interop.carrier.test_carrier import (
    KAMAILIO_PORT,
    LINPHONE_RTP,
    LINPHONE_SIP,
    MEDIA_PORTS,
    SOTTO_RTP,
    SOTTO_SIP,
    USERS,
    account,
    completed,
    linphone_packets_received,
    relayed_call,
)
from tests.interop.carrier.tones import tone_levels, write_tone
from tests.interop.linphone import Linphone

pytestmark = pytest.mark.interop

SOTTO_TONE, LINPHONE_TONE = 440, 1000
DURATION = 12  # seconds of call after "secure"; the move is done by about 4 s, linphone speaks again at 5.5
HOLD_AT, RESUME_AT = 2.0, 3.0  # seconds after linphone showed the SAS
AFTER_MOVE = 3.0  # the last seconds of each recording, all after the move


def linphone_tag(parties):
    return [t for t, p in parties.items() if p["media"] == "127.0.0.1:{}".format(LINPHONE_RTP)][0]


def _tail_carries(recording, frequency, other, seconds):
    """The last `seconds` (but the final 0.4 s, where the call ends) of a recording carry `frequency`, in
    every 0.2 s window, far above the `other` tone (the recorder's own, which must not come back)."""
    levels = dict(tone_levels(recording, frequency))
    others = dict(tone_levels(recording, other))
    end = max(levels) - 0.4
    windows = [t for t in levels if end - seconds <= t <= end]
    assert len(windows) >= int(seconds / 0.2) - 1, (recording, sorted(levels)[-5:])
    weak = [
        (round(t, 1), round(levels[t]), round(others[t]))
        for t in windows
        if levels[t] < 2000 or others[t] > levels[t] / 4
    ]
    assert not weak, ("no {} Hz tone after the move".format(frequency), weak)


def test_sotto_follows_the_media_to_a_new_relay_mid_call(tmp_path):
    sotto_tone = write_tone(tmp_path / "sotto-tone.wav", SOTTO_TONE, DURATION + 10)
    linphone_tone = write_tone(tmp_path / "linphone-tone.wav", LINPHONE_TONE, DURATION + 10)
    sotto_heard, linphone_heard = tmp_path / "sotto-heard.wav", tmp_path / "linphone-heard.wav"
    with (
        Carrier(tmp_path, KAMAILIO_PORT, USERS, media_ports=MEDIA_PORTS, reanchor=True, block_mover=True) as carrier,
        Linphone(tmp_path / "bob", LINPHONE_SIP, LINPHONE_RTP, user="bob", auto_answer=True) as bob,
    ):
        first, second = carrier.relays
        bob.register("bob", "bobpw", carrier.proxy)
        bob.command("play {}".format(linphone_tone))
        bob.command("record {}".format(linphone_heard))
        with sotto.running(
            ["call", "sip:bob@127.0.0.1"]
            + account(carrier, "alice", "alicepw", SOTTO_SIP, SOTTO_RTP)
            + ["--duration", str(DURATION), "--timeout", "60", "--play", str(sotto_tone), "--record", str(sotto_heard)],
            tmp_path / "alice",
        ) as process:
            token = bob.auth_token(timeout=20)
            secure = time.monotonic()
            call_id = relayed_call(first)
            before = first.parties(call_id)
            time.sleep(max(0.0, secure + HOLD_AT - time.monotonic()))
            bob.command("pause")
            bob.wait_for(r"is now paused", timeout=10)
            time.sleep(max(0.0, secure + RESUME_AT - time.monotonic()))
            console = len(bob.console())
            bob.command("resume")
            bob.wait_for(r"Media streams established", timeout=10, start=console)
            moved_at = time.monotonic() - secure
            assert first.calls() == [], "the first relay still carries the call"
            time.sleep(0.5)
            blocked_1 = second.parties(relayed_call(second))
            time.sleep(1.0)
            blocked_2 = second.parties(call_id)
            second.unblock_media(call_id, linphone_tag(blocked_2))
            time.sleep(1.0)
            after_1 = second.parties(call_id)
            time.sleep(1.0)
            after_2 = second.parties(call_id)
            summary = completed(process, carrier, timeout=60)
        linphone_received = linphone_packets_received(bob)
        exchanges = second.sdp_exchanges()
    assert moved_at < DURATION - AFTER_MOVE - 1, "the move came too late to be checked: {:.1f} s".format(moved_at)
    assert summary["result"] == "completed" and summary["secure"] is True, summary
    assert summary["sas"] == token and summary["rtp"]["auth_failures"] == 0, summary

    # The re-INVITE and its answer went through the second relay: each phone was given its address and ports.
    assert [e[0] for e in exchanges][:2] == ["offer", "answer"], exchanges
    for command, _given, returned in exchanges[:2]:
        assert "c=IN IP4 127.0.0.2" in returned and "a=zrtp-hash:" in returned, (command, returned)
    sotto_party = [p for p in after_2.values() if p["media"] == "127.0.0.1:{}".format(SOTTO_RTP)]
    linphone_party = [p for p in after_2.values() if p["media"] == "127.0.0.1:{}".format(LINPHONE_RTP)]
    assert sotto_party and linphone_party, after_2
    assert sotto_party[0]["relay_address"] == "127.0.0.2", after_2
    assert before[next(iter(before))]["relay_address"] == "127.0.0.1", before
    # While the new relay held linphone's media back, Sotto sent there (about 50 packets a second; 1 s
    # between the queries), and heard nothing (the hold-back was real); then both sent.
    bob_tag = linphone_tag(after_2)
    sotto_tag = [t for t in after_2 if t != bob_tag][0]
    assert blocked_2[sotto_tag]["from_party"] - blocked_1[sotto_tag]["from_party"] > 30, (blocked_1, blocked_2)
    growth = {tag: (after_2[tag]["from_party"] - after_1[tag]["from_party"]) for tag in after_2}
    assert all(g > 30 for g in growth.values()), (after_1, after_2)

    silent = [t for t, level in tone_levels(sotto_heard, LINPHONE_TONE) if level < 100]
    assert len(silent) >= 5, "the relay never held linphone's media back"
    _tail_carries(sotto_heard, LINPHONE_TONE, SOTTO_TONE, AFTER_MOVE)
    _tail_carries(linphone_heard, SOTTO_TONE, LINPHONE_TONE, AFTER_MOVE)
    # linphone authenticated Sotto's SRTP all along: about 50 packets a second of call.
    assert linphone_received > 40 * DURATION, linphone_received
