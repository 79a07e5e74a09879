"""Install Sotto on a running Raspberry Pi OS: the same result as the SD-card image (tools/image).

    sudo python3 -m tools.install [--config FILE] [--board NAME] [--no-start]
    sudo python3 -m tools.install --uninstall [--purge]

Run from a checkout of Sotto on the Pi. It installs the tree as the current A/B firmware slot
(/opt/sotto-ab/slots/a on a new install, /opt/sotto-ab/current pointing to it), the start guard and the
device environment to /opt/sotto (shared by both slots), the `sotto` system user
(groups audio, gpio, i2c), the systemd units (enabled), i2c-dev, `dtparam=i2c_arm=on` in the boot
partition's config.txt, the boot partition's sotto.toml (FILE, or the commented template when there is
none yet) and the data file system (sotto-data.img), then starts sotto-firstboot.service (venv and
dependencies) and sotto.service. Running it again changes nothing that is already right; it is also
how you update (after `git pull`).

--uninstall stops and disables the units and removes /opt/sotto, /opt/sotto-ab, the units and the module list; it
keeps the user, /etc/sotto, sotto.toml and the data file system (the ZRTP cache holds whom you
trust). --purge removes those as well. `dtparam=i2c_arm=on` stays: other hardware may need it.

--root DIR treats DIR as / and touches nothing outside it (no systemctl): tests use it.
Exit codes: 0 done, 2 bad arguments or DIR is not a Raspberry Pi OS-like system, 1 on failure.
"""

import argparse
import os
import shutil
import stat
import subprocess
import sys
import tempfile

if __package__ in (None, ""):  # python3 tools/install.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.image import accounts, payload  # noqa: E402
from tools.image.fat import ImageToolError  # noqa: E402

PROG = "sotto-install"
ACCOUNT_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")


class InstallError(Exception):
    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


class Installer:
    """Every change goes through here, so --root confines it and `changes` counts what was done."""

    def __init__(self, root, source=payload.REPO_ROOT, log=None, run=None):
        self.root = os.path.abspath(root)
        self.source = source
        # systemd is only driven on the running system; `run` (argv -> exit code) is replaceable in tests.
        self.live = self.root == "/" or run is not None
        self._run = run or (lambda argv: subprocess.run(argv, check=False).returncode)
        self.changes = []
        self._log = log or (lambda message: print(message, file=sys.stderr))

    def path(self, absolute):
        return os.path.join(self.root, absolute.lstrip("/"))

    def note(self, message):
        self.changes.append(message)
        self._log("{}: {}".format(PROG, message))

    def read(self, absolute):
        try:
            with open(self.path(absolute), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _chown(self, path, uid, gid):
        try:
            os.lchown(path, uid, gid)
        except PermissionError:
            if os.geteuid() == 0:
                raise

    def ensure_dir(self, absolute, mode, uid=0, gid=0):
        path = self.path(absolute)
        if not os.path.isdir(path):
            if os.path.lexists(path):
                raise InstallError("{} exists and is not a directory".format(path))
            os.makedirs(path, mode=0o755, exist_ok=True)
            self.note("created " + absolute)
        info = os.lstat(path)
        if stat.S_IMODE(info.st_mode) != mode:
            os.chmod(path, mode)
        if (info.st_uid, info.st_gid) != (uid, gid):
            self._chown(path, uid, gid)

    def write_file(self, absolute, data, mode, uid=0, gid=0):
        """Atomically make `absolute` hold `data`; nothing when it already does (content, mode, owner)."""
        path = self.path(absolute)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            info = None
        if info is not None and stat.S_ISREG(info.st_mode) and self.read(absolute) == data:
            if stat.S_IMODE(info.st_mode) != mode:
                os.chmod(path, mode)
                self.note("mode of " + absolute)
            if (info.st_uid, info.st_gid) != (uid, gid):
                self._chown(path, uid, gid)
            return
        directory = os.path.dirname(path)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
            self._chown(tmp, uid, gid)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self.note(("updated " if info is not None else "installed ") + absolute)

    def symlink(self, absolute, target):
        path = self.path(absolute)
        if os.path.islink(path) and os.readlink(path) == target:
            return
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(target, path)
        self.note("enabled " + absolute)

    def remove(self, absolute):
        path = self.path(absolute)
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
            self.note("removed " + absolute)
        elif os.path.isdir(path):
            shutil.rmtree(path)
            self.note("removed " + absolute)

    def systemctl(self, *args):
        if not self.live:
            return
        self._log("{}: systemctl {}".format(PROG, " ".join(args)))
        if self._run(["systemctl"] + list(args)) != 0:
            raise InstallError("systemctl {} failed".format(" ".join(args)))

    # -- the pieces ---------------------------------------------------------------------------

    def check_system(self):
        for required in ("/etc/passwd", "/etc/group"):
            if self.read(required) is None:
                raise InstallError("{}: no {} (not a Raspberry Pi OS system)".format(self.root, required), code=2)

    def accounts(self):
        texts = [None if self.read(p) is None else self.read(p).decode("utf-8") for p in ACCOUNT_FILES]
        before = accounts.Accounts(*texts)
        after, uid, gid = accounts.ensure_system_user(before, payload.USER, payload.DATA_DIR, payload.GROUPS)
        self._write_accounts(before, after)
        return uid, gid

    def _write_accounts(self, before, after):
        pairs = zip(
            ACCOUNT_FILES,
            (before.passwd, before.group, before.shadow, before.gshadow),
            (after.passwd, after.group, after.shadow, after.gshadow),
        )
        for absolute, old, new in pairs:
            if old is None or new == old:
                continue
            info = os.stat(self.path(absolute))
            self.write_file(absolute, new.encode("utf-8"), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)

    def tree(self):
        """The firmware tree into the current A/B slot (slot a on a new install), /opt/sotto-ab/current
        pointing to it; /opt/sotto keeps only what both slots share (the venv, dist/, the start guard)."""
        env = payload.INSTALL_DIR
        self.ensure_dir("/opt", 0o755)
        self.ensure_dir(env, 0o755)
        # Before the A/B layout /opt/sotto held the tree itself: only the shared parts stay there.
        for name in sorted(os.listdir(self.path(env))):
            if name not in payload.KEEP_IN_INSTALL_DIR:
                self.remove(env + "/" + name)
        self.write_file(payload.GUARD, payload.guard_bytes(self.source), 0o755)
        self.ensure_dir(payload.AB_ROOT, 0o755)
        self.ensure_dir(payload.AB_ROOT + "/slots", 0o755)
        try:
            target = os.readlink(self.path(payload.CURRENT))
        except OSError:
            target = payload.SLOT_LINK
        slot = os.path.basename(target.rstrip("/"))
        if slot not in ("a", "b"):
            slot = payload.FIRST_SLOT
        install = payload.AB_ROOT + "/slots/" + slot
        self.ensure_dir(install, 0o755)
        wanted = payload.source_tree(self.source)
        extra = payload.slot_files(self.source)
        wanted_kind = {rel: is_dir for rel, is_dir, _ in wanted}
        wanted_kind.update({rel: False for rel in extra})
        base = self.path(install)
        # Remove what the new tree no longer has, or has as another kind (file <-> directory).
        for current, dirs, files in os.walk(base, topdown=True):
            rel_dir = os.path.relpath(current, base)
            links = [d for d in dirs if os.path.islink(os.path.join(current, d))]
            for name in files + links:
                rel = os.path.normpath(os.path.join(rel_dir, name))
                if wanted_kind.get(rel) is not False or os.path.islink(os.path.join(current, name)):
                    self.remove(install + "/" + rel)
            dirs[:] = [d for d in dirs if d not in links]
            for name in list(dirs):
                rel = os.path.normpath(os.path.join(rel_dir, name))
                if wanted_kind.get(rel) is not True:
                    self.remove(install + "/" + rel)
                    dirs.remove(name)
        for rel, is_dir, mode in wanted:
            absolute = install + "/" + rel
            if is_dir:
                self.ensure_dir(absolute, mode)
            else:
                with open(os.path.join(self.source, rel), "rb") as f:
                    self.write_file(absolute, f.read(), mode)
        for rel, data in sorted(extra.items()):
            self.write_file(install + "/" + rel, data, 0o644)
        self.symlink(payload.CURRENT, "slots/" + slot)

    def dist(self):
        """The device environment next to the tree (an update bundle's sotto/dist, tools/image/deviceenv.py):
        replaces /opt/sotto/dist when its MANIFEST differs. A plain git checkout has none: first boot then
        keeps the environment already installed."""
        source = os.path.join(self.source, payload.DIST_DIR)
        manifest = os.path.join(source, "MANIFEST")
        if not os.path.isfile(manifest):
            return
        target = payload.INSTALL_DIR + "/" + payload.DIST_DIR
        with open(manifest, "rb") as f:
            if self.read(target + "/MANIFEST") == f.read():
                return
        self.remove(target)
        self.ensure_dir(target, 0o755)
        from tools.image.deviceenv import dist_files

        for rel in dist_files(source) + ["MANIFEST"]:
            parent = os.path.dirname(rel)
            if parent:
                self.ensure_dir(target + "/" + parent, 0o755)
            with open(os.path.join(source, rel), "rb") as f:
                self.write_file(target + "/" + rel, f.read(), 0o644)

    def system_files(self, uid, gid, boot_mount):
        self.ensure_dir(payload.CONFIG_DIR, 0o750, 0, gid)
        self.ensure_dir("/var/lib", 0o755)
        self.ensure_dir(payload.DATA_DIR, 0o700, uid, gid)
        modules_path, modules_text = payload.MODULES_LOAD
        self.ensure_dir(os.path.dirname(modules_path), 0o755)
        self.write_file(modules_path, modules_text.encode(), 0o644)
        self.ensure_dir(payload.UNITS_DIR, 0o755)
        for unit in payload.UNITS:
            text = payload.unit_text(unit, boot_mount, self.source)
            self.write_file(payload.UNITS_DIR + "/" + unit, text.encode(), 0o644)
        for wants, unit in payload.ENABLED:
            self.ensure_dir(payload.UNITS_DIR + "/" + wants, 0o755)
            self.symlink(payload.UNITS_DIR + "/" + wants + "/" + unit, payload.UNITS_DIR + "/" + unit)

    def boot_partition(self, boot_mount, config_bytes, board, uid, gid):
        config_txt = boot_mount + "/config.txt"
        text = self.read(config_txt)
        if text is None:
            self._log("{}: no {}: enable I2C yourself (raspi-config)".format(PROG, config_txt))
        else:
            enabled = payload.enable_i2c(text.decode("utf-8", "replace")).encode("utf-8")
            if enabled != text:
                self.write_file(config_txt, enabled, stat.S_IMODE(os.stat(self.path(config_txt)).st_mode))
        if not os.path.isdir(self.path(boot_mount)):
            raise InstallError("{}: the boot partition is not mounted".format(self.path(boot_mount)))
        toml = boot_mount + "/" + payload.BOOT_CONFIG_NAME
        if config_bytes is not None:
            self.write_file(toml, config_bytes, 0o644)
        elif self.read(toml) is None:
            self.write_file(toml, payload.config_template(board).encode("utf-8"), 0o644)
        data_image = boot_mount + "/" + payload.DATA_IMAGE_NAME
        if not os.path.exists(self.path(data_image)):
            from tools.image.build import make_data_image

            tmp = self.path(data_image) + ".partial"
            make_data_image(tmp, uid, gid)
            os.replace(tmp, self.path(data_image))
            self.note("created " + data_image)

    # -- the commands -------------------------------------------------------------------------

    def install(self, config_bytes=None, board=None, start=True):
        self.check_system()
        boot_mount = payload.boot_mount_point((self.read("/etc/fstab") or b"").decode("utf-8", "replace"))
        uid, gid = self.accounts()
        self.tree()
        self.dist()
        self.system_files(uid, gid, boot_mount)
        self.boot_partition(boot_mount, config_bytes, board, uid, gid)
        self.systemctl("daemon-reload")
        if start:
            self.systemctl("start", payload.mount_unit_name(payload.DATA_DIR))
            self._log(
                "{}: installing dependencies from {}/{} (sotto-firstboot.service)".format(
                    PROG, payload.INSTALL_DIR, payload.DIST_DIR
                )
            )
            self.systemctl("restart", "sotto-firstboot.service")
            self.systemctl("restart", "sotto.service")
            self.systemctl("start", "sotto-update.path")

    def uninstall(self, purge=False):
        self.check_system()
        boot_mount = payload.boot_mount_point((self.read("/etc/fstab") or b"").decode("utf-8", "replace"))
        if self.live:
            self._run(
                ["systemctl", "disable", "--now", "sotto-update.path", "sotto.service", "sotto-firstboot.service"]
            )
        for wants, unit in payload.ENABLED:
            if unit.endswith(".mount") and not purge:
                continue
            self.remove(payload.UNITS_DIR + "/" + wants + "/" + unit)
        for unit in payload.UNITS:
            if unit.endswith(".mount") and not purge:
                continue  # the data stays mounted where the user can back it up
            self.remove(payload.UNITS_DIR + "/" + unit)
        self.remove(payload.MODULES_LOAD[0])
        self.remove(payload.INSTALL_DIR)
        self.remove(payload.AB_ROOT)
        if purge:
            if self.live:
                self._run(["systemctl", "stop", payload.mount_unit_name(payload.DATA_DIR)])
            self.remove(payload.CONFIG_DIR)
            self.remove(boot_mount + "/" + payload.BOOT_CONFIG_NAME)
            self.remove(boot_mount + "/" + payload.DATA_IMAGE_NAME)
            data = self.path(payload.DATA_DIR)
            if os.path.isdir(data) and not os.path.ismount(data):
                shutil.rmtree(data)
                self.note("removed " + payload.DATA_DIR)
            texts = [None if self.read(p) is None else self.read(p).decode("utf-8") for p in ACCOUNT_FILES]
            before = accounts.Accounts(*texts)
            self._write_accounts(before, accounts.remove_system_user(before, payload.USER))
        self.systemctl("daemon-reload")


def main(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="/", help="treat DIR as / (tests; no systemctl)")
    parser.add_argument("--config", help="phone configuration (TOML) for the boot partition's sotto.toml")
    parser.add_argument("--board", help="board name for the configuration template")
    parser.add_argument("--no-start", action="store_true", help="install only; do not start the services")
    parser.add_argument("--uninstall", action="store_true", help="remove Sotto (keeps user, config and data)")
    parser.add_argument("--purge", action="store_true", help="with --uninstall: remove user, config and data too")
    args = parser.parse_args(argv)
    if args.purge and not args.uninstall:
        parser.error("--purge goes with --uninstall")
    if not os.path.isdir(args.root):
        print("{}: {}: no such directory".format(PROG, args.root), file=sys.stderr)
        return 2
    if args.root == "/" and os.geteuid() != 0:
        print("{}: run as root (sudo)".format(PROG), file=sys.stderr)
        return 2
    installer = Installer(args.root)
    try:
        if args.uninstall:
            installer.uninstall(purge=args.purge)
            return 0
        config_bytes = None
        if args.board is not None and args.board not in payload.available_boards():
            print(
                "{}: unknown board {!r} (known: {})".format(PROG, args.board, ", ".join(payload.available_boards())),
                file=sys.stderr,
            )
            return 2
        if args.config is not None:
            from firmware.errors import ConfigError

            try:
                with open(args.config, "rb") as f:
                    config_bytes = f.read()
                payload.validate_config_text(config_bytes.decode("utf-8"), args.config)
            except (OSError, UnicodeDecodeError, ConfigError) as exc:
                print("{}: {}".format(PROG, exc), file=sys.stderr)
                return 2
        installer.install(config_bytes, args.board, start=not args.no_start)
    except InstallError as exc:
        print("{}: {}".format(PROG, exc), file=sys.stderr)
        return exc.code
    except (OSError, accounts.AccountsError, ImageToolError) as exc:
        print("{}: {}".format(PROG, exc), file=sys.stderr)
        return 1
    if not installer.changes:
        print("{}: nothing to change".format(PROG), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
