"""Build a Sotto SD-card image from a Raspberry Pi OS Lite image (see tools/image/__init__.py).

Order: check BASE (layout, config.txt, account files) while it is still only read; copy it sparsely to
a temporary file next to OUT; edit the root partition (user, tree, units), then the boot partition
(config.txt, sotto.toml, the data file system); check the root file system with `e2fsck -fn`; rename
the copy to OUT. Any failure removes the temporary file, so OUT is either the finished image or
untouched. Every edit compares with what is there first, so building over the builder's own output
leaves the same files.
"""

import os
import shutil
import subprocess
import tempfile

from tools.image import accounts, payload
from tools.image.ext4 import Ext4Partition, Script
from tools.image.fat import FatPartition, ImageToolError
from tools.image.partitions import BaseImageError, read_layout

ACCOUNT_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")
COPY_CHUNK = 1 << 20


def copy_sparse(source, target_fd):
    """Copy `source` into the open file `target_fd`, leaving holes where the source has zero blocks."""
    zero = bytes(COPY_CHUNK)
    with open(source, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        position = 0
        while True:
            block = src.read(COPY_CHUNK)
            if not block:
                break
            if block == zero[: len(block)]:
                os.lseek(target_fd, len(block), os.SEEK_CUR)
            else:
                view = memoryview(block)
                while view:
                    view = view[os.write(target_fd, view) :]
            position += len(block)
    os.ftruncate(target_fd, size)
    os.fsync(target_fd)


class Stage:
    """Host files for debugfs `write`, in a private temporary directory with plain names."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sotto-image-")
        self.count = 0

    def put(self, data):
        self.count += 1
        path = os.path.join(self.dir, "f{}".format(self.count))
        with open(path, "wb") as f:
            f.write(data)
        return path

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def check_base(base):
    """The layout of BASE, or BaseImageError when it is not a Raspberry Pi OS-like image."""
    layout = read_layout(base)
    fat = FatPartition(base, layout.boot.offset)
    if fat.read("/config.txt") is None:
        raise BaseImageError("{}: the boot partition has no config.txt (not a Raspberry Pi OS image)".format(base))
    ext = Ext4Partition(base, layout.root.offset)
    for required in ("/etc/passwd", "/etc/group", "/etc/systemd/system"):
        if not ext.exists(required):
            raise BaseImageError(
                "{}: the root partition has no {} (not a Raspberry Pi OS image)".format(base, required)
            )
    return layout


def _write_file(ext, script, stage, path, data, mode, uid, gid):
    """Script lines that make `path` hold `data` with this mode and owner; nothing when it already does."""
    info = ext.stat(path)
    if info is not None:
        if (info[0] & 0o170000) == 0o100000 and ext.read(path) == data and info == (0o100000 | mode, uid, gid):
            return
        script.unlink(path)
    script.write(stage.put(data), path, mode, uid, gid)


def _ensure_dir(ext, script, path, mode, uid, gid, created):
    if path in created:
        return
    info = ext.stat(path)
    if info is None:
        script.mkdir(path, mode, uid, gid)
        created.add(path)
    elif (info[0] & 0o170000) != 0o040000:
        raise ImageToolError("{} in the image is not a directory".format(path))
    elif info != (0o040000 | mode, uid, gid):
        script.chown(path, 0o040000 | mode, uid, gid)


def _account_files(ext):
    texts = {}
    owners = {}
    for path in ACCOUNT_FILES:
        info = ext.stat(path)
        if info is None:
            texts[path] = None
            continue
        raw = ext.read(path)
        texts[path] = raw.decode("utf-8")
        owners[path] = (info[0] & 0o7777, info[1], info[2])
    return texts, owners


def edit_dist(ext, script, dist, created):
    """/opt/sotto/dist: the device environment (tools/image/deviceenv.py), replaced when its MANIFEST differs.

    The files are written straight from `dist` (the venv archive is large: no staging copy), and the
    MANIFEST last, so an interrupted build never leaves a MANIFEST naming files that are not there.
    """
    from tools.image.deviceenv import dist_files

    target = payload.INSTALL_DIR + "/" + payload.DIST_DIR
    with open(os.path.join(dist, "MANIFEST"), "rb") as f:
        manifest = f.read()
    if ext.exists(target + "/MANIFEST") and ext.read(target + "/MANIFEST") == manifest:
        return
    if ext.exists(target):
        for path, entry in reversed(ext.walk(target)):
            if entry.is_dir():
                script.rmdir(path)
            else:
                script.unlink(path)
        script.rmdir(target)
    script.mkdir(target, 0o755, 0, 0)
    for rel in dist_files(dist):
        parent = os.path.dirname(rel)
        if parent and target + "/" + parent not in created:
            script.mkdir(target + "/" + parent, 0o755, 0, 0)
            created.add(target + "/" + parent)
        script.write(os.path.join(dist, rel), target + "/" + rel, 0o644, 0, 0)
    script.write(os.path.join(dist, "MANIFEST"), target + "/MANIFEST", 0o644, 0, 0)


def edit_root(ext, stage, repo_root, dist=None):
    """Every root-partition edit; returns (uid, gid, boot mount point)."""
    texts, owners = _account_files(ext)
    before = accounts.Accounts(*(texts[p] for p in ACCOUNT_FILES))
    after, uid, gid = accounts.ensure_system_user(before, payload.USER, payload.DATA_DIR, payload.GROUPS)
    boot_mount = payload.boot_mount_point((ext.read("/etc/fstab") or b"").decode("utf-8", "replace"))

    script = Script()
    for path, old, new in zip(
        ACCOUNT_FILES,
        (before.passwd, before.group, before.shadow, before.gshadow),
        (after.passwd, after.group, after.shadow, after.gshadow),
    ):
        if old is not None and new != old:
            mode, owner_uid, owner_gid = owners[path]
            script.unlink(path)
            script.write(stage.put(new.encode("utf-8")), path, mode, owner_uid, owner_gid)

    created = set()
    _ensure_dir(ext, script, "/opt", 0o755, 0, 0, created)
    # /opt/sotto: what both A/B slots share (the venv made at first boot, dist/, the start guard). An
    # image built before the A/B layout had the tree itself there: that goes.
    env = payload.INSTALL_DIR
    _ensure_dir(ext, script, env, 0o755, 0, 0, created)
    keep = tuple(env + "/" + name for name in payload.KEEP_IN_INSTALL_DIR)
    old_env = ext.walk(env, skip=keep) if ext.exists(env) else []
    for path, entry in old_env:
        if path not in keep and not entry.is_dir():
            script.unlink(path)
    for path, entry in reversed(old_env):
        if path not in keep and entry.is_dir():
            script.rmdir(path)
    _write_file(ext, script, stage, payload.GUARD, payload.guard_bytes(repo_root), 0o755, 0, 0)

    # The firmware tree: slot a (or the slot `current` names, in an image that already has one), all
    # replaced; /opt/sotto-ab/current -> slots/a.
    _ensure_dir(ext, script, payload.AB_ROOT, 0o755, 0, 0, created)
    _ensure_dir(ext, script, payload.AB_ROOT + "/slots", 0o755, 0, 0, created)
    link = _symlink_target(ext, payload.CURRENT) if ext.exists(payload.CURRENT) else None
    slot = os.path.basename((link or payload.SLOT_LINK).rstrip("/"))
    if slot not in ("a", "b"):
        slot = payload.FIRST_SLOT
    install = payload.AB_ROOT + "/slots/" + slot
    old_tree = ext.walk(install) if ext.exists(install) else []
    wanted = {install + "/" + rel: (is_dir, mode) for rel, is_dir, mode in payload.source_tree(repo_root)}
    extra = {install + "/" + rel: data for rel, data in payload.slot_files(repo_root).items()}
    wanted.update({path: (False, 0o644) for path in extra})
    # Remove what the new tree does not have, or has as another kind (file <-> directory); children
    # before their directories (walk lists parents first).
    for path, entry in old_tree:
        if not entry.is_dir() and (path not in wanted or wanted[path][0]):
            script.unlink(path)
    for path, entry in reversed(old_tree):
        if entry.is_dir() and not (path in wanted and wanted[path][0]):
            script.rmdir(path)
    _ensure_dir(ext, script, install, 0o755, 0, 0, created)
    old_paths = {p: e for p, e in old_tree if p in wanted and e.is_dir() == wanted[p][0]}
    old_copy = _dump_tree(ext, stage, install, [p for p, _ in old_tree if p.count("/") == install.count("/") + 1])
    for rel, is_dir, mode in payload.source_tree(repo_root):
        path = install + "/" + rel
        if is_dir:
            if path in old_paths and old_paths[path].is_dir():
                _ensure_dir(ext, script, path, mode, 0, 0, created)
            else:
                script.mkdir(path, mode, 0, 0)
                created.add(path)
        else:
            with open(os.path.join(repo_root, rel), "rb") as f:
                data = f.read()
            entry = old_paths.get(path)
            if entry is not None:
                same_inode = (entry.mode, entry.uid, entry.gid) == (0o100000 | mode, 0, 0)
                if same_inode and _read_host(os.path.join(old_copy, path[len(install) + 1 :])) == data:
                    continue
                script.unlink(path)
            script.write(stage.put(data), path, mode, 0, 0)
    for path, data in sorted(extra.items()):
        entry = old_paths.get(path)
        if entry is not None:
            if (entry.mode, entry.uid, entry.gid) == (0o100644, 0, 0) and ext.read(path) == data:
                continue
            script.unlink(path)
        script.write(stage.put(data), path, 0o644, 0, 0)
    info = ext.stat(payload.CURRENT)
    if info is None or (info[0] & 0o170000) != 0o120000 or link != "slots/" + slot:
        if info is not None:
            script.unlink(payload.CURRENT)
        script.symlink(payload.CURRENT, "slots/" + slot)

    if dist is not None:
        edit_dist(ext, script, dist, created)
    _ensure_dir(ext, script, payload.CONFIG_DIR, 0o750, 0, gid, created)
    for parent in ("/var", "/var/lib"):
        _ensure_dir(ext, script, parent, 0o755, 0, 0, created)
    _ensure_dir(ext, script, payload.DATA_DIR, 0o700, uid, gid, created)
    modules_path, modules_text = payload.MODULES_LOAD
    _ensure_dir(ext, script, os.path.dirname(modules_path), 0o755, 0, 0, created)
    _write_file(ext, script, stage, modules_path, modules_text.encode(), 0o644, 0, 0)
    for unit in payload.UNITS:
        text = payload.unit_text(unit, boot_mount, repo_root)
        _write_file(ext, script, stage, payload.UNITS_DIR + "/" + unit, text.encode(), 0o644, 0, 0)
    for wants, unit in payload.ENABLED:
        wants_dir = payload.UNITS_DIR + "/" + wants
        _ensure_dir(ext, script, wants_dir, 0o755, 0, 0, created)
        link = wants_dir + "/" + unit
        target = payload.UNITS_DIR + "/" + unit
        info = ext.stat(link)
        if info is not None:
            if (info[0] & 0o170000) == 0o120000 and _symlink_target(ext, link) == target:
                continue
            script.unlink(link)
        script.symlink(link, target)
    ext.run_script(script.lines)
    return uid, gid, boot_mount


def _dump_tree(ext, stage, install, top_paths):
    """Copy the image's current slot entries to the host, to compare contents."""
    target = os.path.join(stage.dir, "old")
    os.makedirs(target, exist_ok=True)
    for path in top_paths:
        # rdump reports chown failures when unprivileged; the contents are what we compare.
        subprocess.run(
            ["debugfs", "-R", "rdump {} {}".format(path, target), ext.device],
            capture_output=True,
            timeout=300,
            check=False,
        )
    return target


def _read_host(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _symlink_target(ext, path):
    done = subprocess.run(
        ["debugfs", "-R", "stat " + path, ext.device], capture_output=True, text=True, timeout=60, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith("Fast link dest:"):
            return line.split(":", 1)[1].strip().strip('"')
    return None


def make_data_image(path, uid, gid, size=payload.DATA_IMAGE_BYTES):
    """A small ext4 file system in the file `path`, its root directory owned by the sotto user, 0700."""
    with open(path, "wb") as f:
        f.truncate(size)
    try:
        done = subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-L", "sottodata", "-E", "root_owner={}:{}".format(uid, gid), path],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ImageToolError("mkfs.ext4 is not installed (Debian package e2fsprogs)") from exc
    if done.returncode != 0:
        raise ImageToolError("mkfs.ext4 failed for the data file system: {}".format(done.stderr.strip()))
    script = Script()
    script.chown("/", 0o040700, uid, gid)
    Ext4Partition(path, 0).run_script(script.lines)


def edit_boot(fat, stage, config_bytes, board, uid, gid):
    """config.txt, sotto.toml and the data file system on the FAT boot partition."""
    config_txt = fat.read("/config.txt")
    text = config_txt.decode("utf-8", "replace")
    enabled = payload.enable_i2c(text)
    if enabled != text:
        fat.write("/config.txt", enabled.encode("utf-8"))
    name = "/" + payload.BOOT_CONFIG_NAME
    if config_bytes is not None:
        if fat.read(name) != config_bytes:
            fat.write(name, config_bytes)
    elif not fat.exists(name):
        fat.write(name, payload.config_template(board).encode("utf-8"))
    data_name = "/" + payload.DATA_IMAGE_NAME
    if not fat.exists(data_name):
        free = fat.free_bytes()
        if free is not None and free < payload.DATA_IMAGE_BYTES + (1 << 20):
            raise ImageToolError(
                "the boot partition has {} bytes free; the data file system needs {}".format(
                    free, payload.DATA_IMAGE_BYTES
                )
            )
        data_path = os.path.join(stage.dir, "data.img")
        make_data_image(data_path, uid, gid)
        fat.write_file(data_name, data_path)
        os.unlink(data_path)


def fsck_root(image, offset):
    done = subprocess.run(
        ["e2fsck", "-fn", "{}?offset={}".format(image, offset)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        lines = [line for line in done.stdout.splitlines() + done.stderr.splitlines() if line.strip()]
        raise ImageToolError(
            "e2fsck found problems in the edited root file system: {}".format(lines[-1] if lines else done.returncode)
        )


def build(base, out, config_bytes=None, board=None, repo_root=payload.REPO_ROOT, dist=None):
    """Write the Sotto image for BASE to OUT. Raises BaseImageError, ImageToolError."""
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise BaseImageError("{}: the output directory does not exist".format(out))
    if os.path.exists(out) and os.path.exists(base) and os.path.samefile(base, out):
        raise BaseImageError("{}: OUT must be another file than BASE (BASE is never modified)".format(out))
    layout = check_base(base)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix="." + os.path.basename(out) + ".", suffix=".partial")
    stage = Stage()
    try:
        try:
            copy_sparse(base, fd)
        finally:
            os.close(fd)
        ext = Ext4Partition(tmp, layout.root.offset)
        uid, gid, _ = edit_root(ext, stage, repo_root, dist)
        edit_boot(FatPartition(tmp, layout.boot.offset), stage, config_bytes, board, uid, gid)
        fsck_root(tmp, layout.root.offset)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    finally:
        stage.close()
    return layout
