"""Transfer with a real third party (issue 15): blind transfer (REFER, RFC 3515) to linphone and to baresip
with Sotto as the transferee, where the transferor must get the final sipfrag NOTIFY; attended transfer
(Replaces, RFC 3891) driven by linphone between two Sottos, and linphone's own INVITE with Replaces
taking a Sotto's call over. Real `sotto` processes, real linphonec/baresip, loopback only."""

import pytest

from tests.interop import sotto
from tests.interop.carrier.peers import Baresip
from tests.interop.carrier.tones import write_tone
from tests.interop.linphone import Linphone
from tests.interop.sip.driver import Driver, offer, pump_until

pytestmark = pytest.mark.interop

TIMEOUT = 60


def _sotto(tmp_path, name, head, *extra, host="127.0.0.1", port=None):
    """Start `sotto HEAD... --listen HOST:PORT (default a free port) ... EXTRA` as `name`; (process, its
    SIP URI)."""
    port = port or sotto.free_udp_port()
    argv = [*head, "--listen", "{}:{}".format(host, port), "--cache", str(tmp_path / (name + ".cache"))]
    process = sotto.start([*argv, "--timeout", str(TIMEOUT), *extra], tmp_path / name)
    sotto.wait_listening(port, process)
    return process, "sip:{}@{}:{}".format(name, host, port)


def _end(*processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _actions(summary):
    return {a["action"]: a["result"] for a in summary.get("actions", [])}


def _blind_transfer(tmp_path, target_uri):
    """alice (sotto call) talks to bob (sotto answer --follow-transfer), then transfers him to target_uri.
    Returns both (exit code, summary, stderr)."""
    bob, bob_uri = _sotto(tmp_path, "bob", ["answer"], "--follow-transfer", "--duration", "12")
    alice = None
    try:
        alice, _ = _sotto(tmp_path, "alice", ["call", bob_uri], "--at", "3:transfer " + target_uri, "--duration", "40")
        alice_result = sotto.finish(alice, TIMEOUT + 10)
        bob_result = sotto.finish(bob, TIMEOUT + 10)
    finally:
        _end(*[p for p in (alice, bob) if p is not None])
    return alice_result, bob_result


def _check_transferor(alice_result, target_uri):
    rc, summary, err = alice_result
    assert rc == 0, (summary, err[-3000:])
    # "ok" only comes from a NOTIFY whose sipfrag is 2xx (RFC 3515 §2.4.5): the transferee's final report.
    assert _actions(summary) == {"transfer " + target_uri: "ok"}, summary
    assert summary["result"] == "completed" and summary["reason"] == "transferred", summary


def _check_transferee(bob_result, target_uri):
    rc, summary, err = bob_result
    assert rc == 0, (summary, err[-3000:])
    assert summary["transfer"] == {"role": "transferee", "target": target_uri, "attended": False, "status": 200}
    assert summary["result"] == "completed", summary
    assert summary["rtp"]["received"] > 50, (summary, err[-4000:])  # the new call carried media
    return summary


def test_blind_transfer_to_linphone_reaches_the_transferor_as_a_final_notify(tmp_path):
    with Linphone(
        tmp_path / "carol", sotto.free_udp_port(), sotto.free_udp_port(), user="carol", auto_answer=True
    ) as carol:
        carol.command("play {}".format(write_tone(tmp_path / "carol-tone.wav", 700, 40)))  # else it sends no RTP
        alice_result, bob_result = _blind_transfer(tmp_path, carol.uri)
        console = carol.console()
    _check_transferor(alice_result, carol.uri)
    bob = _check_transferee(bob_result, carol.uri)
    # The new call is bob's with linphone: a new ZRTP session, the SAS linphone shows.
    assert bob["secure"] is True and bob["sas"] in console, (bob, console[-2000:])


def test_blind_transfer_to_baresip_reaches_the_transferor_as_a_final_notify(tmp_path):
    tone = write_tone(tmp_path / "carol-tone.wav", 700, 40)
    ports = sotto.free_udp_port()
    carol = Baresip(tmp_path / "carol", sotto.free_udp_port(), (ports, ports + 9), play=str(tone)).start("-t", "50")
    try:
        alice_result, bob_result = _blind_transfer(tmp_path, carol.uri)
    finally:
        carol.stop()
    _check_transferor(alice_result, carol.uri)
    bob = _check_transferee(bob_result, carol.uri)
    assert bob["encryption"] == "none" and bob["secure"] is False, bob  # baresip has no ZRTP: loud, not hidden


def test_linphone_attended_transfer_joins_two_sottos_with_replaces(tmp_path):
    """linphone talks to x and to y, then `transfer 1 --to-call 2`: x gets a REFER whose Refer-To names y
    with Replaces; x's INVITE with Replaces takes linphone's place at y, which hangs linphone's leg up.
    x and y then key their own ZRTP session: the same SAS on both."""
    x = y = None
    with Linphone(tmp_path / "lin", sotto.free_udp_port(), sotto.free_udp_port(), user="lin") as lin:
        try:
            x, x_uri = _sotto(tmp_path, "x", ["answer"], "--follow-transfer", "--duration", "14")
            # linphone drops the port of a URI it calls (its To, and the Refer-To it builds from it): the
            # transfer target must listen on the default port, on an address of its own (127.0.0.2).
            y, y_uri = _sotto(tmp_path, "y", ["answer"], "--duration", "14", host="127.0.0.2", port=5060)
            lin.command("call " + x_uri)
            lin.auth_token(timeout=20)
            mark = len(lin.console())
            lin.command("pause")  # linphonec places a second call only with the first on hold
            lin.wait_for(r"Call 1 with \S+ is now paused", timeout=10, start=mark)
            mark = len(lin.console())
            lin.command("call " + y_uri)
            lin.auth_token(timeout=20, start=mark)
            lin.command("transfer 1 --to-call 2")
            x_result = sotto.finish(x, TIMEOUT + 10)
            y_result = sotto.finish(y, TIMEOUT + 10)
            console = lin.console()
        finally:
            _end(*[p for p in (x, y) if p is not None])
    (rc_x, x_summary, x_err), (rc_y, y_summary, y_err) = x_result, y_result
    assert rc_x == 0 and rc_y == 0, (x_summary, x_err[-2500:], y_summary, y_err[-2500:], console[-1500:])
    assert x_summary["transfer"]["attended"] is True and x_summary["transfer"]["status"] == 200, x_summary
    assert y_summary["transfer"]["role"] == "target", y_summary
    assert "lin@" not in y_summary["transfer"]["replaced_by"], y_summary  # x's From, not linphone's
    assert x_summary["secure"] is True and y_summary["secure"] is True, (x_summary, y_summary)
    assert x_summary["sas"] == y_summary["sas"], (x_summary, y_summary)
    assert x_summary["result"] == "completed" and y_summary["result"] == "completed", (x_summary, y_summary)


def test_linphone_invite_with_replaces_takes_over_a_sotto_call(tmp_path):
    """Attended transfer through Sotto's UA API (refer(..., replaces=)): a transferor on the Sotto UA
    talks to linphone and to a `sotto answer`, then refers linphone to that sotto with Replaces; linphone's
    INVITE with Replaces takes the transferor's place, the sotto ends the replaced leg with BYE, and
    linphone and the sotto go secure with each other."""
    from firmware.sip import events

    y = None
    transferor = Driver()

    def on_event(event):
        if isinstance(event, events.ReinviteReceived):  # linphone holds its call while transferring
            transferor.ua.answer_reinvite(event.call_id, offer(transferor.address[1] + 2, version=2), transferor.now())

    transferor.on_event = on_event
    # ZRTP but not mandatory: the transferor (the UA alone, no media) talks to it in the clear.
    lin = Linphone(
        tmp_path / "lin",
        sotto.free_udp_port(),
        sotto.free_udp_port(),
        user="lin",
        auto_answer=True,
        encryption_mandatory=False,
    )
    try:
        lin.start()
        y, y_uri = _sotto(tmp_path, "y", ["answer"], "--duration", "10")
        to_lin = transferor.ua.invite(lin.uri, offer(transferor.address[1] + 2), transferor.now())
        to_y = transferor.ua.invite(y_uri, offer(transferor.address[1] + 4), transferor.now())
        answered = lambda: {e.call_id for e in transferor.of(events.CallAnswered)} >= {to_lin, to_y}  # noqa: E731
        assert transferor.run_until(answered, 15), transferor.events
        transferor.run(1.0)
        transferor.ua.refer(to_lin, None, transferor.now(), replaces=to_y)

        def done():
            ended = {e.call_id for e in transferor.of(events.CallEnded)}
            final = [p for p in transferor.of(events.ReferProgress) if p.final]
            return to_y in ended and final

        assert pump_until([transferor], done, 20), (transferor.events, lin.console()[-2000:])
        progress = [(p.status, p.final) for p in transferor.of(events.ReferProgress)]
        assert progress[0] == (202, False) and progress[-1] == (200, True), progress
        # y ended our leg itself (RFC 3891 §3), by BYE: we did not hang it up.
        assert [e for e in transferor.of(events.CallEnded) if e.call_id == to_y][0].by_remote is True
        transferor.ua.hangup(to_lin, transferor.now())
        transferor.run(0.5)
        token = lin.auth_token(timeout=20)
        rc, y_summary, err = sotto.finish(y, TIMEOUT)
        console = lin.console()
    finally:
        transferor.close()
        lin.stop()
        if y is not None:
            _end(y)
    assert rc == 0, (y_summary, err[-3000:], console[-2000:])
    assert y_summary["transfer"]["role"] == "target", y_summary
    assert y_summary["transfer"]["replaced_by"].startswith("sip:lin@"), y_summary
    assert y_summary["secure"] is True and y_summary["sas"] == token, (y_summary, token)
    assert y_summary["result"] == "completed", y_summary
