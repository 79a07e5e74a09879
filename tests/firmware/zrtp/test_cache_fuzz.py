"""Fuzz: any bytes in ZrtpCache.parse give a cache or CacheCorrupt, never another exception; a cache
that parses survives a serialize/parse round trip unchanged."""

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.zrtp.cache import MAGIC, CacheCorrupt, ZrtpCache


def _parse(data):
    try:
        cache = ZrtpCache.parse(data)
    except CacheCorrupt:
        return None
    data = cache.serialize()
    assert ZrtpCache.parse(data).serialize() == data
    return cache


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes(data):
    _parse(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_body_with_a_valid_trailer(body):
    # Past the integrity check: the structure parser alone must hold.
    for candidate in (body, MAGIC + body):
        _parse(candidate + hashlib.sha256(candidate).digest())


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 200), st.integers(0, 255))
def test_mutated_real_cache_with_rehashed_trailer(position, value):
    cache = ZrtpCache(b"Z" * 12)
    cache.update_retained(b"A" * 12, b"1" * 32, 5, "sip:a@127.0.0.1")
    cache.update_retained(b"B" * 12, b"2" * 32, 6)
    body = bytearray(cache.serialize()[:-32])
    body[position % len(body)] = value
    _parse(bytes(body) + hashlib.sha256(bytes(body)).digest())
