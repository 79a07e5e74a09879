"""Issue 11: a registration that recovers (RFC 5626 §4.4-4.5): keep-alives, a probe that notices a
registrar which lost our binding, re-registration at once on a flow failure, a back-off in seconds."""

from firmware.sip import events, registration
from firmware.sip.message import Request, make_response, parse_message
from firmware.sip.registration import (
    BASE_BACKOFF,
    MAX_BACKOFF,
    STATES,
    TRANSITIONS,
    Registration,
    retry_delay,
)
from firmware.sip.useragent import UserAgent
from tests.firmware.sip.netsim import counter_rng

MICROPYTHON = True

ME = ("127.0.0.1", 5062)
PROXY = ("127.0.0.1", 5080)


def _agent(**kwargs):
    return UserAgent(ME, counter_rng("reg"), aor="sip:alice@example.com", outbound_proxy=PROXY, **kwargs)


def _sent(ua, now):
    return ua.datagrams_to_send(now)


def _requests(out, method=None):
    found = []
    for data, dest in out:
        if data == b"\r\n\r\n":
            continue
        message = parse_message(data)
        if isinstance(message, Request) and (method is None or message.method == method):
            found.append((message, dest))
    return found


def _grant(ua, register, now, expires=3600):
    ok = make_response(register, 200, to_tag="reg")
    ok.headers.add("Contact", "<sip:alice@127.0.0.1:5062>;expires={}".format(expires))
    ua.receive_datagram(ok.to_bytes(), PROXY, now)


def _registered_agent(**kwargs):
    ua = _agent(**kwargs)
    ua.register(0.0)
    ((register, dest),) = _requests(_sent(ua, 0.0), "REGISTER")
    assert dest == PROXY
    _grant(ua, register, 0.1)
    assert ua.registered
    assert isinstance(ua.next_event(), events.Registered)
    return ua


def _run(ua, start, end, step=0.5):
    """Advance time, firing timers; every datagram sent, with the time it went."""
    out = []
    now = start
    while now < end:
        now += step
        ua.handle_timer(now)
        for data, dest in _sent(ua, now):
            out.append((now, data, dest))
    return out


def test_states_and_transitions_are_data():
    assert STATES == ("idle", "registering", "registered", "failed", "unregistering")
    for (state, trigger), target in TRANSITIONS.items():
        assert state in STATES and target in STATES, (state, trigger, target)
    reg = Registration()
    assert reg.move("register") == "registering"
    assert reg.move("ok") == "registered"
    assert reg.move("unregistered") == "registered"  # not a transition of this state: stays
    assert reg.move("unregister") == "unregistering"
    assert reg.move("register") == "unregistering"  # shutting down wins
    assert reg.move("unregistered") == "idle"


def test_back_off_starts_at_seconds_doubles_and_is_capped():
    # RFC 5626 §4.5: min(max-time, base-time * 2^failures), a random 50-100 % of it.
    assert retry_delay(1, 0.0) == BASE_BACKOFF
    assert abs(retry_delay(1, 0.999999) - 2 * BASE_BACKOFF * 0.9999995) < 1e-9
    assert retry_delay(3, 0.0) == 4 * BASE_BACKOFF
    assert retry_delay(40, 0.0) == MAX_BACKOFF / 2 and retry_delay(40, 0.9999) <= MAX_BACKOFF
    assert retry_delay(1, 0.5) <= 5.0  # was 30 s before issue 11


def test_consecutive_failures_back_off_and_a_success_resets_it():
    ua = _agent()
    ua.register(0.0)
    now = 0.0
    waits = []
    for _ in range(4):
        ((register, _),) = _requests(_sent(ua, now), "REGISTER")
        ua.receive_datagram(make_response(register, 503, to_tag="r").to_bytes(), PROXY, now)
        failed = ua.next_event()
        assert isinstance(failed, events.RegistrationFailed) and failed.status == 503
        waits.append(failed.retry_in)
        now += failed.retry_in
        ua.handle_timer(now)
    for n, wait in enumerate(waits):
        assert BASE_BACKOFF * 2**n <= wait <= BASE_BACKOFF * 2 ** (n + 1), waits
    ((register, _),) = _requests(_sent(ua, now), "REGISTER")
    _grant(ua, register, now)
    assert ua.registered and ua._reg.failures == 0


def test_keepalive_pings_go_to_the_registrar_while_registered():
    ua = _registered_agent()
    pings = [(t, dest) for t, data, dest in _run(ua, 0.1, 40.0) if data == b"\r\n\r\n"]
    assert len(pings) >= 2 and all(dest == PROXY for _, dest in pings)
    # RFC 5626 §4.4.1: 80-100 % of the interval between pings.
    interval = registration.KEEPALIVE_INTERVAL
    assert 0.8 * interval <= pings[0][0] <= interval + 0.6
    assert 0.8 * interval - 0.5 <= pings[1][0] - pings[0][0] <= interval + 0.5


def test_a_probe_answered_404_registers_again_at_once():
    """The registrar restarted and lost its location table (issue 11): our OPTIONS to our own address
    of record gets 404, and a REGISTER goes out in the same instant, not 3,540 s later."""
    ua = _registered_agent()
    probe = None
    now = 0.1
    while probe is None:
        assert now < registration.PROBE_INTERVAL + 1, "no probe"
        now += 0.5
        ua.handle_timer(now)
        options = _requests(_sent(ua, now), "OPTIONS")
        if options:
            ((probe, dest),) = options
    assert dest == PROXY and probe.uri.user == "alice" and probe.uri.host == "example.com"
    assert 0.8 * registration.PROBE_INTERVAL <= now
    ua.receive_datagram(make_response(probe, 404, to_tag="x").to_bytes(), PROXY, now)
    ((register, dest),) = _requests(_sent(ua, now), "REGISTER")
    assert dest == PROXY
    _grant(ua, register, now + 0.05)
    assert ua.registered


def test_a_probe_answered_200_changes_nothing():
    ua = _registered_agent()
    out = _run(ua, 0.1, registration.PROBE_INTERVAL + 1)
    probe = _requests([(d, dest) for _, d, dest in out], "OPTIONS")[0][0]  # (and its retransmissions)
    ua.receive_datagram(make_response(probe, 200, to_tag="x").to_bytes(), PROXY, 30.0)
    assert _requests(_sent(ua, 30.0), "REGISTER") == []


def test_a_flow_failure_registers_again_at_once():
    ua = _registered_agent()
    ua.transport_error(PROXY, 5.0)  # e.g. ICMP port unreachable for a keep-alive, or no pong on TCP
    ((register, dest),) = _requests(_sent(ua, 5.0), "REGISTER")
    assert dest == PROXY
    # Still down: that REGISTER fails too, and the retries back off from seconds.
    ua.transport_error(PROXY, 5.1)
    failed = []
    event = ua.next_event()
    while event is not None:
        if isinstance(event, events.RegistrationFailed):
            failed.append(event)
        event = ua.next_event()
    assert len(failed) == 1 and 1.0 <= failed[0].retry_in <= 2.0


def test_a_probe_that_times_out_is_a_flow_failure():
    ua = _registered_agent()
    out = _run(ua, 0.1, registration.PROBE_INTERVAL + 1)
    assert _requests([(d, dest) for _, d, dest in out], "OPTIONS")
    later = _run(ua, registration.PROBE_INTERVAL + 1, registration.PROBE_INTERVAL + 35)
    registers = _requests([(d, dest) for _, d, dest in later], "REGISTER")
    assert registers, "no REGISTER after the probe timed out (Timer F)"


def test_network_back_registers_at_once_with_the_back_off_reset():
    ua = _agent()
    ua.register(0.0)
    ((register, _),) = _requests(_sent(ua, 0.0), "REGISTER")
    ua.transport_error(PROXY, 0.1)  # network down: the REGISTER cannot be sent
    failed = ua.next_event()
    assert isinstance(failed, events.RegistrationFailed)
    ua.network_up(0.2)
    assert len(_requests(_sent(ua, 0.2), "REGISTER")) == 1


def test_no_keepalive_or_probe_when_unregistered_or_disabled():
    ua = _agent()
    assert _run(ua, 0.0, 60.0) == []
    quiet = _registered_agent(keepalive_interval=None, probe_interval=None)
    assert [d for _, d, _ in _run(quiet, 0.1, 60.0)] == []
