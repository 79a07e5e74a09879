"""Files that must survive power loss (DESIGN.md: an SD card loses power all the time).

atomic_write: write a temporary file in the same directory, fsync it, rename it over the target, then
fsync the directory so the rename itself is durable. Readers see the old file or the new one, never a
torn one.

The temporary file is always `<target>.tmp-<pid>` (TEMP_MARK), created 0600 and held under an exclusive
flock(2) while it is written. A writer killed mid-write (kill -9, power loss) leaves that file behind,
and for the ZRTP cache it holds the retained secrets, so every atomic_write first removes the stale
temporaries of its own target: only names of exactly that pattern, only regular files owned by us, only
when no live writer holds the lock, and only when the writing process is gone (or the file is older than
STALE_SECONDS, which covers a PID reused after a reboot). A live writer's file is never touched.

    atomic_write(path, data, mode)   NotRegularFile when `path` is a directory, FIFO, socket or device
    read_bytes(path, limit=None)     the file's bytes, or None when missing; NotRegularFile for a
                                     directory, FIFO or device (opened non-blocking: a FIFO never hangs)
    remove_stale_temporaries(path)   what atomic_write does first; returns the names it removed
"""

import fcntl
import os
import stat
import time

TEMP_MARK = ".tmp-"
STALE_SECONDS = 60.0


class NotRegularFile(OSError):
    """The path exists but is a directory, FIFO, socket or device."""


def ensure_private_dir(path):
    """Create `path` (and parents) with mode 0700 if missing; tighten it if it exists."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def temp_path(path, pid=None):
    return "{}{}{}".format(path, TEMP_MARK, os.getpid() if pid is None else pid)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_stale_temporaries(path, now=time.time):
    """Remove `<path>.tmp-<pid>` files left by writers that died; see the module docstring."""
    directory = os.path.dirname(os.path.abspath(path))
    prefix = os.path.basename(path) + TEMP_MARK
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix) or not name[len(prefix) :].isdigit() or not name[len(prefix) :].isascii():
            continue
        pid = int(name[len(prefix) :])
        full = os.path.join(directory, name)
        try:
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue  # vanished, a symlink, or not readable: not ours to judge
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live writer holds it
            if _pid_alive(pid) and now() - info.st_mtime < STALE_SECONDS:
                continue  # its writer may be between creating and locking it
            try:
                if os.lstat(full).st_ino != info.st_ino:
                    continue  # replaced meanwhile by a new writer
                os.unlink(full)
            except OSError:
                continue
            removed.append(name)
        finally:
            os.close(fd)
    return removed


def atomic_write(path, data, mode=0o600):
    """Replace the file at `path` with `data` (bytes) atomically and durably. NotRegularFile when `path` is
    a directory, FIFO, socket or device: renaming over "/dev/null" as root would break the whole system."""
    try:
        mode_now = os.lstat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if not (stat.S_ISREG(mode_now) or stat.S_ISLNK(mode_now)):
            raise NotRegularFile("{} is not a regular file: not replaced".format(path))
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(path)
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close() or by our death: marks the file as live
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.fchmod(fd, mode)
        os.replace(tmp, path)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    os.close(fd)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_bytes(path, limit=None, follow=True):
    """The file's bytes, or None when it does not exist.

    Opened non-blocking and checked with fstat, so a FIFO given as a path fails at once
    (NotRegularFile) instead of blocking until a writer appears. `limit`: refuse (ValueError) a file
    larger than that many bytes instead of reading it all into memory. follow=False: a symlink is
    refused (OSError ELOOP), for a root process reading a directory that a service may write.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise NotRegularFile("{}: {}".format(path, kind))
        if limit is not None and info.st_size > limit:
            raise ValueError("{}: {} bytes, more than the {} expected at most".format(path, info.st_size, limit))
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            if limit is not None and sum(map(len, chunks)) > limit:
                raise ValueError("{}: more than the {} bytes expected at most".format(path, limit))
        return b"".join(chunks)
    finally:
        os.close(fd)
