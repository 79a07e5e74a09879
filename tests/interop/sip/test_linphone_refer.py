"""Blind transfer (REFER, RFC 3515) with linphone-cli, both directions, at SIP level."""

import pytest

from firmware import sdp
from firmware.sip import events
from tests.interop.linphone import Linphone
from tests.interop.sip.driver import Driver, offer, pump_until

pytestmark = pytest.mark.interop

LINPHONE_SIP = 15372
LINPHONE_RTP = 15388


def _answering(driver, port):
    def on_event(event):
        now = driver.now()
        if isinstance(event, events.IncomingCall):
            driver.ua.answer(event.call_id, offer(port), now)
        elif isinstance(event, events.ReinviteReceived):  # hold from the transferee: answer recvonly
            answer, _ = sdp.answer_offer(event.sdp, ["PCMU"], "127.0.0.1", port, session_version=2)
            driver.ua.answer_reinvite(event.call_id, answer.to_bytes(), now)

    driver.on_event = on_event


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


def test_sotto_transfers_linphone(bob):
    alice, carol = Driver(), Driver()
    _answering(alice, 15390)
    _answering(carol, 15394)
    try:
        call = alice.ua.invite(bob.uri, offer(15390), alice.now())
        assert alice.run_until(lambda: alice.of(events.CallAnswered), 8), alice.events
        alice.run(0.3)
        target = "sip:carol@127.0.0.1:{}".format(carol.address[1])
        alice.ua.refer(call, target, alice.now())
        assert pump_until([alice, carol], lambda: carol.of(events.CallConfirmed), 10), (alice.events, carol.events)
        assert carol.of(events.IncomingCall)[0].from_uri == "sip:bob@127.0.0.1"

        def transfer_done():
            return any(p.final for p in alice.of(events.ReferProgress))

        assert pump_until([alice, carol], transfer_done, 10), alice.events
        progress = [(p.status, p.final) for p in alice.of(events.ReferProgress)]
        assert progress[0] == (202, False) and progress[-1] == (200, True), progress
        assert alice.of(events.ReinviteReceived)  # linphone held the first call while transferring
    finally:
        alice.close()
        carol.close()


def test_linphone_transfers_sotto(bob):
    alice = Driver()
    _answering(alice, 15390)
    try:
        bob.command("call sip:alice@127.0.0.1:{}".format(alice.address[1]))
        assert alice.run_until(lambda: alice.of(events.CallConfirmed), 8), alice.events
        alice.run(0.5)
        bob.command("transfer 1 sip:carol@127.0.0.1:15399")
        assert alice.run_until(lambda: alice.of(events.ReferReceived), 8), (alice.events, bob.console()[-1500:])
        refer = alice.of(events.ReferReceived)[0]
        assert refer.target == "sip:carol@127.0.0.1:15399"
        call_id = refer.call_id
        alice.ua.notify_refer(call_id, 200, alice.now())  # as if the new call had been answered
        alice.run(0.5)
        notifies = [d for d in alice.sent if d.startswith(b"NOTIFY")]
        assert len(notifies) == 2 and b"SIP/2.0 200 OK" in notifies[-1]
        assert b"Subscription-State: terminated" in notifies[-1]
        answered = [d for d in alice.received if d.startswith(b"SIP/2.0 200") and b" NOTIFY\r\n" in d]
        assert len(answered) == 2  # linphone accepted both NOTIFYs of the implicit subscription
    finally:
        alice.close()
