"""kill -9 during ZRTP cache writes (issue 11): after every kill the cache is the old or the new version,
never torn, the retained secrets are intact, and no temporary file with secrets outlives the next start.

A child process (tests/hostile/cache_writer.py) saves the cache through the real ZrtpStore in a loop and
reports each version that reached the disk; the test kills it with SIGKILL at a random moment (seeded),
then checks the file and loads it through ZrtpStore as the phone does at start. SOTTO_CACHE_KILLS sets
the number of kills (default 40).
"""

import os
import random
import signal
import subprocess
import sys
import time

from firmware.runtime import storage
from firmware.runtime.zrtp_store import ZrtpStore
from firmware.zrtp.cache import ZrtpCache
from tests.hostile import cache_writer as W
from tests.hostile import totals
from tests.interop.sotto import ROOT

KILLS = int(os.environ.get("SOTTO_CACHE_KILLS", "40"))
SEED = int(os.environ.get("SOTTO_FUZZ_SEED", "11"))


def _temporaries(directory):
    return sorted(name for name in os.listdir(directory) if storage.TEMP_MARK in name)


def _check_version(path, low, high):
    """The file parses and is version low or high (high = a write that completed but was not reported)."""
    cache = ZrtpCache.parse(open(path, "rb").read())  # CacheCorrupt would fail the test right here
    rolling = cache.get(W.ROLLING)
    version = rolling.last_use if rolling is not None else 0
    assert low <= version <= high, (low, version, high)
    if rolling is not None:
        assert rolling.rs1 == W.rolling_secret(version)
        assert version == 1 or rolling.rs2 == W.rolling_secret(version - 1)
    verified = cache.get(W.VERIFIED)
    if verified is not None:
        assert verified.verified and verified.rs1 == W.VERIFIED_RS1 and verified.rs2 == W.VERIFIED_RS2
        assert len(cache) == W.FILLER + 2
    return cache, version


def test_kill_9_during_cache_writes_never_loses_the_cache(tmp_path):
    rand = random.Random(SEED)
    path = str(tmp_path / "zrtp-cache")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    version = 0  # the newest version known to be on disk
    zid = None
    leftovers_seen = 0
    writes = 0
    started = time.monotonic()
    for _kill in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.hostile.cache_writer", path],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            ready = child.stdout.readline()
            assert ready.startswith("ready "), child.stderr.read()
            assert int(ready.split()[1]) == version
            first = child.stdout.readline()  # one save done: the kill below lands among the writes
            assert first.startswith("saved "), child.stderr.read()
            time.sleep(rand.uniform(0.0, 0.05))
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)  # reaped: a zombie would still count as a live writer
        lines = (first + child.stdout.read()).split()
        child.stdout.close()
        child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        saved = [int(lines[i + 1]) for i in range(0, len(lines) - 1, 2) if lines[i] == "saved"]
        reported = saved[-1] if saved else version
        writes += reported - version
        # Old or new: the last reported version, or the one being written when the kill came.
        cache, version = _check_version(path, reported, reported + 1)
        if zid is None:
            zid = cache.zid
        assert cache.zid == zid  # never a fresh cache: nothing was ever found corrupt
        left = _temporaries(tmp_path)
        assert len(left) <= 1 and all(name.startswith("zrtp-cache.tmp-") for name in left), left
        leftovers_seen += len(left)
        # What the phone does at start: load through the store, which removes the dead writer's file.
        store = ZrtpStore(path)
        assert store.load().zid == zid and store.problem is None
        assert _temporaries(tmp_path) == [], "a temporary file with retained secrets survived a start"
    elapsed = time.monotonic() - started
    totals.record(
        "cache kill -9",
        kills_survived=KILLS,
        versions_written=writes,
        killed_mid_write=leftovers_seen,
        corrupt=0,
        seconds=round(elapsed, 1),
    )
    assert writes >= KILLS  # every kill came after at least one complete save of its writer
