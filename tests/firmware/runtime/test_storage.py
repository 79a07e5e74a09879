import os
import stat

import pytest

from firmware.runtime import storage


def test_atomic_write_replaces_and_sets_mode(tmp_path):
    target = tmp_path / "cache.bin"
    storage.atomic_write(str(target), b"first")
    storage.atomic_write(str(target), b"second")
    assert target.read_bytes() == b"second"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["cache.bin"]


def test_private_dir_is_0700(tmp_path):
    path = tmp_path / "a" / "b"
    storage.ensure_private_dir(str(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert storage.read_bytes(str(path / "missing")) is None


def _leftover(path, pid, data=b"retained secrets", age=0.0):
    """What a writer killed mid-write leaves: `<path>.tmp-<pid>`, mode 0600."""
    name = storage.temp_path(str(path), pid)
    fd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, data)
    os.close(fd)
    if age:
        old = os.stat(name).st_mtime - age
        os.utime(name, (old, old))
    return name


def _dead_pid():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its PID is free (a zombie would still count as alive)
    return child.pid


def test_stale_temporaries_of_dead_writers_are_removed_and_only_those(tmp_path):
    import fcntl

    target = tmp_path / "zrtp-cache"
    dead = _leftover(target, _dead_pid())
    # PID 1 is alive, but its file is old and unlocked: a PID reused after a reboot, so stale.
    live_old = _leftover(target, 1, age=storage.STALE_SECONDS + 5)
    locked = _leftover(tmp_path / "other", _dead_pid())
    other_target = tmp_path / "other"
    keep = [
        tmp_path / "zrtp-cache.tmp-12ab",
        tmp_path / "zrtp-cache.tmp-",
        tmp_path / "zrtp-cache.corrupt-1",
        tmp_path / "history.json.tmp-1",
    ]
    for path in keep:
        path.write_bytes(b"not ours to remove")
    removed = storage.remove_stale_temporaries(str(target))
    assert sorted(removed) == sorted([os.path.basename(dead), os.path.basename(live_old)])
    assert all(path.exists() for path in keep)
    # A file whose writer holds the flock is live, whatever its PID and age.
    fd = os.open(locked, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert storage.remove_stale_temporaries(str(other_target)) == []
        assert os.path.exists(locked)
    finally:
        os.close(fd)
    assert storage.remove_stale_temporaries(str(other_target)) == [os.path.basename(locked)]


def test_a_fresh_leftover_of_a_live_pid_is_kept(tmp_path):
    target = tmp_path / "zrtp-cache"
    name = _leftover(target, 1)
    assert storage.remove_stale_temporaries(str(target)) == []
    assert os.path.exists(name)


def test_atomic_write_cleans_up_what_a_killed_writer_left(tmp_path):
    target = tmp_path / "zrtp-cache"
    _leftover(target, _dead_pid())
    storage.atomic_write(str(target), b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zrtp-cache"]


def test_read_bytes_refuses_a_fifo_without_blocking_and_bounds_the_size(tmp_path):
    import pytest

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(storage.NotRegularFile):
        storage.read_bytes(str(fifo))
    with pytest.raises(storage.NotRegularFile):
        storage.read_bytes(str(tmp_path))
    big = tmp_path / "big"
    big.write_bytes(b"x" * 100)
    with pytest.raises(ValueError):
        storage.read_bytes(str(big), limit=99)
    assert storage.read_bytes(str(big), limit=100) == b"x" * 100


def test_atomic_write_never_replaces_a_fifo_or_a_device(tmp_path):
    """As root, renaming a file over /dev/null breaks every program on the machine; a data path that names
    a device or FIFO is refused and left as it is."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(storage.NotRegularFile):
        storage.atomic_write(str(fifo), b"data")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["fifo"]
    with pytest.raises(storage.NotRegularFile):
        storage.atomic_write(str(tmp_path), b"data")
