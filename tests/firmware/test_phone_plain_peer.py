"""The simulated phone calling a peer without ZRTP (sipp's built-in uas: plain SIP, no ZRTP): the call is
an alarm ("NOT SECURE", "peer has no ZRTP") at once, and with --secure-only it is ended instead (issue 6 contract)."""

import json
import subprocess

import pytest

from tests.conftest import require_tool
from tests.interop import sotto
from tests.waiting import wait_udp_bound

pytestmark = pytest.mark.interop


def start_sipp_uas(tmp_path, port):
    binary = require_tool("sipp", "sip-tester")
    process = subprocess.Popen(
        [binary, "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-m", "1", "-nostdin", "-timeout", "60"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def alive():
        assert process.poll() is None, "sipp exited with {}".format(process.returncode)

    wait_udp_bound(port, 10, "sipp's uas", alive)
    return process


def stop(process):
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


def run_script(tmp_path, script_text, extra=()):
    sipp_port = sotto.free_udp_port()
    sipp = start_sipp_uas(tmp_path, sipp_port)
    script = tmp_path / "script.txt"
    script.write_text(script_text)
    log = tmp_path / "display.jsonl"
    try:
        listen = "127.0.0.1:{}".format(sotto.free_udp_port())
        rc, _summary, err = sotto.run(
            [
                "run",
                "--board",
                "sim",
                "--listen",
                listen,
                "--dial-domain",
                "127.0.0.1:{}".format(sipp_port),
                "--script",
                str(script),
                "--display-log",
                str(log),
                *extra,
            ],
            tmp_path / "home",
            timeout=90,
        )
    finally:
        stop(sipp)
    frames = [json.loads(line) for line in log.read_text().splitlines()]
    return rc, err, frames


def test_a_peer_without_zrtp_is_a_loud_alarm(tmp_path):
    rc, err, frames = run_script(
        tmp_path, "press 1#\nwait in-call 10\nwait alarm 25\ntrust\nsleep 0.5\nhangup\nwait ended 5\nquit\n"
    )
    assert rc == 0, err[-3000:]
    states = [f["state"] for f in frames]
    assert "secure" not in states and "verified" not in states
    alarm = [f for f in frames if f["state"] == "alarm"]
    assert alarm[0]["lines"][:2] == ["NOT SECURE", "peer has no ZRTP"]
    assert alarm[0]["lines"][-1] == "press: silence"
    assert alarm[-1]["lines"][-1] == "acknowledged"  # the trust press silenced it; the screen stays


def test_with_secure_only_a_call_that_cannot_become_secure_is_ended(tmp_path):
    rc, err, frames = run_script(tmp_path, "press 1#\nwait in-call 10\nwait ended 25\nquit\n", ["--secure-only"])
    assert rc == 0, err[-3000:]
    states = [f["state"] for f in frames]
    assert "alarm" not in states and "secure" not in states
    ended = [f for f in frames if f["state"] == "ended"][0]
    assert ended["lines"][1].startswith("not secure"), ended
