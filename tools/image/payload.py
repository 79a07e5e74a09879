"""What Sotto puts on a Raspberry Pi OS system, shared by the image builder and the installer.

Locations:
- /opt/sotto-ab/slots/a: the firmware tree (firmware/, audio/, boards/, tools/, the top-level build files
  and SOTTO_VERSION), root-owned and read-only for the service; /opt/sotto-ab/current -> slots/a is what
  the units run. A provisioned update (tools/abupdate.py) unpacks into the other slot and switches
  `current` with one rename, so the image's tree is simply slot A.
- /opt/sotto: what both slots share and no update replaces: .venv (made on the device at first boot,
  from dist/), dist/ (the device environment), and abguard.py (tools/abguard.py: the start counter that
  puts the old slot back when a new one never gets going; it must not live in a slot it may condemn).
- /etc/sotto/sotto.toml: the configuration the service reads, imported from the boot partition's
  sotto.toml (editable from any computer) at first boot and before every start of the service.
- /var/lib/sotto: the data directory (ZRTP cache). It is a small ext4 file system kept in a file on the
  FAT boot partition (sotto-data.img) and loop-mounted by var-lib-sotto.mount. Why: Raspberry Pi OS's
  read-only mode (raspi-config's overlay file system) puts a tmpfs overlay over the whole root
  partition, so anything written under / is lost at reboot; the boot partition stays a normal
  read-write mount. Files straight on FAT would have no owners or modes (the ZRTP retained secrets must
  be 0600 to the sotto user) and FAT's renames are not journaled; an ext4 file system inside one file of
  fixed size gives journaled, atomic renames and Unix permissions, and the FAT metadata of that file
  never changes after it is created. A third partition would collide with the root partition's
  automatic expansion on first boot.
- the `sotto` system user (groups audio, gpio, i2c), the units in /etc/systemd/system, enabled by
  symlinks, and /etc/modules-load.d/sotto.conf (i2c-dev, for /dev/i2c-1).
"""

import os
import re

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

INSTALL_DIR = "/opt/sotto"  # the shared environment: .venv, dist/, abguard.py
AB_ROOT = "/opt/sotto-ab"
CURRENT = AB_ROOT + "/current"  # -> slots/a or slots/b: the firmware the units run
FIRST_SLOT = "a"
SLOT_LINK = "slots/" + FIRST_SLOT  # relative, as firmware/runtime/update.py writes it
VERSION_FILE = "SOTTO_VERSION"  # firmware/runtime/update.py reads it from the running slot
GUARD = INSTALL_DIR + "/abguard.py"  # a copy of tools/abguard.py, outside the slots
KEEP_IN_INSTALL_DIR = (".venv", "dist", "abguard.py")
UPDATE_SPOOL = "/var/lib/sotto/update"  # where the phone leaves a verified download (sotto-update.path)
CONFIG_DIR = "/etc/sotto"
CONFIG_FILE = CONFIG_DIR + "/sotto.toml"
DATA_DIR = "/var/lib/sotto"
USER = "sotto"
GROUPS = ("audio", "gpio", "i2c")
BOOT_CONFIG_NAME = "sotto.toml"
DATA_IMAGE_NAME = "sotto-data.img"
DATA_IMAGE_BYTES = 16 * 1024 * 1024
DEFAULT_BOOT_MOUNT = "/boot/firmware"
MODULES_LOAD = ("/etc/modules-load.d/sotto.conf", "# Sotto: the I2C display needs /dev/i2c-*\ni2c-dev\n")

DIST_DIR = "dist"  # /opt/sotto/dist: the device environment (tools/image/deviceenv.py)
SOURCE_DIRS = ("firmware", "audio", "boards", "tools")
SOURCE_FILES = ("pyproject.toml", "requirements.txt", "Makefile", "README.md")
_SKIP_DIRS = ("__pycache__", ".venv", ".git", "tests", "build", "dist")
_SKIP_SUFFIXES = (".pyc", ".pyo", ".swp", "~")

UNITS_DIR = "/etc/systemd/system"
UNITS = (
    "sotto.service",
    "sotto-firstboot.service",
    "var-lib-sotto.mount",
    "sotto-update.path",
    "sotto-update.service",
)
# (target.wants directory, unit): what `systemctl enable` would create from the units' [Install].
ENABLED = (
    ("multi-user.target.wants", "sotto.service"),
    ("multi-user.target.wants", "sotto-firstboot.service"),
    ("local-fs.target.wants", "var-lib-sotto.mount"),
    ("multi-user.target.wants", "sotto-update.path"),
)
I2C_LINE = "dtparam=i2c_arm=on"


def source_tree(repo_root=REPO_ROOT):
    """The firmware tree to install: sorted [(relative path, is_dir, mode)], caches and tests left out."""
    found = []
    for top in SOURCE_DIRS:
        base = os.path.join(repo_root, top)
        if not os.path.isdir(base):
            continue
        found.append((top, True, 0o755))
        for current, dirs, files in os.walk(base):
            dirs[:] = sorted(
                d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".") and not d.endswith(".egg-info")
            )
            rel_dir = os.path.relpath(current, repo_root)
            for d in dirs:
                found.append((os.path.join(rel_dir, d), True, 0o755))
            for name in sorted(files):
                if name.startswith(".") or name.endswith(_SKIP_SUFFIXES):
                    continue
                path = os.path.join(current, name)
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                executable = os.stat(path).st_mode & 0o111
                found.append((os.path.join(rel_dir, name), False, 0o755 if executable else 0o644))
    for name in SOURCE_FILES:
        if os.path.isfile(os.path.join(repo_root, name)):
            found.append((name, False, 0o644))
    found.sort(key=lambda item: item[0].split(os.sep))
    return found


def firmware_version(repo_root=REPO_ROOT):
    """The version a slot made from `repo_root` holds: its SOTTO_VERSION file (an unpacked release
    tarball has one), else pyproject.toml's [project] version."""
    try:
        with open(os.path.join(repo_root, VERSION_FILE), encoding="utf-8") as f:
            found = f.read().strip()
        if found:
            return found
    except FileNotFoundError:
        pass
    import tomllib

    with open(os.path.join(repo_root, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]["version"]


def slot_files(repo_root=REPO_ROOT):
    """The files a slot holds besides source_tree(): {relative path: bytes}."""
    return {VERSION_FILE: (firmware_version(repo_root) + "\n").encode("utf-8")}


def guard_bytes(repo_root=REPO_ROOT):
    with open(os.path.join(repo_root, "tools", "abguard.py"), "rb") as f:
        return f.read()


def unit_text(name, boot_mount=DEFAULT_BOOT_MOUNT, repo_root=REPO_ROOT):
    """A unit file from tools/systemd/, with the boot partition's mount point of the target system."""
    with open(os.path.join(repo_root, "tools", "systemd", name), encoding="utf-8") as f:
        text = f.read()
    if boot_mount != DEFAULT_BOOT_MOUNT:
        text = text.replace(DEFAULT_BOOT_MOUNT, boot_mount)
    return text


def mount_unit_name(path):
    """systemd's unit name for a mount point (systemd-escape --path --suffix=mount) for plain paths."""
    if not re.match(r"^/[a-z0-9/_.]+$", path):
        raise ValueError("mount point needs escaping we do not do: {!r}".format(path))
    return path.strip("/").replace("/", "-") + ".mount"


def boot_mount_point(fstab_text):
    """Where the system mounts its FAT boot partition, from /etc/fstab (bookworm: /boot/firmware)."""
    for line in (fstab_text or "").splitlines():
        fields = line.split()
        if len(fields) >= 3 and not fields[0].startswith("#") and fields[2] == "vfat":
            if fields[1] in ("/boot", "/boot/firmware"):
                return fields[1]
    return DEFAULT_BOOT_MOUNT


def _sections(lines):
    """For each line, the [filter] section it sits in ('' before the first one)."""
    current = ""
    result = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stripped[1:-1].strip().lower()
        result.append(current)
    return result


_I2C_ACTIVE = re.compile(r"^\s*dtparam=i2c_arm(=\w*)?\s*$")
_I2C_COMMENTED = re.compile(r"^\s*#\s*dtparam=i2c_arm=on\s*$")


def enable_i2c(text):
    """config.txt with `dtparam=i2c_arm=on` exactly once where it applies to every model.

    Like raspi-config: an active setting in the common part ([all] or before any filter) is made `on`
    and duplicates there are dropped; otherwise Raspberry Pi OS's commented `#dtparam=i2c_arm=on` is
    uncommented; otherwise the line is appended under `[all]`. Lines inside model filters ([cm4], ...)
    are left alone. Applying it again changes nothing.
    """
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines()
    sections = _sections(lines)
    common = [sec in ("", "all") for sec in sections]
    active = [i for i, line in enumerate(lines) if common[i] and _I2C_ACTIVE.match(line)]
    if active:
        first = active[0]
        lines[first] = I2C_LINE
        lines = [line for i, line in enumerate(lines) if i == first or i not in active]
    else:
        commented = [i for i, line in enumerate(lines) if common[i] and _I2C_COMMENTED.match(line)]
        if commented:
            lines[commented[0]] = I2C_LINE
        else:
            headers = [line.strip().lower() for line in lines if line.strip().startswith("[")]
            if headers and headers[-1] != "[all]":
                lines.append("[all]")
            lines.append(I2C_LINE)
    return newline.join(lines) + newline


def config_template(board=None):
    """The commented configuration for a new phone: the firmware's template with the device settings.

    SIP listens on every interface (a desk phone, not a loopback test), the data directory is the
    persistent /var/lib/sotto, and the board is `board` when given.
    """
    from firmware.config import DEFAULT_TEMPLATE

    settings = [
        ("sip", 'listen = "0.0.0.0:5060"          # every interface: this is the phone'),
        ("data", 'dir = "{}"             # persistent, survives a read-only root'.format(DATA_DIR)),
    ]
    if board:
        settings.append(("board", 'name = "{}"'.format(board)))
    lines = DEFAULT_TEMPLATE.splitlines()
    for section, setting in settings:
        header = "[{}]".format(section)
        if header in lines:
            lines.insert(lines.index(header) + 1, setting)
        else:
            lines.extend(["", header, setting])
    intro = (
        "# This file lives on the SD card's boot partition: edit it from any computer, then restart the\n"
        "# phone. It is copied to {} (readable only by root and the sotto user) at every start.\n".format(CONFIG_FILE)
    )
    return intro + "\n".join(lines) + "\n"


def validate_config_text(text, where):
    """Raise firmware.errors.ConfigError when `text` is not a valid Sotto configuration."""
    import tomllib

    from firmware.config import validate
    from firmware.errors import ConfigError

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, "<syntax>", "valid TOML ({})".format(exc)) from None
    return validate(data, where)


def available_boards(repo_root=REPO_ROOT):
    boards_dir = os.path.join(repo_root, "boards")
    names = {"sim"}
    if os.path.isdir(boards_dir):
        names.update(name[: -len(".toml")] for name in os.listdir(boards_dir) if name.endswith(".toml"))
    return sorted(names)
