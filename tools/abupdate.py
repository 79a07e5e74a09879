"""A/B firmware slots: `python -m tools.abupdate COMMAND` (firmware/runtime/update.py does the work).

Commands:
    install TARBALL --key PUBLIC_KEY [--root ROOT]
            check TARBALL's signature (TARBALL.sig, made by `python -m tools.provision sign`) with the
            pinned Ed25519 public key, unpack it into the slot not in use and switch ROOT/current to it
            atomically; a power cut at any point leaves ROOT/current on a complete firmware
    status [--root ROOT]
            the current slot and the version it holds

ROOT defaults to /opt/sotto-ab. Exit codes: 0 ok, 1 refused (nothing changed), 2 bad arguments.
"""

import argparse
import sys

from firmware.errors import ConfigError
from firmware.runtime import update
from firmware.runtime.provisioning import load_verifier

DEFAULT_ROOT = "/opt/sotto-ab"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.abupdate", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("install")
    p.add_argument("tarball")
    p.add_argument("--key", required=True, help="the pinned Ed25519 public key (PEM)")
    p.add_argument("--root", default=DEFAULT_ROOT)
    p = sub.add_parser("status")
    p.add_argument("--root", default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    if args.command == "status":
        print("slot {} version {}".format(update.current_slot(args.root), update.installed_version(args.root)))
        return 0
    try:
        verify = load_verifier(args.key)
    except ConfigError as exc:
        print("abupdate: error: {}".format(exc), file=sys.stderr)
        return 2
    try:
        slot = update.install(args.root, args.tarball, verify)
    except update.UpdateRefused as exc:
        print("abupdate: refused, nothing changed: {}".format(exc), file=sys.stderr)
        return 1
    print("installed into slot {}: version {}".format(slot, update.installed_version(args.root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
