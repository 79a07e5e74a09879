"""firmware/runtime/zrtp_store.py: atomic 0600 persistence; a corrupt file is moved aside and reported."""

import logging
import os
import stat

import pytest

from firmware.errors import ConfigError
from firmware.runtime.zrtp_store import ZrtpStore
from firmware.zrtp.cache import ZrtpCache


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_missing_file_creates_a_cache_with_mode_0600(tmp_path):
    path = tmp_path / "sub" / "zrtp-cache"
    store = ZrtpStore(str(path))
    cache = store.load()
    assert path.exists() and _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert not cache.dirty and store.problem is None
    # The ZID survives a reload.
    assert ZrtpStore(str(path)).load().zid == cache.zid


def test_save_if_dirty_round_trip(tmp_path):
    path = str(tmp_path / "zrtp-cache")
    store = ZrtpStore(path)
    cache = store.load()
    assert not store.save_if_dirty(cache)
    cache.update_retained(b"P" * 12, b"r" * 32, 123, "sip:bob@127.0.0.1")
    assert store.save_if_dirty(cache) and not cache.dirty
    again = ZrtpStore(path).load()
    assert again.get(b"P" * 12).rs1 == b"r" * 32
    assert not [name for name in os.listdir(tmp_path) if ".tmp-" in name]


def test_corrupt_file_is_moved_aside_and_reported(tmp_path, caplog):
    path = tmp_path / "zrtp-cache"
    cache = ZrtpCache(b"Z" * 12)
    cache.update_retained(b"P" * 12, b"r" * 32, 1)
    data = bytearray(cache.serialize())
    data[30] ^= 0xFF
    path.write_bytes(bytes(data))
    store = ZrtpStore(str(path), now=lambda: 1700000000)
    with caplog.at_level(logging.ERROR, logger="sotto.zrtp"):
        fresh = store.load()
    assert store.problem and "corrupt" in store.problem
    assert store.moved_to == str(path) + ".corrupt-1700000000"
    assert open(store.moved_to, "rb").read() == bytes(data)
    assert fresh.zid != b"Z" * 12 and fresh.get(b"P" * 12) is None
    assert any("corrupt" in record.getMessage() for record in caplog.records)
    assert ZrtpCache.parse(path.read_bytes()).zid == fresh.zid


def test_loose_permissions_are_tightened(tmp_path):
    path = tmp_path / "zrtp-cache"
    path.write_bytes(ZrtpCache(b"Z" * 12).serialize())
    os.chmod(path, 0o644)
    ZrtpStore(str(path)).load()
    assert _mode(path) == 0o600


def test_a_cache_path_that_is_not_a_regular_file_is_refused_untouched(tmp_path):
    # As root, moving "/dev/null" aside and writing a cache in its place would break the machine.
    fifo = tmp_path / "cache.fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    for path in (fifo, link, tmp_path):
        with pytest.raises(ConfigError, match="a regular file"):
            ZrtpStore(str(path)).load()
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # not moved aside, not replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.fifo", "link"]


def test_load_removes_the_temporary_file_of_a_killed_writer(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "zrtp-cache"
    ZrtpStore(str(path)).load()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    leftover = tmp_path / "zrtp-cache.tmp-{}".format(child.pid)
    leftover.write_bytes(b"half a cache with retained secrets")
    os.chmod(leftover, 0o600)
    ZrtpStore(str(path)).load()  # at start, before any save
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zrtp-cache"]
