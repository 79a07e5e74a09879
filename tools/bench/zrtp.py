"""ZRTP figures: Sotto-to-Sotto setup time (call start -> both Secure) per key agreement, with the two
engines in one process and an instant network (so the figure is pure protocol CPU time; a real call
adds the round trips), and the cost of individual messages and operations.

Against linphone (when `linphonec` is installed): `sotto call` to a linphonec that auto-answers, five
calls, the summary's `secure_ms` (call start -> secure, real sockets on 127.0.0.1, ports 17200-17299).

`python -m tools.bench zrtp`. Targets from issue 5: Sotto to Sotto <= 50 ms, against linphone <= 100 ms
(linphone to linphone takes 107-138 ms here).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
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
        print(
            "    {:<5} median {:6.2f} ms   min {:6.2f}   max {:6.2f}".format(
                name, samples[len(samples) // 2], samples[0], samples[-1]
            )
        )
    figures = sorted(f for f in sotto_to_sotto() if f is not None)
    if figures:
        print(
            "  sotto call -> sotto answer (127.0.0.1), call start -> secure: "
            "median {:.1f} ms  min {:.1f}  max {:.1f}".format(figures[len(figures) // 2], figures[0], figures[-1])
        )
    else:
        print("  sotto call -> sotto answer: no call became secure")
    figures = against_linphone()
    if figures is None:
        print("  against linphone: linphonec not installed")
    else:
        done = sorted(f for f in figures if f is not None)
        if done:
            print(
                "  sotto call -> linphonec (DH3k), call start -> secure: median {:.1f} ms  min {:.1f}  max {:.1f}"
                "  ({} of {} calls secure)".format(done[len(done) // 2], done[0], done[-1], len(done), len(figures))
            )
        else:
            print("  sotto call -> linphonec: no call became secure")
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
    hello = messages.Hello(
        "1.10",
        "Sotto",
        h,
        os.urandom(12),
        ["S256", "S384"],
        ["AES1", "AES3"],
        ["HS80", "HS32"],
        ["DH3k", "X255"],
        ["B32", "B256"],
    )
    dh = messages.DHPart(1, h, b"1" * 8, b"2" * 8, b"3" * 8, b"4" * 8, os.urandom(384))
    for label, build in (("Hello", lambda: hello.encode(h)), ("DHPart1 DH3k", lambda: dh.encode(h))):
        packet = messages.encode_packet(1, 2, build())
        encode = _per_call(lambda build=build: messages.encode_packet(1, 2, build()), 200)
        decode = _per_call(lambda packet=packet: messages.decode_message(messages.decode_packet(packet)[2]), 200)
        print("    {:<13} encode {:7.1f} us   decode {:7.1f} us".format(label, encode * 1e6, decode * 1e6))
    body = messages.ConfirmBody(h, True)
    key, mackey, iv = os.urandom(16), os.urandom(32), os.urandom(16)
    confirm = messages.seal_confirm(1, body, "S256", key, mackey, iv)
    print(
        "    Confirm       seal   {:7.1f} us   open   {:7.1f} us".format(
            _per_call(lambda: messages.seal_confirm(1, body, "S256", key, mackey, iv), 200) * 1e6,
            _per_call(lambda: messages.open_confirm(confirm, "S256", key, mackey), 200) * 1e6,
        )
    )
    print("    KDF (S256)    {:7.1f} us".format(_per_call(lambda: kdf.kdf("S256", h, b"SAS", h * 2, 32), 500) * 1e6))


def against_linphone(calls=5):
    """secure_ms of `sotto call` against linphonec, per call (None when linphonec is missing)."""
    if shutil.which("linphonec") is None:
        return None
    from tests.interop.linphone import Linphone  # the interop tests' driver

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    figures = []
    with tempfile.TemporaryDirectory(prefix="sotto-bench-zrtp-") as workdir:
        with Linphone(os.path.join(workdir, "bob"), 17260, 17270, user="bob", auto_answer=True) as linphone:
            for _ in range(calls):
                result = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "firmware",
                        "call",
                        linphone.uri,
                        "--listen",
                        "127.0.0.1:17280",
                        "--rtp-port",
                        "17290",
                        "--duration",
                        "0.3",
                        "--timeout",
                        "15",
                        "--codecs",
                        "PCMU",
                        "--cache",
                        os.path.join(workdir, "cache"),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=40,
                    cwd=root,
                )
                try:
                    summary = json.loads(result.stdout)
                    figures.append(summary["zrtp"]["secure_ms"])
                except (ValueError, KeyError, TypeError):
                    figures.append(None)
                time.sleep(0.3)
    return figures


def _udp_port_open(port):
    needle = ":{:04X}".format(port)
    with open("/proc/net/udp") as f:
        return any(line.split()[1].endswith(needle) for line in f.readlines()[1:])


def sotto_to_sotto(calls=3):
    """secure_ms of `sotto call` to `sotto answer` over 127.0.0.1, per call (the caller's summary)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    figures = []
    with tempfile.TemporaryDirectory(prefix="sotto-bench-zrtp-") as workdir:
        for _ in range(calls):
            common = ["--duration", "0.3", "--timeout", "15", "--codecs", "PCMU"]
            answer = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "firmware",
                    "answer",
                    "--listen",
                    "127.0.0.1:17250",
                    "--rtp-port",
                    "17252",
                    "--cache",
                    os.path.join(workdir, "b"),
                ]
                + common,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=root,
            )
            try:
                deadline = time.monotonic() + 10
                while not _udp_port_open(17250) and time.monotonic() < deadline:
                    time.sleep(0.05)
                result = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "firmware",
                        "call",
                        "sip:b@127.0.0.1:17250",
                        "--listen",
                        "127.0.0.1:17254",
                        "--rtp-port",
                        "17256",
                        "--cache",
                        os.path.join(workdir, "a"),
                    ]
                    + common,
                    capture_output=True,
                    text=True,
                    timeout=40,
                    cwd=root,
                )
                try:
                    figures.append(json.loads(result.stdout)["zrtp"]["secure_ms"])
                except (ValueError, KeyError, TypeError):
                    figures.append(None)
            finally:
                try:
                    answer.wait(15)
                except subprocess.TimeoutExpired:
                    answer.kill()
                    answer.wait(5)
    return figures
