"""Key continuity at engine level (RFC 6189 §4.3, §4.6.1): retained secrets, V flags, cache mismatch."""

from firmware.zrtp import events
from firmware.zrtp.cache import ZrtpCache
from tests.firmware.zrtp.pair import pair, run, seeded_rng


def _caches():
    return ZrtpCache.create(seeded_rng(1)), ZrtpCache.create(seeded_rng(2))


def _call(cache_a, cache_b, seed, confirm_a=False, confirm_b=False):
    a, b = pair(seed=seed, cache_a=cache_a, cache_b=cache_b, wall_time=1000 + seed)
    run(a, b)
    assert a.secure() and b.secure(), (a.events, b.events)
    if confirm_a:
        a.engine.confirm_sas(10.0)
        a.drain()
    if confirm_b:
        b.engine.confirm_sas(10.0)
        b.drain()
    return a, b


def test_first_call_not_verified_and_caches_filled():
    cache_a, cache_b = _caches()
    a, b = _call(cache_a, cache_b, 10)
    sa, sb = a.secure()[0], b.secure()[0]
    assert not sa.verified and not sb.verified and not sa.cache_mismatch and not sb.cache_mismatch
    ra, rb = cache_a.get(cache_b.zid), cache_b.get(cache_a.zid)
    assert ra.rs1 == rb.rs1 and ra.rs1 is not None and ra.rs2 is None
    assert ra.last_use == 1010 and a.cache_updates()


def test_both_confirm_then_next_call_verified():
    cache_a, cache_b = _caches()
    _call(cache_a, cache_b, 10, confirm_a=True, confirm_b=True)
    assert cache_a.get(cache_b.zid).verified and cache_b.get(cache_a.zid).verified
    a, b = _call(cache_a, cache_b, 20)
    assert a.secure()[0].verified and b.secure()[0].verified
    assert not a.secure()[0].cache_mismatch
    # rs2 now holds the first call's secret, rs1 the second's.
    ra = cache_a.get(cache_b.zid)
    assert ra.rs2 is not None and ra.rs1 != ra.rs2


def test_only_one_side_confirmed_is_not_verified():
    cache_a, cache_b = _caches()
    _call(cache_a, cache_b, 10, confirm_a=True)
    a, b = _call(cache_a, cache_b, 20)
    assert not a.secure()[0].verified and not b.secure()[0].verified


def test_rs2_still_matches_when_one_side_missed_an_update():
    cache_a, cache_b = _caches()
    _call(cache_a, cache_b, 10, confirm_a=True, confirm_b=True)
    # b loses the second call's update (as if its cache write failed): b has (r1, -), a has (r2, r1).
    saved = cache_b.get(cache_a.zid)
    saved_rs1, saved_rs2 = saved.rs1, saved.rs2
    _call(cache_a, cache_b, 20)
    record = cache_b.get(cache_a.zid)
    record.rs1, record.rs2 = saved_rs1, saved_rs2
    a, b = _call(cache_a, cache_b, 30)
    assert not a.secure()[0].cache_mismatch and not b.secure()[0].cache_mismatch
    assert a.secure()[0].verified and b.secure()[0].verified


def test_broken_retained_secret_reports_mismatch_and_defers_update_until_confirm():
    cache_a, cache_b = _caches()
    _call(cache_a, cache_b, 10, confirm_a=True, confirm_b=True)
    # The peer's retained secrets are broken (as after a MiTM or a lost cache).
    record_b = cache_b.get(cache_a.zid)
    record_b.rs1, record_b.rs2 = b"\x01" * 32, b"\x02" * 32
    before = cache_a.get(cache_b.zid)
    before_rs1, before_rs2, before_v = before.rs1, before.rs2, before.verified
    a, b = _call(cache_a, cache_b, 20)
    sa = a.secure()[0]
    assert sa.cache_mismatch and not sa.verified
    assert [alarm.kind for alarm in a.alarms()] == [events.CACHE_MISMATCH]
    after = cache_a.get(cache_b.zid)
    assert (after.rs1, after.rs2, after.verified) == (before_rs1, before_rs2, before_v)
    assert not a.cache_updates()
    # Confirming the SAS applies the deferred update.
    a.engine.confirm_sas(11.0)
    a.drain()
    after = cache_a.get(cache_b.zid)
    assert after.rs1 not in (before_rs1, before_rs2) and after.rs2 == before_rs1 and after.verified
    assert a.cache_updates()


def test_reject_sas_clears_v_and_drops_deferred_update():
    cache_a, cache_b = _caches()
    _call(cache_a, cache_b, 10, confirm_a=True, confirm_b=True)
    record_b = cache_b.get(cache_a.zid)
    record_b.rs1, record_b.rs2 = b"\x01" * 32, b"\x02" * 32
    before_rs1 = cache_a.get(cache_b.zid).rs1
    a, b = _call(cache_a, cache_b, 20)
    a.engine.reject_sas(11.0)
    record = cache_a.get(cache_b.zid)
    assert not record.verified and record.rs1 == before_rs1
    a.engine.confirm_sas(12.0)  # the deferred update is gone; confirming now only sets V
    assert cache_a.get(cache_b.zid).rs1 == before_rs1


def test_no_cache_means_no_continuity():
    a, b = pair(seed=40)
    a.engine.cache = None
    b.engine.cache = None
    run(a, b)
    assert a.secure() and not a.secure()[0].verified


def test_reject_sas_undoes_this_calls_update():
    cache_a, cache_b = _caches()
    _call(cache_a, cache_b, 10, confirm_a=True, confirm_b=True)
    before = cache_a.get(cache_b.zid)
    before_rs = (before.rs1, before.rs2)
    a, b = _call(cache_a, cache_b, 20)
    assert cache_a.get(cache_b.zid).rs1 != before_rs[0]  # the normal update happened
    a.engine.reject_sas(11.0)
    record = cache_a.get(cache_b.zid)
    assert (record.rs1, record.rs2) == before_rs and not record.verified


def test_reject_sas_on_a_first_call_forgets_the_peer():
    cache_a, cache_b = _caches()
    a, b = _call(cache_a, cache_b, 10)
    assert cache_a.get(cache_b.zid) is not None
    a.engine.reject_sas(11.0)
    assert cache_a.get(cache_b.zid) is None
