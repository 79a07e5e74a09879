"""Two calls on `sotto run` (issue 15), with the built-in echo test line as both peers: `*43#` calls it,
`*43#` typed during that call makes it call the phone back, so the phone shows call waiting. Sim scripts
for waiting, swap, the conference and hang-up-shows-the-held-call; the display log is the evidence."""

import json
import re

import pytest

from tests.interop import sotto
from tests.waiting import wait_until

pytestmark = pytest.mark.interop


def run_script(tmp_path, script, timeout=90):
    path = tmp_path / "script.txt"
    path.write_text(script)
    log = tmp_path / "display.jsonl"
    port = sotto.free_udp_port()
    rc, _summary, err = sotto.run(
        sotto.sim_phone_args(port, path, log),
        tmp_path / "home",
        timeout=timeout,
    )
    assert rc == 0, err
    frames = [json.loads(line) for line in log.read_text().splitlines()]
    for frame in frames:
        assert sorted(frame) == ["lines", "state", "t"]  # the display log contract is unchanged
    return frames, err


def first(frames, state, after=0):
    for index in range(after, len(frames)):
        if frames[index]["state"] == state:
            return index
    raise AssertionError("no {!r} after frame {} in {}".format(state, after, [f["state"] for f in frames]))


def call_back(trust=True):
    """Call the echo line, (confirm its SAS,) then have it call us back: the phone shows call waiting."""
    return (
        "wait idle 5\n"
        "press *43#\n"
        "wait secure 10\n" + ("trust\nwait verified 5\n" if trust else "sleep 0.5\n") + "press *43#\n"
        "wait call-waiting 10\n"
    )


def test_call_waiting_answer_swap_conference_and_the_held_call(tmp_path):
    script = call_back(trust=False) + (
        "sleep 0.5\n"
        "key hold\n"  # answer the waiting call, the first is held
        "wait secure 10\n"  # the second call's own ZRTP exchange and SAS
        "key hold\n"  # swap: back to the first call
        "sleep 0.5\n"
        "key conference\n"
        "wait conference 5\n"
        "sleep 0.5\n"
        "trust\n"  # confirms the front leg's SAS (the first call)
        "sleep 0.5\n"
        "trust\n"  # then the other leg's
        "sleep 0.5\n"
        "key conference\n"  # split: the first call in front, the second held
        "wait verified 5\n"
        "hangup\n"  # ends the first call: the second is shown held
        "wait held 5\n"
        "sleep 0.5\n"
        "key hold\n"  # resume it
        "wait verified 5\n"
        "hangup\n"
        "wait ended 5\n"
        "quit\n"
    )
    frames, err = run_script(tmp_path, script)
    waiting = first(frames, "call-waiting")
    lines = frames[waiting]["lines"]
    assert lines[0] == "Call waiting" and lines[1] == "Echo test"  # who is calling
    assert lines[3].startswith("SAS ") and ": echo@" in lines[3]  # the call in front and its trust
    answered = first(frames, "in-call", waiting)
    assert any(line.startswith("held: echo@") for line in frames[answered]["lines"])
    conference = first(frames, "conference", answered)
    lines = frames[conference]["lines"]
    assert lines[1] == "secure: compare SAS"  # secure, never "verified" while a leg is not
    assert lines[2].startswith(">SAS ") and lines[3].startswith(" SAS ")  # the front leg is confirmed first
    one = next(i for i in range(conference, len(frames)) if frames[i]["lines"][2].startswith(" verified"))
    assert frames[one]["lines"][1] == "secure: compare SAS" and frames[one]["lines"][3].startswith(">SAS ")
    both = next(i for i in range(one, len(frames)) if frames[i]["lines"][1] == "both verified")
    assert frames[both]["state"] == "conference"
    held = first(frames, "held", both)
    assert frames[held]["lines"][0] == "On hold" and frames[held]["lines"][1] == "Echo test"
    first(frames, "ended", held)
    # what SIP and the media did: a re-INVITE per hold and per resume, the conference on and off
    assert "call call-1 on hold" in err and "call call-1 resumed" in err
    assert "call call-2 on hold" in err and "call call-2 resumed" in err
    assert "conference on" in err and "conference off" in err


def test_the_waiting_call_refused_then_the_first_goes_on(tmp_path):
    script = call_back() + (
        "key back\n"  # 486 Busy Here
        "wait verified 5\n"
        "sleep 1\n"
        "hangup\n"
        "wait ended 5\n"
        "quit\n"
    )
    frames, err = run_script(tmp_path, script)
    waiting = first(frames, "call-waiting")
    back = first(frames, "verified", waiting)
    assert frames[back]["lines"][1].startswith("echo@")
    assert "call-waiting" not in [f["state"] for f in frames[back:]]
    history = json.loads((tmp_path / "home" / "sotto" / "history.json").read_text())  # XDG_DATA_HOME
    assert [entry["dir"] for entry in history][:2] == ["out", "missed"]
    assert history[1]["reason"] == "busy"


def test_hanging_up_while_a_call_waits_lets_it_ring(tmp_path):
    script = call_back() + (
        "hangup\n"
        "wait ringing 5\n"
        "press 1\n"  # any key answers
        "wait verified 10\n"
        "hangup\n"
        "wait ended 5\n"
        "quit\n"
    )
    frames, _err = run_script(tmp_path, script)
    ringing = first(frames, "ringing", first(frames, "call-waiting"))
    assert frames[ringing]["lines"][1] == "Echo test"


def test_hold_then_dial_a_second_call_swap_conference_and_back_to_the_held_one(tmp_path):
    """During a call: hold, dial the echo line again from the keypad (a second call, its own ZRTP session),
    swap, conference, split, hang up the one in front: the other is held, and resumes."""
    script = (
        "wait idle 5\n"
        "press *43#\n"
        "wait secure 10\n"
        "key hold\n"
        "wait held 5\n"
        "press *43#\n"  # digits on the held screen: a second call
        "wait calling 5\n"
        "wait secure 10\n"
        "sleep 0.5\n"
        "key hold\n"  # swap: the first call in front
        "sleep 0.5\n"
        "key conference\n"
        "wait conference 5\n"
        "sleep 0.5\n"
        "key conference\n"  # split: the dialed call held
        "sleep 0.5\n"
        "hangup\n"  # the first call ends: the dialed one is shown held
        "wait held 5\n"
        "sleep 0.3\n"
        "key hold\n"
        "wait secure 5\n"
        "hangup\n"
        "wait ended 5\n"
        "quit\n"
    )
    frames, err = run_script(tmp_path, script)
    held = first(frames, "held")
    dialing = first(frames, "dialing", held)
    assert frames[dialing]["lines"][1] == "*_" and frames[dialing]["lines"][-1].startswith("held: echo@")
    calling = first(frames, "calling", dialing)
    answered = first(frames, "in-call", calling)
    assert any(line.startswith("held: echo@") for line in frames[answered]["lines"])
    first_sas = frames[first(frames, "secure")]["lines"][1]
    second_sas = frames[first(frames, "secure", answered)]["lines"][1]
    assert first_sas != second_sas  # each call its own ZRTP session
    conference = first(frames, "conference", answered)
    assert frames[conference]["lines"][1] == "secure: compare SAS"
    assert (
        "SAS " + first_sas in frames[conference]["lines"][2] and "SAS " + second_sas in frames[conference]["lines"][3]
    )
    back = first(frames, "held", conference)
    resumed = first(frames, "secure", back)
    assert frames[resumed]["lines"][1] == second_sas  # the dialed call, back from hold
    first(frames, "ended", resumed)
    assert "call call-1 on hold" in err and "call call-2 on hold" in err and "call call-2 resumed" in err
    assert "conference on" in err and "conference off" in err


LINPHONE_WAITING = """\
wait idle 5
press *43#
wait secure 10
wait call-waiting 40
sleep 0.5
key hold
wait secure 30
sleep 2
key hold
sleep 2
key conference
wait conference 5
sleep 2
hangup
wait ended 5
quit
"""


def test_linphone_calls_while_sotto_is_in_a_call(tmp_path):
    """A real peer: linphonec calls Sotto while Sotto is in a call with the echo line. The display shows
    call waiting with linphone's address; the hold key answers it (the echo call held by re-INVITE), ZRTP
    with linphone shows linphone's own SAS; swapping holds linphone's call (linphone answers the
    a=sendonly re-INVITE) and the conference resumes it; hanging up the conference ends both."""
    from tests.firmware.test_phone_linphone import frames_of, wait_for_frame
    from tests.interop.linphone import Linphone

    script = tmp_path / "script.txt"
    script.write_text(LINPHONE_WAITING)
    log = tmp_path / "display.jsonl"
    listen_port = sotto.free_udp_port()
    with Linphone(tmp_path / "bob", sotto.free_udp_port(), sotto.free_udp_port(), user="bob") as bob:
        process = sotto.start(
            sotto.sim_phone_args(listen_port, script, log),
            tmp_path / "home",
        )
        try:
            wait_for_frame(log, lambda f: f["state"] == "secure", 30)  # the echo call is up and secure
            bob.command("call sip:sotto@127.0.0.1:{}".format(listen_port))
            linphone_sas = bob.auth_token(timeout=40)
            # our hold re-INVITE, as linphone saw it (its call state PausedByRemote, in its log or console)
            paused = re.compile(r"(?i)paused ?by ?remote")
            wait_until(lambda: paused.search(bob.log()) or paused.search(bob.console()), 30, "linphone paused")
        finally:
            rc, _summary, err = sotto.finish(process, timeout=90)
    assert rc == 0, err[-3000:]
    frames = frames_of(log)
    states = [f["state"] for f in frames]
    waiting = first(frames, "call-waiting")
    assert "bob@127.0.0.1" in frames[waiting]["lines"][1]
    answered = first(frames, "in-call", waiting)
    assert any(line.startswith("held: echo@") for line in frames[answered]["lines"])
    second_secure = first(frames, "secure", answered)
    assert frames[second_secure]["lines"][1] == linphone_sas  # the linphone leg's own SAS
    conference = first(frames, "conference", second_secure)
    assert frames[conference]["lines"][1] == "secure: compare SAS"  # neither leg verified
    assert "alarm" not in states
    assert "call call-2 on hold" in err and "call call-2 resumed" in err  # linphone took both re-INVITEs
    assert "call call-1 on hold" in err and "call call-1 resumed" in err
    first(frames, "ended", conference)


LINPHONE_TRANSFER = """\
wait idle 5
wait ringing 40
press 1
wait secure 30
wait call-waiting 40
sleep 0.5
key hold
wait secure 30
sleep 1
key transfer
wait ended 30
sleep 1
quit
"""


def test_attended_transfer_from_the_phone_between_two_linphones(tmp_path):
    """Alice (linphonec) calls Sotto; Bob (linphonec) calls while that call is up; the hold key answers Bob
    and holds Alice; the transfer key REFERs Alice to Bob with Replaces (RFC 5589 §7, RFC 3891): Alice calls
    Bob, Bob's call with us is replaced by hers, and both our calls end "transferred"."""
    from tests.firmware.test_phone_linphone import frames_of, wait_for_frame
    from tests.interop.linphone import Linphone

    script = tmp_path / "script.txt"
    script.write_text(LINPHONE_TRANSFER)
    log = tmp_path / "display.jsonl"
    listen_port = sotto.free_udp_port()
    alice = Linphone(tmp_path / "alice", sotto.free_udp_port(), sotto.free_udp_port(), user="alice")
    bob = Linphone(tmp_path / "bob", sotto.free_udp_port(), sotto.free_udp_port(), user="bob")
    with alice, bob:
        process = sotto.start(
            sotto.sim_phone_args(listen_port, script, log),
            tmp_path / "home",
        )
        try:
            wait_for_frame(log, lambda f: f["state"] == "idle", 20)
            alice.command("call sip:sotto@127.0.0.1:{}".format(listen_port))
            wait_for_frame(log, lambda f: f["state"] == "secure", 40)
            bob.command("call sip:sotto@127.0.0.1:{}".format(listen_port))
            # Alice followed the REFER: her second call, to Bob, replaced Bob's with us and is encrypted end
            # to end between the two of them (linphonec numbers its calls).
            alice_sas = alice.wait_for(r"Call 2 is fully encrypted and auth token is (\w+)", timeout=60).group(1)
            bob_sas = bob.wait_for(r"Call 2 is fully encrypted and auth token is (\w+)", timeout=30).group(1)
        finally:
            rc, _summary, err = sotto.finish(process, timeout=60)
            history_path = tmp_path / "home" / "sotto" / "history.json"
    assert rc == 0, err[-3000:]
    assert "attended transfer done" in err, err[-3000:]
    assert alice_sas == bob_sas  # one ZRTP exchange between Alice and Bob, not through us
    frames = frames_of(log)
    waiting = first(frames, "call-waiting")
    assert "bob@127.0.0.1" in frames[waiting]["lines"][1]
    ended = first(frames, "ended", waiting)
    assert frames[ended]["lines"][1] == "transferred"
    history = json.loads(history_path.read_text())
    assert [entry["reason"] for entry in history[:2]] == ["transferred", "transferred"]


LINPHONE_CONSULTATION = """\
wait idle 5
wait ringing 40
press 1
wait secure 30
key hold
wait held 5
press 2002#
wait calling 5
wait secure 30
sleep 1
key transfer
wait ended 30
sleep 1
quit
"""


def test_hold_dial_and_transfer_between_two_linphones(tmp_path):
    """The consultation call: Alice (linphonec) calls Sotto; Sotto holds her and dials Bob (linphonec,
    auto-answer, user 2002) from the keypad; the transfer key REFERs Alice to Bob with Replaces naming our
    dialog with Bob (RFC 5589 §7, RFC 3891; we are its UAC here): Alice's INVITE replaces our call at Bob,
    the two key their own ZRTP session, and both our calls end "transferred"."""
    from tests.firmware.test_phone_linphone import frames_of, wait_for_frame
    from tests.interop.linphone import Linphone

    script = tmp_path / "script.txt"
    script.write_text(LINPHONE_CONSULTATION)
    log = tmp_path / "display.jsonl"
    listen_port = sotto.free_udp_port()
    alice = Linphone(tmp_path / "alice", sotto.free_udp_port(), sotto.free_udp_port(), user="alice")
    bob = Linphone(tmp_path / "bob", sotto.free_udp_port(), sotto.free_udp_port(), user="2002", auto_answer=True)
    with alice, bob:
        process = sotto.start(
            sotto.sim_phone_args(listen_port, script, log, "--dial-domain", "127.0.0.1:{}".format(bob.sip_port)),
            tmp_path / "home",
        )
        try:
            wait_for_frame(log, lambda f: f["state"] == "idle", 20)
            alice.command("call sip:sotto@127.0.0.1:{}".format(listen_port))
            alice_sas = alice.wait_for(r"Call 2 is fully encrypted and auth token is (\w+)", timeout=90).group(1)
            bob_sas = bob.wait_for(r"Call 2 is fully encrypted and auth token is (\w+)", timeout=30).group(1)
        finally:
            rc, _summary, err = sotto.finish(process, timeout=60)
            history_path = tmp_path / "home" / "sotto" / "history.json"
    assert rc == 0, err[-3000:]
    assert "attended transfer done" in err, err[-3000:]
    assert alice_sas == bob_sas  # one ZRTP exchange between Alice and Bob, not through us
    frames = frames_of(log)
    dialing = first(frames, "dialing", first(frames, "held"))
    calling = first(frames, "calling", dialing)
    assert "2002@127.0.0.1" in frames[calling]["lines"][1]
    ended = first(frames, "ended", calling)
    assert frames[ended]["lines"][1] == "transferred"
    history = json.loads(history_path.read_text())
    assert [entry["reason"] for entry in history[:2]] == ["transferred", "transferred"]
    assert sorted(entry["dir"] for entry in history[:2]) == ["in", "out"]  # Alice's call in, ours to Bob out
