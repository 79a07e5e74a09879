"""The installer into a temporary root (--root): same result as the image, idempotent, uninstall."""

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tomllib

import pytest

from tests.tools import standin
from tools.image import payload

REPO = pathlib.Path(__file__).resolve().parents[2]
SOURCE = None


def snapshot_source(directory):
    for rel, is_dir, mode in payload.source_tree(str(REPO)):
        target = os.path.join(directory, rel)
        if is_dir:
            os.makedirs(target, exist_ok=True)
        else:
            shutil.copyfile(REPO / rel, target)
            os.chmod(target, mode)
    return directory


@pytest.fixture(scope="module", autouse=True)
def source(tmp_path_factory):
    global SOURCE
    SOURCE = snapshot_source(str(tmp_path_factory.mktemp("source")))
    return SOURCE


def install(root, *extra):
    # The installer installs the tree it runs from: run the snapshot's copy of it.
    return subprocess.run(
        [sys.executable, "-m", "tools.install", "--root", str(root), *extra],
        cwd=SOURCE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def make_root(directory):
    root = pathlib.Path(directory)
    for rel, text in standin.ROOT_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o640 if rel.endswith("shadow") else 0o644)
    (root / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
    boot = root / "boot/firmware"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text(standin.CONFIG_TXT)
    (boot / "cmdline.txt").write_text("console=serial0,115200 root=PARTUUID=5e3da3da-02\n")
    return root


def state(root):
    """Every path under root with type, mode, owner, content hash and mtime: 'changes nothing' means equal."""
    found = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(current, name)
            info = os.lstat(path)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                found[rel] = ("dir", info.st_mode, info.st_uid, info.st_gid)
            else:
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                found[rel] = ("file", info.st_mode, info.st_uid, info.st_gid, digest, info.st_mtime_ns, info.st_ino)
    return found


@pytest.fixture
def installed(tmp_path):
    root = make_root(tmp_path / "root")
    done = install(root, "--board", "sim")
    assert done.returncode == 0, done.stderr
    return root


def _ids(root):
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "sotto":
            return int(fields[2]), int(fields[3])
    return None


SLOT = "opt/sotto-ab/slots/a"


def test_install_puts_everything_in_place(installed):
    root = installed
    expected = (pathlib.Path(SOURCE) / "firmware/config.py").read_bytes()
    # The tree is A/B slot a, `current` points to it; /opt/sotto holds only the shared environment.
    assert (root / SLOT / "firmware/config.py").read_bytes() == expected
    assert not (root / SLOT / "tests").exists()
    assert os.readlink(root / "opt/sotto-ab/current") == "slots/a"
    version = tomllib.loads((pathlib.Path(SOURCE) / "pyproject.toml").read_text())["project"]["version"]
    assert (root / SLOT / "SOTTO_VERSION").read_text() == version + "\n"
    assert (root / "opt/sotto-ab/current/firmware/config.py").read_bytes() == expected
    assert sorted(os.listdir(root / "opt/sotto")) == ["abguard.py"]
    assert (root / "opt/sotto/abguard.py").read_bytes() == (pathlib.Path(SOURCE) / "tools/abguard.py").read_bytes()
    assert (root / "opt/sotto/abguard.py").stat().st_mode & 0o777 == 0o755
    for unit in payload.UNITS:
        assert (root / "etc/systemd/system" / unit).read_bytes() == (
            pathlib.Path(SOURCE) / "tools/systemd" / unit
        ).read_bytes()
    for wants, unit in payload.ENABLED:
        link = root / "etc/systemd/system" / wants / unit
        assert os.readlink(link) == "/etc/systemd/system/" + unit
    config_txt = (root / "boot/firmware/config.txt").read_text().splitlines()
    assert config_txt.count("dtparam=i2c_arm=on") == 1
    template = tomllib.loads((root / "boot/firmware/sotto.toml").read_text())
    assert template["board"]["name"] == "sim" and template["data"]["dir"] == "/var/lib/sotto"
    uid, gid = _ids(root)
    assert "gpio" in (root / "etc/group").read_text() and "sotto:!*:::::::" in (root / "etc/shadow").read_text()
    data = root / "var/lib/sotto"
    assert (data.stat().st_mode & 0o777, data.stat().st_uid, data.stat().st_gid) == (0o700, uid, gid)
    etc = root / "etc/sotto"
    assert (etc.stat().st_mode & 0o777, etc.stat().st_gid) == (0o750, gid)
    image = root / "boot/firmware/sotto-data.img"
    assert image.stat().st_size == payload.DATA_IMAGE_BYTES
    assert standin.ext_stat(str(image), "/", offset=0)[:4] == ("directory", 0o700, uid, gid)
    assert (root / "etc/shadow").stat().st_mode & 0o777 == 0o640


def test_second_install_changes_nothing(installed):
    before = state(installed)
    again = install(installed, "--board", "sim")
    assert again.returncode == 0, again.stderr
    assert "nothing to change" in again.stderr
    assert state(installed) == before


def test_update_replaces_the_tree_and_keeps_the_venv(installed):
    tree = installed / SLOT
    env = installed / "opt/sotto"
    (tree / "firmware/config.py").write_text("# edited\n")
    (tree / "firmware/stale_module.py").write_text("x = 1\n")
    (tree / "old_dir").mkdir()
    (tree / "old_dir/gone.txt").write_text("old\n")
    (env / ".venv/bin").mkdir(parents=True)
    (env / ".venv/bin/python").write_text("venv\n")
    (tree / "SOTTO_VERSION").write_text("9.9\n")
    (installed / "boot/firmware/sotto-data.img").write_bytes(b"my ZRTP cache")
    # A directory where the new tree has a file, a file where it has a directory, a symlink.
    (tree / "firmware/runtime/storage.py").unlink()
    (tree / "firmware/runtime/storage.py").mkdir()
    (tree / "firmware/runtime/storage.py/inner").write_text("old\n")
    shutil.rmtree(tree / "tools/systemd")
    (tree / "tools/systemd").write_text("old\n")
    (tree / "firmware/errors.py").unlink()
    (tree / "firmware/errors.py").symlink_to("/etc/passwd")
    done = install(installed)
    assert done.returncode == 0, done.stderr
    assert (tree / "firmware/config.py").read_bytes() == (pathlib.Path(SOURCE) / "firmware/config.py").read_bytes()
    assert not (tree / "firmware/stale_module.py").exists() and not (tree / "old_dir").exists()
    assert (env / ".venv/bin/python").read_text() == "venv\n"
    assert (tree / "SOTTO_VERSION").read_text() != "9.9\n"
    for rel in ("firmware/runtime/storage.py", "firmware/errors.py", "tools/systemd/sotto.service"):
        assert not (tree / rel).is_symlink()
        assert (tree / rel).read_bytes() == (pathlib.Path(SOURCE) / rel).read_bytes()
    assert (installed / "boot/firmware/sotto-data.img").read_bytes() == b"my ZRTP cache"


def test_an_install_of_the_single_tree_layout_moves_to_slot_a(tmp_path):
    """Before the A/B layout, /opt/sotto held the tree; an update by install.py keeps only the venv and
    dist/ there and puts the tree in slot a."""
    root = make_root(tmp_path / "root")
    old = root / "opt/sotto"
    (old / "firmware").mkdir(parents=True)
    (old / "firmware/config.py").write_text("old\n")
    (old / "README.md").write_text("old\n")
    (old / ".venv/bin").mkdir(parents=True)
    (old / ".venv/bin/python").write_text("venv\n")
    (old / "dist").mkdir()
    (old / "dist/MANIFEST").write_text("manifest\n")
    done = install(root, "--board", "sim")
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(old)) == [".venv", "abguard.py", "dist"]
    assert (old / ".venv/bin/python").read_text() == "venv\n" and (old / "dist/MANIFEST").exists()
    assert (root / SLOT / "firmware/config.py").read_bytes() == (
        pathlib.Path(SOURCE) / "firmware/config.py"
    ).read_bytes()


def test_an_install_after_an_update_refreshes_the_slot_in_use(installed):
    """After tools/abupdate.py switched to slot b, install.py (a `git pull` update) writes slot b."""
    ab = installed / "opt/sotto-ab"
    shutil.copytree(ab / "slots/a", ab / "slots/b", symlinks=True)
    (ab / "slots/b/firmware/config.py").write_text("# b\n")
    os.unlink(ab / "current")
    os.symlink("slots/b", ab / "current")
    done = install(installed)
    assert done.returncode == 0, done.stderr
    assert os.readlink(ab / "current") == "slots/b"
    expected = (pathlib.Path(SOURCE) / "firmware/config.py").read_bytes()
    assert (ab / "slots/b/firmware/config.py").read_bytes() == expected


def test_uninstall_keeps_user_config_and_data_and_purge_removes_them(installed):
    config = installed / "etc/sotto/sotto.toml"
    config.write_text('[board]\nname = "sim"\n')
    done = install(installed, "--uninstall")
    assert done.returncode == 0, done.stderr
    assert not (installed / "opt/sotto").exists() and not (installed / "opt/sotto-ab").exists()
    assert not (installed / "etc/systemd/system/sotto.service").exists()
    assert not (installed / "etc/systemd/system/sotto-update.path").exists()
    assert not (installed / "etc/systemd/system/multi-user.target.wants/sotto.service").exists()
    assert not (installed / "etc/modules-load.d/sotto.conf").exists()
    assert _ids(installed) is not None and config.exists()
    assert (installed / "boot/firmware/sotto-data.img").exists()
    assert (installed / "boot/firmware/sotto.toml").exists()
    assert install(installed, "--uninstall").returncode == 0  # again: nothing left to do, no error
    done = install(installed, "--uninstall", "--purge")
    assert done.returncode == 0, done.stderr
    assert _ids(installed) is None
    for text in ((installed / "etc/group").read_text(), (installed / "etc/gshadow").read_text()):
        assert "sotto" not in text
    assert "sotto" not in (installed / "etc/shadow").read_text()
    assert not (installed / "etc/sotto").exists() and not (installed / "boot/firmware/sotto-data.img").exists()
    # What was there before Sotto is intact.
    assert (installed / "etc/passwd").read_text() == standin.ROOT_FILES["etc/passwd"]
    assert (installed / "etc/shadow").read_text() == standin.ROOT_FILES["etc/shadow"]


def test_same_result_as_the_image(tmp_path):
    image_dir = tmp_path / "image"
    image_dir.mkdir()
    base = standin.make_base(str(image_dir))
    out = image_dir / "sotto.img"
    built = subprocess.run(
        [sys.executable, "-m", "tools.image", "--base", base, "--out", str(out), "--source", SOURCE, "--board", "sim"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    root = make_root(tmp_path / "root")
    assert install(root, "--board", "sim").returncode == 0
    for rel in (
        "etc/passwd",
        "etc/group",
        "etc/shadow",
        "etc/gshadow",
        "etc/systemd/system/sotto.service",
        "etc/modules-load.d/sotto.conf",
        "etc/systemd/system/sotto-update.path",
        "etc/systemd/system/sotto-update.service",
        "opt/sotto-ab/slots/a/tools/install.py",
        "opt/sotto-ab/slots/a/SOTTO_VERSION",
        "opt/sotto/abguard.py",
    ):
        assert standin.ext_read(str(out), "/" + rel) == (root / rel).read_bytes(), rel
    assert standin.ext_stat(str(out), "/opt/sotto-ab/current")[4] == os.readlink(root / "opt/sotto-ab/current")
    for name in ("config.txt", "sotto.toml"):
        assert standin.fat_read(str(out), "/" + name) == (root / "boot/firmware" / name).read_bytes(), name


def test_refusals(tmp_path):
    done = install(tmp_path / "missing")
    assert done.returncode == 2 and "no such directory" in done.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    done = install(empty)
    assert done.returncode == 2 and "not a Raspberry Pi OS system" in done.stderr
    root = make_root(tmp_path / "root")
    bad = tmp_path / "bad.toml"
    bad.write_text("[zrtp]\nciphers = ['ROT13']\n")
    done = install(root, "--config", str(bad))
    assert done.returncode == 2 and "zrtp.ciphers" in done.stderr
    assert not (root / "opt/sotto").exists() and not (root / "opt/sotto-ab").exists()


def test_on_a_running_system_systemd_is_reloaded_and_the_services_started(tmp_path):
    from tools.install import Installer, InstallError

    root = make_root(tmp_path / "root")
    calls = []
    installer = Installer(str(root), source=SOURCE, log=lambda message: None, run=lambda argv: calls.append(argv) or 0)
    installer.install(board="sim")
    assert calls == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "start", "var-lib-sotto.mount"],
        ["systemctl", "restart", "sotto-firstboot.service"],
        ["systemctl", "restart", "sotto.service"],
        ["systemctl", "start", "sotto-update.path"],
    ]
    calls.clear()
    installer.uninstall()
    assert calls == [
        ["systemctl", "disable", "--now", "sotto-update.path", "sotto.service", "sotto-firstboot.service"],
        ["systemctl", "daemon-reload"],
    ]
    failing = Installer(str(root), source=SOURCE, log=lambda message: None, run=lambda argv: 1)
    with pytest.raises(InstallError, match="systemctl daemon-reload failed"):
        failing.install(board="sim", start=False)


def test_an_update_bundle_installs_its_environment(tmp_path):
    """The update path without a git checkout: the bundle `make bundle` writes, unpacked, then install.py."""
    from tools.image import deviceenv

    dist = tmp_path / "env"
    (dist / "debs").mkdir(parents=True)
    (dist / "venv-aarch64.tar").write_bytes(b"venv archive")
    (dist / "debs" / "libopus0_1.3.1-3_arm64.deb").write_bytes(b"deb")
    deviceenv.write_manifest(str(dist), {"machine": "aarch64", "python": "3.11.2", "imports": []})
    bundle = tmp_path / "sotto-update.tar"
    deviceenv.write_bundle(str(bundle), str(dist), SOURCE)
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-xf", str(bundle), "-C", str(unpacked)], check=True, timeout=60)
    root = make_root(tmp_path / "root")
    done = subprocess.run(
        [sys.executable, "-m", "tools.install", "--root", str(root), "--board", "sim"],
        cwd=str(unpacked / "sotto"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    installed_dist = root / "opt/sotto/dist"
    assert (installed_dist / "MANIFEST").read_bytes() == (dist / "MANIFEST").read_bytes()
    assert (installed_dist / "venv-aarch64.tar").read_bytes() == b"venv archive"
    assert (installed_dist / "debs/libopus0_1.3.1-3_arm64.deb").read_bytes() == b"deb"
    assert (root / SLOT / "firmware/config.py").exists()
    # Again: nothing to change, and the environment is kept by a plain checkout's install too.
    again = install(root, "--board", "sim")
    assert again.returncode == 0 and (installed_dist / "MANIFEST").exists()
