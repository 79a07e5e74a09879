"""ZRTP cache inspector: `python -m tools.zrtpcache [--cache PATH] COMMAND`.

Commands:
    zid              our ZID and its fingerprint (what a peer's cache stores about us)
    list             every peer: ZID, verified flag, which retained secrets exist, last use, URI
    reset PEER_ZID   forget one peer (hex ZID, as `list` prints it); the next call starts afresh
    contacts         every verified contact (address of record) and the ZID it is bound to: a call
                     from that contact with another ZID raises "new key for a verified contact"
    forget-contact AOR
                     drop one contact's binding (the next verified call binds it again)

Without --cache, the path comes from the default configuration (zrtp-cache in the data directory).
Retained secrets themselves are never printed. Exit codes: 0 ok, 1 peer not found, 2 bad arguments or
an unreadable/corrupt cache (a corrupt file is reported, not repaired: `sotto` moves it aside itself).
"""

import argparse
import binascii
import hashlib
import os
import sys
import time

from firmware.runtime.storage import NotRegularFile, atomic_write, read_bytes
from firmware.zrtp.cache import CacheCorrupt, ZrtpCache


def default_cache_path():
    from firmware.config import default_data_dir

    return os.path.join(default_data_dir(), "zrtp-cache")


def fingerprint(zid):
    """A short, readable fingerprint of a ZID: the first 8 bytes of its SHA-256 in groups of 4 hex digits."""
    digest = hashlib.sha256(zid).hexdigest()[:16]
    return " ".join(digest[i : i + 4] for i in range(0, 16, 4))


MAX_CACHE_BYTES = 64 * 1024 * 1024  # a full cache (1000 peers) is well under 1 MiB


def _load(path):
    try:
        data = read_bytes(path, limit=MAX_CACHE_BYTES)  # non-blocking open: a FIFO cannot hang us
    except NotRegularFile:
        raise SystemExit(_fail("{}: not a cache file (a directory, FIFO or device)".format(path))) from None
    except ValueError as exc:
        raise SystemExit(_fail(str(exc))) from None
    except OSError as exc:
        raise SystemExit(_fail("cannot read {}: {}".format(path, exc.strerror or exc))) from None
    if data is None:
        raise SystemExit(_fail("no ZRTP cache at {}".format(path)))
    try:
        return ZrtpCache.parse(data)
    except CacheCorrupt as exc:
        raise SystemExit(_fail("{}: {}".format(path, exc))) from None


def _fail(message):
    print("zrtpcache: " + message, file=sys.stderr)
    return 2


def _when(seconds):
    if not seconds:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + "Z"


def main(argv=None, out=None):
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="python -m tools.zrtpcache", description="Inspect the ZRTP cache.")
    parser.add_argument("--cache", help="cache file (default: {})".format(default_cache_path()))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("zid", help="show our ZID and its fingerprint")
    sub.add_parser("list", help="list the peers")
    reset = sub.add_parser("reset", help="forget one peer")
    reset.add_argument("peer_zid", help="the peer's ZID in hex (24 digits)")
    sub.add_parser("contacts", help="list the verified contacts and their ZIDs")
    forget = sub.add_parser("forget-contact", help="drop one contact's ZID binding")
    forget.add_argument("aor", help="the contact's SIP address, e.g. sip:bob@example.org")
    args = parser.parse_args(argv)
    path = args.cache or default_cache_path()
    cache = _load(path)
    if args.command == "zid":
        print("ZID         {}".format(binascii.hexlify(cache.zid).decode()), file=out)
        print("fingerprint {}".format(fingerprint(cache.zid)), file=out)
        return 0
    if args.command == "list":
        print("{:<24}  {:<8}  {:<7}  {:<20}  {}".format("peer ZID", "verified", "secrets", "last use", "URI"), file=out)
        for record in cache.peers():
            secrets = "+".join(name for name, value in (("rs1", record.rs1), ("rs2", record.rs2)) if value) or "-"
            print(
                "{:<24}  {:<8}  {:<7}  {:<20}  {}".format(
                    binascii.hexlify(record.zid).decode(),
                    "yes" if record.verified else "no",
                    secrets,
                    _when(record.last_use),
                    record.uri or "-",
                ),
                file=out,
            )
        return 0
    if args.command == "contacts":
        print("{:<40}  {:<24}  {}".format("contact", "ZID", "last use"), file=out)
        for contact in cache.contacts():
            print(
                "{:<40}  {:<24}  {}".format(
                    contact.aor, binascii.hexlify(contact.zid).decode(), _when(contact.last_use)
                ),
                file=out,
            )
        return 0
    if args.command == "forget-contact":
        if not cache.forget_contact(args.aor):
            print("zrtpcache: no contact {} in {}".format(args.aor, path), file=sys.stderr)
            return 1
        atomic_write(path, cache.serialize(), 0o600)
        print("forgot contact {}".format(args.aor), file=out)
        return 0
    try:
        peer = binascii.unhexlify(args.peer_zid)
    except (binascii.Error, ValueError):
        peer = b""
    if len(peer) != 12:
        return _fail("a peer ZID is 24 hex digits")
    if not cache.reset(peer):
        print("zrtpcache: no peer {} in {}".format(args.peer_zid, path), file=sys.stderr)
        return 1
    try:
        atomic_write(path, cache.serialize(), 0o600)
    except OSError as exc:
        return _fail("cannot write {}: {}".format(path, exc.strerror or exc))
    print("forgot peer {}".format(args.peer_zid), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
