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
        data = messages.encode_packet(1, 2, b"\x50\x5a" + bytes([0, (len(data) + 12) // 4]) + data[:8].ljust(8)
                                      + data[8:])
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
