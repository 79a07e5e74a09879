"""Persistence of the ZRTP cache (host only): the file behind firmware.zrtp.cache.ZrtpCache.

The file is written with firmware.runtime.storage.atomic_write (temp file, fsync, rename, fsync of the
directory), mode 0600, in a directory created 0700 when missing. load() first removes the stale
`<path>.tmp-<pid>` files that a writer killed mid-save left behind (storage.remove_stale_temporaries).
A file that fails the cache's integrity check is never trusted silently: it is moved aside to
`<path>.corrupt-<unix time>`, logged at ERROR level and reported in `store.problem`, and a fresh cache
(a new ZID) takes its place, so every peer will see a cache mismatch and the users must compare the
SAS again.

API:
    store = ZrtpStore(path, rng=os.urandom, now=time.time)
    cache = store.load()        # creates and saves a new cache (new random ZID) if the file is missing
    store.problem               # None, or one line describing what was wrong with the file
    store.moved_to              # where a corrupt file was moved, or None
    store.save(cache)           # atomic write, clears cache.dirty
    store.save_if_dirty(cache)  # what the shell calls after each CacheUpdated event
"""

import logging
import os
import stat
import time

from firmware.errors import ConfigError
from firmware.runtime.storage import atomic_write, read_bytes, remove_stale_temporaries
from firmware.zrtp.cache import CacheCorrupt, ZrtpCache

log = logging.getLogger("sotto.zrtp")

FILE_MODE = 0o600


class ZrtpStore:
    __slots__ = ("path", "_rng", "_now", "problem", "moved_to")

    def __init__(self, path, rng=os.urandom, now=time.time):
        self.path = path
        self._rng = rng
        self._now = now
        self.problem = None
        self.moved_to = None

    def load(self):
        # Only ever a regular file: moving aside or replacing "/dev/null" or a FIFO given as --cache
        # would damage the system (as root, /dev/null itself), so such a path is refused.
        if os.path.lexists(self.path) and not stat.S_ISREG(os.stat(self.path).st_mode):
            raise ConfigError(self.path, "zrtp cache", "a regular file (or a path that does not exist yet)")
        # A writer killed mid-save (kill -9, power cut) left `<path>.tmp-<pid>` holding retained
        # secrets: remove such leftovers now, not only at our first save.
        for name in remove_stale_temporaries(self.path):
            log.warning("removed %s, left by an interrupted cache write", name)
        data = read_bytes(self.path)
        if data is None:
            cache = ZrtpCache.create(self._rng)
            self.save(cache)
            log.info("new ZRTP cache created at %s", self.path)
            return cache
        try:
            cache = ZrtpCache.parse(data)
        except CacheCorrupt as exc:
            self.moved_to = "{}.corrupt-{}".format(self.path, int(self._now()))
            os.replace(self.path, self.moved_to)
            self.problem = "ZRTP cache {} is corrupt ({}); moved to {}; a new cache was started".format(
                self.path, exc, self.moved_to
            )
            log.error("%s", self.problem)
            cache = ZrtpCache.create(self._rng)
            self.save(cache)
            return cache
        mode = stat.S_IMODE(os.stat(self.path).st_mode)
        if mode & 0o077:
            log.warning("ZRTP cache %s had mode %o; tightened to 0600", self.path, mode)
            os.chmod(self.path, FILE_MODE)
        return cache

    def save(self, cache):
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        atomic_write(self.path, cache.serialize(), FILE_MODE)
        cache.dirty = False

    def save_if_dirty(self, cache):
        if cache.dirty:
            self.save(cache)
            return True
        return False
