"""Registration (and calls through it) against kamailio 5.6 with digest auth, qop=auth, on 127.0.0.1."""

import pytest

from firmware.sip import events
from tests.interop.sip.driver import Driver, Kamailio, offer, pump_until

pytestmark = pytest.mark.interop

KAMAILIO_PORT = 15060


@pytest.fixture
def kamailio(request, tmp_path):
    algorithm = getattr(request, "param", "MD5")
    server = Kamailio(tmp_path, KAMAILIO_PORT, [("alice", "alicepw"), ("bob", "bobpw")], algorithm=algorithm)
    yield server
    server.stop()


def _driver(user, password, expires=3600):
    return Driver(
        aor="sip:{}@127.0.0.1".format(user),
        password=password,
        outbound_proxy=("127.0.0.1", KAMAILIO_PORT),
        register_expires=expires,
    )


@pytest.mark.parametrize("kamailio", ["MD5", "SHA-256"], indirect=True)
def test_register_refresh_unregister(kamailio):
    alice = _driver("alice", "alicepw", expires=20)
    try:
        alice.ua.register(alice.now())
        assert alice.run_until(lambda: alice.of(events.Registered), 5), alice.events
        assert alice.of(events.Registered)[0].expires == 20
        auth = [d for d in alice.sent if d.startswith(b"REGISTER") and b"Authorization:" in d]
        assert auth and b"qop=auth" in auth[0] and b"nc=00000001" in auth[0]
        if kamailio_algorithm(kamailio) == "SHA-256":
            assert b"algorithm=SHA-256" in auth[0]
        # Refresh before expiry: half of 20 s.
        assert alice.run_until(lambda: len(alice.of(events.Registered)) == 2, 15), alice.events
        # The refresh answers the kept challenge with the next nonce count (RFC 7616 §3.4.5): kamailio
        # accepts it without challenging again, so there are exactly three REGISTERs so far.
        registers = [d for d in alice.sent if d.startswith(b"REGISTER")]
        assert len(registers) == 3 and b"nc=00000002" in registers[2], [r[:400] for r in registers]
        alice.ua.unregister(alice.now())
        assert alice.run_until(lambda: alice.of(events.Unregistered), 5)
        assert alice.of(events.Unregistered)[0].status == 200
        assert not alice.of(events.RegistrationFailed)
    finally:
        alice.close()


def kamailio_algorithm(server):
    return "SHA-256" if "SHA-256" in (server.tmp_path / "kamailio.cfg").read_text() else "MD5"


def test_wrong_password_fails_clearly(kamailio):
    alice = _driver("alice", "not-the-password")
    try:
        alice.ua.register(alice.now())
        assert alice.run_until(lambda: alice.of(events.RegistrationFailed), 5)
        failure = alice.of(events.RegistrationFailed)[0]
        assert (failure.status, failure.reason, failure.retry_in) == (401, "wrong password", None)
        alice.run(1.0)
        assert len([d for d in alice.sent if d.startswith(b"REGISTER")]) == 2  # no retry loop
    finally:
        alice.close()


def test_call_through_kamailio_by_address_of_record(kamailio):
    alice = _driver("alice", "alicepw")
    bob = _driver("bob", "bobpw")
    try:
        for d in (alice, bob):
            d.ua.register(d.now())
            assert d.run_until(lambda d=d: d.of(events.Registered), 5), d.events

        def bob_answers(event):
            if isinstance(event, events.IncomingCall):
                bob.ua.ringing(event.call_id, bob.now())
                bob.ua.answer(event.call_id, offer(41002), bob.now())

        bob.on_event = bob_answers
        call = alice.ua.invite("sip:bob@127.0.0.1", offer(41000), alice.now())

        assert pump_until([alice, bob], lambda: alice.of(events.CallAnswered) and bob.of(events.CallConfirmed), 10), (
            alice.events,
            bob.events,
        )
        # The INVITE was challenged by the proxy (407) and resent with credentials.
        assert any(d.startswith(b"INVITE") and b"Proxy-Authorization:" in d for d in alice.sent)
        alice.ua.hangup(call, alice.now())
        assert pump_until([alice, bob], lambda: alice.of(events.CallEnded) and bob.of(events.CallEnded), 10)
        # The BYE follows the route set kamailio put in Record-Route (RFC 3261 §12.2.1.1).
        bye = [d for d in alice.sent if d.startswith(b"BYE")][0]
        assert b"Route: <sip:127.0.0.1:15060;lr" in bye
        assert bob.of(events.CallEnded)[0].by_remote is True
    finally:
        alice.close()
        bob.close()


def _call_and_hang_up(alice, bob, server, alice_media_port, bob_media_port):
    """Alice calls bob by address of record through the registrar; bob answers; alice hangs up."""

    def bob_answers(event):
        if isinstance(event, events.IncomingCall):
            bob.ua.answer(event.call_id, offer(bob_media_port), bob.now())

    bob.on_event = bob_answers
    call = alice.ua.invite("sip:bob@127.0.0.1", offer(alice_media_port), alice.now())
    assert pump_until([alice, bob], lambda: alice.of(events.CallAnswered) and bob.of(events.CallConfirmed), 10), (
        alice.events,
        bob.events,
        server.log()[-3000:],
    )
    alice.ua.hangup(call, alice.now())
    assert pump_until([alice, bob], lambda: alice.of(events.CallEnded) and bob.of(events.CallEnded), 10)


def test_register_and_call_over_tcp(tmp_path_factory):
    server = Kamailio(
        tmp_path_factory.mktemp("tcp"), KAMAILIO_PORT + 1, [("alice", "alicepw"), ("bob", "bobpw")], tcp=True
    )
    proxy = ("127.0.0.1", KAMAILIO_PORT + 1)
    alice = Driver(transport="tcp", aor="sip:alice@127.0.0.1", password="alicepw", outbound_proxy=proxy)
    bob = Driver(transport="tcp", aor="sip:bob@127.0.0.1", password="bobpw", outbound_proxy=proxy)
    try:
        for d in (alice, bob):
            d.ua.register(d.now())
            assert d.run_until(lambda d=d: d.of(events.Registered), 5), (d.events, server.log()[-2000:])
        contact = "Contact: <sip:bob@127.0.0.1:{};transport=tcp>".format(bob.address[1]).encode()
        assert contact in [s for s in bob.sent if s.startswith(b"REGISTER")][0]

        _call_and_hang_up(alice, bob, server, 41010, 41012)
        # Reliable transport: every request went out exactly once.
        assert len([s for s in alice.sent if s.startswith(b"INVITE")]) == 2  # plain, then with credentials
    finally:
        alice.close()
        bob.close()
        server.stop()


def test_binding_comes_back_after_a_registrar_restart(tmp_path_factory):
    port = KAMAILIO_PORT + 2
    users = [("alice", "alicepw")]
    server = Kamailio(tmp_path_factory.mktemp("first"), port, users)
    alice = Driver(
        aor="sip:alice@127.0.0.1", password="alicepw", outbound_proxy=("127.0.0.1", port), register_expires=10
    )
    try:
        alice.ua.register(alice.now())
        assert alice.run_until(lambda: alice.of(events.Registered), 5)
        server.stop()  # the registrar restarts and forgets every binding (usrloc in memory)
        server = Kamailio(tmp_path_factory.mktemp("second"), port, users)
        assert alice.run_until(lambda: len(alice.of(events.Registered)) == 2, 10), alice.events
    finally:
        alice.close()
        server.stop()


def test_register_by_domain_through_rfc3263_dns(tmp_path_factory):
    from firmware.runtime.dns import Rfc3263Resolver
    from tests.interop.sip.driver import Dnsmasq

    port = KAMAILIO_PORT + 3
    dns = Dnsmasq(
        15054,
        [
            "--naptr-record=voip.test,10,50,s,SIP+D2U,,_sip._udp.voip.test",
            "--srv-host=_sip._udp.voip.test,registrar.voip.test,{},10,5".format(port),
            "--host-record=registrar.voip.test,127.0.0.1",
        ],
    )
    server = Kamailio(tmp_path_factory.mktemp("dns"), port, [("alice", "alicepw")])
    alice = Driver(aor="sip:alice@voip.test", password="alicepw")  # no proxy: the domain is looked up
    alice.transport.resolver = Rfc3263Resolver(nameservers=["127.0.0.1"], port=15054, timeout=1.0)
    try:
        alice.ua.register(alice.now())
        assert alice.run_until(lambda: alice.of(events.Registered), 5), (alice.events, server.log()[-2000:])
        register = [d for d in alice.sent if d.startswith(b"REGISTER")][0]
        assert register.startswith(b"REGISTER sip:voip.test SIP/2.0")
    finally:
        alice.close()
        server.stop()
        dns.stop()


def test_register_and_call_over_tls_with_a_pinned_certificate(tmp_path_factory):
    import ssl

    from firmware.runtime.sip_transport import client_tls_context
    from tests.firmware.runtime.test_sip_transport import _self_signed

    base = tmp_path_factory.mktemp("tls")
    cert, key = _self_signed(base, "127.0.0.1")
    port = KAMAILIO_PORT + 4
    server = Kamailio(base, port, [("alice", "alicepw"), ("bob", "bobpw")], tls=(cert, key))
    proxy = ("127.0.0.1", port + 1)
    bob_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # kamailio connects to bob's Contact for the INVITE
    bob_server.load_cert_chain(cert, key)
    pinned = {"tls_context": client_tls_context(pinned_cert=cert)}
    alice = Driver(
        transport="tls", transport_kwargs=pinned, aor="sip:alice@127.0.0.1", password="alicepw", outbound_proxy=proxy
    )
    bob = Driver(
        transport="tls",
        transport_kwargs=dict(pinned, server_tls_context=bob_server),
        aor="sip:bob@127.0.0.1",
        password="bobpw",
        outbound_proxy=proxy,
    )
    try:
        for d in (alice, bob):
            d.ua.register(d.now())
            assert d.run_until(lambda d=d: d.of(events.Registered), 5), (d.events, server.log()[-2000:])

        _call_and_hang_up(alice, bob, server, 41020, 41022)
        assert b"Via: SIP/2.0/TLS " in [s for s in alice.sent if s.startswith(b"INVITE")][0]
    finally:
        alice.close()
        bob.close()
        server.stop()
