import os
import stat

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
