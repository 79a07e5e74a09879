"""ZRTP figures: Sotto-to-Sotto setup time (call start -> both Secure) per key agreement, with the two
engines in one process and an instant network (so the figure is pure protocol CPU time; a real call
adds the round trips), and the cost of individual messages and operations.

`python -m tools.bench zrtp`. Target from issue 5: Sotto to Sotto <= 50 ms.
"""

import os
import time

from firmware.zrtp import kdf, keyagreement, messages
from firmware.zrtp.cache import ZrtpCache
from firmware.zrtp.engine import Preferences, Secure, ZrtpEngine


def _engine(key_agreement):
    cache = ZrtpCache.create(os.urandom)
    prefs = Preferences(key_agreements=[key_agreement])
    return ZrtpEngine(cache.zid, cache, prefs, os.urandom, ssrc=1)


def setup_once(key_agreement):
    """Milliseconds of wall time from start() to Secure on both sides; the clock passed in is real."""
    a, b = _engine(key_agreement), _engine(key_agreement)
    t0 = time.perf_counter()
    now = 0.0
    a.start(now)
    b.start(now)
    secure = set()
    for _ in range(100):
        moved = False
        for src, dst in ((a, b), (b, a)):
            for packet in src.datagrams_to_send(now):
                dst.receive_datagram(packet, now)
                moved = True
        for engine in (a, b):
            event = engine.next_event()
            while event is not None:
                if isinstance(event, Secure):
                    secure.add(id(engine))
                event = engine.next_event()
        if len(secure) == 2:
            return (time.perf_counter() - t0) * 1000.0
        if not moved:
            break
    raise RuntimeError("pair did not become secure")


def _per_call(func, repeat):
    t0 = time.perf_counter()
    for _ in range(repeat):
        func()
    return (time.perf_counter() - t0) / repeat


def run():
    print("  Sotto-to-Sotto setup, call start -> Secure on both sides (in-process, no network delay):")
    for name in ("DH3k", "DH2k", "EC25", "EC38", "X255", "X448"):
        setup_once(name)  # warm up
        samples = sorted(setup_once(name) for _ in range(15))
        print("    {:<5} median {:6.2f} ms   min {:6.2f}   max {:6.2f}".format(
            name, samples[len(samples) // 2], samples[0], samples[-1]))
    print("  Key agreement, keygen + agree on one side:")
    for name in ("DH3k", "DH2k", "EC25", "EC38", "X255", "X448"):
        peer = keyagreement.generate(name, os.urandom).public

        def once(name=name, peer=peer):
            keyagreement.generate(name, os.urandom).agree(peer)

        print("    {:<5} {:8.1f} us".format(name, _per_call(once, 20) * 1e6))
    print("  DH3k exponentiation on the pure-pow path (MicroPython's, and the fallback):")
    prime = keyagreement.dh_prime("DH3k")
    exponent = int.from_bytes(os.urandom(32), "big")
    print("    pow   {:8.1f} us".format(_per_call(lambda: pow(2, exponent, prime), 20) * 1e6))
    print("  Messages (encode+frame / decode+CRC check):")
    h = os.urandom(32)
    hello = messages.Hello("1.10", "Sotto", h, os.urandom(12), ["S256", "S384"], ["AES1", "AES3"],
                           ["HS80", "HS32"], ["DH3k", "X255"], ["B32", "B256"])
    dh = messages.DHPart(1, h, b"1" * 8, b"2" * 8, b"3" * 8, b"4" * 8, os.urandom(384))
    for label, build in (("Hello", lambda: hello.encode(h)), ("DHPart1 DH3k", lambda: dh.encode(h))):
        packet = messages.encode_packet(1, 2, build())
        encode = _per_call(lambda build=build: messages.encode_packet(1, 2, build()), 200)
        decode = _per_call(lambda packet=packet: messages.decode_message(messages.decode_packet(packet)[2]), 200)
        print("    {:<13} encode {:7.1f} us   decode {:7.1f} us".format(label, encode * 1e6, decode * 1e6))
    body = messages.ConfirmBody(h, True)
    key, mackey, iv = os.urandom(16), os.urandom(32), os.urandom(16)
    confirm = messages.seal_confirm(1, body, "S256", key, mackey, iv)
    print("    Confirm       seal   {:7.1f} us   open   {:7.1f} us".format(
        _per_call(lambda: messages.seal_confirm(1, body, "S256", key, mackey, iv), 200) * 1e6,
        _per_call(lambda: messages.open_confirm(confirm, "S256", key, mackey), 200) * 1e6))
    print("    KDF (S256)    {:7.1f} us".format(_per_call(lambda: kdf.kdf("S256", h, b"SAS", h * 2, 32), 500) * 1e6))
