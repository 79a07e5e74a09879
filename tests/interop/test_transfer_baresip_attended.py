"""Attended transfer (RFC 5589 §7, Replaces RFC 3891) from the simulated phone with baresip as the third
party (issue 15). Debian's baresip (1.0) has no attended transfer of its own (its menu has `/transfer`,
blind only) and no Replaces at all: as the target it refuses an INVITE with Require: replaces (420), and
as the transferee it follows a REFER as a blind transfer, calling the Refer-To URI without the Replaces
header. Both are tested here, each with a `sotto` as the other far end: the transfer fails, the phone says
"transfer failed (STATUS)" and both calls go on; the Sotto that was referred keeps its original call.
Real `sotto` processes and baresip, loopback and free ports only."""

import json

import pytest

from tests.interop import sotto
from tests.interop.carrier.peers import Baresip
from tests.interop.carrier.tones import write_tone
from tests.waiting import wait_until

pytestmark = pytest.mark.interop

# The first caller is answered (any key while ringing), the second rings as call waiting; the hold key
# answers it and holds the first; the transfer key REFERs the held call's far end to the front call's.
SCRIPT = """\
wait idle 5
wait ringing 40
press 1
sleep 4
wait call-waiting 40
sleep 0.5
key hold
sleep 4
key transfer
sleep 6
quit
"""


def _frames(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _phone(tmp_path):
    script = tmp_path / "script.txt"
    script.write_text(SCRIPT)
    log = tmp_path / "display.jsonl"
    port = sotto.free_udp_port()
    process = sotto.start(
        ["run", "--board", "sim", "--listen", "127.0.0.1:{}".format(port), "--script", str(script)]
        + ["--display-log", str(log), "--log-level", "info"],
        tmp_path / "home",
    )
    wait_until(lambda: any(f["state"] == "idle" for f in _frames(log)), 20, "the phone to be idle", interval=0.1)
    return process, "sip:sotto@127.0.0.1:{}".format(port), log


def _baresip(tmp_path, *args):
    tone = write_tone(tmp_path / "carol-tone.wav", 700, 40)
    ports = sotto.free_udp_port()
    return Baresip(tmp_path / "carol", sotto.free_udp_port(), (ports, ports + 9), play=str(tone)).start(*args)


def _end(*processes):
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)


def _check_both_calls_went_on(log):
    """Nothing ended before the phone quit (the script's last line, 6 s after the transfer key): the failed
    transfer ended neither call. (The "transfer failed" notice is not drawn over the NOT SECURE alarm or the
    Compare SAS screens, so the journal line is the evidence of the failure itself.)"""
    frames = _frames(log)
    quit_at = frames[-1]["t"]
    assert frames[-1]["state"] == "ended" and frames[-1]["lines"][1] == "phone stopped", frames[-1]
    ended = [f for f in frames if f["state"] == "ended" or any("ended" in line for line in f["lines"])]
    assert all(f["t"] > quit_at - 1.0 for f in ended), [(f["t"], f["state"], f["lines"]) for f in frames]
    assert quit_at > 14, quit_at  # the hold key came 4 s after call waiting, the transfer 4 s later, quit 6 s later


def test_baresip_as_the_target_refuses_replaces_and_the_transferee_keeps_its_call(tmp_path):
    """x (`sotto call --follow-transfer`) calls the phone, then baresip does; the phone refers x to baresip
    with Replaces. x's INVITE with Replaces gets 420 from baresip: x reports 420 in its final NOTIFY and
    takes its call with the phone back; the phone shows the failure and keeps both calls."""
    phone = x = carol = None
    try:
        phone, phone_uri, log = _phone(tmp_path)
        x_port = sotto.free_udp_port()
        x = sotto.start(
            ["call", phone_uri, "--follow-transfer", "--listen", "127.0.0.1:{}".format(x_port)]
            + ["--timeout", "60", "--cache", str(tmp_path / "x.cache")],
            tmp_path / "x-home",
        )
        wait_until(lambda: any(f["state"] == "secure" for f in _frames(log)), 30, "x's call to be secure")
        carol = _baresip(tmp_path, "-t", "40", "-e", "/dial " + phone_uri)
        rc, _, err = sotto.finish(phone, timeout=60)
        x_rc, x_summary, x_err = sotto.finish(x, timeout=30)
        carol.stop()
        carol_log = carol.log()
    finally:
        _end(phone, x)
        if carol is not None:
            carol.stop()
    assert rc == 0, err[-3000:]
    assert "attended transfer failed: 420" in err, err[-3000:]
    _check_both_calls_went_on(log)
    assert "replaces" in carol_log and "420" in carol_log, carol_log[-2000:]
    assert x_rc == 0, (x_summary, x_err[-3000:])
    assert x_summary["transfer"]["attended"] is True, x_summary
    assert x_summary["transfer"]["status"] == 420 and x_summary["transfer"]["resumed"] is True, x_summary
    # x's call with the phone went on until the phone quit (about 14 s): still the secure call it was,
    # its media sent all along (on hold in x's hub while x tried baresip).
    assert x_summary["result"] == "completed" and x_summary["secure"] is True, (x_summary, x_err[-2000:])
    assert x_summary["reason"] == "remote hangup" and x_summary["rtp"]["sent"] > 500, x_summary


def test_baresip_as_the_transferee_follows_without_replaces_and_the_transfer_fails(tmp_path):
    """baresip calls the phone, then y (`sotto call`) does; the phone refers baresip to y with Replaces.
    baresip calls y without the Replaces header, so y, in its call with the phone, answers 486; baresip's
    final NOTIFY says so, and the phone shows the failure and keeps both calls."""
    phone = y = carol = None
    try:
        phone, phone_uri, log = _phone(tmp_path)
        carol = _baresip(tmp_path, "-t", "40", "-e", "/dial " + phone_uri)
        wait_until(lambda: any(f["state"] not in ("idle", "ringing") for f in _frames(log)), 30, "baresip's call up")
        y_port = sotto.free_udp_port()
        y = sotto.start(
            ["call", phone_uri, "--listen", "127.0.0.1:{}".format(y_port), "--timeout", "60"]
            + ["--cache", str(tmp_path / "y.cache")],
            tmp_path / "y-home",
        )
        rc, _, err = sotto.finish(phone, timeout=60)
        y_rc, y_summary, y_err = sotto.finish(y, timeout=30)
        carol.stop()
        carol_log = carol.log()
    finally:
        _end(phone, y)
        if carol is not None:
            carol.stop()
    assert rc == 0, err[-3000:]
    assert "attended transfer failed: 486" in err, err[-3000:]
    _check_both_calls_went_on(log)
    assert "Replaces=" in carol_log and "486 Busy Here" in carol_log, carol_log[-2000:]
    assert y_rc == 0, (y_summary, y_err[-3000:])
    assert "transfer" not in y_summary, y_summary  # nothing replaced y's call
    assert y_summary["result"] == "completed" and y_summary["secure"] is True, y_summary
    assert y_summary["reason"] == "remote hangup" and y_summary["rtp"]["sent"] > 350, y_summary  # up to the quit
