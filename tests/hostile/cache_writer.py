"""A child process for test_cache_kills: saves the ZRTP cache through the real ZrtpStore in a loop.

    python -m tests.hostile.cache_writer PATH

Version n of the cache holds: the verified peer VERIFIED with its fixed retained secrets, FILLER peers
(so that a write takes long enough to be killed in the middle), and the peer ROLLING whose rs1 is
rolling_secret(n) and whose last use is n. After each save it prints "saved n" (flushed), so the test
knows the last version that reached the disk.
"""

import hashlib
import sys

from firmware.runtime.zrtp_store import ZrtpStore

VERIFIED = b"V" * 12
VERIFIED_RS1 = hashlib.sha256(b"verified rs1").digest()
VERIFIED_RS2 = hashlib.sha256(b"verified rs2").digest()
ROLLING = b"R" * 12
FILLER = 400


def rolling_secret(n):
    return hashlib.sha256(b"rolling %d" % n).digest()


def filler_zid(i):
    return b"F" + i.to_bytes(11, "big")


def main(path):
    store = ZrtpStore(path)
    cache = store.load()  # removes what a killed predecessor left behind
    record = cache.get(ROLLING)
    if record is None:  # the first run: set the invariant part up
        cache.update_retained(VERIFIED, VERIFIED_RS2, 1, "sip:verified@127.0.0.1")
        cache.update_retained(VERIFIED, VERIFIED_RS1, 2)
        cache.set_verified(VERIFIED, True)
        for i in range(FILLER):
            cache.update_retained(filler_zid(i), hashlib.sha256(filler_zid(i)).digest(), 3, "sip:filler@x")
        n = 0
    else:
        n = record.last_use
    print("ready {}".format(n), flush=True)
    while True:
        n += 1
        cache.update_retained(ROLLING, rolling_secret(n), n, "sip:rolling@127.0.0.1")
        store.save(cache)
        print("saved {}".format(n), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
