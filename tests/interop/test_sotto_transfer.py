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
