"""tools/firstboot.py: config import, data directory, and the offline installation from the image."""

import os
import pathlib
import subprocess
import sys

import pytest

from tests.tools.test_install import make_root
from tools import firstboot
from tools.image import deviceenv, payload

REPO = pathlib.Path(__file__).resolve().parents[2]


def run(root, step):
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "firstboot.py"), step, "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def add_user(root):
    with open(root / "etc/passwd", "a") as f:
        f.write("sotto:x:999:999::/var/lib/sotto:/usr/sbin/nologin\n")
    with open(root / "etc/group", "a") as f:
        f.write("sotto:x:999:\n")


def test_import_config_copies_when_changed(tmp_path):
    root = make_root(tmp_path / "root")
    add_user(root)
    boot = root / "boot/firmware/sotto.toml"
    boot.write_text('[board]\nname = "sim"\n')
    done = run(root, "import-config")
    assert done.returncode == 0, done.stderr
    target = root / "etc/sotto/sotto.toml"
    assert target.read_bytes() == boot.read_bytes()
    info = target.stat()
    assert info.st_mode & 0o777 == 0o640
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid) == (0, 999)
    before = info.st_mtime_ns, info.st_ino
    assert run(root, "import-config").returncode == 0
    assert (target.stat().st_mtime_ns, target.stat().st_ino) == before  # unchanged: not rewritten
    boot.write_text('[board]\nname = "other"\n')
    assert run(root, "import-config").returncode == 0
    assert target.read_bytes() == boot.read_bytes()


def test_import_config_without_a_boot_file_keeps_the_old_one(tmp_path):
    root = make_root(tmp_path / "root")
    (root / "etc/sotto").mkdir()
    (root / "etc/sotto/sotto.toml").write_text("# kept\n")
    done = run(root, "import-config")
    assert done.returncode == 0 and "keeping" in done.stdout
    assert (root / "etc/sotto/sotto.toml").read_text() == "# kept\n"


def test_data_dir_is_private_to_sotto(tmp_path):
    root = make_root(tmp_path / "root")
    add_user(root)
    assert run(root, "data-dir").returncode == 0
    info = (root / "var/lib/sotto").stat()
    assert info.st_mode & 0o777 == 0o700
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid) == (999, 999)


def test_deps_refuses_a_root_prefix(tmp_path):
    done = run(tmp_path, "deps")
    assert done.returncode == 2 and "--root" in done.stderr


def _dist(tree, machine=None, python=None, imports=("json",)):
    """A device environment like tools/image/deviceenv.py makes, for this host: a real venv (Debian's
    python3, no pip), archived with tar, and its MANIFEST."""
    work = tree / "build"
    venv = work / ".venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (venv / "bin" / "sotto").write_text("#!/bin/sh\n")
    dist = tree / "dist"
    dist.mkdir(parents=True)
    subprocess.run(["tar", "-cf", str(dist / "venv-test.tar"), "-C", str(work), ".venv"], check=True, timeout=120)
    (dist / "versions.txt").write_text("# test\n")
    version = subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deviceenv.write_manifest(
        str(dist), {"machine": machine or os.uname().machine, "python": python or version, "imports": list(imports)}
    )
    return dist


def _install(tree, cwd=None):
    # The system's python3 runs first boot on the device; the dev venv's python is another version.
    code = (
        "import sys; sys.path.insert(0, {!r}); from tools import firstboot; print(firstboot.install_dependencies({!r}))"
    )
    return subprocess.run(
        ["/usr/bin/python3", "-c", code.format(str(REPO), str(tree))],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_deps_unpacks_the_venv_from_the_image_offline_then_stops(tmp_path):
    tree = tmp_path / "sotto"
    _dist(tree)
    done = _install(tree)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("True")
    assert (tree / ".venv" / "bin" / "python").exists() and (tree / ".venv" / ".sotto-deps").exists()
    assert not (tree / ".venv.new").exists() and not (tree / ".venv.old").exists()
    again = _install(tree)
    assert again.returncode == 0 and again.stdout.strip().endswith("False") and "up to date" in again.stdout


def test_the_shared_venv_imports_the_firmware_from_the_slot(tmp_path):
    """The venv is in /opt/sotto, the firmware in the slot first boot runs from: its import check finds the
    slot's modules (not the working directory's), and the venv gets a .pth naming /opt/sotto-ab/current
    for the `sotto` command run by hand."""
    tree = tmp_path / "sotto"
    _dist(tree, imports=("firmware.runtime.update", "boards.drivers.displays"))
    done = _install(tree, cwd="/")
    assert done.returncode == 0, done.stderr
    (pth,) = (tree / ".venv" / "lib").glob("python3*/site-packages/" + firstboot.SLOT_PTH)
    assert pth.read_text() == payload.CURRENT + "\n"
    pth.unlink()
    again = _install(tree, cwd="/")  # up to date, and the .pth is put back
    assert again.returncode == 0 and "up to date" in again.stdout and pth.read_text() == payload.CURRENT + "\n"


def test_deps_refuses_a_damaged_archive_with_one_line(tmp_path):
    tree = tmp_path / "sotto"
    dist = _dist(tree)
    with open(dist / "venv-test.tar", "r+b") as f:
        f.seek(600)
        f.write(b"X")
    done = _install(tree)
    assert done.returncode != 0
    assert "FirstBootError" in done.stderr and "damaged (checksum)" in done.stderr
    assert not (tree / ".venv").exists()


def test_deps_refuses_another_machine_or_python(tmp_path):
    _dist(tmp_path / "a", machine="armv7l")
    done = _install(tmp_path / "a")
    assert "is for armv7l" in done.stderr
    _dist(tmp_path / "b", python="3.9.2")
    done = _install(tmp_path / "b")
    assert "built for Python 3.9.2" in done.stderr


def test_deps_checks_the_imports_before_switching(tmp_path):
    tree = tmp_path / "sotto"
    _dist(tree, imports=("no_such_module_here",))
    done = _install(tree)
    assert "No module named 'no_such_module_here'" in done.stderr
    assert not (tree / ".venv").exists()


def test_deps_without_an_environment_says_so():
    with pytest.raises(firstboot.FirstBootError, match="carries no environment"):
        firstboot.install_dependencies("/nonexistent-sotto-tree")


def test_a_failure_is_one_line_in_the_journal_and_a_file(tmp_path, capsys):
    firstboot.record_failure("the card is damaged", str(tmp_path / "failed"))
    assert capsys.readouterr().err == "sotto-firstboot: FAILED: the card is damaged\n"
    assert (tmp_path / "failed").read_text() == "the card is damaged\n"
