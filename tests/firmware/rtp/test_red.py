"""RFC 2198 redundant audio: packing and strict parsing of the RED payload."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.rtp.red import MAX_BLOCKS, pack_red, parse_red


def test_round_trip_with_one_redundant_block():
    payload = pack_red(9, b"primary", ((9, 160, b"previous"),))
    # RFC 2198 §3: F=1 | PT 9, offset 160 (14 bits), length 8 (10 bits); then F=0 | PT 9.
    assert payload[:5] == bytes((0x80 | 9, (160 << 10) >> 16, ((160 << 10) >> 8) & 0xFF, 8, 9))
    assert payload[5:] == b"previousprimary"
    assert parse_red(payload) == (9, b"primary", [(9, 160, b"previous")])


def test_round_trip_without_redundancy_and_with_two_levels():
    assert pack_red(0, b"abc") == b"\x00abc"
    assert parse_red(b"\x00abc") == (0, b"abc", [])
    blocks = [(0, 320, b"x" * 160), (0, 160, b"y" * 160)]
    assert parse_red(pack_red(0, b"z" * 160, blocks)) == (0, b"z" * 160, blocks)


def test_the_example_of_rfc_2198_section_3():
    # Primary PT 0, one redundant block of PT 5 (DVI4) 256 timestamp units older, 3 octets.
    data = bytes((0x85, 0x04, 0x00, 0x03, 0x00)) + b"red" + b"primary"
    assert parse_red(data) == (0, b"primary", [(5, 256, b"red")])


@pytest.mark.parametrize(
    "data",
    [
        b"",  # no header at all
        b"\x80\x00",  # a block header cut short
        b"\x80\x02\x80\x05",  # a block header, then no primary header
        b"\x80\x02\x80\x05\x00abc",  # the block claims 5 octets, 3 remain
        b"\x80\x00\x00\x01\x00a",  # a zero timestamp offset: not older than the primary
        bytes((0x80, 0x02, 0x80, 0x00)) * (MAX_BLOCKS + 1) + b"\x00",  # too many blocks
    ],
)
def test_malformed_red_payloads_are_refused(data):
    with pytest.raises(RemoteProtocolError):
        parse_red(data)


def test_out_of_range_blocks_are_not_packed():
    for redundant in (((0, 0, b"a"),), ((0, 0x4000, b"a"),), ((0, 160, bytes(1024)),), ((128, 160, b"a"),)):
        with pytest.raises(LocalProtocolError):
            pack_red(0, b"p", redundant)
    with pytest.raises(LocalProtocolError):
        pack_red(200, b"p")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=60))
def test_red_parser_only_raises_remote_protocol_error(data):
    try:
        primary_pt, primary, blocks = parse_red(data)
    except RemoteProtocolError:
        return
    assert pack_red(primary_pt, primary, blocks) == data
