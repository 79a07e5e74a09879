"""Files that must survive power loss (DESIGN.md: an SD card loses power all the time).

atomic_write: write a temporary file in the same directory, fsync it, rename it over the target, then
fsync the directory so the rename itself is durable. Readers see the old file or the new one, never a
torn one.
"""

import os


def ensure_private_dir(path):
    """Create `path` (and parents) with mode 0700 if missing; tighten it if it exists."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def atomic_write(path, data, mode=0o600):
    """Replace the file at `path` with `data` (bytes) atomically and durably."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = "{}.tmp-{}".format(path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_bytes(path):
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
