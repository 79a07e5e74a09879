"""Issue 6 "done when": a scripted call from the simulated phone (`sotto run --board sim --script`) to
linphone-cli, which confirms the SAS on its side. The display shows linphone's SAS, `trust` reaches
`verified`, and the next call to the same peer is `verified` without a press. PNG frames are real
128x64 images. (The echo-line variant of this flow is tests/interop/test_sotto_run.py.)"""

import json
import os
import re
import sqlite3
import struct

import pytest

from tests.interop import sotto
from tests.interop.linphone import Linphone
from tests.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.interop

NUMBER = "4711"  # linphone's user part: dialled as digits, completed with --dial-domain

SCRIPT = """\
wait idle 5
press {number}#
wait secure 20
trust
wait verified 5
sleep 3
hangup
wait idle 10
press {number}#
wait verified 20
sleep 1
hangup
wait ended 5
quit
"""


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_scripted_call_to_linphone_shows_its_sas_then_verified_then_verified_without_a_press(tmp_path):
    script = tmp_path / "script.txt"
    script.write_text(SCRIPT.format(number=NUMBER))
    log = tmp_path / "display.jsonl"
    png = tmp_path / "png"
    with Linphone(tmp_path / "bob", sotto.free_udp_port(), sotto.free_udp_port(), user=NUMBER, auto_answer=True) as bob:
        process = sotto.start(
            [
                "run",
                "--board",
                "sim",
                "--listen",
                "127.0.0.1:{}".format(sotto.free_udp_port()),
                "--dial-domain",
                "127.0.0.1:{}".format(bob.sip_port),
                "--script",
                str(script),
                "--display-log",
                str(log),
                "--display-png",
                str(png),
            ],
            tmp_path / "home",
        )
        try:
            # The person at linphone's end compares the SAS too and confirms it (sets its V flag).
            linphone_sas = bob.auth_token(timeout=30)
            first_verified = bob.previously_verified(timeout=10)
            bob.command("zrtp-set-verified")
            # linphone numbers its calls; it reprints call 1's token after zrtp-set-verified.
            second_sas = bob.wait_for(r"Call 2 is fully encrypted and auth token is (\w+)\.", timeout=40).group(1)
            second_verified = (
                bob.wait_for(
                    r"SAS is {} previously verified (yes|no)".format(second_sas), timeout=10, source="log"
                ).group(1)
                == "yes"
            )
        finally:
            rc, _summary, err = sotto.finish(process, timeout=90)
    assert rc == 0, err[-3000:]
    assert not first_verified  # a first call: nobody has compared the SAS yet
    assert second_verified  # both V flags set: linphone agrees the peer is verified
    assert re.fullmatch(r"[a-z0-9]{4}", second_sas)
    frames = [json.loads(line) for line in log.read_text().splitlines()]
    states = [frame["state"] for frame in frames]
    first_secure = states.index("secure")
    secure_frame = frames[first_secure]
    # The SAS on our display is the one linphone shows (B32: 4 characters).
    assert re.fullmatch(r"[a-z0-9]{4}", linphone_sas)
    assert secure_frame["lines"][1] == linphone_sas, secure_frame
    assert "read it aloud," in secure_frame["lines"] and "press to confirm" in secure_frame["lines"]
    assert "verified" in states[first_secure:]
    last_calling = len(states) - 1 - states[::-1].index("calling")
    assert "secure" not in states[last_calling:] and "verified" in states[last_calling:]
    second_verified_frame = frames[states.index("verified", last_calling)]
    assert "SAS " + second_sas in second_verified_frame["lines"], second_verified_frame
    images = sorted(png.iterdir())
    assert len(images) == len(frames)
    assert png_size(images[first_secure].read_bytes()) == (128, 64)


CONTINUITY_SCRIPT = """\
wait idle 5
press {number}#
wait secure 20
trust
wait verified 5
sleep 2
hangup
wait ended 5
sleep 6
press {number}#
wait alarm 20
sleep 1
hangup
wait ended 5
wait idle 10
press {number}#
wait alarm 20
trust
wait verified 5
sleep 2
hangup
wait idle 10
press {number}#
wait verified 20
hangup
wait ended 5
quit
"""


def frames_of(log_path):
    try:
        text = log_path.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def wait_for_frame(log_path, predicate, timeout):
    try:
        wait_until(lambda: any(predicate(frame) for frame in frames_of(log_path)), timeout, "a display frame")
    except WaitTimeout:
        raise AssertionError("no such frame in {} s: {}".format(timeout, frames_of(log_path)[-5:])) from None


def break_linphone_secrets(linphone):
    db = sqlite3.connect(linphone.zid_cache_path)
    try:
        rows = db.execute("UPDATE zrtp SET rs1 = ?, rs2 = ?", (os.urandom(32), os.urandom(32))).rowcount
        db.commit()
    finally:
        db.close()
    assert rows >= 1


def test_a_changed_peer_key_is_an_alarm_on_every_call_until_the_sas_is_confirmed(tmp_path):
    script = tmp_path / "script.txt"
    script.write_text(CONTINUITY_SCRIPT.format(number=NUMBER))
    log = tmp_path / "display.jsonl"
    bob = Linphone(tmp_path / "bob", sotto.free_udp_port(), sotto.free_udp_port(), user=NUMBER, auto_answer=True)
    bob.start()
    process = sotto.start(
        [
            "run",
            "--board",
            "sim",
            "--listen",
            "127.0.0.1:{}".format(sotto.free_udp_port()),
            "--dial-domain",
            "127.0.0.1:{}".format(bob.sip_port),
            "--script",
            str(script),
            "--display-log",
            str(log),
        ],
        tmp_path / "home",
    )
    try:
        bob.auth_token(timeout=30)
        bob.command("zrtp-set-verified")  # call 1: both ends confirm
        wait_for_frame(log, lambda f: f["state"] == "ended", 30)
        # Between calls the peer's retained secrets change (a new device, or a man in the middle).
        bob.stop()
        break_linphone_secrets(bob)
        bob.start()
        # Call 2 (linphone's call 1 after its restart): alarm, hung up unconfirmed. Call 3: alarm again;
        # both ends compare the SAS and confirm it.
        bob.wait_for(r"Call 2 is fully encrypted and auth token is (\w+)\.", timeout=40)
        bob.command("zrtp-set-verified")
    finally:
        rc, _summary, err = sotto.finish(process, timeout=120)
        bob.stop()
    assert rc == 0, err[-3000:]
    frames = frames_of(log)
    states = [f["state"] for f in frames]
    calls = []  # the states of each call, from its "calling" frame on
    for frame in frames:
        if frame["state"] == "calling" and (not calls or calls[-1][-1] != "calling"):
            calls.append([])
        if calls:
            calls[-1].append(frame["state"])
    assert len(calls) == 4, states
    assert "secure" in calls[0] and "verified" in calls[0] and "alarm" not in calls[0]
    assert "alarm" in calls[1] and "verified" not in calls[1]
    assert "alarm" in calls[2] and calls[2].index("verified") > calls[2].index("alarm")
    assert "alarm" not in calls[3] and "secure" not in calls[3] and "verified" in calls[3]
    alarm = [f for f in frames if f["state"] == "alarm"][0]
    assert alarm["lines"][0] == "KEY CHANGED"
    assert re.fullmatch(r"[a-z0-9]{4}", alarm["lines"][1]), alarm
    assert "peer key changed" in alarm["lines"]


INCOMING_SCRIPT = """\
wait ringing 30
hook off
wait secure 20
trust
wait verified 5
sleep 1
hook on
wait ended 5
quit
"""


def test_an_incoming_call_from_linphone_rings_and_is_answered_by_lifting_the_handset(tmp_path):
    script = tmp_path / "script.txt"
    script.write_text(INCOMING_SCRIPT)
    log = tmp_path / "display.jsonl"
    listen_port = sotto.free_udp_port()
    with Linphone(tmp_path / "alice", sotto.free_udp_port(), sotto.free_udp_port(), user="alice") as alice:
        process = sotto.start(
            [
                "run",
                "--board",
                "sim",
                "--listen",
                "127.0.0.1:{}".format(listen_port),
                "--script",
                str(script),
                "--display-log",
                str(log),
            ],
            tmp_path / "home",
        )
        try:
            wait_for_frame(log, lambda f: f["state"] == "idle", 20)
            alice.command("call sip:sotto@127.0.0.1:{}".format(listen_port))
            sas = alice.auth_token(timeout=30)
        finally:
            rc, _summary, err = sotto.finish(process, timeout=60)
    assert rc == 0, err[-3000:]
    frames = frames_of(log)
    states = [f["state"] for f in frames]
    ringing = frames[states.index("ringing")]
    assert ringing["lines"][0] == "Incoming call" and "alice@127.0.0.1" in ringing["lines"][1]
    assert states.index("ringing") < states.index("in-call") < states.index("secure") < states.index("verified")
    assert frames[states.index("secure")]["lines"][1] == sas
    ended = frames[states.index("ended")]
    assert ended["lines"][1] == "hung up"
