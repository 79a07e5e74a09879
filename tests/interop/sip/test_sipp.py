"""sipp against Sotto's UserAgent on 127.0.0.1: the built-in uac and uas scenarios, and XML scenarios for
2xx/non-2xx retransmission (Timer G and the UAS core's 2xx schedule), CANCEL before the answer, reliable
provisional responses both ways (RFC 3262) and a session that expires unrefreshed (RFC 4028 §10)."""

import pathlib
import subprocess
import time

import pytest

from firmware.sip import events
from firmware.sip.message import parse_message
from tests.interop.sip.driver import Driver, offer, require
from tests.waiting import wait_tcp_listening, wait_udp_bound

pytestmark = pytest.mark.interop

SCENARIOS = pathlib.Path(__file__).resolve().parent / "scenarios"
SIPP_PORT = 15197


def _sipp(tmp_path, *args, timeout=20):
    binary = require("sipp")
    cmd = [
        binary,
        *args,
        "-i",
        "127.0.0.1",
        "-p",
        str(SIPP_PORT),
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        str(timeout),
        "-trace_err",
        "-trace_msg",
    ]
    return subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _alive(proc):
    def check():
        if proc.poll() is not None:
            raise AssertionError("sipp exited early:\n" + proc.communicate()[0].decode(errors="replace")[-2000:])

    return check


def _drive(driver, proc, timeout=25):
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        driver.pump_once(0.01)
    if proc.poll() is None:
        proc.kill()
    out = proc.communicate(timeout=10)[0].decode(errors="replace")
    driver.run(0.3)
    return proc.returncode, out


def _callee(reaction):
    driver = Driver(port=0)

    def on_event(event):
        if isinstance(event, events.IncomingCall):
            reaction(driver, event)

    driver.on_event = on_event
    return driver


def _answer(driver, event):
    driver.ua.ringing(event.call_id, driver.now())
    driver.ua.answer(event.call_id, offer(42000), driver.now())


def _sent_statuses(driver, status):
    return [d for d in driver.sent if d.startswith("SIP/2.0 {} ".format(status).encode())]


def test_sipp_builtin_uac_calls_us(tmp_path):
    driver = _callee(_answer)
    try:
        proc = _sipp(tmp_path, "-sn", "uac", "{}:{}".format(*driver.address))
        code, out = _drive(driver, proc)
        assert code == 0, out
        assert driver.of(events.CallConfirmed)
        ended = driver.of(events.CallEnded)
        assert ended and ended[0].reason == "remote hangup" and ended[0].by_remote
    finally:
        driver.close()


def test_we_call_sipp_builtin_uas(tmp_path):
    driver = Driver(port=0)
    try:
        proc = _sipp(tmp_path, "-sn", "uas")
        wait_udp_bound(SIPP_PORT, 10, "sipp's uas", _alive(proc))
        call = driver.ua.invite("sip:service@127.0.0.1:{}".format(SIPP_PORT), offer(42002), driver.now())
        assert driver.run_until(lambda: driver.of(events.CallAnswered), 10), driver.events
        driver.run(0.5)
        driver.ua.hangup(call, driver.now())
        code, out = _drive(driver, proc)
        assert code == 0, out
        assert [type(e).__name__ for e in driver.events] == ["CallRinging", "CallAnswered", "CallEnded"]
        assert driver.of(events.CallEnded)[0].reason == "local hangup"
    finally:
        driver.close()


def test_first_200_not_acked_is_retransmitted_until_ack(tmp_path):
    driver = _callee(_answer)
    stamps = []
    original_send = driver.transport.send

    def timed_send(data, addr):
        stamps.append((time.monotonic(), data))
        return original_send(data, addr)

    driver.transport.send = timed_send
    try:
        proc = _sipp(tmp_path, "-sf", str(SCENARIOS / "uac_ignore_first_200.xml"), "{}:{}".format(*driver.address))
        code, out = _drive(driver, proc)
        assert code == 0, out
        oks = [t for t, d in stamps if d.startswith(b"SIP/2.0 200") and parse_message(d).cseq[1] == "INVITE"]
        # Sent at 0, then T1 = 0.5 s and 2*T1 later (the ACK comes 1.8 s after the first): 3 copies.
        assert len(oks) == 3, len(oks)
        gaps = [oks[i + 1] - oks[i] for i in range(len(oks) - 1)]
        assert 0.4 < gaps[0] < 0.7 and 0.9 < gaps[1] < 1.2, gaps
        assert driver.of(events.CallConfirmed)
        assert driver.of(events.CallEnded)[0].by_remote
    finally:
        driver.close()


def test_first_486_not_acked_is_retransmitted_by_timer_g(tmp_path):
    driver = _callee(lambda d, e: d.ua.reject(e.call_id, 486, d.now()))
    stamps = []
    original_send = driver.transport.send

    def timed_send(data, addr):
        stamps.append((time.monotonic(), data))
        return original_send(data, addr)

    driver.transport.send = timed_send
    try:
        proc = _sipp(tmp_path, "-sf", str(SCENARIOS / "uac_ignore_first_486.xml"), "{}:{}".format(*driver.address))
        code, out = _drive(driver, proc)
        assert code == 0, out
        busy = [t for t, d in stamps if d.startswith(b"SIP/2.0 486")]
        assert len(busy) >= 3, len(busy)
        gaps = [busy[i + 1] - busy[i] for i in range(2)]
        assert 0.4 < gaps[0] < 0.7 and 0.9 < gaps[1] < 1.2, gaps
        driver.run(1.0)
        assert len([d for _, d in stamps if d.startswith(b"SIP/2.0 486")]) == len(busy)  # ACK stopped Timer G
    finally:
        driver.close()


def test_cancel_before_answer(tmp_path):
    driver = _callee(lambda d, e: d.ua.ringing(e.call_id, d.now()))
    try:
        proc = _sipp(tmp_path, "-sf", str(SCENARIOS / "uac_cancel.xml"), "{}:{}".format(*driver.address))
        code, out = _drive(driver, proc)
        assert code == 0, out
        ended = driver.of(events.CallEnded)
        assert ended == [events.CallEnded(driver.of(events.IncomingCall)[0].call_id, "cancelled", 487, True)]
        assert _sent_statuses(driver, 487) and driver.ua.calls == {}
    finally:
        driver.close()


def test_tcp_sipp_uac_calls_us(tmp_path):
    driver = Driver(port=0, transport="tcp")

    def on_event(event):
        if isinstance(event, events.IncomingCall):
            _answer(driver, event)

    driver.on_event = on_event
    try:
        proc = _sipp(tmp_path, "-sn", "uac", "-t", "t1", "{}:{}".format(*driver.address))
        code, out = _drive(driver, proc)
        assert code == 0, out
        assert driver.of(events.CallConfirmed)
        assert driver.of(events.CallEnded)[0].by_remote
        # Reliable transport: no retransmissions of our 200 OK (RFC 3261 17.2.1 / 13.3.1.4 only on UDP).
        assert len(_sent_statuses(driver, 200)) == 2  # INVITE and BYE
    finally:
        driver.close()


def test_tcp_we_call_sipp_uas(tmp_path):
    driver = Driver(port=0, transport="tcp")
    try:
        proc = _sipp(tmp_path, "-sn", "uas", "-t", "t1")
        wait_tcp_listening(SIPP_PORT, 10, "sipp's uas on TCP", _alive(proc))
        target = "sip:service@127.0.0.1:{};transport=tcp".format(SIPP_PORT)
        call = driver.ua.invite(target, offer(42002), driver.now())
        assert driver.run_until(lambda: driver.of(events.CallAnswered), 10), driver.events
        invite = [d for d in driver.sent if d.startswith(b"INVITE")]
        assert len(invite) == 1 and b"Via: SIP/2.0/TCP " in invite[0] and b";transport=tcp>" in invite[0]
        driver.run(0.5)
        driver.ua.hangup(call, driver.now())
        code, out = _drive(driver, proc)
        assert code == 0, out
        assert driver.of(events.CallEnded)[0].reason == "local hangup"
    finally:
        driver.close()


def test_info_dtmf_from_sipp(tmp_path):
    driver = _callee(_answer)
    try:
        proc = _sipp(tmp_path, "-sf", str(SCENARIOS / "uac_info_dtmf.xml"), "{}:{}".format(*driver.address))
        code, out = _drive(driver, proc)
        assert code == 0, out
        call_id = driver.of(events.IncomingCall)[0].call_id
        assert driver.of(events.DtmfReceived) == [events.DtmfReceived(call_id, "7", 250)]
        assert driver.of(events.CallEnded)[0].by_remote
    finally:
        driver.close()


def _reliable_180_pracked(tmp_path, scenario, reliable_provisional):
    driver = _callee(lambda d, e: d.ua.ringing(e.call_id, d.now()))
    driver.ua.reliable_provisional = reliable_provisional
    try:
        proc = _sipp(tmp_path, "-sf", str(SCENARIOS / scenario), "{}:{}".format(*driver.address))
        # Answer only once the PRACK came (and was answered): the 2xx follows the acknowledged 180.
        deadline = time.monotonic() + 10
        while not _sent_statuses(driver, 200) and time.monotonic() < deadline and proc.poll() is None:
            driver.pump_once(0.01)
        pracked = [parse_message(d) for d in _sent_statuses(driver, 200)]
        assert pracked and pracked[0].cseq == (2, "PRACK"), driver.received
        call_id = driver.of(events.IncomingCall)[0].call_id
        driver.ua.answer(call_id, offer(42004), driver.now())
        code, out = _drive(driver, proc)
        assert code == 0, out
        ringing = [parse_message(d) for d in _sent_statuses(driver, 180)]
        assert ringing and all(r.headers.get("Require") == "100rel" for r in ringing)
        assert len({r.headers.get("RSeq") for r in ringing}) == 1
        assert driver.of(events.CallConfirmed) and driver.of(events.CallEnded)[0].reason == "remote hangup"
    finally:
        driver.close()


def test_sipp_requires_100rel_and_we_send_a_reliable_180_it_pracks(tmp_path):
    _reliable_180_pracked(tmp_path, "uac_100rel.xml", "required")


def test_sipp_supports_100rel_and_with_the_option_on_we_send_a_reliable_180_it_pracks(tmp_path):
    """RFC 3262 §3 MAY: [sip] reliable_provisional = "supported" makes a Supported: 100rel enough."""
    _reliable_180_pracked(tmp_path, "uac_supports_100rel.xml", "supported")


def test_we_prack_a_reliable_183_from_sipp_and_take_its_answer(tmp_path):
    driver = Driver(port=0)
    try:
        proc = _sipp(tmp_path, "-sf", str(SCENARIOS / "uas_100rel.xml"))
        wait_udp_bound(SIPP_PORT, 10, "sipp's uas", _alive(proc))
        call = driver.ua.invite("sip:service@127.0.0.1:{}".format(SIPP_PORT), offer(42006), driver.now())
        assert driver.run_until(lambda: driver.of(events.CallAnswered), 10), driver.events
        ((ringing,),) = [[e for e in driver.of(events.CallRinging)]]
        assert ringing.status == 183 and b"m=audio 42424 " in ringing.sdp
        # RFC 3262 §5: the 200 carries no SDP, the answer stands from the 183.
        assert driver.of(events.CallAnswered)[0].sdp == ringing.sdp
        pracks = [parse_message(d) for d in driver.sent if d.startswith(b"PRACK ")]
        assert len(pracks) == 1 and pracks[0].headers.get("RAck") == "1 1 INVITE"
        driver.run(0.3)
        driver.ua.hangup(call, driver.now())
        code, out = _drive(driver, proc)
        assert code == 0, out
        bye = [parse_message(d) for d in driver.sent if d.startswith(b"BYE ")][0]
        assert bye.cseq[0] == 3  # INVITE 1, PRACK 2
        assert driver.of(events.CallEnded)[0].reason == "local hangup"
    finally:
        driver.close()


def test_the_session_expires_when_sipp_never_refreshes(tmp_path):
    # Session-Expires 24 s (a Min-SE of 24 for the test; the phone's is 90): the BYE is due at
    # 24 - min(32, 24/3) = 16 s after the 2xx (RFC 4028 §10).
    driver = _callee(_answer)
    driver.ua.min_session_expires = 24
    try:
        started = time.monotonic()
        proc = _sipp(
            tmp_path,
            "-sf",
            str(SCENARIOS / "uac_session_expires.xml"),
            "{}:{}".format(*driver.address),
            timeout=40,
        )
        code, out = _drive(driver, proc, timeout=40)
        assert code == 0, out
        ended = driver.of(events.CallEnded)
        assert [(e.reason, e.by_remote) for e in ended] == [("session expired", False)]
        took = time.monotonic() - started
        assert 15.5 < took < 25, took
        ok = [parse_message(d) for d in _sent_statuses(driver, 200) if parse_message(d).cseq[1] == "INVITE"][0]
        assert ok.headers.get("Session-Expires") == "24;refresher=uac"
    finally:
        driver.close()
