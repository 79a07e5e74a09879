"""A call between two Sotto user agents over TLS (stdlib ssl): the caller trusts the callee's pinned
self-signed certificate; a caller trusting only the system CAs cannot connect."""

import ssl
import threading
import time

from firmware.runtime.sip_transport import client_tls_context
from firmware.sip import events
from tests.firmware.runtime.test_sip_transport import _self_signed
from tests.interop.sip.driver import Driver, offer
from tests.waiting import wait_until


def _callee(tmp_path):
    cert, key = _self_signed(tmp_path, "bob.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    bob = Driver(transport="tls", transport_kwargs={"server_tls_context": server_context}, aor="sip:bob@bob.test")

    def answer(event):
        if isinstance(event, events.IncomingCall):
            bob.ua.answer(event.call_id, offer(43002), bob.now())

    bob.on_event = answer
    return bob, cert


def test_call_over_tls_with_pinned_certificate(tmp_path):
    bob, cert = _callee(tmp_path)
    alice = Driver(transport="tls", transport_kwargs={"tls_context": client_tls_context(pinned_cert=cert)})
    stop = threading.Event()
    # The callee runs in its own thread: TLS handshakes block each side until the other answers.
    worker = threading.Thread(target=lambda: bob.run_until(lambda: stop.is_set(), 20))
    worker.start()
    try:
        target = "sip:bob@127.0.0.1:{};transport=tls".format(bob.address[1])
        call = alice.ua.invite(target, offer(43000), alice.now())
        assert alice.run_until(lambda: alice.of(events.CallAnswered), 10), alice.events
        invite = [d for d in alice.sent if d.startswith(b"INVITE")][0]
        assert b"Via: SIP/2.0/TLS " in invite and b";transport=tls>" in invite
        alice.run(0.3)
        alice.ua.hangup(call, alice.now())
        assert alice.run_until(lambda: alice.of(events.CallEnded), 5)
        wait_until(lambda: bob.of(events.CallEnded), 5, "the callee to see the call end")
        assert bob.of(events.CallConfirmed) and bob.of(events.CallEnded)[0].by_remote
    finally:
        stop.set()
        worker.join(timeout=25)
        alice.close()
        bob.close()


def test_untrusted_certificate_means_no_call(tmp_path):
    bob, _ = _callee(tmp_path)
    alice = Driver(transport="tls", transport_kwargs={"tls_context": client_tls_context()})
    stop = threading.Event()
    worker = threading.Thread(target=lambda: bob.run_until(lambda: stop.is_set(), 40))
    worker.start()
    try:
        target = "sip:bob@127.0.0.1:{};transport=tls".format(bob.address[1])
        started = time.monotonic()
        alice.ua.invite(target, offer(43000), alice.now())
        assert alice.run_until(lambda: alice.of(events.CallFailed), 10), alice.events
        # The transport reports the failed handshake: the call fails at once, not after Timer B.
        assert time.monotonic() - started < 5
        assert alice.of(events.CallFailed)[0].status == 503
        assert alice.of(events.CallFailed)[0].reason == "transport error"
        assert alice.transport.errors >= 1 and not bob.of(events.IncomingCall)
    finally:
        stop.set()
        worker.join(timeout=45)
        alice.close()
        bob.close()
