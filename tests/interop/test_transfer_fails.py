"""A transfer that fails (issue 15): the transferee (`sotto answer --follow-transfer`) calls the target it
was referred to, the target refuses (sipp answering 486 Busy Here), and the original call goes on: the
transferor hears the failure in the final sipfrag NOTIFY (RFC 3515 §2.4.5), keeps its call (RFC 5589
§6.1) and the summary says what happened. Real `sotto` processes, real linphonec and sipp, loopback and
free ports only."""

import pathlib
import subprocess

import pytest

from tests.interop import sotto
from tests.interop.linphone import Linphone
from tests.interop.sip.driver import require
from tests.interop.test_sotto_transfer import _notifies
from tests.waiting import wait_udp_bound

pytestmark = pytest.mark.interop

SCENARIOS = pathlib.Path(__file__).resolve().parent / "scenarios"
TIMEOUT = 60


def _busy_target(tmp_path):
    """sipp refusing one INVITE with 486 on a free port: (process, its SIP URI)."""
    port = sotto.free_udp_port()
    proc = subprocess.Popen(
        [require("sipp"), "-sf", str(SCENARIOS / "uas_busy.xml"), "-i", "127.0.0.1", "-p", str(port)]
        + ["-m", "1", "-nostdin", "-timeout", str(TIMEOUT), "-trace_err"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def alive():
        if proc.poll() is not None:
            raise AssertionError("sipp exited early:\n" + proc.communicate()[0].decode(errors="replace")[-2000:])

    wait_udp_bound(port, 10, "sipp's SIP port", alive)
    return proc, "sip:busy@127.0.0.1:{}".format(port)


def _finish_sipp(proc):
    try:
        out = proc.communicate(timeout=15)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate(timeout=10)[0].decode(errors="replace")
    return proc.returncode, out


def _sotto(tmp_path, name, head, *extra):
    port = sotto.free_udp_port()
    argv = [*head, "--listen", "127.0.0.1:{}".format(port), "--cache", str(tmp_path / (name + ".cache"))]
    process = sotto.start([*argv, "--timeout", str(TIMEOUT), *extra], tmp_path / name)
    sotto.wait_listening(port, process)
    return process, "sip:{}@127.0.0.1:{}".format(name, port)


def _end(*processes):
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)


def _check_resumed(bob_result, target_uri):
    rc, summary, err = bob_result
    assert rc == 0, (summary, err[-3000:])
    assert summary["transfer"] == {
        "role": "transferee",
        "target": target_uri,
        "attended": False,
        "status": 486,
        "resumed": True,
    }, (summary, err[-3000:])
    # The original call went on to its end (--duration), still keyed with the transferor: the summary
    # describes it again, not the refused call.
    assert summary["result"] == "completed" and summary["reason"] == "duration reached", (summary, err[-3000:])
    assert summary["secure"] is True and summary["codec"] is not None, summary
    return summary


def test_a_refused_blind_transfer_from_linphone_leaves_the_call_up(tmp_path):
    """linphonec calls bob (`sotto answer --follow-transfer`) and transfers him to a busy target: bob's
    final NOTIFY says 486, and the call with linphone is still up until bob's --duration ends it."""
    bob = busy = None
    with Linphone(tmp_path / "alice", sotto.free_udp_port(), sotto.free_udp_port(), user="alice") as alice:
        try:
            busy, busy_uri = _busy_target(tmp_path)
            bob, bob_uri = _sotto(tmp_path, "bob", ["answer"], "--follow-transfer", "--duration", "14")
            alice.command("call " + bob_uri)
            sas = alice.auth_token(timeout=20)
            mark = len(alice.console())
            alice.command("transfer " + busy_uri)
            bob_result = sotto.finish(bob, TIMEOUT + 10)
            # Ended by bob at --duration (a BYE linphone saw), not at the refusal.
            alice.wait_for(r"(?i)call \d+ with \S+ ended|call ended|terminated", timeout=10, start=mark)
            alice_log = alice.log()
            console = alice.console()
        finally:
            _end(bob)
            sipp_rc, sipp_out = _finish_sipp(busy) if busy is not None else (None, "")
    summary = _check_resumed(bob_result, busy_uri)
    assert summary["sas"] == sas, (summary, sas)  # the same ZRTP session as before the REFER
    assert sipp_rc == 0, sipp_out[-2000:]  # sipp saw its INVITE refused and ACKed
    notifies = [(head, body) for head, body in _notifies(alice_log) if "Event: refer" in head]
    assert notifies, alice_log[-3000:]
    head, body = notifies[-1]
    assert "Subscription-State: terminated" in head and body.startswith("SIP/2.0 486 "), notifies
    # bob hung up (BYE from bob, at --duration), long after the 486: linphone got no BYE at the refusal.
    byes = [line for line in alice_log.splitlines() if line.startswith("BYE sip:")]
    assert len(byes) == 1, (byes, console[-2000:])


def test_a_refused_blind_transfer_from_sotto_is_reported_and_the_call_goes_on(tmp_path):
    """alice (`sotto call --at 3:transfer BUSY`) refers bob to a busy target: alice's action says
    "failed: 486" and she keeps the call; bob takes it back and ends it at his --duration."""
    bob = alice = busy = None
    try:
        busy, busy_uri = _busy_target(tmp_path)
        bob, bob_uri = _sotto(tmp_path, "bob", ["answer"], "--follow-transfer", "--duration", "12")
        alice, _ = _sotto(tmp_path, "alice", ["call", bob_uri], "--at", "3:transfer " + busy_uri, "--duration", "40")
        alice_result = sotto.finish(alice, TIMEOUT + 10)
        bob_result = sotto.finish(bob, TIMEOUT + 10)
    finally:
        _end(alice, bob)
        sipp_rc, sipp_out = _finish_sipp(busy) if busy is not None else (None, "")
    bob_summary = _check_resumed(bob_result, busy_uri)
    rc, alice_summary, err = alice_result
    assert rc == 0, (alice_summary, err[-3000:])
    assert {a["action"]: a["result"] for a in alice_summary["actions"]} == {"transfer " + busy_uri: "failed: 486"}
    # alice's call with bob ended when bob hung up, after the failed transfer: the same secure call.
    assert alice_summary["result"] == "completed" and alice_summary["reason"] != "transferred", alice_summary
    assert alice_summary["sas"] == bob_summary["sas"], (alice_summary, bob_summary)
    assert alice_summary["rtp"]["received"] > 400, alice_summary  # bob's audio through the whole call
    assert sipp_rc == 0, sipp_out[-2000:]


def test_a_blind_transfer_to_an_unreachable_target_is_reported_and_the_call_goes_on(tmp_path):
    """The target's port is closed (nothing listens; loopback answers ICMP port unreachable): bob's INVITE
    fails at the transport, the final NOTIFY carries that failure and bob keeps the call with alice."""
    closed_uri = "sip:nobody@127.0.0.1:{}".format(sotto.free_udp_port())
    bob = alice = None
    try:
        bob, bob_uri = _sotto(tmp_path, "bob", ["answer"], "--follow-transfer", "--duration", "10")
        alice, _ = _sotto(tmp_path, "alice", ["call", bob_uri], "--at", "3:transfer " + closed_uri, "--duration", "40")
        alice_result = sotto.finish(alice, TIMEOUT + 10)
        bob_result = sotto.finish(bob, TIMEOUT + 10)
    finally:
        _end(alice, bob)
    rc, summary, err = bob_result
    assert rc == 0, (summary, err[-3000:])
    transfer = summary["transfer"]
    assert transfer["resumed"] is True and transfer["status"] >= 400, summary
    assert summary["result"] == "completed" and summary["reason"] == "duration reached", summary
    assert summary["secure"] is True, summary
    rc, alice_summary, err = alice_result
    assert rc == 0, (alice_summary, err[-3000:])
    action = {a["action"]: a["result"] for a in alice_summary["actions"]}["transfer " + closed_uri]
    assert action == "failed: {}".format(transfer["status"]), (action, transfer)
    assert alice_summary["result"] == "completed" and alice_summary["sas"] == summary["sas"], alice_summary
