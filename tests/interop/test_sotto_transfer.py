"""Blind transfer on the phone: linphone-cli calls the simulated phone, then transfers it (REFER, RFC 3515)
to a second Sotto; the phone leaves the first call and calls the transfer target, which becomes secure."""

import json

import pytest

from tests.interop import sotto
from tests.interop.linphone import Linphone
from tests.waiting import wait_until

pytestmark = pytest.mark.interop

SCRIPT = """\
wait ringing 30
hook off
wait secure 20
wait calling 20
wait secure 20
hook on
wait ended 5
quit
"""


def _frames(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_linphone_transfers_the_phone_to_another_sotto(tmp_path):
    script = tmp_path / "script.txt"
    script.write_text(SCRIPT)
    log = tmp_path / "display.jsonl"
    phone_port, carol_port = sotto.free_udp_port(), sotto.free_udp_port()
    carol = sotto.start(
        [
            "answer",
            "--listen",
            "127.0.0.1:{}".format(carol_port),
            "--timeout",
            "60",
            "--cache",
            str(tmp_path / "carol.cache"),
        ],
        tmp_path / "carol-home",
    )
    with Linphone(tmp_path / "alice", sotto.free_udp_port(), sotto.free_udp_port(), user="alice") as alice:
        phone = sotto.start(
            [
                "run",
                "--board",
                "sim",
                "--listen",
                "127.0.0.1:{}".format(phone_port),
                "--script",
                str(script),
                "--display-log",
                str(log),
            ],
            tmp_path / "home",
        )
        try:
            wait_until(
                lambda: any(f["state"] == "idle" for f in _frames(log)), 20, "the phone to be idle", interval=0.1
            )
            alice.command("call sip:sotto@127.0.0.1:{}".format(phone_port))
            alice.auth_token(timeout=30)  # secure with the phone
            alice.command("transfer sip:carol@127.0.0.1:{}".format(carol_port))
            rc, _summary, err = sotto.finish(phone, timeout=60)
            alice_log = alice.log()
        finally:
            if phone.poll() is None:
                phone.kill()
    rc_carol, carol_summary, _ = sotto.finish(carol, timeout=30)
    assert rc == 0, err[-3000:]
    states = [f["state"] for f in _frames(log)]
    first_secure = states.index("secure")
    transferred = states.index("calling", first_secure)
    assert "secure" in states[transferred:]
    assert carol_summary["secure"] is True and carol_summary["result"] == "completed"
    secure_frames = [f for f in _frames(log) if f["state"] == "secure"]
    assert secure_frames[-1]["lines"][1] == carol_summary["sas"]  # the second call's SAS is carol's
    history = json.loads((tmp_path / "home" / "sotto" / "history.json").read_text())
    assert history[1]["reason"] == "transferred"
    # RFC 3515 §2.4.5: the transferor (linphone) heard how the phone's new call went, the last NOTIFY
    # ending the implicit subscription with the 200 of the answered call.
    notifies = [(head, body) for head, body in _notifies(alice_log) if "Event: refer" in head]
    assert notifies, alice_log[-3000:]
    head, body = notifies[-1]
    assert "Subscription-State: terminated" in head and body.startswith("SIP/2.0 200 "), notifies


def _notifies(log):
    """The NOTIFY requests linphone's log (level 6) prints in full: (headers, body) each, the body cut at
    its Content-Length."""
    import re

    out = []
    start = log.find("NOTIFY sip:")
    while start >= 0:
        blank = re.compile(r"\r?\n\r?\n").search(log, start)
        if blank is None:
            break
        head = log[start : blank.start()]
        length = re.search(r"(?im)^(?:Content-Length|l)\s*:\s*(\d+)", head)
        out.append((head, log[blank.end() : blank.end() + int(length.group(1))] if length else ""))
        start = log.find("NOTIFY sip:", blank.end())
    return out


REPLACED_SCRIPT = """\
wait ringing 30
hook off
wait secure 20
sleep 14
hook on
wait ended 5
quit
"""


def test_an_attended_transfer_replaces_the_phones_call_with_a_new_secure_one(tmp_path):
    """linphone talks to a `sotto answer` (x) and to the phone, then joins them (`transfer 1 --to-call 2`):
    x's INVITE with Replaces (RFC 3891) takes linphone's place at the phone, which answers it, ends
    linphone's leg and keys a new ZRTP session with x: the display's SAS becomes x's."""
    script = tmp_path / "script.txt"
    script.write_text(REPLACED_SCRIPT)
    log = tmp_path / "display.jsonl"
    x_port = sotto.free_udp_port()
    x = sotto.start(
        ["answer", "--follow-transfer", "--listen", "127.0.0.1:{}".format(x_port), "--timeout", "60"]
        + ["--cache", str(tmp_path / "x.cache")],
        tmp_path / "x-home",
    )
    phone = None
    with Linphone(tmp_path / "lin", sotto.free_udp_port(), sotto.free_udp_port(), user="lin") as lin:
        try:
            sotto.wait_listening(x_port, x)
            # linphone drops the port of a URI it calls (its To, and so the Refer-To it builds from it): the
            # phone, as the transfer target, listens on the default port, on an address of its own.
            phone = sotto.start(
                ["run", "--board", "sim", "--listen", "127.0.0.2:5060", "--script", str(script)]
                + ["--display-log", str(log)],
                tmp_path / "home",
            )
            wait_until(
                lambda: any(f["state"] == "idle" for f in _frames(log)), 20, "the phone to be idle", interval=0.1
            )
            lin.command("call sip:x@127.0.0.1:{}".format(x_port))
            lin.auth_token(timeout=20)
            mark = len(lin.console())
            lin.command("pause")  # linphonec places a second call only with the first on hold
            lin.wait_for(r"Call 1 with \S+ is now paused", timeout=10, start=mark)
            mark = len(lin.console())
            lin.command("call sip:sotto@127.0.0.2:5060")
            first_sas = lin.auth_token(timeout=30, start=mark)
            lin.command("transfer 1 --to-call 2")
            rc, _summary, err = sotto.finish(phone, timeout=60)
        finally:
            if phone is not None and phone.poll() is None:
                phone.kill()
    rc_x, x_summary, x_err = sotto.finish(x, timeout=30)
    assert rc == 0, err[-3000:]
    assert rc_x == 0 and x_summary["transfer"]["attended"] is True, (x_summary, x_err[-2000:])
    assert x_summary["transfer"]["status"] == 200 and x_summary["secure"] is True, x_summary
    sas_shown = [f["lines"][1] for f in _frames(log) if f["state"] == "secure"]
    assert sas_shown[0] == first_sas and sas_shown[-1] == x_summary["sas"], (sas_shown, first_sas, x_summary)
    assert first_sas != x_summary["sas"]  # a new ZRTP session with a new peer, not linphone's keys


FAILED_SCRIPT = """\
wait ringing 30
hook off
wait secure 20
wait calling 20
wait held 20
key hold
wait secure 20
sleep 2
hook on
wait ended 5
quit
"""


def test_a_blind_transfer_to_a_busy_target_gives_the_phone_its_call_back(tmp_path):
    """linphone transfers the phone to a target that answers 486 (sipp): the phone held linphone's call
    while it called the target, gets it back (held, "transfer failed (486)"), the hold key resumes it
    (re-INVITE sendrecv) with the same SAS; linphone's final NOTIFY says 486 and its call was never ended."""
    from tests.interop.test_transfer_fails import _busy_target, _finish_sipp

    script = tmp_path / "script.txt"
    script.write_text(FAILED_SCRIPT)
    log = tmp_path / "display.jsonl"
    phone_port = sotto.free_udp_port()
    busy, busy_uri = _busy_target(tmp_path)
    try:
        with Linphone(tmp_path / "alice", sotto.free_udp_port(), sotto.free_udp_port(), user="alice") as alice:
            phone = sotto.start(
                ["run", "--board", "sim", "--listen", "127.0.0.1:{}".format(phone_port), "--script", str(script)]
                + ["--display-log", str(log), "--log-level", "info"],
                tmp_path / "home",
            )
            try:
                wait_until(
                    lambda: any(f["state"] == "idle" for f in _frames(log)), 20, "the phone to be idle", interval=0.1
                )
                alice.command("call sip:sotto@127.0.0.1:{}".format(phone_port))
                sas = alice.auth_token(timeout=30)
                alice.command("transfer " + busy_uri)
                rc, _summary, err = sotto.finish(phone, timeout=60)
                alice_log = alice.log()
            finally:
                if phone.poll() is None:
                    phone.kill()
    finally:
        sipp_rc, sipp_out = _finish_sipp(busy)
    assert rc == 0, err[-3000:]
    assert sipp_rc == 0, sipp_out[-2000:]
    frames = _frames(log)
    states = [f["state"] for f in frames]
    calling = states.index("calling", states.index("secure"))
    held = states.index("held", calling)
    resumed = states.index("secure", held)
    assert "ended" not in states[:resumed], states  # nothing ended before the user hung up
    assert frames[resumed]["lines"][1] == sas  # the same call and ZRTP session as before the REFER
    assert "failed (486): the call goes on, held" in err, err[-3000:]
    assert "call call-1 resumed" in err, err[-3000:]  # linphone took our re-INVITE (RFC 3264 §8.4)
    notifies = [(head, body) for head, body in _notifies(alice_log) if "Event: refer" in head]
    assert notifies, alice_log[-3000:]
    head, body = notifies[-1]
    assert "Subscription-State: terminated" in head and body.startswith("SIP/2.0 486 "), notifies
    history = json.loads((tmp_path / "home" / "sotto" / "history.json").read_text())
    assert [entry["reason"] for entry in history[:2]] == ["hung up", "Busy Here"], history[:2]
