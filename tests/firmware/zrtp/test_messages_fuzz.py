"""Fuzz invariant: any bytes in, either a parsed message or RemoteProtocolError out."""

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.errors import RemoteProtocolError
from firmware.zrtp import messages

SAMPLE = messages.Commit(b"2" * 32, b"z" * 12, "S256", "AES1", "HS80", "DH3k", "B32", hvi=b"h" * 32).encode(b"1" * 32)


def _parse(data):
    try:
        sequence, ssrc, msg = messages.decode_packet(data)
        messages.decode_message(msg)
    except RemoteProtocolError:
        pass
    try:
        messages.decode_message(data)
    except RemoteProtocolError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes(data):
    _parse(data)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(SAMPLE) - 1), st.integers(0, 255), st.integers(0, len(SAMPLE)))
def test_mutated_messages(position, value, cut):
    data = bytearray(SAMPLE)
    data[position] = value
    _parse(bytes(data[:cut]))
    _parse(messages.encode_packet(1, 2, bytes(data)))
    # A well-framed packet with any message body of the right word length.
    _parse(messages.encode_packet(1, 2, b"\x50\x5a" + bytes([0, len(data) // 4]) + bytes(data[4:])))
