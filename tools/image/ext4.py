"""The ext4 root partition inside an image file, edited with debugfs: no mount, no root.

debugfs has no offset option of its own, but e2fsprogs' Unix I/O manager reads I/O options after a
``?`` in the device name, and ``offset=N`` makes it see the file system that starts N bytes into the
image. So we edit the partition in place inside the temporary copy of BASE: no `dd` extraction, no
second multi-gigabyte temporary file, nothing to write back. partitions.read_layout has checked that
the file system fits inside its partition.

debugfs reports errors on stderr and still exits 0, so every run's stderr is checked: anything but the
version banner is an error. Paths are restricted to characters debugfs' command parser takes verbatim.
"""

import re
import subprocess
import tempfile

from tools.image.fat import ImageToolError

_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._+@,=/-]*$")
_BANNER = re.compile(r"^debugfs \d")


def check_path(path):
    if not _SAFE_PATH.match(path) or "//" in path or "/../" in path or path.endswith("/.."):
        raise ImageToolError("path not supported in the image: {!r}".format(path))
    return path


_SAFE_RELATIVE = re.compile(r"^[A-Za-z0-9._+@,=-][A-Za-z0-9._+@,=/-]*$")


def check_link_target(target):
    """A symlink target: an absolute path as check_path, or a relative one without `..` (slots/a)."""
    if target.startswith("/"):
        return check_path(target)
    if not _SAFE_RELATIVE.match(target) or "//" in target or ".." in target.split("/"):
        raise ImageToolError("symlink target not supported in the image: {!r}".format(target))
    return target


class Entry:
    """One directory entry as `ls -p` reports it."""

    __slots__ = ("name", "mode", "uid", "gid")

    def __init__(self, name, mode, uid, gid):
        self.name = name
        self.mode = mode
        self.uid = uid
        self.gid = gid

    def is_dir(self):
        return (self.mode & 0o170000) == 0o040000


class Ext4Partition:
    """Read, list and edit an ext4 file system `offset` bytes into `image`."""

    def __init__(self, image, offset):
        self.device = "{}?offset={}".format(image, offset)

    def _debugfs(self, args, writable=False):
        cmd = ["debugfs"] + (["-w"] if writable else []) + args + [self.device]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
        except FileNotFoundError as exc:
            raise ImageToolError("debugfs is not installed (Debian package e2fsprogs)") from exc
        errors = [
            line
            for line in done.stderr.decode("utf-8", "replace").splitlines()
            if line.strip() and not _BANNER.match(line)
        ]
        return done, errors

    def _request(self, command):
        done, errors = self._debugfs(["-R", command])
        if done.returncode != 0:
            raise ImageToolError("debugfs failed on the root partition: {}".format("; ".join(errors)))
        return done.stdout, errors

    def stat(self, path):
        """(mode with type bits, uid, gid) of `path`, or None when it does not exist."""
        out, errors = self._request("stat " + check_path(path))
        if errors:
            return None
        text = out.decode("utf-8", "replace")
        kinds = {"regular": 0o100000, "directory": 0o040000, "symlink": 0o120000}
        kind = re.search(r"Type: (\w+)", text)
        mode = re.search(r"Mode:\s+([0-7]+)", text)
        owner = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+)", text)
        if not (kind and mode and owner):
            raise ImageToolError("debugfs stat output not understood for {}".format(path))
        return kinds.get(kind.group(1), 0) | int(mode.group(1), 8), int(owner.group(1)), int(owner.group(2))

    def exists(self, path):
        return self.stat(path) is not None

    def read(self, path):
        """The regular file's bytes, or None when it does not exist."""
        info = self.stat(path)
        if info is None:
            return None
        if (info[0] & 0o170000) != 0o100000:
            raise ImageToolError("{} in the image is not a regular file".format(path))
        out, errors = self._request("cat " + path)
        if errors:
            raise ImageToolError("debugfs could not read {}: {}".format(path, errors[0]))
        return out

    def list_dir(self, path):
        """The entries of directory `path` (without . and ..); [] when it does not exist."""
        out, errors = self._request("ls -p " + check_path(path))
        if errors:
            return []
        entries = []
        for line in out.decode("utf-8", "replace").splitlines():
            # /inode/mode/uid/gid/name/size/
            fields = line.split("/")
            if len(fields) < 7 or fields[5] in (".", ".."):
                continue
            entries.append(Entry(fields[5], int(fields[2], 8), int(fields[3]), int(fields[4])))
        return entries

    def walk(self, path, skip=()):
        """Every path under directory `path` as (path, Entry), parents before children.

        Directories in `skip` are neither listed nor entered.
        """
        found = []
        pending = [path]
        while pending:
            current = pending.pop(0)
            for entry in self.list_dir(current):
                child = current.rstrip("/") + "/" + entry.name
                if child in skip:
                    continue
                found.append((child, entry))
                if entry.is_dir():
                    pending.append(child)
        return found

    def run_script(self, lines):
        """Run debugfs commands in one writable session; ImageToolError on the first reported error."""
        if not lines:
            return
        with tempfile.NamedTemporaryFile("w", prefix="sotto-debugfs-", suffix=".txt") as script:
            script.write("\n".join(lines) + "\n")
            script.flush()
            done, errors = self._debugfs(["-f", script.name], writable=True)
        if done.returncode != 0 or errors:
            raise ImageToolError("debugfs could not edit the root partition: {}".format("; ".join(errors[:3])))


class Script:
    """debugfs commands for one writable session, built from plain operations."""

    def __init__(self):
        self.lines = []

    def mkdir(self, path, mode, uid, gid):
        self.lines.append("mkdir " + check_path(path))
        self.chown(path, 0o040000 | mode, uid, gid)

    def write(self, host_file, path, mode, uid, gid):
        if not _SAFE_PATH.match(host_file):
            raise ImageToolError("temporary file path not usable by debugfs: {!r}".format(host_file))
        self.lines.append("write {} {}".format(host_file, check_path(path)))
        self.chown(path, 0o100000 | mode, uid, gid)

    def symlink(self, path, target):
        self.lines.append("symlink {} {}".format(check_path(path), check_link_target(target)))

    def chown(self, path, full_mode, uid, gid):
        path = check_path(path)
        self.lines.append("set_inode_field {} mode 0{:o}".format(path, full_mode))
        self.lines.append("set_inode_field {} uid {}".format(path, uid))
        self.lines.append("set_inode_field {} gid {}".format(path, gid))

    def unlink(self, path):
        self.lines.append("rm " + check_path(path))

    def rmdir(self, path):
        self.lines.append("rmdir " + check_path(path))
