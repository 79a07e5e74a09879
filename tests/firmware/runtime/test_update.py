"""A/B firmware updates: the real `python -m tools.abupdate` killed (SIGKILL) at every step of an install
must leave ROOT/current on a complete firmware, the old one until the pointer switch; the next install
then succeeds. Signatures come from the real `python -m tools.provision sign`."""

import importlib.metadata
import io
import os
import subprocess
import sys
import tarfile

import pytest

from firmware.runtime import update
from tests.fixtures.provisioning import REPO, keygen, provision


def tree(version, files=40):
    """{path: bytes} of a firmware tree of `version`."""
    out = {update.VERSION_FILE: "{}\n".format(version).encode()}
    for i in range(files):
        out["firmware/module{:02d}.py".format(i)] = "VERSION = {!r}  # file {}\n".format(version, i).encode() * 50
    out["tools/run.sh"] = b"#!/bin/sh\necho " + version.encode() + b"\n"
    return out


def write_tarball(path, files, extra=None):
    with tarfile.open(path, "w") as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            archive.addfile(info, io.BytesIO(data))
        if extra is not None:
            archive.addfile(extra)


@pytest.fixture
def release(tmp_path):
    """Signed tarballs of versions 1 and 2 and the public key."""
    private, public = keygen(tmp_path)
    out = tmp_path / "releases"
    out.mkdir()
    for version in ("1", "2"):
        write_tarball(out / "sotto-{}.tar".format(version), tree(version))
    provision("sign", out, "--key", private)
    return out, public, private


def abupdate(*args, kill_at=None):
    env = dict(os.environ)
    env.pop("SOTTO_UPDATE_KILL_AT", None)
    if kill_at:
        env["SOTTO_UPDATE_KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "tools.abupdate", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def booted(root):
    """What a boot would run: the version ROOT/current points at, checked file by file against its tree."""
    current = os.path.join(root, "current")
    version = open(os.path.join(current, update.VERSION_FILE)).read().strip()
    for name, data in tree(version).items():
        with open(os.path.join(current, name), "rb") as f:
            assert f.read() == data, "{} of version {} is incomplete".format(name, version)
    return version


@pytest.mark.parametrize("step", update.STEPS)
def test_killed_at_each_step_boots_a_complete_firmware(tmp_path, release, step):
    releases, public, _ = release
    root = tmp_path / "ab"
    first = abupdate("install", releases / "sotto-1.tar", "--key", public, "--root", root)
    assert first.returncode == 0, first.stderr
    assert booted(root) == "1" and update.current_slot(str(root)) == "a"

    killed = abupdate("install", releases / "sotto-2.tar", "--key", public, "--root", root, kill_at=step)
    assert killed.returncode == -9, (killed.returncode, killed.stderr)  # really killed there
    expected = "2" if step == "switched" else "1"  # only the pointer switch changes what boots
    assert booted(root) == expected

    again = abupdate("install", releases / "sotto-2.tar", "--key", public, "--root", root)
    assert again.returncode == 0, again.stderr
    assert booted(root) == "2"
    assert not os.path.exists(root / "current.new")
    assert sorted(os.listdir(root / "slots")) == ["a", "b"]  # no leftover .new slot


def test_a_bad_or_missing_signature_changes_nothing(tmp_path, release):
    releases, public, _ = release
    root = tmp_path / "ab"
    assert abupdate("install", releases / "sotto-1.tar", "--key", public, "--root", root).returncode == 0
    tampered = releases / "sotto-2.tar"
    data = bytearray(tampered.read_bytes())
    data[600] ^= 1
    tampered.write_bytes(bytes(data))
    result = abupdate("install", tampered, "--key", public, "--root", root)
    assert result.returncode == 1 and "bad signature" in result.stderr
    os.unlink(str(tampered) + ".sig")
    result = abupdate("install", tampered, "--key", public, "--root", root)
    assert result.returncode == 1 and "unsigned" in result.stderr
    # A tarball renamed: its signature covers the name it was signed under.
    renamed = releases / "sotto-9.tar"
    os.rename(releases / "sotto-1.tar", renamed)
    os.rename(str(releases / "sotto-1.tar") + ".sig", str(renamed) + ".sig")
    result = abupdate("install", renamed, "--key", public, "--root", root)
    assert result.returncode == 1 and "bad signature" in result.stderr
    assert booted(root) == "1" and sorted(os.listdir(root / "slots")) == ["a"]


@pytest.mark.parametrize(
    "member",
    [
        ("../escape.py", tarfile.REGTYPE),
        ("/etc/evil", tarfile.REGTYPE),
        ("firmware/link", tarfile.SYMTYPE),
        ("firmware/dev", tarfile.CHRTYPE),
    ],
)
def test_unsafe_members_are_refused_before_anything_is_written(tmp_path, release, member):
    releases, public, private = release
    root = tmp_path / "ab"
    assert abupdate("install", releases / "sotto-1.tar", "--key", public, "--root", root).returncode == 0
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    info = tarfile.TarInfo(member[0])
    info.type = member[1]
    info.linkname = "/etc/passwd" if member[1] == tarfile.SYMTYPE else ""
    write_tarball(evil_dir / "sotto-3.tar", tree("3"), extra=info)
    provision("sign", evil_dir, "--key", private)  # signed with the right key: the contents still decide
    result = abupdate("install", evil_dir / "sotto-3.tar", "--key", public, "--root", root)
    assert result.returncode == 1, result.stderr
    assert "refused" in result.stderr and result.stderr.count("\n") == 1
    assert booted(root) == "1" and sorted(os.listdir(root / "slots")) == ["a"]
    assert not (tmp_path / "escape.py").exists()


def test_the_running_version_comes_from_the_slot_then_the_package(tmp_path):
    (tmp_path / update.VERSION_FILE).write_text("7.1\n")
    assert update.running_version(str(tmp_path)) == "7.1"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert update.running_version(str(empty)) == importlib.metadata.version("sotto")
