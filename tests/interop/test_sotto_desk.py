"""Desk features of `sotto run` on the simulated board (issue 15), set from the menu by a sim script, against
real peers: do not disturb (a real `sotto call` gets 486, also after a restart: kept in the data directory)
and the local call forward (always, busy, no answer): sipp calls the phone, gets 302, follows the Contact,
and the forward target (a real `sotto answer`) answers the call. Run under flock (see the common brief)."""

import json
import pathlib
import shutil
import signal
import subprocess
import time

import pytest

from tests.interop import sotto

pytestmark = pytest.mark.interop

SCENARIOS = pathlib.Path(__file__).resolve().parent / "scenarios"


def _sipp():
    binary = shutil.which("sipp")
    if binary is None:
        pytest.fail("sipp is not installed (Debian package sipp; make test installs it)")
    return binary


def _config(tmp_path, port, extra=""):
    path = tmp_path / "phone.toml"
    path.write_text(
        '[sip]\nlisten = "127.0.0.1:{}"\n[phone]\ncontacts_file = ""\n{}'.format(port, extra),
        encoding="utf-8",
    )
    return path


def _start_phone(tmp_path, config, script, log, home):
    script_path = tmp_path / "script-{}.txt".format(log.stem)
    script_path.write_text(script)
    return sotto.start(
        ["run", "--config", str(config), "--script", str(script_path), "--display-log", str(log)],
        home,
    )


def _frames(log):
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _wait_for(predicate, what, process, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError("sotto run ended before {}: {}".format(what, process.communicate()[1][-2000:]))
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def _stop(process):
    """End the phone we started, by its PID (SIGTERM: it hangs up and saves, then exits 0)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return sotto.finish(process, 20)


def _idle_shows(log, text):
    return lambda: any(f["state"] == "idle" and text in f["lines"] for f in _frames(log))


def test_do_not_disturb_refuses_a_real_call_with_486_and_survives_a_restart(tmp_path):
    port = sotto.free_udp_port()
    home = tmp_path / "home"
    config = _config(tmp_path, port)
    log = tmp_path / "first.jsonl"
    phone = _start_phone(tmp_path, config, "wait idle 10\npress **#41\nkey hangup\nsleep 120\n", log, home)
    try:
        _wait_for(_idle_shows(log, "DND"), "the idle screen to show DND", phone)
        sotto.wait_listening(port, phone)
        rc, summary, err = sotto.run(
            ["call", "sip:desk@127.0.0.1:{}".format(port), "--listen", "127.0.0.1:{}".format(sotto.free_udp_port())],
            tmp_path / "caller",
            timeout=30,
        )
        assert rc == 1, err
        assert summary["sip_status"] == 486, summary
    finally:
        rc, _, err = _stop(phone)
    assert rc == 0, err
    saved = json.loads((home / "sotto" / "desk.json").read_text())
    assert saved["dnd"] is True
    history = json.loads((home / "sotto" / "history.json").read_text())
    assert history[0]["reason"] == "do not disturb" and history[0]["dir"] == "missed"
    assert not any(f["state"] == "ringing" for f in _frames(log))

    # A power cycle later: still on, still refused.
    log = tmp_path / "second.jsonl"
    phone = _start_phone(tmp_path, config, "wait idle 10\nsleep 120\n", log, home)
    try:
        _wait_for(_idle_shows(log, "DND"), "DND on the idle screen after the restart", phone)
        sotto.wait_listening(port, phone)
        rc, summary, err = sotto.run(
            ["call", "sip:desk@127.0.0.1:{}".format(port), "--listen", "127.0.0.1:{}".format(sotto.free_udp_port())],
            tmp_path / "caller",
            timeout=30,
        )
        assert summary["sip_status"] == 486, (summary, err)
    finally:
        _stop(phone)


def _forward_through_sipp(tmp_path, script, ready, expect_state):
    """The phone forwards to a `sotto answer`; sipp calls the phone and follows the 302 to it."""
    phone_port = sotto.free_udp_port()
    target_port = sotto.free_udp_port()
    target = sotto.start(
        ["answer", "--listen", "127.0.0.1:{}".format(target_port), "--timeout", "60", "--encryption", "none"],
        tmp_path / "target",
    )
    config = _config(tmp_path, phone_port, '[dial.speed_dial]\n9 = "sip:bob@127.0.0.1:{}"\n'.format(target_port))
    log = tmp_path / "phone.jsonl"
    phone = _start_phone(tmp_path, config, script, log, tmp_path / "home")
    sipp = None
    try:
        _wait_for(lambda: ready(_frames(log)), "the phone to be set up", phone, timeout=40)
        sotto.wait_listening(phone_port, phone)
        sotto.wait_listening(target_port, target)
        sipp = subprocess.Popen(
            [
                _sipp(),
                "127.0.0.1:{}".format(phone_port),
                "-sf",
                str(SCENARIOS / "uac_follow_302.xml"),
                "-i",
                "127.0.0.1",
                "-p",
                str(sotto.free_udp_port()),
                "-mp",
                str(sotto.free_udp_port()),
                "-m",
                "1",
                "-nostdin",
                "-timeout",
                "40",
                "-timeout_error",
                "-trace_err",
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out = sipp.communicate(timeout=60)[0].decode(errors="replace")
        errors = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*_errors.log"))
        assert sipp.returncode == 0, out[-3000:] + errors
        rc, summary, err = sotto.finish(target, 30)
        assert summary is not None and summary["sip_status"] == 200, (summary, err[-2000:])
        _wait_for(lambda: any(f["state"] == expect_state for f in _frames(log)), expect_state, phone, timeout=20)
    finally:
        if sipp is not None and sipp.poll() is None:
            sipp.kill()
            sipp.communicate()
        if target.poll() is None:
            target.kill()
            target.communicate()
        _stop(phone)
    history = json.loads((tmp_path / "home" / "sotto" / "history.json").read_text())
    return _frames(log), history


def test_forward_always_sends_the_call_to_the_target(tmp_path):
    frames, history = _forward_through_sipp(
        tmp_path,
        "wait idle 10\npress **#429#\nkey hangup\nsleep 120\n",
        lambda frames: any(f["state"] == "idle" and "FWD bob" in f["lines"] for f in frames),
        "idle",
    )
    assert history[0]["reason"].startswith("forwarded to bob@127.0.0.1:"), history[0]
    assert not any(f["state"] == "ringing" for f in frames)


def test_forward_on_no_answer_after_five_seconds(tmp_path):
    frames, history = _forward_through_sipp(
        tmp_path,
        "wait idle 10\npress **#449#\npress 55#\nkey hangup\nwait ringing 90\nwait ended 20\nsleep 120\n",
        lambda frames: any(f["state"] == "idle" and "fwd 5s" in f["lines"] for f in frames),
        "ended",
    )
    assert history[0]["reason"] == "forwarded (no answer)"
    rang = [f["t"] for f in frames if f["state"] == "ringing"]
    ended = [f["t"] for f in frames if f["state"] == "ended" and f["t"] > rang[0]]
    assert 4.8 <= ended[0] - rang[0] <= 7.0, (rang, ended)


def test_forward_on_busy_while_a_call_is_up(tmp_path):
    frames, history = _forward_through_sipp(
        tmp_path,
        "wait idle 10\npress **#439#\nkey hangup\npress *43#\nwait secure 30\nsleep 120\n",
        lambda frames: any(f["state"] == "secure" for f in frames),
        "secure",
    )
    # the echo call went on: the busy forward never touched it
    assert frames[-1]["state"] in ("secure", "idle", "ended")


def test_message_waiting_from_a_sipp_notifier_lights_the_led_and_the_key_dials_the_account(tmp_path):
    """sipp is the registrar and the voicemail's notifier (tests/interop/scenarios/uas_registrar_mwi.xml): the
    phone subscribes after registering, shows the count and lights the message LED; a malformed NOTIFY is
    answered 400 and another event package 489 (sipp fails otherwise), and neither changes the display; the
    voicemail key dials the Message-Account, where a real `sotto answer` picks up."""
    sipp_port = sotto.free_udp_port()
    phone_port = sotto.free_udp_port()
    target_port = sotto.free_udp_port()
    account = "sip:vm@127.0.0.1:{}".format(target_port)
    sipp = subprocess.Popen(
        [
            _sipp(),
            "-sf",
            str(SCENARIOS / "uas_registrar_mwi.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(sipp_port),
            "-m",
            "2",
            "-set",
            "account",
            account,
            "-nostdin",
            "-timeout",
            "40",
            "-timeout_error",
            "-trace_err",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    target = sotto.start(
        ["answer", "--listen", "127.0.0.1:{}".format(target_port), "--timeout", "60", "--encryption", "none"],
        tmp_path / "target",
    )
    config = _config(tmp_path, phone_port, '[account]\nuri = "sip:desk@127.0.0.1:{}"\n'.format(sipp_port))
    log = tmp_path / "phone.jsonl"
    script = "wait idle 10\nsleep 8\nkey voicemail\nwait in-call 20\nhangup\nwait ended 5\nsleep 120\n"
    phone = None
    try:
        sotto.wait_listening(target_port, target)
        phone = _start_phone(tmp_path, config, script, log, tmp_path / "home")
        _wait_for(_idle_shows(log, "Voicemail: 2 new"), "the voicemail count on the idle screen", phone)
        out = sipp.communicate(timeout=60)[0].decode(errors="replace")
        errors = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*_errors.log"))
        assert sipp.returncode == 0, out[-3000:] + errors
        _wait_for(lambda: any(f["state"] == "ended" for f in _frames(log)), "the voicemail call", phone, timeout=40)
        rc, summary, err = sotto.finish(target, 30)
        assert summary is not None and summary["sip_status"] == 200, (summary, err[-2000:])
    finally:
        for process in (sipp, target):
            if process.poll() is None:
                process.kill()
                process.communicate()
        if phone is not None:
            _stop(phone)
    frames = _frames(log)
    lit = [f for f in frames if "Voicemail: 2 new" in f["lines"]]
    assert lit and all(f.get("leds") == ["message"] for f in lit)
    calling = [f for f in frames if f["state"] == "calling"]
    assert calling and "vm@127.0.0.1:{}".format(target_port) in calling[0]["lines"]
    # the malformed NOTIFY (400) and the presence one (489) changed nothing: still 2 new before the call
    idle_before_call = [f for f in frames if f["state"] == "idle" and f["t"] < calling[0]["t"]]
    assert "Voicemail: 2 new" in idle_before_call[-1]["lines"]


def test_contacts_imported_and_added_from_history_show_the_zrtp_cache_trust_mark(tmp_path):
    """A contacts file on the "boot partition" (one bad line reported, the rest imported) and the echo line
    called securely, its SAS confirmed, then saved from the history: the contacts page marks it verified
    (V, from the real ZRTP cache and its contact binding) and the imported never-called contact new (?); the
    history shows the call's mark."""
    port = sotto.free_udp_port()
    contacts_file = tmp_path / "sotto-contacts.csv"
    contacts_file.write_text("Bob Builder,sip:bob@example.org\nbad line without comma\n", encoding="utf-8")
    config = tmp_path / "phone.toml"
    config.write_text(
        '[sip]\nlisten = "127.0.0.1:{}"\n[phone]\ncontacts_file = "{}"\n'.format(port, contacts_file), encoding="utf-8"
    )
    log = tmp_path / "phone.jsonl"
    script = (
        "wait idle 10\npress *43#\nwait secure 20\ntrust\nwait verified 5\nhangup\nwait idle 10\n"
        "press **#2\nsleep 0.5\npress 0\nsleep 0.5\nkey menu\nwait idle 5\npress **#5\nsleep 0.5\npress 8\n"
        "sleep 0.5\nquit\n"
    )
    phone = _start_phone(tmp_path, config, script, log, tmp_path / "home")
    rc, _, err = sotto.finish(phone, 60)
    assert rc == 0, err
    assert "sotto-contacts.csv:2: expected NAME,URI" in err
    frames = _frames(log)
    history = [f for f in frames if f["lines"][0].startswith("History")]
    assert history and history[0]["lines"][2].endswith("verified"), history
    pages = [f["lines"] for f in frames if f["lines"][0].startswith("Contacts ")]
    echo = [p for p in pages if p[1] == "V echo"]
    bob = [p for p in pages if p[1] == "? Bob Builder"]
    assert echo and echo[-1][3] == "verified", pages
    assert bob and bob[-1][3] == "new key", pages
    saved = json.loads((tmp_path / "home" / "sotto" / "contacts.json").read_text())
    assert sorted(c["name"] for c in saved) == ["Bob Builder", "echo"]
