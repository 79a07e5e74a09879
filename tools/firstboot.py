"""Sotto's first-boot (and every-boot) set-up on the Raspberry Pi, run by the systemd units.

    python3 /opt/sotto/tools/firstboot.py import-config   copy the boot partition's sotto.toml to
                                                        /etc/sotto/sotto.toml when it changed
    python3 /opt/sotto/tools/firstboot.py data-dir        /var/lib/sotto owned by sotto, mode 0700
    python3 /opt/sotto/tools/firstboot.py deps            Debian packages, the venv, PyPI for the rest
    python3 /opt/sotto/tools/firstboot.py all             the three, in that order

Only the standard library, with the system's python3: the venv does not exist yet when this runs.
Dependencies come from Raspberry Pi OS packages where they exist (python3-rpi-lgpio or
python3-rpi.gpio, python3-smbus2, python3-cryptography, ...: the venv sees them through
--system-site-packages) and from PyPI, pinned as in requirements.txt, for the rest. The slow part is
skipped when the stamp in the venv holds the hash of the current requirements.txt and pyproject.toml.
--root DIR makes every path relative to DIR (tests); deps refuses to run with --root.
"""

import argparse
import hashlib
import os
import subprocess
import sys

if __package__ in (None, ""):  # run as a script: /opt/sotto/tools/firstboot.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.image import payload  # noqa: E402

# requirement name (lower case) -> (Raspberry Pi OS / Debian package or None, module to import)
DEBIAN_EQUIVALENTS = {
    "cryptography": ("python3-cryptography", "cryptography"),
    "pyalsaaudio": ("python3-alsaaudio", "alsaaudio"),
    "smbus2": ("python3-smbus2", "smbus2"),
    "pillow": ("python3-pil", "PIL"),
    "luma.oled": ("python3-luma.oled", "luma.oled"),
    "luma.lcd": ("python3-luma.lcd", "luma.lcd"),
    "g722": (None, "g722"),
    "opuslib": (None, "opuslib"),
}
# RPi.GPIO's API: rpi-lgpio (works on every Pi including the 5), else the classic RPi.GPIO.
GPIO_PACKAGES = ("python3-rpi-lgpio", "python3-rpi.gpio")
ALWAYS_APT = ("python3-venv", "python3-pip", "python3-setuptools", "libopus0", "i2c-tools")
# Needed only when something must be compiled from PyPI.
BUILD_APT = ("build-essential", "python3-dev", "libasound2-dev", "libopus-dev")
STAMP_NAME = ".sotto-deps"


def log(message):
    print(message, flush=True)


def parse_requirements(text):
    """[(name, spec)] from requirements.txt lines `name==version` (comments and options skipped)."""
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name = line
        for separator in ("==", ">=", "<=", "~=", "!=", "<", ">", "[", ";"):
            name = name.split(separator, 1)[0]
        found.append((name.strip(), line))
    return found


def plan_dependencies(requirements, available):
    """(apt packages, [(spec, import name)] to check in the venv and take from PyPI when missing).

    `available` is the set of Debian package names the system's apt knows.
    """
    apt = [p for p in ALWAYS_APT if p in available]
    checks = []
    for name, spec in requirements:
        debian, module = DEBIAN_EQUIVALENTS.get(name.lower(), (None, name.replace("-", "_")))
        if debian and debian in available:
            apt.append(debian)
        checks.append((spec, module))
    for gpio in GPIO_PACKAGES:
        if gpio in available:
            apt.append(gpio)
            break
    return apt, checks


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


def _run(args, **kwargs):
    log("+ " + " ".join(args))
    subprocess.run(args, check=True, **kwargs)


def _apt_available(names):
    """The subset of `names` apt knows (apt-cache policy prints a Candidate for those)."""
    done = subprocess.run(["apt-cache", "policy"] + list(names), capture_output=True, text=True, check=False)
    known = set()
    current = None
    for line in done.stdout.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
        elif current and line.strip().startswith("Candidate:") and "(none)" not in line:
            known.add(current)
    return known


class System:
    """The commands install_dependencies runs; tests replace it with a recording fake."""

    def run(self, args, env=None):
        _run(args, env=env)

    def apt_available(self, names):
        return _apt_available(names)

    def importable(self, python, module):
        return subprocess.run([python, "-c", "import " + module], capture_output=True, check=False).returncode == 0


def install_dependencies(install_dir=payload.INSTALL_DIR, system=None):
    """Debian packages, the venv (with the system's packages visible), PyPI for the rest, `sotto` itself.

    Returns False when the stamp says everything is already installed, True after installing.
    """
    system = system or System()
    requirements_text = _read(os.path.join(install_dir, "requirements.txt")) or ""
    # The stamp covers what decides the venv's contents: the pins and the project's entry points.
    digest = hashlib.sha256(
        (requirements_text + "\0" + (_read(os.path.join(install_dir, "pyproject.toml")) or "")).encode()
    ).hexdigest()
    venv = os.path.join(install_dir, ".venv")
    stamp = os.path.join(venv, STAMP_NAME)
    if _read(stamp) == digest and os.path.exists(os.path.join(venv, "bin", "sotto")):
        log("dependencies up to date")
        return False
    requirements = parse_requirements(requirements_text)
    candidates = list(ALWAYS_APT) + list(GPIO_PACKAGES) + list(BUILD_APT)
    candidates += [deb for deb, _ in DEBIAN_EQUIVALENTS.values() if deb]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    system.run(["apt-get", "update", "-q"], env=env)
    available = system.apt_available(candidates)
    apt, checks = plan_dependencies(requirements, available)
    system.run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + apt, env=env)
    if not os.path.exists(os.path.join(venv, "bin", "python")):
        system.run(["python3", "-m", "venv", "--system-site-packages", venv])
    python = os.path.join(venv, "bin", "python")
    missing = [spec for spec, module in checks if not system.importable(python, module)]
    if missing:
        build = [p for p in BUILD_APT if p in available]
        if build:
            system.run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + build, env=env)
        system.run([python, "-m", "pip", "install", "-q"] + missing)
    # The sotto command itself, editable: it runs the code in /opt/sotto, so an update of the tree
    # (tools/install.py) needs no reinstall. The system's setuptools builds it: no PyPI for this step.
    system.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", install_dir])
    with open(stamp, "w", encoding="utf-8") as f:
        f.write(digest)
    log("dependencies installed: apt {}, PyPI {}".format(" ".join(apt), " ".join(missing) or "(none)"))
    return True


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
            install_dependencies()
    except (OSError, subprocess.CalledProcessError) as exc:
        print("sotto-firstboot: {}".format(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
