"""`sotto call --at T:ACTION` against real peers: hold/resume and a blind transfer started by Sotto, with
linphone (ZRTP) and baresip (no media encryption).

Hold/resume: Sotto holds 2 s after the media is up and resumes at 4 s. The peer's tone (1000 Hz) stops
reaching Sotto while it is held (the peer answers sendonly with recvonly, RFC 3264 §6.1) and comes back
after the resume; Sotto's tone (440 Hz) reaches the peer again after the resume.

Transfer: Sotto refers the peer (REFER, RFC 3515) to a second Sotto (`sotto answer`); the peer calls it,
reports success in its NOTIFY, and Sotto's own call ends "transferred".

Ports (the carrier range 18000-18499): Sotto SIP 18410 / RTP 18412, transfer target 18420 / 18422, linphone
18430 / 18432, baresip 18440 / RTP 18450-18459.
"""

import re

import pytest

from tests.interop import sotto
from tests.interop.carrier.peers import Baresip
from tests.interop.carrier.test_fallback import finish, wait_udp_port
from tests.interop.carrier.tones import tone_levels, write_tone
from tests.interop.linphone import Linphone

pytestmark = pytest.mark.interop

SOTTO_SIP, SOTTO_RTP = 18410, 18412
TARGET_SIP, TARGET_RTP = 18420, 18422
LINPHONE_SIP, LINPHONE_RTP = 18430, 18432
BARESIP_SIP, BARESIP_RTP = 18440, (18450, 18459)
SOTTO_TONE, PEER_TONE = 440, 1000
HOLD, RESUME, DURATION = 2, 4, 8


def _sotto_call(tmp_path, uri, *extra):
    tone = write_tone(tmp_path / "sotto-tone.wav", SOTTO_TONE, 30)
    return sotto.start(
        [
            "call",
            uri,
            "--listen",
            "127.0.0.1:{}".format(SOTTO_SIP),
            "--rtp-port",
            str(SOTTO_RTP),
            "--play",
            str(tone),
            "--record",
            str(tmp_path / "alice-heard.wav"),
            "--cache",
            str(tmp_path / "alice.cache"),
            "--timeout",
            "40",
            *extra,
        ],
        tmp_path / "alice",
    )


def _levels(recording, frequency):
    return tone_levels(recording, frequency, window=0.2)


def _check_hold_in_recording(recording):
    """Sotto's recording (real time from media up): the peer's tone before the hold, none in the middle
    of the hold, and back in the last seconds."""
    levels = _levels(recording, PEER_TONE)
    before = [a for t, a in levels if 0.6 <= t <= HOLD - 0.4]
    held = [a for t, a in levels if HOLD + 0.6 <= t <= RESUME - 0.4]
    after = [a for t, a in levels if RESUME + 1.5 <= t <= DURATION - 1.0]
    shown = [(round(t, 1), round(a)) for t, a in levels]
    assert before and min(before) > 2000, ("no peer tone before the hold", shown)
    assert held and max(held) < 200, ("the peer's tone went on during the hold", shown)
    assert after and min(after) > 2000, ("no peer tone after the resume", shown)


def _actions(summary):
    return {a["action"]: a["result"] for a in summary.get("actions", [])}


def test_hold_and_resume_by_sotto_with_linphone(tmp_path):
    tone = write_tone(tmp_path / "peer-tone.wav", PEER_TONE, 30)
    with Linphone(tmp_path / "bob", LINPHONE_SIP, LINPHONE_RTP, user="bob", auto_answer=True) as bob:
        bob.command("play {}".format(tone))
        process = _sotto_call(
            tmp_path,
            bob.uri,
            "--at",
            "{}:hold".format(HOLD),
            "--at",
            "{}:resume".format(RESUME),
            "--duration",
            str(DURATION),
        )
        rc, summary, err = finish(process)
        console = bob.console()
    assert rc == 0, (summary, err[-3000:], console[-2000:])
    assert _actions(summary) == {"hold": "ok", "resume": "ok"}, summary
    assert summary["secure"] is True and summary["encryption"] == "zrtp", summary
    # linphone saw the hold ("has been paused by"), then the media again after the resume.
    assert "has been paused by" in console, console[-2000:]
    assert "Media streams established" in console.split("has been paused by", 1)[1], console[-2000:]
    _check_hold_in_recording(tmp_path / "alice-heard.wav")


def test_hold_and_resume_by_sotto_answering_linphones_opus(tmp_path):
    # linphone offers Opus under a dynamic payload type of its own choosing (and telephone-event under
    # another): Sotto's hold and resume re-offers must keep those numbers (RFC 3264 §8.3.2), or what
    # linphone sends after answering them is a format Sotto's running stream drops, and the call is mute.
    tone = write_tone(tmp_path / "peer-tone.wav", PEER_TONE, 30)
    sotto_tone = write_tone(tmp_path / "sotto-tone.wav", SOTTO_TONE, 30)
    sip_port = sotto.free_udp_port()
    with Linphone(tmp_path / "bob", LINPHONE_SIP, LINPHONE_RTP, user="bob", codecs=("opus",)) as bob:
        process = sotto.start(
            [
                "answer",
                "--listen",
                "127.0.0.1:{}".format(sip_port),
                "--rtp-port",
                str(SOTTO_RTP),
                "--codecs",
                "opus",
                "--play",
                str(sotto_tone),
                "--record",
                str(tmp_path / "alice-heard.wav"),
                "--cache",
                str(tmp_path / "alice.cache"),
                "--timeout",
                "40",
                "--at",
                "{}:hold".format(HOLD),
                "--at",
                "{}:resume".format(RESUME),
                "--duration",
                str(DURATION),
            ],
            tmp_path / "alice",
        )
        sotto.wait_listening(sip_port, process)
        bob.command("play {}".format(tone))
        bob.command("call sip:alice@127.0.0.1:{}".format(sip_port))
        rc, summary, err = finish(process)
        console, log = bob.console(), bob.log()
    offered = re.search(r"a=rtpmap:(\d+) opus/48000", log)
    assert offered and offered.group(1) != "111", "linphone offered Opus as our own default 111: nothing tested"
    assert rc == 0, (summary, err[-3000:], console[-2000:])
    assert summary["codec"] == "opus" and _actions(summary) == {"hold": "ok", "resume": "ok"}, summary
    assert summary["secure"] is True, summary
    _check_hold_in_recording(tmp_path / "alice-heard.wav")


def test_hold_and_resume_by_sotto_with_baresip(tmp_path):
    tone = write_tone(tmp_path / "peer-tone.wav", PEER_TONE, 30)
    carol = Baresip(tmp_path / "carol", BARESIP_SIP, BARESIP_RTP, play=tone).start("-t", "40")
    try:
        process = _sotto_call(
            tmp_path,
            carol.uri,
            "--at",
            "{}:hold".format(HOLD),
            "--at",
            "{}:resume".format(RESUME),
            "--duration",
            str(DURATION),
        )
        rc, summary, err = finish(process)
    finally:
        carol.stop()
    assert rc == 0, (summary, err[-3000:], carol.log()[-2000:])
    assert _actions(summary) == {"hold": "ok", "resume": "ok"}, summary
    _check_hold_in_recording(tmp_path / "alice-heard.wav")
    # baresip heard Sotto again after the resume: its decoded recording ends with our tone.
    levels = _levels(carol.heard(), SOTTO_TONE)
    tail = [a for t, a in levels if t >= max(t for t, _ in levels) - 1.5]
    assert tail and min(tail) > 2000, [(round(t, 1), round(a)) for t, a in levels]


def _target(tmp_path):
    process = sotto.start(
        [
            "answer",
            "--listen",
            "127.0.0.1:{}".format(TARGET_SIP),
            "--rtp-port",
            str(TARGET_RTP),
            "--cache",
            str(tmp_path / "dave.cache"),
            "--timeout",
            "40",
            "--duration",
            "3",
        ],
        tmp_path / "dave",
    )
    wait_udp_port(TARGET_SIP, process)
    return process


def test_transfer_by_sotto_sends_linphone_to_another_sotto(tmp_path):
    target = "sip:dave@127.0.0.1:{}".format(TARGET_SIP)
    tone = write_tone(tmp_path / "peer-tone.wav", PEER_TONE, 30)
    dave = _target(tmp_path)
    try:
        with Linphone(tmp_path / "bob", LINPHONE_SIP, LINPHONE_RTP, user="bob", auto_answer=True) as bob:
            bob.command("play {}".format(tone))
            process = _sotto_call(tmp_path, bob.uri, "--at", "2:transfer {}".format(target), "--duration", "20")
            rc, summary, err = finish(process)
            assert rc == 0, (summary, err[-3000:], bob.console()[-2000:])
            rc_dave, dave_summary, dave_err = finish(dave)
            console = bob.console()
    finally:
        if dave.poll() is None:
            dave.kill()
            dave.wait(10)
    assert _actions(summary) == {"transfer {}".format(target): "ok"}, summary
    assert summary["result"] == "completed" and summary["reason"] == "transferred", summary
    assert rc_dave == 0, (dave_summary, dave_err[-2000:])
    # linphone called the target and the new call went secure with it (ZRTP, both linphone and Sotto).
    assert dave_summary["result"] == "completed" and dave_summary["secure"] is True, dave_summary
    assert dave_summary["rtp"]["received"] > 50, dave_summary
    assert dave_summary["sas"] in console, console[-2000:]


def test_transfer_by_sotto_sends_baresip_to_another_sotto(tmp_path):
    target = "sip:dave@127.0.0.1:{}".format(TARGET_SIP)
    tone = write_tone(tmp_path / "peer-tone.wav", PEER_TONE, 30)
    dave = _target(tmp_path)
    carol = Baresip(tmp_path / "carol", BARESIP_SIP, BARESIP_RTP, play=tone).start("-t", "40")
    try:
        process = _sotto_call(tmp_path, carol.uri, "--at", "2:transfer {}".format(target), "--duration", "20")
        rc, summary, err = finish(process)
        assert rc == 0, (summary, err[-3000:], carol.log()[-2000:])
        rc_dave, dave_summary, dave_err = finish(dave)
    finally:
        carol.stop()
        if dave.poll() is None:
            dave.kill()
            dave.wait(10)
    assert _actions(summary) == {"transfer {}".format(target): "ok"}, summary
    assert summary["result"] == "completed" and summary["reason"] == "transferred", summary
    assert rc_dave == 0 and dave_summary["result"] == "completed", (dave_summary, dave_err[-2000:])
    assert dave_summary["rtp"]["received"] > 50, dave_summary
    # baresip has no ZRTP: the transferred call is clear, loudly.
    assert dave_summary["encryption"] == "none" and dave_summary["secure"] is False, dave_summary
