"""RFC 4028 through the real `sotto` command (issue 15): a peer that holds the refresher role and never
refreshes (sipp, both as caller and as callee) gets a BYE before the session expires (§10: interval -
min(32, interval/3) = 60 s for the smallest interval, 90 s), and the JSON summary says "session expired".
Real `sotto` and sipp, loopback and free ports only; about 65 s each."""

import pathlib
import subprocess
import time

import pytest

from tests.interop import sotto
from tests.interop.sip.driver import require
from tests.waiting import wait_udp_bound

pytestmark = pytest.mark.interop

SCENARIOS = pathlib.Path(__file__).resolve().parent / "scenarios"
# sipp sends no RTP: the media inactivity check (30 s by default) would end the call before the session
# timer does; it is off here, so the session timer alone ends the call.
CONFIG = """\
[media]
encryption = "none"
inactivity_timeout = 0
"""
INTERVAL = 90
BYE_AFTER = INTERVAL - min(32, INTERVAL / 3)  # RFC 4028 §10


def _sipp(tmp_path, scenario, *args):
    port = sotto.free_udp_port()
    cmd = [require("sipp"), "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port), "-m", "1"]
    cmd += ["-mp", str(sotto.free_udp_port()), "-nostdin", "-timeout", "110", "-trace_err", *args]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, port


def _sipp_result(proc):
    try:
        out = proc.communicate(timeout=20)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate(timeout=10)[0].decode(errors="replace")
    return proc.returncode, out


def _config(tmp_path):
    path = tmp_path / "sotto.toml"
    path.write_text(CONFIG)
    return str(path)


def _check(summary, err, took):
    assert summary["result"] == "completed" and summary["reason"] == "session expired", (summary, err[-3000:])
    assert summary["sip_status"] == 200, summary
    assert BYE_AFTER - 3 < took < BYE_AFTER + 12, took


def test_sotto_answer_ends_a_session_the_caller_never_refreshes(tmp_path):
    port = sotto.free_udp_port()
    answer = sotto.start(
        ["answer", "--config", _config(tmp_path), "--listen", "127.0.0.1:{}".format(port), "--timeout", "110"],
        tmp_path / "home",
    )
    proc = None
    try:
        sotto.wait_listening(port, answer)
        started = time.monotonic()
        proc, _ = _sipp(tmp_path, "uac_never_refreshes.xml", "127.0.0.1:{}".format(port), "-s", "sotto")
        rc, summary, err = sotto.finish(answer, 110)
        took = time.monotonic() - started
    finally:
        if answer.poll() is None:
            answer.kill()
        sipp_rc, sipp_out = _sipp_result(proc) if proc is not None else (None, "")
    assert rc == 0, (summary, err[-3000:])
    _check(summary, err, took)
    assert sipp_rc == 0, sipp_out[-2000:]  # sipp got the BYE (and saw refresher=uac in our 2xx)


def test_sotto_call_ends_a_session_the_callee_never_refreshes(tmp_path):
    proc, sipp_port = _sipp(tmp_path, "uas_never_refreshes.xml")
    call = None
    try:
        wait_udp_bound(sipp_port, 10, "sipp's SIP port")
        started = time.monotonic()
        call = sotto.start(
            ["call", "sip:sipp@127.0.0.1:{}".format(sipp_port), "--config", _config(tmp_path)]
            + ["--listen", "127.0.0.1:{}".format(sotto.free_udp_port()), "--timeout", "110"],
            tmp_path / "home",
        )
        rc, summary, err = sotto.finish(call, 110)
        took = time.monotonic() - started
    finally:
        if call is not None and call.poll() is None:
            call.kill()
        sipp_rc, sipp_out = _sipp_result(proc)
    assert rc == 0, (summary, err[-3000:])
    _check(summary, err, took)
    assert sipp_rc == 0, sipp_out[-2000:]  # sipp saw Supported: timer and got the BYE
