"""Two calls on `sotto run` (issue 15), with the built-in echo test line as both peers: `*43#` calls it,
`*43#` typed during that call makes it call the phone back, so the phone shows call waiting. Sim scripts
for waiting, swap, the conference and hang-up-shows-the-held-call; the display log is the evidence."""

import json

import pytest

from tests.interop import sotto

pytestmark = pytest.mark.interop


def run_script(tmp_path, script, timeout=90):
    path = tmp_path / "script.txt"
    path.write_text(script)
    log = tmp_path / "display.jsonl"
    port = sotto.free_udp_port()
    rc, _summary, err = sotto.run(
        [
            "run",
            "--board",
            "sim",
            "--listen",
            "127.0.0.1:{}".format(port),
            "--script",
            str(path),
            "--display-log",
            str(log),
            "--log-level",
            "info",
        ],
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
