"""Hold and resume by re-INVITE (RFC 3264 §8.4) with linphone-cli, both directions, at SIP level."""

import pytest

from firmware import sdp
from firmware.sip import events
from tests.interop.linphone import Linphone
from tests.interop.sip.driver import Driver, offer

pytestmark = pytest.mark.interop

LINPHONE_SIP = 15472
LINPHONE_RTP = 15488


@pytest.fixture
def bob(tmp_path):
    phone = Linphone(
        tmp_path / "bob",
        sip_port=LINPHONE_SIP,
        rtp_port=LINPHONE_RTP,
        user="bob",
        auto_answer=True,
        media_encryption="none",
    )
    phone.start()
    yield phone
    phone.stop()


def _direction(body):
    return sdp.remote_media(sdp.parse_sdp(body)).direction


def test_we_hold_and_resume_linphone(bob):
    alice = Driver()
    try:
        call = alice.ua.invite(bob.uri, offer(15490), alice.now())
        assert alice.run_until(lambda: alice.of(events.CallAnswered), 8), alice.events
        alice.run(0.3)
        hold = sdp.build_offer(["PCMU"], "127.0.0.1", 15490, direction="sendonly", session_version=2)
        alice.ua.reinvite(call, hold.to_bytes(), alice.now())
        assert alice.run_until(lambda: alice.of(events.ReinviteAnswered), 5), alice.events
        assert _direction(alice.of(events.ReinviteAnswered)[0].sdp) == "recvonly"
        alice.run(0.3)
        resume = sdp.build_offer(["PCMU"], "127.0.0.1", 15490, direction="sendrecv", session_version=3)
        alice.ua.reinvite(call, resume.to_bytes(), alice.now())
        assert alice.run_until(lambda: len(alice.of(events.ReinviteAnswered)) == 2, 5), alice.events
        assert _direction(alice.of(events.ReinviteAnswered)[1].sdp) == "sendrecv"
        alice.ua.hangup(call, alice.now())
        assert alice.run_until(lambda: alice.of(events.CallEnded), 5)
    finally:
        alice.close()


def test_linphone_holds_and_resumes_us(bob):
    alice = Driver()
    answers = []

    def on_event(event):
        now = alice.now()
        if isinstance(event, events.IncomingCall):
            alice.ua.answer(event.call_id, offer(15490), now)
        elif isinstance(event, events.ReinviteReceived):
            answer, _ = sdp.answer_offer(event.sdp, ["PCMU"], "127.0.0.1", 15490, session_version=2 + len(answers))
            answers.append(_direction(answer.to_bytes()))
            alice.ua.answer_reinvite(event.call_id, answer.to_bytes(), now)

    alice.on_event = on_event
    try:
        bob.command("call sip:alice@127.0.0.1:{}".format(alice.address[1]))
        assert alice.run_until(lambda: alice.of(events.CallConfirmed), 8), alice.events
        alice.run(0.3)
        bob.command("pause 1")
        assert alice.run_until(lambda: len(answers) == 1, 5), (alice.events, bob.console()[-1000:])
        assert _direction(alice.of(events.ReinviteReceived)[0].sdp) == "sendonly" and answers == ["recvonly"]
        alice.run(0.5)
        bob.command("resume 1")
        assert alice.run_until(lambda: len(answers) == 2, 5), (alice.events, bob.console()[-1000:])
        assert answers[1] == "sendrecv"
        bob.command("terminate")
        assert alice.run_until(lambda: alice.of(events.CallEnded), 5)
        assert alice.of(events.CallEnded)[0].by_remote
    finally:
        alice.close()
