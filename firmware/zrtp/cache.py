"""The ZRTP key-continuity cache, sans I/O (RFC 6189 §4.6.1, §4.9), and the address book's ZID bindings.

Holds our own random 96-bit ZID and, per peer ZID, the retained secrets rs1 and rs2, the "SAS
verified" flag V, the last use (seconds since the epoch, as the shell passes it) and the peer's URI.
It also binds each verified contact (an address of record, normalised by normalize_aor) to the ZID
it used, so a verified contact that shows up with a different ZID raises an alarm (issue 11; RFC 6189
§4.6.1 leaves room for it): a man in the middle that presents a fresh ZID has no retained secret to
break, so only this binding notices it. The engine reads and updates it; the shell
(firmware/runtime/zrtp_store.py) persists `serialize()` whenever `dirty` is set and loads it with
`parse()`, with one atomic write for both tables.

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
- normalize_aor(uri) -> "sip:user@host" (or "sip:host"), or None for something that is no SIP URI.
- cache.contact_zid(aor) -> the ZID bound to this contact, or None; cache.bind_contact(aor, zid, now);
  cache.forget_contact(aor) -> bool; cache.contacts() -> list of ContactRecord(aor, zid, last_use),
  most recently used first. `aor` may be any SIP URI form; it is normalised. MAX_CONTACTS bounds them.

File format: "SottoZC2" || our ZID || peer count || peers || contact count || contacts || SHA-256 of all
that. A "SottoZC1" file (before the contacts table) still loads: its verified peers with a URI become
the contact bindings, so continuity carries over.
"""

import struct

from firmware import crypto
from firmware.errors import LocalProtocolError, SottoError

MAGIC = b"SottoZC2"
MAGIC_V1 = b"SottoZC1"  # no contacts table; still read
MAX_PEERS = 1000
MAX_CONTACTS = 1000
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


class ContactRecord:
    __slots__ = ("aor", "zid", "last_use")

    def __init__(self, aor, zid, last_use=0):
        self.aor = aor
        self.zid = zid
        self.last_use = last_use


_HEX_DIGITS = b"0123456789abcdefABCDEF"


def _percent_decode(text):
    # RFC 3261 §19.1.4: "%61lice" and "alice" are the same user. Invalid escapes stay as they are.
    if "%" not in text:
        return text
    out = bytearray()
    raw = text.encode()
    i = 0
    while i < len(raw):
        pair = raw[i + 1 : i + 3]
        if raw[i] == 0x25 and len(pair) == 2 and all(c in _HEX_DIGITS for c in pair):
            out.append(int(pair.decode(), 16))
            i += 3
            continue
        out.append(raw[i])
        i += 1
    try:
        return bytes(out).decode()
    except UnicodeError:
        return text


def normalize_aor(uri):
    """The address of record a contact is known by: "sip:user@host" (or "sip:host" for a call by IP).

    RFC 3261 §19.1.4: the scheme and the host compare case-insensitively, the user case-sensitively
    after percent-decoding; the display name, angle brackets, password, port, URI parameters and
    headers are not part of the contact's identity (the same person calls from any port or
    transport). sips: is folded into sip: (one contact, whatever the transport security).
    """
    if not isinstance(uri, str):
        return None
    text = uri.strip()
    if "<" in text:
        start = text.find("<")
        end = text.find(">", start)
        if end < 0:
            return None
        text = text[start + 1 : end].strip()
    colon = text.find(":")
    if colon < 0:
        return None
    scheme = text[:colon].lower()
    if scheme not in ("sip", "sips"):
        return None
    rest = text[colon + 1 :]
    for stop in (";", "?"):
        cut = rest.find(stop)
        if cut >= 0:
            rest = rest[:cut]
    user = ""
    at = rest.rfind("@")
    if at >= 0:
        user = rest[:at]
        rest = rest[at + 1 :]
        if ":" in user:
            user = user[: user.find(":")]  # user:password
        user = _percent_decode(user)
    host = rest
    if host.startswith("["):
        end = host.find("]")
        host = host[: end + 1] if end > 0 else host
    elif host.count(":") == 1:
        host = host[: host.find(":")]
    host = host.lower().rstrip(".")
    if not host or len(host) > MAX_URI or len(user) > MAX_URI:
        return None
    return "sip:{}@{}".format(user, host) if user else "sip:" + host


def _check_zid(zid):
    if not isinstance(zid, bytes) or len(zid) != 12:
        raise LocalProtocolError("a ZID is 12 bytes")


class ZrtpCache:
    __slots__ = ("zid", "_peers", "_contacts", "dirty")

    def __init__(self, zid):
        _check_zid(zid)
        self.zid = zid
        self._peers = {}
        self._contacts = {}  # normalised AOR -> ContactRecord
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

    # -- the address book's ZID bindings (issue 11) --

    def contact_zid(self, aor):
        record = self._contacts.get(normalize_aor(aor))
        return record.zid if record is not None else None

    def bind_contact(self, aor, zid, now=0):
        """Remember that the contact `aor` (verified by the user) uses `zid`. False if `aor` is no SIP URI."""
        _check_zid(zid)
        key = normalize_aor(aor)
        if key is None:
            return False
        record = self._contacts.get(key)
        if record is None:
            if len(self._contacts) >= MAX_CONTACTS:
                oldest = min(self._contacts.values(), key=lambda r: r.last_use)
                del self._contacts[oldest.aor]
            record = ContactRecord(key, zid, int(now or 0))
            self._contacts[key] = record
        record.zid = zid
        record.last_use = int(now or 0)
        self.dirty = True
        return True

    def forget_contact(self, aor):
        key = normalize_aor(aor)
        if key in self._contacts:
            del self._contacts[key]
            self.dirty = True
            return True
        return False

    def contacts(self):
        records = list(self._contacts.values())
        records.sort(key=lambda r: -r.last_use)
        return records

    def trust_marks(self, aors):
        """The address book's trust mark of each address in `aors`, as (aor, mark) pairs: "verified" (the
        SAS was confirmed: the V flag, RFC 6189 §4.6.1, of the ZID the contact is bound to or last used),
        "known" (a retained secret is cached, the SAS never confirmed) or "new" (never secured)."""
        by_uri = {}
        for record in self._peers.values():
            key = normalize_aor(record.uri) if record.uri else None
            if key is not None and record.rs1 is not None:
                best = by_uri.get(key)
                if best is None or record.verified or (not best.verified and record.last_use > best.last_use):
                    by_uri[key] = record
        marks = []
        for aor in aors:
            key = normalize_aor(aor)
            record = None
            if key is not None:
                bound = self._contacts.get(key)
                record = self._peers.get(bound.zid) if bound is not None else None
                if record is None:
                    record = by_uri.get(key)
            if record is None:
                mark = "new"
            elif record.verified:
                mark = "verified"
            else:
                mark = "known" if record.rs1 is not None else "new"
            marks.append((aor, mark))
        return marks

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
        contacts = self.contacts()
        parts.append(struct.pack(">I", len(contacts)))
        for contact in contacts:
            aor = contact.aor.encode()[:MAX_URI]
            parts.append(contact.zid)
            parts.append(struct.pack(">QH", max(0, int(contact.last_use)), len(aor)))
            parts.append(aor)
        body = b"".join(parts)
        return body + crypto.digest("sha256", body)

    @staticmethod
    def parse(data):
        if len(data) < len(MAGIC) + 12 + 4 + 32:
            raise CacheCorrupt("ZRTP cache too short")
        body, trailer = data[:-32], data[-32:]
        if not crypto.constant_time_equal(crypto.digest("sha256", body), trailer):
            raise CacheCorrupt("ZRTP cache integrity check failed")
        magic = bytes(body[: len(MAGIC)])
        if magic not in (MAGIC, MAGIC_V1):
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
            uri, offset = _read_text(body, offset, uri_len, "URI")
            if zid in cache._peers:
                raise CacheCorrupt("ZRTP cache lists a peer twice")
            cache._peers[zid] = PeerRecord(
                zid, rs1 if flags & 1 else None, rs2 if flags & 2 else None, bool(flags & 4), last_use, uri
            )
        if magic == MAGIC_V1:
            # Before the contacts table: a verified peer with a URI was a verified contact.
            for record in cache.peers():
                if record.verified and record.uri:
                    key = normalize_aor(record.uri)
                    if key is not None and key not in cache._contacts:
                        cache._contacts[key] = ContactRecord(key, record.zid, record.last_use)
        else:
            offset = _parse_contacts(cache, body, offset)
        if offset != len(body):
            raise CacheCorrupt("ZRTP cache has trailing bytes")
        return cache


def _read_text(body, offset, length, what):
    """The UTF-8 text of `length` bytes at `offset`, and the offset after it; a field that is too long, runs
    past the end or is not UTF-8 is CacheCorrupt naming `what`."""
    if length > MAX_URI or offset + length > len(body):
        raise CacheCorrupt("ZRTP cache {} field damaged".format(what))
    try:
        text = bytes(body[offset : offset + length]).decode()
    except UnicodeError:
        raise CacheCorrupt("ZRTP cache {} is not UTF-8".format(what))  # noqa: B904 (no chaining on MicroPython)
    return text, offset + length


def _parse_contacts(cache, body, offset):
    if offset + 4 > len(body):
        raise CacheCorrupt("ZRTP cache truncated")
    (count,) = struct.unpack(">I", body[offset : offset + 4])
    offset += 4
    if count > MAX_CONTACTS:
        raise CacheCorrupt("ZRTP cache has too many contacts")
    for _ in range(count):
        if offset + 12 + 10 > len(body):
            raise CacheCorrupt("ZRTP cache truncated")
        zid = bytes(body[offset : offset + 12])
        last_use, aor_len = struct.unpack(">QH", body[offset + 12 : offset + 22])
        offset += 22
        if aor_len == 0:
            raise CacheCorrupt("ZRTP cache contact field damaged")
        aor, offset = _read_text(body, offset, aor_len, "contact")
        if normalize_aor(aor) != aor:
            raise CacheCorrupt("ZRTP cache contact is not a normalised SIP address")
        if aor in cache._contacts:
            raise CacheCorrupt("ZRTP cache lists a contact twice")
        cache._contacts[aor] = ContactRecord(aor, zid, last_use)
    return offset
