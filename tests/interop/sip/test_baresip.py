"""SIP-level calls with baresip 1.0 (no registrar): Sotto calls baresip (auto-answer) and hangs up;
baresip dials Sotto and hangs up when it quits. Audio comes from a WAV file on baresip's side."""

import subprocess
import wave

import pytest

from firmware.sip import events
from tests.interop.sip.driver import Driver, offer, require
from tests.waiting import stop_process, wait_udp_bound

pytestmark = pytest.mark.interop

BARESIP_SIP = 15272
CONFIG = """sip_listen\t\t127.0.0.1:{sip}
net_interface\t\t127.0.0.1
module_path\t\t/usr/lib/baresip/modules
module\t\t\tg711.so
module\t\t\taufile.so
module\t\t\taccount.so
module\t\t\tmenu.so
audio_player\t\taufile,{out}
audio_source\t\taufile,{wav}
audio_alert\t\taufile,/dev/null
rtp_ports\t\t15280-15290
"""


def _baresip(tmp_path, *args):
    binary = require("baresip")
    conf = tmp_path / "conf"
    conf.mkdir()
    wav = tmp_path / "in.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 16000)
    (conf / "config").write_text(CONFIG.format(sip=BARESIP_SIP, out=tmp_path / "out.wav", wav=wav))
    (conf / "accounts").write_text("<sip:carol@127.0.0.1:{}>;regint=0;answermode=auto\n".format(BARESIP_SIP))
    (conf / "contacts").write_text("")
    log = open(tmp_path / "baresip.log", "wb")
    proc = subprocess.Popen(
        [binary, "-f", str(conf), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    return proc, log


def _stop(proc, log):
    stop_process(proc, timeout=5)
    log.close()


def test_sotto_calls_baresip(tmp_path):
    proc, log = _baresip(tmp_path, "-t", "20")
    driver = Driver()
    try:

        def alive():
            assert proc.poll() is None, (tmp_path / "baresip.log").read_text()

        wait_udp_bound(BARESIP_SIP, 10, "baresip's SIP port", alive)
        call = driver.ua.invite("sip:carol@127.0.0.1:{}".format(BARESIP_SIP), offer(15295), driver.now())
        assert driver.run_until(lambda: driver.of(events.CallAnswered) or driver.of(events.CallFailed), 8), (
            driver.events,
            (tmp_path / "baresip.log").read_text(),
        )
        answer = driver.of(events.CallAnswered)[0].sdp
        assert b"m=audio" in answer and b"PCMU/8000" in answer
        driver.run(1.0)
        driver.ua.hangup(call, driver.now())
        assert driver.run_until(lambda: driver.of(events.CallEnded), 5)
        assert driver.of(events.CallEnded)[0].reason == "local hangup"
    finally:
        driver.close()
        _stop(proc, log)


def test_baresip_calls_sotto(tmp_path):
    driver = Driver()

    def answer(event):
        if isinstance(event, events.IncomingCall):
            driver.ua.ringing(event.call_id, driver.now())
            driver.ua.answer(event.call_id, offer(15295), driver.now())

    driver.on_event = answer
    proc, log = _baresip(tmp_path, "-t", "4", "-e", "/dial sip:sotto@{}:{}".format(*driver.address))
    try:
        assert driver.run_until(lambda: driver.of(events.CallConfirmed), 8), (
            driver.events,
            (tmp_path / "baresip.log").read_text(),
        )
        assert driver.of(events.IncomingCall)[0].from_uri.startswith("sip:carol@127.0.0.1")
        # baresip quits after 4 s and hangs up on its way out.
        assert driver.run_until(lambda: driver.of(events.CallEnded), 10), (tmp_path / "baresip.log").read_text()
        ended = driver.of(events.CallEnded)[0]
        assert ended.by_remote and ended.reason == "remote hangup"
    finally:
        driver.close()
        _stop(proc, log)
