"""SIP bodies are opaque to the UA (issue 13): no module of firmware/sip imports firmware.sdp, and the
RFC 4028 refresh test (RFC 3264 §8: an offer with the previous o= version changes nothing) is given to
the UA by its owner. Pair tests on the fake clock and network."""

import os

from firmware import sdp
from firmware.sdp import build_offer
from firmware.sip import events
from firmware.sip.useragent import UserAgent
from tests.firmware.sip.netsim import Network, counter_rng

A = ("127.0.0.1", 5061)
B = ("127.0.0.1", 5062)
FIRMWARE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "firmware")


def _imports(path):
    names = []
    with open(path) as f:
        for line in f:
            words = line.split()
            if len(words) >= 2 and words[0] in ("import", "from"):
                names.append(words[1])
    return names


def test_no_sip_module_imports_sdp():
    sip = os.path.join(FIRMWARE, "sip")
    for name in sorted(os.listdir(sip)):
        if name.endswith(".py"):
            assert not [n for n in _imports(os.path.join(sip, name)) if n.startswith("firmware.sdp")], name


def test_sdp_imports_nothing_from_sip():
    package = os.path.join(FIRMWARE, "sdp")
    modules = sorted(name for name in os.listdir(package) if name.endswith(".py"))
    assert "description.py" in modules  # the package is where this test looks
    for name in modules:
        assert [n for n in _imports(os.path.join(package, name)) if n.startswith("firmware.sip")] == [], name


def _sdp(port, version=1, direction="sendrecv"):
    return build_offer(["PCMU", "PCMA"], "127.0.0.1", port, direction=direction, session_version=version).to_bytes()


def _pair(**bob_kwargs):
    net = Network(0.01)
    alice = UserAgent(A, counter_rng("a"), aor="sip:alice@127.0.0.1:5061")
    bob = UserAgent(B, counter_rng("b"), aor="sip:bob@127.0.0.1:5062", **bob_kwargs)
    net.add(A, alice)
    net.add(B, bob)
    call = alice.invite("sip:bob@127.0.0.1:5062", _sdp(4000), net.now)
    assert net.run_until(lambda: net.find(B, events.IncomingCall), 1)
    bob.answer(call, _sdp(6000), net.now)
    assert net.run_until(lambda: net.find(B, events.CallConfirmed), 2)
    return net, alice, bob, call


def test_default_refresh_test_knows_only_identical_bodies():
    net, alice, bob, call = _pair()
    alice.reinvite(call, _sdp(4000), net.now)  # the same bytes: a refresh, answered by the UA alone
    net.run(1)
    assert not net.find(B, events.ReinviteReceived)
    assert net.find(A, events.ReinviteAnswered)[0].sdp == _sdp(6000)
    # The same o= version with other bytes breaks RFC 3264 §8; without an SDP-aware test the UA cannot
    # tell, so the application sees the offer.
    alice.reinvite(call, _sdp(4002), net.now)
    assert net.run_until(lambda: net.find(B, events.ReinviteReceived), 1)


def test_injected_refresh_test_is_used():
    seen = []

    def same_session(previous, offer):
        seen.append((previous, offer))
        return sdp.same_session(previous, offer)

    net, alice, bob, call = _pair(same_session=same_session)
    alice.reinvite(call, _sdp(4002), net.now)  # same o= version: the SDP-aware test calls it a refresh
    net.run(1)
    assert seen == [(_sdp(4000), _sdp(4002))]
    assert not net.find(B, events.ReinviteReceived)
    alice.reinvite(call, _sdp(4000, 2, "sendonly"), net.now)  # a new version: the application answers
    assert net.run_until(lambda: net.find(B, events.ReinviteReceived), 1)


def test_malformed_offer_goes_to_the_application_which_refuses_it():
    net, alice, bob, call = _pair(same_session=sdp.same_session)
    alice.reinvite(call, b"v=0\r\nthis is not SDP\r\n", net.now)
    assert net.run_until(lambda: net.find(B, events.ReinviteReceived), 1)
    bob.reject_reinvite(call, 488, net.now)
    assert net.run_until(lambda: net.find(A, events.ReinviteFailed), 1)
    assert net.find(A, events.ReinviteFailed) == [events.ReinviteFailed(call, 488)]


def test_sdp_same_session():
    assert sdp.same_session(_sdp(4000), _sdp(4002))
    assert not sdp.same_session(_sdp(4000), _sdp(4000, 2))
    assert not sdp.same_session(_sdp(4000), b"garbage")
