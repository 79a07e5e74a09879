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
