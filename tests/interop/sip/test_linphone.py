"""SIP-level calls between Sotto's UserAgent and linphone-cli, both registered with kamailio (digest auth),
each calling the other by address of record. Media is not involved here (the session tests do audio)."""

import pytest

from firmware.sip import events
from tests.interop.linphone import Linphone
from tests.interop.sip.driver import Driver, Kamailio, offer

pytestmark = pytest.mark.interop

KAMAILIO_PORT = 15160
LINPHONE_SIP = 15172
LINPHONE_RTP = 15188


@pytest.fixture
def setup(tmp_path):
    kamailio = Kamailio(tmp_path, KAMAILIO_PORT, [("alice", "alicepw"), ("bob", "bobpw")])
    bob = Linphone(
        tmp_path / "bob",
        sip_port=LINPHONE_SIP,
        rtp_port=LINPHONE_RTP,
        user="bob",
        auto_answer=True,
        media_encryption="none",
    )
    alice = None
    try:
        bob.start()
        alice = Driver(aor="sip:alice@127.0.0.1", password="alicepw", outbound_proxy=("127.0.0.1", KAMAILIO_PORT))
        alice.ua.register(alice.now())
        assert alice.run_until(lambda: alice.of(events.Registered), 5), alice.events
        bob.register("bob", "bobpw", "127.0.0.1:{}".format(KAMAILIO_PORT))
        yield alice, bob, kamailio
    finally:
        if alice is not None:
            alice.close()
        bob.stop()
        kamailio.stop()


def test_sotto_calls_linphone_by_aor(setup):
    alice, bob, _ = setup
    call = alice.ua.invite("sip:bob@127.0.0.1", offer(15190), alice.now())
    assert alice.run_until(lambda: alice.of(events.CallAnswered) or alice.of(events.CallFailed), 10), alice.events
    assert alice.of(events.CallAnswered), alice.events
    bob.wait_for(r"Call 1 with sip:alice@127.0.0.1 connected", 5)
    alice.run(1.0)
    alice.ua.hangup(call, alice.now())
    assert alice.run_until(lambda: alice.of(events.CallEnded), 5), alice.events
    assert alice.of(events.CallEnded)[0].reason == "local hangup"
    bob.wait_for(r"Call 1 with sip:alice@127.0.0.1 ended", 5)


def test_linphone_calls_sotto_by_aor(setup):
    alice, bob, _ = setup

    def answer(event):
        if isinstance(event, events.IncomingCall):
            alice.ua.ringing(event.call_id, alice.now())
            alice.ua.answer(event.call_id, offer(15190), alice.now())

    alice.on_event = answer
    bob.command("call sip:alice@127.0.0.1")
    assert alice.run_until(lambda: alice.of(events.CallConfirmed), 10), alice.events
    incoming = alice.of(events.IncomingCall)[0]
    assert incoming.from_uri == "sip:bob@127.0.0.1"
    alice.run(1.0)
    bob.command("terminate")
    assert alice.run_until(lambda: alice.of(events.CallEnded), 5), alice.events
    ended = alice.of(events.CallEnded)[0]
    assert ended.by_remote and ended.reason == "remote hangup"
