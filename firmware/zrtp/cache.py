"""The ZRTP key-continuity cache, sans I/O (RFC 6189 §4.6.1, §4.9).

Holds our own random 96-bit ZID and, per peer ZID, the retained secrets rs1 and rs2, the "SAS
verified" flag V, the last use (seconds since the epoch, as the shell passes it) and the peer's URI.
The engine reads and updates it; the shell (firmware/runtime/zrtp_store.py) persists `serialize()`
whenever `dirty` is set and loads it with `parse()`.

API:
- ZrtpCache.create(rng) -> a new cache with a fresh random ZID; ZrtpCache(zid) for a given one.
- cache.zid (12 bytes); cache.get(peer_zid) -> PeerRecord or None; cache.peers() -> list of records,
  most recently used first; len(cache).
- cache.update_retained(peer_zid, new_rs1, now, uri=None): the §4.6.1 rule rs2 = rs1, rs1 = new.
- cache.set_verified(peer_zid, flag, now=None); cache.reset(peer_zid) -> bool (forget one peer).
- cache.dirty: True after any change; the shell clears it after saving.
- cache.serialize() -> bytes; ZrtpCache.parse(data) -> ZrtpCache, CacheCorrupt when the magic, the
  structure or the SHA-256 integrity trailer is wrong (a corrupt cache is never trusted silently).
- MAX_PEERS bounds the table; the least recently used peer is evicted beyond it.
"""

import struct

from firmware import crypto
from firmware.errors import LocalProtocolError, SottoError

MAGIC = b"SottoZC1"
MAX_PEERS = 1000
MAX_URI = 512
RS_LENGTH = 32


class CacheCorrupt(SottoError):
    """The cache bytes are damaged or not a Sotto ZRTP cache."""


class PeerRecord:
    __slots__ = ("zid", "rs1", "rs2", "verified", "last_use", "uri")

    def __init__(self, zid, rs1=None, rs2=None, verified=False, last_use=0, uri=""):
        self.zid = zid
        self.rs1 = rs1
        self.rs2 = rs2
        self.verified = verified
        self.last_use = last_use
        self.uri = uri


def _check_zid(zid):
    if not isinstance(zid, bytes) or len(zid) != 12:
        raise LocalProtocolError("a ZID is 12 bytes")


class ZrtpCache:
    __slots__ = ("zid", "_peers", "dirty")

    def __init__(self, zid):
        _check_zid(zid)
        self.zid = zid
        self._peers = {}
        self.dirty = False

    @staticmethod
    def create(rng):
        cache = ZrtpCache(bytes(rng(12)))
        cache.dirty = True
        return cache

    def __len__(self):
        return len(self._peers)

    def get(self, peer_zid):
        return self._peers.get(peer_zid)

    def peers(self):
        records = list(self._peers.values())
        records.sort(key=lambda r: -r.last_use)
        return records

    def _record(self, peer_zid, now):
        _check_zid(peer_zid)
        record = self._peers.get(peer_zid)
        if record is None:
            if len(self._peers) >= MAX_PEERS:
                oldest = min(self._peers.values(), key=lambda r: r.last_use)
                del self._peers[oldest.zid]
            record = PeerRecord(peer_zid, last_use=now or 0)
            self._peers[peer_zid] = record
        return record

    def update_retained(self, peer_zid, new_rs1, now, uri=None):
        if len(new_rs1) != RS_LENGTH:
            raise LocalProtocolError("a retained secret is 32 bytes")
        record = self._record(peer_zid, now)
        record.rs2 = record.rs1
        record.rs1 = new_rs1
        record.last_use = int(now)
        if uri:
            record.uri = uri[:MAX_URI]
        self.dirty = True

    def touch(self, peer_zid, now, uri=None):
        record = self._peers.get(peer_zid)
        if record is not None:
            record.last_use = int(now)
            if uri:
                record.uri = uri[:MAX_URI]
            self.dirty = True

    def set_verified(self, peer_zid, flag, now=None):
        record = self._record(peer_zid, now)
        record.verified = bool(flag)
        self.dirty = True

    def reset(self, peer_zid):
        if peer_zid in self._peers:
            del self._peers[peer_zid]
            self.dirty = True
            return True
        return False

    def serialize(self):
        parts = [MAGIC, self.zid, struct.pack(">I", len(self._peers))]
        for record in self.peers():
            flags = (1 if record.rs1 else 0) | (2 if record.rs2 else 0) | (4 if record.verified else 0)
            uri = record.uri.encode()[:MAX_URI]
            parts.append(record.zid)
            parts.append(struct.pack(">BQH", flags, max(0, int(record.last_use)), len(uri)))
            parts.append(record.rs1 or bytes(RS_LENGTH))
            parts.append(record.rs2 or bytes(RS_LENGTH))
            parts.append(uri)
        body = b"".join(parts)
        return body + crypto.digest("sha256", body)

    @staticmethod
    def parse(data):
        if len(data) < len(MAGIC) + 12 + 4 + 32:
            raise CacheCorrupt("ZRTP cache too short")
        body, trailer = data[:-32], data[-32:]
        if not crypto.constant_time_equal(crypto.digest("sha256", body), trailer):
            raise CacheCorrupt("ZRTP cache integrity check failed")
        if body[: len(MAGIC)] != MAGIC:
            raise CacheCorrupt("not a Sotto ZRTP cache")
        offset = len(MAGIC)
        cache = ZrtpCache(bytes(body[offset : offset + 12]))
        offset += 12
        (count,) = struct.unpack(">I", body[offset : offset + 4])
        offset += 4
        if count > MAX_PEERS:
            raise CacheCorrupt("ZRTP cache has too many peers")
        for _ in range(count):
            if offset + 12 + 11 + 2 * RS_LENGTH > len(body):
                raise CacheCorrupt("ZRTP cache truncated")
            zid = bytes(body[offset : offset + 12])
            flags, last_use, uri_len = struct.unpack(">BQH", body[offset + 12 : offset + 23])
            offset += 23
            rs1 = bytes(body[offset : offset + RS_LENGTH])
            rs2 = bytes(body[offset + RS_LENGTH : offset + 2 * RS_LENGTH])
            offset += 2 * RS_LENGTH
            if uri_len > MAX_URI or offset + uri_len > len(body):
                raise CacheCorrupt("ZRTP cache URI field damaged")
            try:
                uri = bytes(body[offset : offset + uri_len]).decode()
            except UnicodeError:
                raise CacheCorrupt("ZRTP cache URI is not UTF-8")  # noqa: B904 (no chaining on MicroPython)
            offset += uri_len
            if zid in cache._peers:
                raise CacheCorrupt("ZRTP cache lists a peer twice")
            cache._peers[zid] = PeerRecord(zid, rs1 if flags & 1 else None, rs2 if flags & 2 else None,
                                           bool(flags & 4), last_use, uri)
        if offset != len(body):
            raise CacheCorrupt("ZRTP cache has trailing bytes")
        return cache
