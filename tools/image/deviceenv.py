"""The phone's Python environment for the device (aarch64), built at image time so first boot is offline.

    python -m tools.image.deviceenv --cache DIR [--source TREE] [--bundle FILE]

What it makes (in DIR/env-KEY, KEY a hash of everything that decides the result, so a second build is a
cache hit), and what `make image` puts into the image's /opt/sotto/dist:

    venv-aarch64.tar   /opt/sotto/.venv as built: the pinned requirements.txt, then the `sotto` command
                       (editable, built against /opt/sotto; on the phone the firmware is in the A/B
                       slot /opt/sotto-ab/current, which first boot's sotto-slot.pth and the service's
                       tools/run_from_slot.py put on the path, so an update of the tree needs no venv)
    debs/*.deb         the Debian arm64 packages the phone needs that Raspberry Pi OS Lite lacks
    versions.txt       what is in both (pip freeze, dpkg versions): what is flashed
    MANIFEST           sha256, size and name of each file above; first boot checks them

How: an arm64 Debian bookworm chroot (Raspberry Pi OS bookworm is built from the same packages, with the
same /usr/bin/python3 3.11), made with mmdebstrap and cached in DIR, runs under qemu-user through
binfmt_misc (like pi-gen). In it, bookworm's own python3 makes the venv and its own pip installs the pins
from PyPI: aarch64 wheels where they exist; what has none (pyalsaaudio, lgpio) is compiled there, for
aarch64, against the bookworm headers. The venv is made with Debian's pip, setuptools and wheel
(python3-*-whl), the same toolchain as a Raspberry Pi OS. Needs root (chroot and bind mounts) and the
network (Debian and PyPI); never the device.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools.image import payload  # noqa: E402

PROG = "sotto-deviceenv"
SUITE = "bookworm"
ARCH = "arm64"
MACHINE = "aarch64"
# The build chroot: bookworm's Python toolchain plus what compiles the packages without aarch64 wheels
# (pyalsaaudio: libasound2-dev; lgpio: swig).
BUILD_PACKAGES = (
    "python3",
    "python3-venv",
    "python3-dev",
    "python3-pip-whl",
    "python3-setuptools-whl",
    "python3-wheel-whl",
    "build-essential",
    "swig",
    "libasound2-dev",
    "libopus0",
    "ca-certificates",
)
# Debian arm64 packages the phone needs at run time beyond Raspberry Pi OS Lite (which has python3 and
# libasound2): opuslib loads libopus through ctypes.
DEVICE_DEBS = ("libopus0",)
# Modules first boot imports from the venv to prove it works, one per requirement that ships code.
# `RPi`, not `RPi.GPIO`: rpi-lgpio's RPi.GPIO reads the Pi's revision from the device tree on import and
# refuses anything else (the build chroot, the virtual Pi); lgpio is the compiled part behind it.
CHECK_IMPORTS = (
    "cryptography",
    "alsaaudio",
    "G722",
    "opuslib",
    "smbus2",
    "PIL",
    "dns",
    "numpy",
    "RPi",
    "lgpio",
    "firmware",
    "boards.drivers.displays",
)
VENV_TAR = "venv-{}.tar".format(MACHINE)
# dpkg under qemu-user is slow: no fsync, and no manuals, docs or translations to unpack.
FAST_DPKG = ["--dpkgopt=force-unsafe-io"] + [
    "--dpkgopt=path-exclude=/usr/share/{}/*".format(d) for d in ("man", "doc", "info", "locale")
]
FRESH_MARK = ".sotto-fresh"
FORMAT = "1"  # bumped when what this module builds changes, so caches are rebuilt


class EnvError(Exception):
    pass


def log(message):
    print("{}: {}".format(PROG, message), file=sys.stderr, flush=True)


def _run(args, timeout=1800, **kwargs):
    try:
        done = subprocess.run(args, timeout=timeout, check=False, **kwargs)
    except FileNotFoundError as exc:
        raise EnvError(
            "{} is not installed (make image installs it: mmdebstrap, qemu-user-static, binfmt-support)".format(args[0])
        ) from exc
    if done.returncode != 0:
        raise EnvError("{} failed with exit code {}".format(" ".join(args[:3]), done.returncode))
    return done


def check_binfmt():
    """aarch64 programs must run here through qemu-user; one clear line when they cannot."""
    status = "/proc/sys/fs/binfmt_misc/qemu-aarch64"
    try:
        with open(status, encoding="utf-8") as f:
            enabled = f.readline().strip() == "enabled"
    except OSError:
        enabled = False
    if not enabled:
        raise EnvError(
            "aarch64 binaries cannot run here: binfmt_misc has no enabled qemu-aarch64 entry "
            "(`make binfmt` sets it up, `make binfmt-off` undoes it)"
        )


def _hash_files(paths, extra=""):
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        # The file's name, not its path: the key must not depend on where the checkout is.
        digest.update(b"\0" + os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


def chroot_key():
    return hashlib.sha256(" ".join((SUITE, ARCH, FORMAT) + BUILD_PACKAGES).encode()).hexdigest()[:16]


def build_chroot(cache):
    """The cached arm64 build chroot (a directory in `cache`), made with mmdebstrap when missing."""
    target = os.path.join(cache, "buildroot-" + chroot_key())
    if os.path.isfile(os.path.join(target, ".complete")):
        return target
    check_binfmt()
    os.makedirs(cache, exist_ok=True)
    partial = target + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    started = time.monotonic()
    log("making the arm64 {} build chroot (mmdebstrap, once; cached in {})".format(SUITE, cache))
    _run(
        ["mmdebstrap", "--quiet", "--arch=" + ARCH, "--variant=minbase", "--include=" + ",".join(BUILD_PACKAGES)]
        + FAST_DPKG
        + [SUITE, partial]
    )
    with open(os.path.join(partial, ".complete"), "w", encoding="utf-8") as f:
        f.write(chroot_key() + "\n")
    os.rename(partial, target)
    log("build chroot ready in {:.0f} s".format(time.monotonic() - started))
    return target


# The device nodes a chroot's package scripts and builds use. Each is bind-mounted on its own onto a fresh
# tmpfs, never the host's /dev itself: a script in the chroot that removes or renames over /dev/null (seen:
# the host's /dev/null turned into an empty 0600 file during image builds) then fails with EBUSY instead
# of breaking the host.
CHROOT_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def dev_mounts(root):
    """Shell commands that give `root` a private /dev with CHROOT_DEVICES (run in a private mount namespace)."""
    commands = ["mount -t tmpfs -o mode=755,nosuid dev {r}/dev".format(r=root)]
    for name in CHROOT_DEVICES:
        commands.append(": > {r}/dev/{n} && mount --bind /dev/{n} {r}/dev/{n}".format(r=root, n=name))
    commands.append("mkdir -p {r}/dev/pts {r}/dev/shm && mount -t tmpfs -o mode=1777 shm {r}/dev/shm".format(r=root))
    commands.append("ln -s /proc/self/fd {r}/dev/fd".format(r=root))
    return " && ".join(commands)


def in_chroot(root, script, timeout=3600):
    """Run a shell script as root in `root` with /dev, /proc and the host's DNS, in a private mount namespace
    (the mounts vanish with it, whatever happens)."""
    shutil.copyfile("/etc/resolv.conf", os.path.join(root, "etc/resolv.conf"))
    wrapper = (
        "set -e; " + dev_mounts(root) + "; mount -t proc proc {r}/proc; mount -t sysfs sys {r}/sys; "
        "exec chroot {r} /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "
        '/bin/sh -ec "$0"'
    ).format(r=root)
    _run(["unshare", "--mount", "--propagation", "private", "sh", "-c", wrapper, script], timeout=timeout)


def env_key(source):
    """What decides the environment: the pins, the parts of pyproject.toml that shape the install (not the
    linters' or pytest's settings), the chroot and this module's choices."""
    import tomllib

    with open(os.path.join(source, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    shaping = {
        "build-system": project.get("build-system"),
        "project": project.get("project"),
        "setuptools": project.get("tool", {}).get("setuptools"),
    }
    extra = " ".join((chroot_key(), FORMAT) + DEVICE_DEBS + CHECK_IMPORTS) + json.dumps(shaping, sort_keys=True)
    return _hash_files([os.path.join(source, "requirements.txt")], extra)


def build_env(cache, source=payload.REPO_ROOT):
    """The directory holding MANIFEST, the venv tar, debs/ and versions.txt (cached by env_key)."""
    target = os.path.join(cache, "env-" + env_key(source))
    if os.path.isfile(os.path.join(target, "MANIFEST")):
        log("device environment up to date: {}".format(target))
        return target
    root = build_chroot(cache)
    started = time.monotonic()
    work = os.path.join(root, "opt", "sotto")
    # A venv left by an interrupted build (marked once pip and wheel are in) is reused: ensurepip alone
    # takes minutes under qemu-user, and `pip install -r` puts every pin right again. Nothing else stays.
    for name in os.listdir(work) if os.path.isdir(work) else ():
        path = os.path.join(work, name)
        if name == ".venv" and os.path.exists(os.path.join(path, FRESH_MARK)):
            continue
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
    os.makedirs(work, exist_ok=True)
    for rel, is_dir, mode in payload.source_tree(source):
        path = os.path.join(work, rel)
        if is_dir:
            os.makedirs(path, exist_ok=True)
        else:
            shutil.copyfile(os.path.join(source, rel), path)
            os.chmod(path, mode)
    out = os.path.join(root, "out")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "debs"))
    log("building the aarch64 venv in the chroot (pip from PyPI; pyalsaaudio and lgpio compiled)")
    script = """
cd /opt/sotto
if [ ! -e .venv/{fresh} ]; then
    rm -rf .venv
    python3 -m venv .venv
    # Debian's wheel (python3-wheel-whl): setuptools 66 needs it to build wheels, editable ones included.
    .venv/bin/pip install -q --no-index --find-links /usr/share/python-wheels wheel
    touch .venv/{fresh}
fi
# PyPI through this machine's TLS settings: its CA bundle (a proxy's CA included, where there is one).
export PIP_CERT=/etc/ssl/certs/build-host-ca.crt
# lgpio's sdist links liblgpio unless PYPI=1 builds it in (Debian bookworm has no liblgpio).
PYPI=1 .venv/bin/pip install -q --no-cache-dir -r requirements.txt
.venv/bin/pip install -q --no-deps --no-build-isolation -e /opt/sotto
.venv/bin/python -c "import {imports}"
# mmdebstrap leaves no package lists behind: fetch them (signed, as apt always checks) to download.
apt-get update -q >/dev/null
cd /out/debs && apt-get download {debs} >/dev/null
cd /opt/sotto && .venv/bin/pip freeze --exclude-editable > /out/pip-freeze.txt
dpkg-query -W {debs} > /out/dpkg.txt
python3 -c "import sys; print(sys.version.split()[0])" > /out/python.txt
rm .venv/{fresh}
tar --numeric-owner --owner=0 --group=0 -cf /out/{tar} .venv
rm -rf .venv
""".format(imports=", ".join(CHECK_IMPORTS), debs=" ".join(DEVICE_DEBS), tar=VENV_TAR, fresh=FRESH_MARK)
    host_ca = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    os.makedirs(os.path.join(root, "etc/ssl/certs"), exist_ok=True)
    shutil.copyfile(host_ca, os.path.join(root, "etc/ssl/certs/build-host-ca.crt"))
    in_chroot(root, script)
    partial = target + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(os.path.join(partial, "debs"))
    shutil.move(os.path.join(out, VENV_TAR), os.path.join(partial, VENV_TAR))
    for name in sorted(os.listdir(os.path.join(out, "debs"))):
        shutil.move(os.path.join(out, "debs", name), os.path.join(partial, "debs", name))
    with open(os.path.join(out, "pip-freeze.txt"), encoding="utf-8") as f:
        freeze = f.read()
    with open(os.path.join(out, "dpkg.txt"), encoding="utf-8") as f:
        dpkg = f.read()
    with open(os.path.join(out, "python.txt"), encoding="utf-8") as f:
        python = f.read().strip()
    versions = (
        "# What the image carries for {m}: the venv (pip freeze) and Debian {s} packages (dpkg), "
        "built with Debian's python3 {p}.\n{freeze}{dpkg}"
    ).format(
        m=MACHINE,
        s=SUITE,
        p=python,
        freeze=freeze,
        dpkg="".join("deb " + line.replace("\t", "==") + "\n" for line in dpkg.splitlines()),
    )
    with open(os.path.join(partial, "versions.txt"), "w", encoding="utf-8") as f:
        f.write(versions)
    write_manifest(partial, {"machine": MACHINE, "python": python, "imports": list(CHECK_IMPORTS)})
    shutil.rmtree(target, ignore_errors=True)
    os.rename(partial, target)
    shutil.rmtree(out, ignore_errors=True)
    log("device environment built in {:.0f} s: {}".format(time.monotonic() - started, target))
    return target


def dist_files(directory):
    """The files of a device environment, relative, in a stable order (MANIFEST excluded)."""
    found = []
    for current, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(current, name), directory)
            if rel != "MANIFEST":
                found.append(rel)
    return found


def _sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory, meta):
    """MANIFEST: one JSON line of metadata, then `sha256 size name` per file (first boot checks them)."""
    lines = [json.dumps(meta, sort_keys=True)]
    for rel in dist_files(directory):
        path = os.path.join(directory, rel)
        lines.append("{} {} {}".format(_sha256_file(path), os.path.getsize(path), rel))
    with open(os.path.join(directory, "MANIFEST"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def read_manifest(text):
    """(metadata dict, [(sha256, size, name)]) from a MANIFEST's text; ValueError when it is not one."""
    lines = text.splitlines()
    if not lines:
        raise ValueError("empty MANIFEST")
    meta = json.loads(lines[0])
    entries = []
    for line in lines[1:]:
        digest, size, name = line.split(" ", 2)
        if len(digest) != 64 or name.startswith("/") or ".." in name.split("/"):
            raise ValueError("bad MANIFEST line: {!r}".format(line))
        entries.append((digest, int(size), name))
    return meta, entries


def write_bundle(out, dist, source=payload.REPO_ROOT):
    """The update bundle for a phone that is running: sotto/ (the tree) with sotto/dist/ (this environment).

    On the phone: `tar -xf sotto-update.tar -C /tmp && sudo python3 /tmp/sotto/tools/install.py`
    (tools/install.py installs the dist/ it finds next to itself).
    """
    import tarfile

    partial = out + ".partial"
    with tarfile.open(partial, "w") as tar:

        def add(path, arcname, mode=None):
            info = tar.gettarinfo(path, arcname)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if mode is not None:
                info.mode = mode
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)

        add(source, "sotto", 0o755)
        for rel, _is_dir, mode in payload.source_tree(source):
            add(os.path.join(source, rel), "sotto/" + rel, mode)
        add(dist, "sotto/" + payload.DIST_DIR, 0o755)
        for rel in dist_files(dist) + ["MANIFEST"]:
            parent = os.path.dirname(rel)
            if parent and "sotto/{}/{}".format(payload.DIST_DIR, parent) not in tar.getnames():
                add(os.path.join(dist, parent), "sotto/{}/{}".format(payload.DIST_DIR, parent), 0o755)
            add(os.path.join(dist, rel), "sotto/{}/{}".format(payload.DIST_DIR, rel), 0o644)
    os.replace(partial, out)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default="/var/cache/sotto-pi", help="where the chroot and builds are kept")
    parser.add_argument("--source", default=payload.REPO_ROOT, help="the Sotto tree (default: this checkout)")
    parser.add_argument("--bundle", metavar="FILE", help="also write the update bundle (tree and environment)")
    args = parser.parse_args(argv)
    try:
        dist = build_env(args.cache, args.source)
        if args.bundle:
            write_bundle(args.bundle, dist, args.source)
            log("wrote {}".format(args.bundle))
        print(dist)
    except EnvError as exc:
        log(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
