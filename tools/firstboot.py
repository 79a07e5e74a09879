"""Sotto's first-boot (and every-boot) set-up on the Raspberry Pi, run by the systemd units.

    python3 /opt/sotto-ab/current/tools/firstboot.py import-config   copy the boot partition's sotto.toml
                                                                   to /etc/sotto/sotto.toml when it changed
    python3 /opt/sotto-ab/current/tools/firstboot.py data-dir        /var/lib/sotto owned by sotto, 0700
    python3 /opt/sotto-ab/current/tools/firstboot.py deps            the venv and Debian packages the
                                                                   image carries
    python3 /opt/sotto-ab/current/tools/firstboot.py all             the three, in that order

Only the standard library, with the system's python3: the venv does not exist yet when this runs. It
runs from the firmware slot (/opt/sotto-ab/current); the venv and dist/ are in /opt/sotto, shared by
both slots (tools/image/payload.py). Offline: everything comes from /opt/sotto/dist, which
`make image` filled at build time (tools/image/deviceenv.py: the venv built for aarch64 with the
pinned requirements.txt, the Debian arm64 packages Raspberry Pi OS Lite lacks, a MANIFEST with their
checksums). The slow part is skipped when the stamp in the venv holds the hash of the current MANIFEST.
A failure prints one line, `sotto-firstboot: FAILED: <why>`, to the journal and leaves it in
/run/sotto-firstboot.failed.
--root DIR makes every path relative to DIR (tests); deps refuses to run with --root.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys

# The slot this file is in, resolved now (an update may switch /opt/sotto-ab/current while it runs).
SLOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
if __package__ in (None, ""):  # run as a script: /opt/sotto-ab/current/tools/firstboot.py
    sys.path.insert(0, SLOT)

from tools import firstboot_display  # noqa: E402
from tools.image import payload  # noqa: E402

DIST_DIR = "dist"  # in /opt/sotto: what `make image` built for the device (tools/image/deviceenv.py)
STAMP_NAME = ".sotto-deps"
FAILED_FILE = "/run/sotto-firstboot.failed"


class FirstBootError(Exception):
    """A first boot that cannot finish: one line for the journal and the display."""


def log(message):
    print(message, flush=True)


def _root_path(root, path):
    return os.path.join(root, path.lstrip("/"))


def _sotto_ids(root):
    from tools.image import accounts

    def read(name):
        try:
            with open(_root_path(root, name), encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    found = accounts.lookup(accounts.Accounts(read("/etc/passwd"), read("/etc/group")), payload.USER)
    return found if found is not None else (0, 0)


def _chown(path, uid, gid):
    try:
        os.chown(path, uid, gid)
    except PermissionError:  # tests run unprivileged under --root; on the device this runs as root
        if os.geteuid() == 0:
            raise


def import_config(root="/"):
    """Copy the boot partition's sotto.toml to /etc/sotto/sotto.toml (0640 root:sotto) when it differs."""
    from firmware.runtime.storage import atomic_write

    boot_mount = payload.boot_mount_point(_read(_root_path(root, "/etc/fstab")))
    source = _root_path(root, boot_mount + "/" + payload.BOOT_CONFIG_NAME)
    target = _root_path(root, payload.CONFIG_FILE)
    data = _read_bytes(source)
    if data is None:
        log("no {} on the boot partition; keeping {}".format(payload.BOOT_CONFIG_NAME, payload.CONFIG_FILE))
        return False
    _, gid = _sotto_ids(root)
    os.makedirs(os.path.dirname(target), mode=0o750, exist_ok=True)
    _chown(os.path.dirname(target), 0, gid)
    if _read_bytes(target) == data:
        return False
    atomic_write(target, data, mode=0o640)
    _chown(target, 0, gid)
    log("imported {} from the boot partition".format(payload.CONFIG_FILE))
    return True


def prepare_data_dir(root="/"):
    """The data directory (a mount point when the data image is mounted) owned by sotto, mode 0700."""
    uid, gid = _sotto_ids(root)
    path = _root_path(root, payload.DATA_DIR)
    os.makedirs(path, mode=0o700, exist_ok=True)
    _chown(path, uid, gid)
    os.chmod(path, 0o700)


def _read(path):
    data = _read_bytes(path)
    return None if data is None else data.decode("utf-8", "replace")


def _read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _run(args, env=None):
    log("+ " + " ".join(args))
    done = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise FirstBootError("{} failed: {}".format(args[0], lines[-1] if lines else done.returncode))
    return done


def _sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _installed_version(package):
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status} ${Version}", package], capture_output=True, text=True, check=False
    )
    fields = done.stdout.split()
    return fields[-1] if done.returncode == 0 and fields[:3] == ["install", "ok", "installed"] else None


def _deb_fields(path):
    done = _run(["dpkg-deb", "--show", "--showformat=${Package} ${Version}", path])
    return tuple(done.stdout.split())


def install_dependencies(install_dir=payload.INSTALL_DIR, machine=None, config=None):
    """Unpack the venv and install the Debian packages that the image carries; never the network.

    /opt/sotto/dist holds what `make image` built for this machine (tools/image/deviceenv.py): its
    MANIFEST lists each file with its sha256, and each is checked before use, so a damaged card gives a
    clear error rather than a half-working phone. The venv is unpacked next to the old one and renamed
    into place; the stamp in it holds the MANIFEST's hash, so later boots skip all of this.
    Returns False when already done, True after installing; raises FirstBootError.
    """
    from tools.image.deviceenv import read_manifest

    dist = os.path.join(install_dir, DIST_DIR)
    manifest_text = _read(os.path.join(dist, "MANIFEST"))
    if manifest_text is None:
        raise FirstBootError(
            "{}/MANIFEST is missing: this image carries no environment for the phone "
            "(build it with `make image`)".format(dist)
        )
    digest = hashlib.sha256(manifest_text.encode()).hexdigest()
    venv = os.path.join(install_dir, ".venv")
    stamp = os.path.join(venv, STAMP_NAME)
    if _read(stamp) == digest and os.path.exists(os.path.join(venv, "bin", "sotto")):
        point_venv_at_slots(venv)
        log("dependencies up to date")
        return False
    if config is not None:
        # The slow part starts: say so where the phone's user looks (the phone's own screen is not up yet).
        log(firstboot_display.show("Sotto", "first boot: installing the phone, about a minute", config))
    try:
        meta, entries = read_manifest(manifest_text)
    except ValueError as exc:
        raise FirstBootError("{}/MANIFEST is damaged: {}".format(dist, exc)) from None
    machine = machine or os.uname().machine
    if meta.get("machine") != machine:
        raise FirstBootError(
            "the image's environment is for {}, this system is {} (use a 64-bit Raspberry Pi OS)".format(
                meta.get("machine"), machine
            )
        )
    python = "{}.{}".format(*sys.version_info[:2])
    if not str(meta.get("python", "")).startswith(python + "."):
        raise FirstBootError(
            "the image's environment was built for Python {}, this system has {}".format(meta.get("python"), python)
        )
    for expected, size, name in entries:
        path = os.path.join(dist, name)
        if not os.path.isfile(path) or os.path.getsize(path) != size or _sha256_file(path) != expected:
            raise FirstBootError("{} is missing or damaged (checksum): rebuild or reflash the card".format(path))
    debs = [os.path.join(dist, name) for _, _, name in entries if name.startswith("debs/") and name.endswith(".deb")]
    needed = []
    for deb in debs:
        package, version = _deb_fields(deb)
        if _installed_version(package) is None:
            needed.append(deb)
    if needed:
        # dpkg alone: the packages come from the card, and apt would want its lists (the network).
        _run(["dpkg", "--install"] + needed)
    tar = [name for _, _, name in entries if name.startswith("venv-") and name.endswith(".tar")]
    if len(tar) != 1:
        raise FirstBootError("{}/MANIFEST names no venv archive".format(dist))
    fresh = venv + ".new"
    shutil.rmtree(fresh, ignore_errors=True)
    os.makedirs(fresh)
    # The archive holds .venv/...; unpacked under .venv.new/ then moved up one level.
    _run(["tar", "-xf", os.path.join(dist, tar[0]), "-C", fresh, "--no-same-owner"])
    unpacked = os.path.join(fresh, ".venv")
    if not os.path.exists(os.path.join(unpacked, "bin", "python")):
        raise FirstBootError("{} holds no venv".format(tar[0]))
    # The firmware is not in /opt/sotto but in the slot: the venv imports it from there (as
    # tools/run_from_slot.py makes sotto.service do).
    _run(
        [os.path.join(unpacked, "bin", "python"), "-c", "import " + ", ".join(meta.get("imports", ["firmware"]))],
        env=dict(os.environ, PYTHONPATH=SLOT),
    )
    old = venv + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(venv):
        os.rename(venv, old)
    os.rename(unpacked, venv)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(fresh, ignore_errors=True)
    point_venv_at_slots(venv)
    with open(stamp, "w", encoding="utf-8") as f:
        f.write(digest)
    log("dependencies installed from the image: {} Debian package(s), the venv ({})".format(len(needed), tar[0]))
    return True


SLOT_PTH = "sotto-slot.pth"


def point_venv_at_slots(venv, current=payload.CURRENT):
    """A .pth in the venv naming /opt/sotto-ab/current, so that the venv's `sotto` command run by hand
    finds the firmware of the current slot (its editable install names /opt/sotto, where the tree was
    built; the service itself runs tools/run_from_slot.py). Returns the paths written."""
    import glob

    written = []
    for site in glob.glob(os.path.join(venv, "lib", "python3*", "site-packages")):
        path = os.path.join(site, SLOT_PTH)
        if _read(path) != current + "\n":
            with open(path, "w", encoding="utf-8") as f:
                f.write(current + "\n")
            written.append(path)
    return written


def record_failure(message, path=FAILED_FILE, config=None):
    """The one line, in the journal (stderr), in `path`, and on the phone's display when it is an OLED."""
    print("sotto-firstboot: FAILED: {}".format(message), file=sys.stderr, flush=True)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(message + "\n")
    except OSError:
        pass
    if config is not None:
        log(firstboot_display.show("First boot failed", message, config, alert=True))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="firstboot.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("import-config", "data-dir", "deps", "all"))
    parser.add_argument("--root", default="/", help="treat DIR as / (tests)")
    args = parser.parse_args(argv)
    if args.step in ("deps", "all") and args.root != "/":
        parser.error("deps installs packages on this system; it does not take --root")
    try:
        if args.step in ("data-dir", "all"):
            prepare_data_dir(args.root)
        if args.step in ("import-config", "all"):
            import_config(args.root)
        if args.step in ("deps", "all"):
            install_dependencies(config=payload.CONFIG_FILE)
    except FirstBootError as exc:
        record_failure(str(exc), config=payload.CONFIG_FILE if args.root == "/" else None)
        return 1
    except OSError as exc:
        record_failure(
            "{}: {}".format(exc.filename or "", exc.strerror or exc),
            config=payload.CONFIG_FILE if args.root == "/" else None,
        )
        return 1
    if args.step in ("deps", "all"):
        try:
            os.unlink(FAILED_FILE)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
