"""The engine runs on the portable path (pure-pow DH3k, S256, AES1 with CFB over AES-ECB, B32): a
plain pair handshake, also run under MicroPython."""

from firmware.zrtp.cache import ZrtpCache
from firmware.zrtp.engine import Preferences, Secure, ZrtpEngine

MICROPYTHON = True


def _counter_rng(seed):
    state = [seed]

    def rng(n):
        out = bytearray()
        for _ in range(n):
            state[0] = (state[0] * 1103515245 + 12345) & 0x7FFFFFFF
            out.append((state[0] >> 16) & 0xFF)
        return bytes(out)

    return rng


def _engine(seed, key_agreement):
    rng = _counter_rng(seed)
    cache = ZrtpCache.create(rng)
    prefs = Preferences(["S256"], ["AES1"], ["HS32"], [key_agreement], ["B32"])
    return ZrtpEngine(cache.zid, cache, prefs, rng, ssrc=seed)


def _pump(a, b):
    now = 0.0
    a.start(now)
    b.start(now)
    events = {0: [], 1: []}
    for _ in range(200):
        moved = False
        for src, dst in ((a, b), (b, a)):
            for packet in src.datagrams_to_send(now):
                dst.receive_datagram(packet, now)
                moved = True
        for index, engine in enumerate((a, b)):
            while True:
                event = engine.next_event()
                if event is None:
                    break
                events[index].append(event)
        if not moved:
            timers = [t for t in (a.get_timer(), b.get_timer()) if t is not None]
            if not timers:
                break
            now = min(timers)
            a.handle_timer(now)
            b.handle_timer(now)
    return events


def test_dh3k_pair_on_the_portable_path():
    events = _pump(_engine(1, "DH3k"), _engine(2, "DH3k"))
    secure = [[e for e in events[i] if isinstance(e, Secure)] for i in (0, 1)]
    assert len(secure[0]) == 1 and len(secure[1]) == 1
    assert secure[0][0].sas == secure[1][0].sas and len(secure[0][0].sas) == 4
    assert secure[0][0].send_key == secure[1][0].receive_key
    assert secure[0][0].send_profile == "AES_CM_128_HMAC_SHA1_32"


def _peer_preferring(seed, kind, name):
    """An engine whose Hello lists `name` first and then every name Sotto implements for `kind`, as a
    peer with a full crypto library would, whether or not this platform can run them (issue 13)."""
    from firmware.zrtp import algorithms

    rng = _counter_rng(seed)
    cache = ZrtpCache.create(rng)
    prefs = Preferences()
    names = [name] + [n for n in algorithms.IMPLEMENTED[kind] if n != name]
    attribute = {
        "hash": "hashes",
        "cipher": "ciphers",
        "auth_tag": "auth_tags",
        "key_agreement": "key_agreements",
        "sas": "sas_types",
    }[kind]
    setattr(prefs, attribute, names)  # bypasses the platform check on purpose: this is the far end
    return ZrtpEngine(cache.zid, cache, prefs, rng, ssrc=seed)


def _default_engine(seed):
    rng = _counter_rng(seed)
    cache = ZrtpCache.create(rng)
    return ZrtpEngine(cache.zid, cache, Preferences(), rng, ssrc=seed)


def test_default_offer_is_what_this_platform_can_run():
    from firmware import crypto
    from firmware.zrtp import algorithms

    prefs = Preferences()
    assert prefs.key_agreements == list(algorithms.DEFAULTS["key_agreement"])
    assert "DH3k" in prefs.key_agreements and "S256" in prefs.hashes and "AES1" in prefs.ciphers
    assert ("X255" in prefs.key_agreements) == crypto.available("x25519")
    assert ("EC25" in prefs.key_agreements) == crypto.available("p256")
    assert ("S384" in prefs.hashes) == crypto.available("sha384")
    assert ("AES3" in prefs.ciphers) == crypto.available("aes256")


def test_a_peer_preferring_any_algorithm_gets_a_secure_call_or_a_clean_failure():
    # With a peer that prefers each algorithm in turn, the default engine always ends Secure on
    # something this platform can run; nothing escapes receive_datagram (the old default offer listed
    # X255 under MicroPython, and "x25519 not available" escaped as LocalProtocolError).
    from firmware.zrtp import algorithms

    seed = 10
    for kind in algorithms.KINDS:
        for name in algorithms.IMPLEMENTED[kind]:
            seed += 2
            ours, theirs = _default_engine(seed), _peer_preferring(seed + 1, kind, name)
            events = _pump(ours, theirs)
            secure = [[e for e in events[i] if isinstance(e, Secure)] for i in (0, 1)]
            assert len(secure[0]) == 1 and len(secure[1]) == 1, (kind, name, events)
            assert secure[0][0].sas == secure[1][0].sas, (kind, name)
            chosen = {
                "hash": secure[0][0].hash,
                "cipher": secure[0][0].cipher,
                "auth_tag": secure[0][0].auth_tag,
                "key_agreement": secure[0][0].key_agreement,
                "sas": secure[0][0].sas_type,
            }
            for k in algorithms.KINDS:
                assert chosen[k] in algorithms.SUPPORTED[k], (kind, name, chosen)


def test_a_commit_for_an_algorithm_we_cannot_run_fails_cleanly():
    from firmware.zrtp import algorithms, events, messages
    from firmware.zrtp.engine import Failed

    # Under MicroPython: every curve. Under CPython everything runs, so X448 is left out of our offer.
    supported = algorithms.SUPPORTED["key_agreement"]
    targets = [n for n in algorithms.IMPLEMENTED["key_agreement"] if n not in supported] or ["X448"]
    offer = [n for n in supported if n not in targets]
    assert targets and offer
    for name in targets:
        rng = _counter_rng(40)
        cache = ZrtpCache.create(rng)
        ours = ZrtpEngine(cache.zid, cache, Preferences(key_agreements=offer), rng, ssrc=40)
        theirs = _peer_preferring(41, "key_agreement", name)
        ours.start(0.0)
        ours.datagrams_to_send(0.0)
        ours.receive_datagram(messages.encode_packet(1, 7, theirs._hello_raw), 0.01)
        commit = messages.Commit(theirs._h2, theirs.zid, "S256", "AES1", "HS80", name, "B32", hvi=b"\x01" * 32)
        ours.receive_datagram(messages.encode_packet(2, 7, commit.encode(theirs._h1)), 0.02)
        failed = []
        while True:
            event = ours.next_event()
            if event is None:
                break
            if isinstance(event, Failed):
                failed.append(event)
        assert [e.kind for e in failed] == [events.NO_COMMON_ALGORITHM], name
