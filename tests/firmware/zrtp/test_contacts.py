"""Address-book continuity (issue 11 item 7): a verified contact's AOR is bound to the ZID it used; a
different ZID for that contact is a loud alarm of its own, and accepting it rebinds."""

import struct

import pytest

from firmware import crypto
from firmware.zrtp import events
from firmware.zrtp.cache import MAGIC_V1, CacheCorrupt, ZrtpCache, normalize_aor
from tests.firmware.zrtp.pair import Side, make_engine, run, seeded_rng

BOB = "sip:bob@example.org"


@pytest.mark.parametrize(
    "uri,aor",
    [
        ("sip:bob@example.org", "sip:bob@example.org"),
        ("SIP:bob@EXAMPLE.org:5060;transport=tcp", "sip:bob@example.org"),
        ('"Bob" <sips:%62ob:secret@example.org>;tag=9', "sip:bob@example.org"),
        ("sip:bob@example.org.?subject=x", "sip:bob@example.org"),
        ("sip:Bob@example.org", "sip:Bob@example.org"),  # the user part is case-sensitive (§19.1.4)
        ("sip:127.0.0.1:5072", "sip:127.0.0.1"),
        ("sip:alice@[::1]:5070", "sip:alice@[::1]"),
        ("tel:+123", None),
        ("sip:", None),
        ("<sip:bob@example.org", None),
        (None, None),
    ],
)
def test_normalize_aor(uri, aor):
    assert normalize_aor(uri) == aor


def test_bind_forget_and_round_trip():
    cache = ZrtpCache.create(seeded_rng(1))
    assert cache.contact_zid(BOB) is None
    assert cache.bind_contact("<sip:bob@Example.org:5070>", b"z" * 12, 100)
    assert not cache.bind_contact("tel:1", b"z" * 12, 100)
    assert cache.contact_zid(BOB) == b"z" * 12
    cache.bind_contact("sip:carol@example.org", b"c" * 12, 200)
    loaded = ZrtpCache.parse(cache.serialize())
    assert [(c.aor, c.zid, c.last_use) for c in loaded.contacts()] == [
        ("sip:carol@example.org", b"c" * 12, 200),
        (BOB, b"z" * 12, 100),
    ]
    assert loaded.forget_contact("sip:bob@example.org;x=y") and loaded.contact_zid(BOB) is None
    assert not loaded.forget_contact(BOB)


def _v1_file(cache):
    """The cache as the previous format wrote it: "SottoZC1", no contacts table."""
    body = cache.serialize()[:-32]
    end = body.rindex(struct.pack(">I", len(cache.contacts())))
    body = MAGIC_V1 + body[len(MAGIC_V1) : end]
    return body + crypto.digest("sha256", body)


def test_old_cache_files_load_and_their_verified_peers_become_contacts():
    cache = ZrtpCache.create(seeded_rng(1))
    cache.update_retained(b"p" * 12, b"r" * 32, 50, "sip:bob@example.org:5072")
    cache.set_verified(b"p" * 12, True)
    cache.update_retained(b"q" * 12, b"s" * 32, 60, "sip:eve@example.org")  # not verified: no binding
    old = _v1_file(cache)
    assert old.startswith(b"SottoZC1")
    loaded = ZrtpCache.parse(old)
    assert loaded.get(b"p" * 12).rs1 == b"r" * 32
    assert [(c.aor, c.zid) for c in loaded.contacts()] == [(BOB, b"p" * 12)]
    assert ZrtpCache.parse(loaded.serialize()).contact_zid(BOB) == b"p" * 12


@pytest.mark.parametrize("damage", ["count", "aor", "not-normalised", "truncated"])
def test_damaged_contacts_table_is_corrupt(damage):
    cache = ZrtpCache.create(seeded_rng(1))
    cache.bind_contact(BOB, b"z" * 12, 1)
    body = bytearray(cache.serialize()[:-32])
    tail = len(BOB) + 22 + 4
    if damage == "count":
        body[-tail : -tail + 4] = struct.pack(">I", 5000)
    elif damage == "aor":
        body[-len(BOB)] = 0xFF
    elif damage == "not-normalised":
        body[-len(BOB) :] = BOB.upper().encode()
    else:
        del body[-3:]
    data = bytes(body) + crypto.digest("sha256", bytes(body))
    with pytest.raises(CacheCorrupt):
        ZrtpCache.parse(data)


def _call(cache_a, cache_b, seed, uri=BOB, confirm=()):
    a = Side("a", make_engine(seed, cache=cache_a, peer_uri=uri, wall_time=1000 + seed))
    b = Side("b", make_engine(seed + 1, cache=cache_b, peer_uri="sip:alice@example.org", wall_time=1000 + seed))
    run(a, b)
    assert a.secure() and b.secure()
    for side in (a, b):
        if side.name in confirm:
            side.engine.confirm_sas(5.0)
            side.drain()
    return a, b


def test_verified_contact_with_a_new_zid_raises_its_own_alarm_until_accepted():
    cache_a, cache_b = ZrtpCache.create(seeded_rng(1)), ZrtpCache.create(seeded_rng(2))
    a, _ = _call(cache_a, cache_b, 10, confirm=("a", "b"))
    assert cache_a.contact_zid(BOB) == cache_b.zid
    a, _ = _call(cache_a, cache_b, 20)
    assert a.secure()[0].verified and not a.alarms()
    # A man in the middle (or Bob's new phone) with a fresh ZID, calling as the same AOR.
    stranger = ZrtpCache.create(seeded_rng(3))
    a, _ = _call(cache_a, stranger, 30, uri="<sip:bob@EXAMPLE.org:5090>;tag=1")
    alarms = a.alarms()
    assert [e.kind for e in alarms] == [events.NEW_KEY_FOR_CONTACT]  # not a cache mismatch
    assert alarms[0].reason.startswith("new key for a verified contact")
    assert not a.secure()[0].verified and not a.secure()[0].cache_mismatch
    assert a.events.index(a.secure()[0]) < a.events.index(alarms[0])
    # Again on the next call: nothing changed until the user accepts.
    a, _ = _call(cache_a, stranger, 40)
    assert [e.kind for e in a.alarms()] == [events.NEW_KEY_FOR_CONTACT]
    a.engine.accept_new_key(6.0)
    a.drain()
    assert cache_a.contact_zid(BOB) == stranger.zid and a.cache_updates()
    restored = ZrtpCache.parse(cache_a.serialize())  # survives a restart like the rest of the cache
    assert restored.contact_zid(BOB) == stranger.zid
    a, _ = _call(restored, stranger, 50)
    assert not a.alarms()
    # And now the old ZID is the stranger.
    a, _ = _call(restored, cache_b, 60)
    assert [e.kind for e in a.alarms()] == [events.NEW_KEY_FOR_CONTACT]


def test_unverified_contact_is_not_bound_and_rejecting_binds_nothing():
    cache_a, cache_b = ZrtpCache.create(seeded_rng(1)), ZrtpCache.create(seeded_rng(2))
    a, _ = _call(cache_a, cache_b, 10)
    assert cache_a.contact_zid(BOB) is None
    a.engine.reject_sas(5.0)
    assert cache_a.contact_zid(BOB) is None
    a, _ = _call(cache_a, ZrtpCache.create(seeded_rng(3)), 20)
    assert not a.alarms()


def test_a_call_verified_by_continuity_binds_a_contact_that_had_none():
    cache_a, cache_b = ZrtpCache.create(seeded_rng(1)), ZrtpCache.create(seeded_rng(2))
    _call(cache_a, cache_b, 10, uri=None, confirm=("a", "b"))  # a call with no known AOR
    assert not cache_a.contacts()
    a, _ = _call(cache_a, cache_b, 20)
    assert a.secure()[0].verified and cache_a.contact_zid(BOB) == cache_b.zid and a.cache_updates()
