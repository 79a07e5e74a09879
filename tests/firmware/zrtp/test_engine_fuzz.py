"""Fuzz invariant for the engine: any datagram in any state is absorbed without an exception."""

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.zrtp import messages
from tests.firmware.zrtp.pair import pair, run


def _engines_mid_handshake():
    a, b = pair(seed=200)
    a.engine.start(0.0)
    b.engine.start(0.0)
    return a, b


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=500), st.integers(0, 3))
def test_random_datagrams_never_raise(data, framing):
    a, _b = _engines_mid_handshake()
    if framing == 1:
        data = messages.encode_packet(1, 2, data)
    elif framing == 2:
        data = messages.encode_packet(
            1, 2, b"\x50\x5a" + bytes([0, (len(data) + 12) // 4]) + data[:8].ljust(8) + data[8:]
        )
    a.engine.receive_datagram(data, 0.01)
    a.engine.handle_timer(1.0)
    a.engine.datagrams_to_send(1.0)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40), st.integers(0, 500), st.integers(0, 255))
def test_mutated_handshake_packets_never_raise(index, position, value):
    a, b = pair(seed=300)
    run(a, b)
    packets = [p for _, p in a.sent] + [p for _, p in b.sent]
    packet = bytearray(packets[index % len(packets)])
    raw = bytearray(packet[12:-4])
    raw[position % len(raw)] = value
    mutated = messages.encode_packet(7, 8, bytes(raw))
    c, d = pair(seed=301)
    c.engine.start(0.0)
    c.engine.receive_datagram(mutated, 0.01)
    for engine in (a.engine, b.engine, c.engine):
        engine.receive_datagram(mutated, 5.0)
        engine.handle_timer(6.0)
        engine.datagrams_to_send(6.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=5), st.integers(0, 40), st.integers(0, 500), st.integers(0, 255))
def test_a_restart_under_garbage_never_raises_and_falls_back_to_secure(noise, index, position, value):
    # A peer Hello after Secure starts a re-key (issue 12); whatever follows, the engine never raises and
    # ends either re-keyed or back in Secure with the old keys (Alarm REKEY_FAILED), never Failed.
    from firmware.zrtp.engine import Failed
    from tests.firmware.zrtp.pair import make_engine

    a, b = pair(seed=400)
    run(a, b)
    fresh = make_engine(401, cache=b.engine.cache)
    fresh.start(10.0)
    for packet in fresh.datagrams_to_send(10.0):
        a.engine.receive_datagram(packet, 10.0)
    packets = [p for _, p in a.sent] + [p for _, p in b.sent]
    raw = bytearray(packets[index % len(packets)][12:-4])
    raw[position % len(raw)] = value
    for data in noise + [messages.encode_packet(7, 8, bytes(raw))]:
        a.engine.receive_datagram(data, 10.5)
        a.engine.receive_datagram(messages.encode_packet(9, 9, data), 10.5)
    now = 10.5
    while a.engine.get_timer() is not None and now < 100.0:
        now = max(now, a.engine.get_timer())
        a.engine.handle_timer(now)
        a.engine.datagrams_to_send(now)
    a.drain()
    assert a.engine.state == "Secure"
    assert not [e for e in a.events if isinstance(e, Failed)]
