"""ZrtpCache: serialization, integrity, bounds (also run under MicroPython)."""

from firmware.zrtp import cache as cache_module
from firmware.zrtp.cache import CacheCorrupt, ZrtpCache
from tests.portable import raises

MICROPYTHON = True


def _rng(n):
    return bytes((i * 37 + 11) & 0xFF for i in range(n))


def test_round_trip():
    cache = ZrtpCache.create(_rng)
    assert cache.dirty and len(cache.zid) == 12
    cache.update_retained(b"A" * 12, b"1" * 32, 100, "sip:alice@127.0.0.1")
    cache.update_retained(b"A" * 12, b"2" * 32, 200)
    cache.set_verified(b"A" * 12, True)
    cache.update_retained(b"B" * 12, b"3" * 32, 150)
    again = ZrtpCache.parse(cache.serialize())
    assert again.zid == cache.zid and len(again) == 2
    record = again.get(b"A" * 12)
    assert record.rs1 == b"2" * 32 and record.rs2 == b"1" * 32 and record.verified
    assert record.uri == "sip:alice@127.0.0.1" and record.last_use == 200
    other = again.get(b"B" * 12)
    assert other.rs2 is None and not other.verified
    assert [r.zid for r in again.peers()] == [b"A" * 12, b"B" * 12]


def test_reset_one_peer():
    cache = ZrtpCache(b"Z" * 12)
    cache.update_retained(b"A" * 12, b"1" * 32, 1)
    cache.update_retained(b"B" * 12, b"2" * 32, 2)
    cache.dirty = False
    assert cache.reset(b"A" * 12) and cache.dirty
    assert cache.get(b"A" * 12) is None and cache.get(b"B" * 12) is not None
    assert not cache.reset(b"A" * 12)


def test_corruption_detected():
    cache = ZrtpCache(b"Z" * 12)
    cache.update_retained(b"A" * 12, b"1" * 32, 1)
    data = cache.serialize()
    for bad in (
        data[:-1],
        data[:10],
        b"",
        bytes([data[0] ^ 1]) + data[1:],
        data[:20] + b"x" + data[21:],
        data + b"\x00",
    ):
        raises(CacheCorrupt, ZrtpCache.parse, bad)


def test_bounded():
    cache = ZrtpCache(b"Z" * 12)
    old = cache_module.MAX_PEERS
    cache_module.MAX_PEERS = 3
    try:
        for i in range(5):
            cache.update_retained(bytes([65 + i]) * 12, b"1" * 32, i)
    finally:
        cache_module.MAX_PEERS = old
    assert len(cache) == 3 and cache.get(b"A" * 12) is None and cache.get(b"E" * 12) is not None


def test_duplicate_peer_is_corrupt():
    from firmware import crypto

    cache = ZrtpCache(b"Z" * 12)
    cache.update_retained(b"A" * 12, b"1" * 32, 2)
    cache.update_retained(b"B" * 12, b"2" * 32, 1)
    body = cache.serialize()[:-32]
    second = body.index(b"B" * 12)
    body = body[:second] + b"A" * 12 + body[second + 12 :]
    raises(CacheCorrupt, ZrtpCache.parse, body + crypto.digest("sha256", body))


def test_contact_bindings_round_trip_and_normalise():
    cache = ZrtpCache.create(_rng)
    assert cache_module.normalize_aor('"Bob" <SIP:%62ob:pw@Example.ORG:5070;transport=tcp>') == "sip:bob@example.org"
    assert cache_module.normalize_aor("sip:10.0.0.1:5060") == "sip:10.0.0.1"
    assert cache_module.normalize_aor("mailto:bob@example.org") is None
    assert cache.bind_contact("sip:bob@example.org:5062", b"Z" * 12, 300)
    again = ZrtpCache.parse(cache.serialize())
    assert again.contact_zid("sips:bob@EXAMPLE.org") == b"Z" * 12
    assert [c.aor for c in again.contacts()] == ["sip:bob@example.org"]
    data = bytearray(cache.serialize())
    data[-40] ^= 1  # inside the contacts table: the integrity trailer no longer holds
    raises(CacheCorrupt, ZrtpCache.parse, bytes(data))
