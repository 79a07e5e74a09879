"""`sotto call` / `sotto answer` end to end through kamailio (digest auth) and with real phones:
Sotto to Sotto by address of record (ZRTP), a wrong password, linphone-cli both ways by AOR (ZRTP, the
same SAS on both sides), and baresip (plain G.711)."""

import json
import pathlib
import subprocess
import time

import pytest

from tests.interop.linphone import Linphone
from tests.interop.sip.driver import Kamailio
from tests.interop.sip.test_baresip import BARESIP_SIP, _baresip, _stop
from tests.interop.sotto import wait_listening
from tests.waiting import stop_process, wait_until

pytestmark = pytest.mark.interop

ROOT = pathlib.Path(__file__).resolve().parents[3]
SOTTO = str(ROOT / ".venv" / "bin" / "sotto")
KAMAILIO_PORT = 15560
PROXY = "127.0.0.1:{}".format(KAMAILIO_PORT)


def _sotto(tmp_path, mode, *args, name="s"):
    cmd = [SOTTO, mode, *args, "--cache", str(tmp_path / (name + ".cache"))]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)


def _registered_sotto(tmp_path, *args, name="s", timeout=20.0):
    """`sotto answer` registered with kamailio: waits for its own log line, not a fixed time (under load the
    REGISTER could still be on its way when the caller dialled, and kamailio answered 404)."""
    log_path = tmp_path / (name + ".log")
    cmd = [SOTTO, "answer", *args, "--log-level", "info", "--cache", str(tmp_path / (name + ".cache"))]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, cwd=ROOT)

    def alive():
        assert proc.poll() is None, "sotto exited: " + log_path.read_text()[-2000:]

    try:
        wait_until(lambda: "registered as " in log_path.read_text(), timeout, "sotto to register", alive)
    except AssertionError:
        stop_process(proc)
        raise AssertionError("sotto did not register: " + log_path.read_text()[-2000:]) from None
    return proc, log_path


def _summary(proc, timeout=60):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
    text = out.decode()
    err = err.decode() if err is not None else ""  # _registered_sotto's stderr goes to its log file
    assert text.strip(), err[-3000:]
    return proc.returncode, json.loads(text), err


@pytest.fixture
def kamailio(tmp_path):
    server = Kamailio(tmp_path, KAMAILIO_PORT, [("alice", "alicepw"), ("bob", "bobpw")])
    yield server
    server.stop()


def _account(user, password, port):
    return [
        "--register",
        "sip:{}@127.0.0.1".format(user),
        "--password",
        password,
        "--proxy",
        PROXY,
        "--listen",
        "127.0.0.1:{}".format(port),
    ]


def test_sotto_calls_sotto_by_aor_through_kamailio(kamailio, tmp_path):
    bob, bob_log = _registered_sotto(
        tmp_path, *_account("bob", "bobpw", 15580), "--rtp-port", "15582", "--timeout", "30", name="bob"
    )
    try:
        alice = _sotto(
            tmp_path,
            "call",
            "sip:bob@127.0.0.1",
            *_account("alice", "alicepw", 15581),
            "--rtp-port",
            "15584",
            "--duration",
            "2",
            "--timeout",
            "30",
            name="alice",
        )
        code, caller, err = _summary(alice)
        assert code == 0, (caller, err[-2000:], kamailio.log()[-2000:])
        code, callee, _ = _summary(bob)
        assert code == 0, (callee, bob_log.read_text()[-2000:])
    finally:
        if bob.poll() is None:
            bob.kill()
    for summary in (caller, callee):
        assert summary["result"] == "completed" and summary["registered"] is True
        assert summary["sip_status"] == 200 and summary["secure"] is True
        assert summary["rtp"]["received"] > 50
    assert caller["sas"] == callee["sas"]


def test_sotto_wrong_password_fails_promptly(kamailio, tmp_path):
    started = time.monotonic()
    proc = _sotto(tmp_path, "call", "sip:bob@127.0.0.1", *_account("alice", "not-it", 15581), "--timeout", "20")
    code, summary, _ = _summary(proc)
    assert time.monotonic() - started < 10
    assert code == 1
    assert summary["result"] == "failed" and summary["registered"] is False
    assert "wrong password" in summary["reason"] and summary["sip_status"] == 401


def _registered_linphone(tmp_path, auto_answer):
    phone = Linphone(tmp_path / "linphone", sip_port=15572, rtp_port=15588, user="bob", auto_answer=auto_answer)
    phone.start()
    try:
        phone.register("bob", "bobpw", PROXY)
    except BaseException:
        phone.stop()
        raise
    return phone


def test_sotto_calls_linphone_by_aor(kamailio, tmp_path):
    bob = _registered_linphone(tmp_path, auto_answer=True)
    try:
        alice = _sotto(
            tmp_path,
            "call",
            "sip:bob@127.0.0.1",
            *_account("alice", "alicepw", 15581),
            "--rtp-port",
            "15584",
            "--duration",
            "2",
            "--timeout",
            "30",
        )
        code, summary, err = _summary(alice)
        assert code == 0, (summary, err[-2000:])
        assert summary["secure"] is True and summary["registered"] is True
        assert bob.auth_token(timeout=5) == summary["sas"]
    finally:
        bob.stop()


def test_linphone_calls_sotto_by_aor(kamailio, tmp_path):
    bob = _registered_linphone(tmp_path, auto_answer=False)
    alice = None
    try:
        alice, alice_log = _registered_sotto(
            tmp_path, *_account("alice", "alicepw", 15581), "--rtp-port", "15584", "--duration", "2", "--timeout", "30"
        )
        bob.command("call sip:alice@127.0.0.1")
        code, summary, _ = _summary(alice)
        assert code == 0, (summary, alice_log.read_text()[-2000:], bob.console()[-2000:])
        assert summary["secure"] is True and summary["registered"] is True
        assert bob.auth_token(timeout=5) == summary["sas"]
    finally:
        if alice is not None and alice.poll() is None:
            alice.kill()
        bob.stop()  # linphonec runs in its own session: nothing else would end it


def test_sotto_calls_baresip(tmp_path):
    proc, log = _baresip(tmp_path, "-t", "30")
    try:
        wait_listening(BARESIP_SIP, proc)
        alice = _sotto(
            tmp_path,
            "call",
            "sip:carol@127.0.0.1:{}".format(BARESIP_SIP),
            "--listen",
            "127.0.0.1:15581",
            "--rtp-port",
            "15584",
            "--encryption",
            "none",
            "--duration",
            "2",
            "--timeout",
            "20",
        )
        code, summary, err = _summary(alice)
        assert code == 0, (summary, err[-2000:], (tmp_path / "baresip.log").read_text()[-2000:])
        assert summary["encryption"] == "none" and summary["codec"] in ("PCMU", "PCMA")
        assert summary["rtp"]["received"] > 50
    finally:
        _stop(proc, log)


def test_sipp_uac_calls_sotto_answer(tmp_path):
    from tests.interop.sip.driver import require
    from tests.interop.sip.test_sipp import SIPP_PORT

    alice = _sotto(
        tmp_path,
        "answer",
        "--listen",
        "127.0.0.1:15581",
        "--rtp-port",
        "15584",
        "--encryption",
        "none",
        "--timeout",
        "30",
    )
    try:
        wait_listening(15581, alice)
        sipp = subprocess.run(
            [
                require("sipp"),
                "-sn",
                "uac",
                "127.0.0.1:15581",
                "-i",
                "127.0.0.1",
                "-p",
                str(SIPP_PORT),
                "-m",
                "1",
                "-nostdin",
                "-timeout",
                "20",
            ],
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
        )
        assert sipp.returncode == 0, sipp.stdout.decode()[-2000:]
        code, summary, err = _summary(alice)
        assert code == 0, (summary, err[-2000:])
        assert summary["result"] == "completed" and summary["reason"] == "remote hangup"
    finally:
        if alice.poll() is None:
            alice.kill()


def test_sotto_call_to_sipp_uas(tmp_path):
    from tests.interop.sip.driver import require
    from tests.interop.sip.test_sipp import SIPP_PORT

    sipp = subprocess.Popen(
        [
            require("sipp"),
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            str(SIPP_PORT),
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "20",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_listening(SIPP_PORT, sipp)
        alice = _sotto(
            tmp_path,
            "call",
            "sip:service@127.0.0.1:{}".format(SIPP_PORT),
            "--listen",
            "127.0.0.1:15581",
            "--rtp-port",
            "15584",
            "--encryption",
            "none",
            "--duration",
            "1",
            "--timeout",
            "20",
        )
        code, summary, err = _summary(alice)
        assert code == 0, (summary, err[-2000:])
        assert summary["result"] == "completed" and summary["sip_status"] == 200
        assert sipp.wait(timeout=20) == 0
    finally:
        if sipp.poll() is None:
            sipp.kill()
        sipp.communicate(timeout=10)
