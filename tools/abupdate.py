"""A/B firmware slots: `python -m tools.abupdate COMMAND` (firmware/runtime/update.py does the work).

Commands:
    install TARBALL --key PUBLIC_KEY [--root ROOT]
            check TARBALL's signature (TARBALL.sig, made by `python -m tools.provision sign`) with the
            pinned Ed25519 public key, unpack it into the slot not in use and switch ROOT/current to it
            atomically; a power cut at any point leaves ROOT/current on a complete firmware. The new slot
            is on trial (ROOT/trial): tools/abguard.py puts the old one back if it never starts
    apply-spool [--spool DIR] [--config FILE] [--root ROOT] [--no-restart]
            what sotto-update.service runs (as root) when the phone leaves DIR/request: install the
            tarball it names from DIR (default /var/lib/sotto/update) with the key pinned in FILE's
            [provisioning] public_key (default /etc/sotto/sotto.toml), answer in DIR/result, then
            restart sotto.service on the new slot. The request is removed first, whatever happens
    status [--root ROOT]
            the current slot and the version it holds

ROOT defaults to /opt/sotto-ab. Exit codes: 0 ok, 1 refused (nothing changed), 2 bad arguments.
"""

import argparse
import os
import subprocess
import sys

if __package__ in (None, ""):  # python3 /opt/sotto-ab/current/tools/abupdate.py: the slot it is in, resolved now
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))

from firmware.errors import ConfigError  # noqa: E402
from firmware.runtime import update  # noqa: E402
from firmware.runtime.provisioning import load_verifier  # noqa: E402
from tools import abguard  # noqa: E402

DEFAULT_ROOT = "/opt/sotto-ab"
DEFAULT_SPOOL = "/var/lib/sotto/update"
DEFAULT_CONFIG = "/etc/sotto/sotto.toml"


def say(message):
    print("abupdate: " + message, file=sys.stderr, flush=True)


def install(root, tarball, verify, version=None):
    """update.install with the new slot armed for a trial (tools/abguard.py); returns the new slot."""
    if version is None:
        version = os.path.basename(tarball)

    def arm(new_slot, old_slot):
        abguard.arm(root, new_slot, old_slot, update.installed_version_of(root, new_slot) or version)

    return update.install(root, tarball, verify, before_switch=arm)


def apply_spool(root, spool, config_path, restart=True):
    """One request from the phone. Returns the exit code; the outcome is in spool/result either way."""
    try:
        fd, opened = abguard.open_spool(spool)
    except OSError as exc:
        say("refused: the spool {} is not a directory of its own: {}".format(spool, exc))
        return 1
    try:
        return _apply(root, opened, spool, config_path, restart)
    finally:
        os.close(fd)


def _apply(root, spool, spool_name, config_path, restart):
    """apply_spool on the opened spool: `spool` is its /proc/self/fd path, `spool_name` what to say."""
    try:
        request = update.read_request(spool)
    except update.UpdateRefused as exc:
        request, error = None, exc
    else:
        error = None
    try:
        os.unlink(os.path.join(spool, update.REQUEST_FILE))  # never twice: the path unit would loop
    except FileNotFoundError:
        pass
    if error is not None:
        say("refused, nothing changed: {}".format(error))
        abguard.write_result_in(spool, "refused", "", str(error))
        return 1
    if request is None:
        say("no request in {}".format(spool_name))
        return 0
    name, version = request
    try:
        from firmware import config as configuration

        verify = load_verifier(configuration.load(config_path).provisioning.public_key)
    except ConfigError as exc:
        say("error: {}".format(exc))
        abguard.write_result_in(spool, "refused", version, "no pinned key: {}".format(exc))
        return 2
    tarball = os.path.join(spool, name)
    try:
        slot = install(root, tarball, verify, version)
    except update.UpdateRefused as exc:
        say("refused firmware {}, running slot kept: {}".format(version, exc))
        abguard.write_result_in(spool, "refused", version, str(exc))
        return 1
    finally:
        for leftover in (tarball, tarball + ".sig"):
            try:
                os.unlink(leftover)  # the data partition is small; the slot holds it now
            except OSError:
                pass
    installed = update.installed_version(root)
    say("installed firmware {} into slot {}; restarting sotto.service on it".format(installed, slot))
    abguard.write_result_in(spool, "installed", installed or version, "installed in slot {}".format(slot))
    if restart:
        done = subprocess.run(["systemctl", "try-restart", "--no-block", "sotto.service"], check=False)
        if done.returncode != 0:
            say(
                "systemctl try-restart sotto.service failed ({}): the new slot runs at the next start".format(
                    done.returncode
                )
            )
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.abupdate", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("install")
    p.add_argument("tarball")
    p.add_argument("--key", required=True, help="the pinned Ed25519 public key (PEM)")
    p.add_argument("--root", default=DEFAULT_ROOT)
    p = sub.add_parser("apply-spool")
    p.add_argument("--spool", default=DEFAULT_SPOOL)
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--no-restart", action="store_true", help="do not restart sotto.service (tests)")
    p = sub.add_parser("status")
    p.add_argument("--root", default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    if args.command == "status":
        trial = abguard.read_fields(os.path.join(args.root, abguard.TRIAL_FILE))
        print("slot {} version {}".format(update.current_slot(args.root), update.installed_version(args.root)))
        if trial:
            print("on trial since the install: {} start(s) counted".format(trial.get("starts")))
        return 0
    if args.command == "apply-spool":
        return apply_spool(args.root, args.spool, args.config, restart=not args.no_restart)
    try:
        verify = load_verifier(args.key)
    except ConfigError as exc:
        print("abupdate: error: {}".format(exc), file=sys.stderr)
        return 2
    try:
        slot = install(args.root, args.tarball, verify)
    except update.UpdateRefused as exc:
        print("abupdate: refused, nothing changed: {}".format(exc), file=sys.stderr)
        return 1
    print("installed into slot {}: version {}".format(slot, update.installed_version(args.root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
