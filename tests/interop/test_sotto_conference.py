"""The local three-way conference against real peers (issue 15): Sotto with two linphonecs, each call keyed by
its own ZRTP exchange. Alice (linphonec) calls Sotto; Sotto answers, holds her and dials Bob (linphonec,
auto-answer) from the keypad (hold, then dial), then joins both calls. Each party plays its own tone
(Alice 600 Hz, Bob 1400 Hz, Sotto's microphone 1000 Hz) and records what it hears: during the conference
each linphonec hears the other one and Sotto, never itself (the mix leaves each leg's own voice out), and
Sotto hears both. Free ports only; linphonec instances are ended by PID."""

import json

import pytest

from tests.interop import sotto
from tests.interop.carrier.tones import tone_levels, write_tone
from tests.interop.test_sotto_two_calls import first

pytestmark = pytest.mark.interop

ALICE_HZ, BOB_HZ, SOTTO_HZ = 600, 1400, 1000
TONE_AMPLITUDE = 8000
PRESENT = 1500  # a tone "heard": its amplitude in a 0.2 s window (PCMU and the mix keep most of 8000)
ABSENT = 300  # a tone "not heard": below this (G.711 quantisation noise and leakage stay far under it)
CONFERENCE_SECONDS = 8

SCRIPT = """\
wait idle 10
wait ringing 40
press 1
wait secure 30
key hold
wait held 5
press 2002#
wait calling 5
wait secure 30
sleep 1.5
key conference
wait conference 5
sleep {seconds}
hangup
wait ended 10
sleep 0.5
quit
""".format(seconds=CONFERENCE_SECONDS)


def heard(path, frequency):
    return [level for _start, level in tone_levels(path, frequency)]


def together(path, wanted, unwanted=()):
    """How many 0.2 s windows of the recording hold every `wanted` tone and none of the `unwanted`."""
    levels = [heard(path, f) for f in wanted]
    quiet = [heard(path, f) for f in unwanted]
    count = 0
    for index in range(min(len(series) for series in levels + quiet)):
        if all(series[index] > PRESENT for series in levels) and all(series[index] < ABSENT for series in quiet):
            count += 1
    return count


def test_each_linphone_hears_the_other_in_a_secure_conference(tmp_path):
    from tests.firmware.test_phone_linphone import frames_of, wait_for_frame
    from tests.interop.linphone import Linphone

    tones = {}
    for name, frequency in (("alice", ALICE_HZ), ("bob", BOB_HZ), ("sotto", SOTTO_HZ)):
        tones[name] = write_tone(tmp_path / "{}-tone.wav".format(name), frequency, 60, amplitude=TONE_AMPLITUDE)
    recordings = {name: tmp_path / "{}-heard.wav".format(name) for name in tones}
    script = tmp_path / "script.txt"
    script.write_text(SCRIPT)
    log = tmp_path / "display.jsonl"
    listen_port = sotto.free_udp_port()
    alice = Linphone(tmp_path / "alice", sotto.free_udp_port(), sotto.free_udp_port(), user="alice")
    bob = Linphone(tmp_path / "bob", sotto.free_udp_port(), sotto.free_udp_port(), user="2002", auto_answer=True)
    with alice, bob:
        for peer, name in ((alice, "alice"), (bob, "bob")):
            peer.command("play {}".format(tones[name]))
            peer.command("record {}".format(recordings[name]))
        process = sotto.start(
            sotto.sim_phone_args(
                listen_port,
                script,
                log,
                "--dial-domain",
                "127.0.0.1:{}".format(bob.sip_port),
                "--play",
                str(tones["sotto"]),
                "--record",
                str(recordings["sotto"]),
            ),
            tmp_path / "home",
        )
        try:
            wait_for_frame(log, lambda f: f["state"] == "idle", 20)
            alice.command("call sip:sotto@127.0.0.1:{}".format(listen_port))
            alice_sas = alice.auth_token(timeout=40)
            bob_sas = bob.auth_token(timeout=60)
            wait_for_frame(log, lambda f: f["state"] == "ended", 30 + CONFERENCE_SECONDS)
        finally:
            rc, _summary, err = sotto.finish(process, timeout=30)
    assert rc == 0, err[-3000:]
    frames = frames_of(log)
    conference = first(frames, "conference")
    lines = frames[conference]["lines"]
    # both legs secure, each with the SAS its own linphonec shows; none verified yet
    assert lines[1] == "secure: compare SAS", lines
    assert "SAS {}: alice@".format(alice_sas) in lines[2] or "SAS {}: alice@".format(alice_sas) in lines[3], lines
    assert "SAS {}: 2002@".format(bob_sas) in lines[2] or "SAS {}: 2002@".format(bob_sas) in lines[3], lines
    assert alice_sas != bob_sas  # two ZRTP sessions, not one relayed
    assert "alarm" not in [f["state"] for f in frames]
    assert "conference on" in err
    # what each party heard: the other two, never itself (at least 3 s of the 8 s conference, in 0.2 s windows)
    least = int(3 / 0.2)
    alice_heard = together(recordings["alice"], (BOB_HZ, SOTTO_HZ), (ALICE_HZ,))
    bob_heard = together(recordings["bob"], (ALICE_HZ, SOTTO_HZ), (BOB_HZ,))
    sotto_heard = together(recordings["sotto"], (ALICE_HZ, BOB_HZ), (SOTTO_HZ,))
    report = json.dumps(
        {
            name: {hz: round(max(heard(recordings[name], hz)), 1) for hz in (ALICE_HZ, BOB_HZ, SOTTO_HZ)}
            for name in recordings
        }
    )
    assert alice_heard >= least, (alice_heard, report)
    assert bob_heard >= least, (bob_heard, report)
    assert sotto_heard >= least, (sotto_heard, report)
    # before the conference (1.5 s with Bob alone, Alice held) Bob heard Sotto and not Alice: she joined
    # when the conference key mixed the calls, not by a leak of the held call
    bob_alice = heard(recordings["bob"], ALICE_HZ)
    bob_sotto = heard(recordings["bob"], SOTTO_HZ)
    joined = next(i for i, level in enumerate(bob_alice) if level > ABSENT)  # her tone's onset
    assert len([level for level in bob_sotto[:joined] if level > PRESENT]) >= 4, (joined, report)
    assert max(bob_alice[joined + 1 :]) > PRESENT, report  # the onset window holds part of it, then all
