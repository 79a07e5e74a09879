"""A caller that sends its INVITE without SDP (late offer, RFC 3261 §13.2.1) to the real `sotto answer`:
with Supported: 100rel our offer goes in a reliable 183 and sipp's answer in the PRACK (RFC 3262 §5,
the 200 only after that PRACK, §3); without it our offer goes in the 200 and the answer in the ACK.
Either way the call is set up and its media runs. Real `sotto` and sipp, loopback and free ports only."""

import pathlib
import subprocess

import pytest

from tests.interop import sotto
from tests.interop.sip.driver import require

pytestmark = pytest.mark.interop

SCENARIOS = pathlib.Path(__file__).resolve().parent / "scenarios"


def _late_offer_call(tmp_path, scenario):
    port = sotto.free_udp_port()
    answer = sotto.start(
        ["answer", "--listen", "127.0.0.1:{}".format(port), "--timeout", "30", "--encryption", "none"]
        + ["--cache", str(tmp_path / "cache")],
        tmp_path / "home",
    )
    proc = None
    try:
        sotto.wait_listening(port, answer)
        cmd = [require("sipp"), "-sf", str(SCENARIOS / scenario), "127.0.0.1:{}".format(port), "-s", "sotto"]
        cmd += ["-i", "127.0.0.1", "-p", str(sotto.free_udp_port()), "-mp", str(sotto.free_udp_port())]
        cmd += ["-m", "1", "-nostdin", "-timeout", "20", "-trace_err", "-trace_msg"]
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
        rc, summary, err = sotto.finish(answer, 30)
    finally:
        if answer.poll() is None:
            answer.kill()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    messages = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*_messages.log"))
    assert proc.returncode == 0, (out[-2000:], messages[-4000:], err[-2000:])
    assert rc == 0, (summary, err[-3000:])
    assert summary["result"] == "completed" and summary["reason"] == "remote hangup", (summary, err[-2000:])
    assert summary["codec"] == "PCMU" and summary["rtp"]["sent"] > 50, summary  # the media ran
    return messages


def test_a_late_offer_with_100rel_gets_our_offer_in_a_reliable_183_and_answers_in_the_prack(tmp_path):
    messages = _late_offer_call(tmp_path, "uac_late_offer_100rel.xml")
    # The 200 went out only after the PRACK was answered (RFC 3262 §3): in sipp's trace, the PRACK's 200
    # comes before the INVITE's.
    received = [m for m in messages.split("-" * 47) if "message received" in m]
    oks = [m for m in received if "SIP/2.0 200 " in m]
    order = ["PRACK" if "CSeq: 2 PRACK" in m else "INVITE" if "CSeq: 1 INVITE" in m else "other" for m in oks]
    assert order[:2] == ["PRACK", "INVITE"], (order, messages[-4000:])
    early = [m for m in received if "SIP/2.0 183 " in m]
    assert early and "m=audio" in early[0] and "Require: 100rel" in early[0], messages[-4000:]


def test_a_late_offer_without_100rel_gets_our_offer_in_the_200_and_answers_in_the_ack(tmp_path):
    _late_offer_call(tmp_path, "uac_late_offer.xml")


def test_the_phone_rings_with_our_offer_in_a_reliable_183_and_answers_after_the_prack(tmp_path):
    """The simulated phone: sipp's late-offer INVITE rings (a reliable 183 with our offer, the answer in the
    PRACK) and the 200 goes out when the handset is lifted."""
    import json

    from tests.waiting import wait_until

    script = tmp_path / "script.txt"
    script.write_text("wait idle 5\nwait ringing 20\nsleep 1\nhook off\nwait ended 15\nquit\n")
    log = tmp_path / "display.jsonl"
    port = sotto.free_udp_port()
    phone = sotto.start(
        ["run", "--board", "sim", "--listen", "127.0.0.1:{}".format(port), "--script", str(script)]
        + ["--display-log", str(log), "--encryption", "none"],
        tmp_path / "home",
    )
    proc = None
    try:
        wait_until(lambda: log.exists() and "idle" in log.read_text(), 20, "the phone to be idle", interval=0.1)
        cmd = [require("sipp"), "-sf", str(SCENARIOS / "uac_late_offer_100rel.xml"), "127.0.0.1:{}".format(port)]
        cmd += ["-s", "sotto", "-i", "127.0.0.1", "-p", str(sotto.free_udp_port())]
        cmd += ["-mp", str(sotto.free_udp_port()), "-m", "1", "-nostdin", "-timeout", "20", "-trace_err"]
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
        rc, _summary, err = sotto.finish(phone, 30)
    finally:
        if phone.poll() is None:
            phone.kill()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, out[-2000:]
    assert rc == 0, err[-3000:]
    states = [json.loads(line)["state"] for line in log.read_text().splitlines()]
    ringing = states.index("ringing")
    assert "in-call" in states[ringing:] and "ended" in states[ringing:], states
