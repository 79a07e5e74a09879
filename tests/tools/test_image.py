"""The image builder end to end: a Raspberry Pi OS Lite stand-in in, checked with mtools and debugfs."""

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


SOURCE = None  # a snapshot of the tree: other work in this checkout must not change it between builds


def snapshot(directory):
    for rel, is_dir, mode in payload.source_tree(str(REPO)):
        target = os.path.join(directory, rel)
        if is_dir:
            os.makedirs(target, exist_ok=True)
        else:
            shutil.copyfile(REPO / rel, target)
            os.chmod(target, mode)
    return directory


def build(base, out, *extra):
    return subprocess.run(
        [sys.executable, "-m", "tools.image", "--base", str(base), "--out", str(out), "--source", SOURCE, *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    global SOURCE
    directory = tmp_path_factory.mktemp("image")
    SOURCE = snapshot(str(tmp_path_factory.mktemp("source")))
    base = standin.make_base(str(directory))
    base_hash = standin.sha256(base)
    out = directory / "sotto.img"
    done = build(base, out, "--board", "sim")
    assert done.returncode == 0, done.stderr
    return {"dir": directory, "base": base, "base_hash": base_hash, "out": str(out)}


def test_base_is_never_modified(built):
    assert standin.sha256(built["base"]) == built["base_hash"]


def test_output_keeps_the_layout_and_is_sparse(built):
    assert standin.partition_offsets(built["out"]) == standin.partition_offsets(built["base"])
    assert os.path.getsize(built["out"]) == os.path.getsize(built["base"])
    assert os.stat(built["out"]).st_blocks * 512 < os.path.getsize(built["out"]) // 2
    leftovers = [n for n in os.listdir(built["dir"]) if n.endswith(".partial")]
    assert leftovers == []


def test_i2c_enabled_once_and_the_rest_of_config_txt_kept(built):
    text = standin.fat_read(built["out"], "/config.txt").decode()
    lines = text.splitlines()
    assert lines.count("dtparam=i2c_arm=on") == 1
    assert "#dtparam=i2c_arm=on" not in lines
    # Uncommented in place, in the common part before the model filters.
    assert lines.index("dtparam=i2c_arm=on") < lines.index("[cm4]")
    for kept in ("dtparam=audio=on", "#dtparam=spi=on", "[cm4]", "otg_mode=1", "[all]"):
        assert kept in lines
    assert standin.fat_read(built["out"], "/cmdline.txt") == standin.fat_read(built["base"], "/cmdline.txt")


def test_configuration_template_on_the_boot_partition(built):
    raw = standin.fat_read(built["out"], "/sotto.toml")
    assert raw is not None
    data = tomllib.loads(raw.decode())
    assert data["board"]["name"] == "sim"
    assert data["data"]["dir"] == "/var/lib/sotto"
    assert data["sip"]["listen"] == "0.0.0.0:5060"
    assert "# uri = " in raw.decode()  # commented template for people to fill in
    payload.validate_config_text(raw.decode(), "sotto.toml")


def _sotto_ids(image):
    for line in standin.ext_read(image, "/etc/passwd").decode().splitlines():
        fields = line.split(":")
        if fields[0] == "sotto":
            return int(fields[2]), int(fields[3]), fields
    raise AssertionError("no sotto user")


def test_sotto_user_and_groups(built):
    uid, gid, fields = _sotto_ids(built["out"])
    assert 100 <= uid < 1000 and uid != 998  # a free system id (998 is systemd-network)
    assert fields[5] == "/var/lib/sotto" and fields[6] == "/usr/sbin/nologin" and fields[1] == "x"
    groups = {}
    for line in standin.ext_read(built["out"], "/etc/group").decode().splitlines():
        name, _, number, members = line.split(":")
        groups[name] = (int(number), members.split(",") if members else [])
    assert groups["sotto"][0] == gid
    assert groups["audio"] == (29, ["pi", "sotto"])  # existing group kept, member added
    for created in ("gpio", "i2c"):
        assert groups[created][1] == ["sotto"]
        assert 100 <= groups[created][0] < 1000
    numbers = [number for number, _ in groups.values()]
    assert len(numbers) == len(set(numbers))
    shadow = standin.ext_read(built["out"], "/etc/shadow").decode().splitlines()
    assert [line for line in shadow if line.startswith("sotto:")] == ["sotto:!*:::::::"]
    assert shadow[:3] == standin.ROOT_FILES["etc/shadow"].splitlines()
    gshadow = standin.ext_read(built["out"], "/etc/gshadow").decode().splitlines()
    assert "audio:*::pi,sotto" in gshadow and "gpio:!::sotto" in gshadow and "sotto:!::" in gshadow
    # Modes and owners of the account files are kept.
    assert standin.ext_stat(built["out"], "/etc/shadow")[1:4] == (0o640, 0, 0)
    assert standin.ext_stat(built["out"], "/etc/passwd")[1:4] == (0o644, 0, 0)


SLOT = "/opt/sotto-ab/slots/a"


def test_firmware_tree_installed(built):
    """The tree is A/B slot a with `current` pointing to it (what the units run); /opt/sotto holds what
    both slots share: the start guard now, the venv after first boot."""
    top = standin.ext_names(built["out"], SLOT)
    for expected in ("firmware", "audio", "boards", "tools", "pyproject.toml", "requirements.txt", "Makefile"):
        assert expected in top
    assert "tests" not in top and ".venv" not in top and ".git" not in top
    for rel in ("firmware/config.py", "tools/firstboot.py", "tools/image/build.py", "requirements.txt"):
        assert standin.ext_read(built["out"], SLOT + "/" + rel) == (pathlib.Path(SOURCE) / rel).read_bytes()
    assert "__pycache__" not in standin.ext_names(built["out"], SLOT + "/firmware")
    assert standin.ext_stat(built["out"], SLOT + "/firmware/config.py")[1:4] == (0o644, 0, 0)
    assert standin.ext_stat(built["out"], SLOT + "/firmware")[:4] == ("directory", 0o755, 0, 0)
    version = tomllib.loads((pathlib.Path(SOURCE) / "pyproject.toml").read_text())["project"]["version"]
    assert standin.ext_read(built["out"], SLOT + "/SOTTO_VERSION") == (version + "\n").encode()
    assert standin.ext_stat(built["out"], "/opt/sotto-ab/current")[0] == "symlink"
    assert standin.ext_stat(built["out"], "/opt/sotto-ab/current")[4] == "slots/a"
    assert standin.ext_names(built["out"], "/opt/sotto-ab") == ["current", "slots"]
    assert standin.ext_names(built["out"], "/opt/sotto") == ["abguard.py"]
    guard = (pathlib.Path(SOURCE) / "tools/abguard.py").read_bytes()
    assert standin.ext_read(built["out"], "/opt/sotto/abguard.py") == guard
    assert standin.ext_stat(built["out"], "/opt/sotto/abguard.py")[1:4] == (0o755, 0, 0)


def test_installed_tree_runs(built, tmp_path):
    """The tree copied into the image is complete: `python -m firmware --help` runs from it, and the
    service's launcher (tools/run_from_slot.py, started through the `current` link as sotto.service does)
    runs the slot's code, resolved to the slot itself."""
    offset = standin.partition_offsets(built["out"])[1][0]
    device = "{}?offset={}".format(built["out"], offset)
    subprocess.run(
        ["debugfs", "-R", "rdump {} {}".format(SLOT, tmp_path), device], capture_output=True, timeout=60, check=True
    )
    tree = tmp_path / "a"
    (tmp_path / "current").symlink_to("a")
    launched = subprocess.run(
        [sys.executable, str(tmp_path / "current/tools/run_from_slot.py"), "--help"],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert launched.returncode == 0, launched.stderr
    assert "run" in launched.stdout and "answer" in launched.stdout
    launcher = str(tmp_path / "current/tools/run_from_slot.py")
    where = subprocess.run(
        [sys.executable, "-c", "import runpy; print(runpy.run_path({!r})['SLOT'])".format(launcher)],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert where.stdout.strip() == str(tree)  # resolved: a later switch of `current` does not mix slots
    where = subprocess.run(
        [sys.executable, "-c", "import firmware; print(firmware.__file__)"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert where.stdout.strip() == str(tree / "firmware" / "__init__.py")  # the copy, not this checkout
    done = subprocess.run(
        [sys.executable, "-m", "firmware", "--help"], cwd=tree, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "run" in done.stdout and "call" in done.stdout and "answer" in done.stdout


def test_units_installed_and_enabled(built):
    for unit in payload.UNITS:
        assert (
            standin.ext_read(built["out"], "/etc/systemd/system/" + unit)
            == (pathlib.Path(SOURCE) / "tools" / "systemd" / unit).read_bytes()
        )
    for wants, unit in payload.ENABLED:
        link = standin.ext_stat(built["out"], "/etc/systemd/system/{}/{}".format(wants, unit))
        assert link is not None and link[0] == "symlink"
        assert link[4] == "/etc/systemd/system/" + unit
    service = standin.ext_read(built["out"], "/etc/systemd/system/sotto.service").decode()
    for line in (
        "Restart=always",
        "Type=notify",
        "WatchdogSec=15",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "ReadWritePaths=/var/lib/sotto",
        "LimitRTPRIO=50",
        "User=sotto",
        "ExecStart=/opt/sotto/.venv/bin/python /opt/sotto-ab/current/tools/run_from_slot.py run"
        " --config /etc/sotto/sotto.toml",
        "StandardOutput=journal",
        "WantedBy=multi-user.target",
    ):
        assert line in service.splitlines()
    assert standin.ext_read(built["out"], "/etc/modules-load.d/sotto.conf").decode().splitlines()[-1] == "i2c-dev"


def test_data_and_config_directories(built):
    uid, gid, _ = _sotto_ids(built["out"])
    assert standin.ext_stat(built["out"], "/var/lib/sotto")[:4] == ("directory", 0o700, uid, gid)
    assert standin.ext_stat(built["out"], "/etc/sotto")[:4] == ("directory", 0o750, 0, gid)


def test_data_file_system_on_the_boot_partition(built, tmp_path):
    uid, gid, _ = _sotto_ids(built["out"])
    data = standin.fat_read(built["out"], "/sotto-data.img")
    assert len(data) == payload.DATA_IMAGE_BYTES
    path = tmp_path / "data.img"
    path.write_bytes(data)
    assert standin.ext_stat(str(path), "/", offset=0)[:4] == ("directory", 0o700, uid, gid)
    check = subprocess.run(["e2fsck", "-fn", str(path)], capture_output=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout


def test_root_file_system_is_consistent(built):
    offset = standin.partition_offsets(built["out"])[1][0]
    check = subprocess.run(
        ["e2fsck", "-fn", "{}?offset={}".format(built["out"], offset)], capture_output=True, timeout=60, check=False
    )
    assert check.returncode == 0, check.stdout


def test_building_over_its_own_output_changes_nothing(built):
    again = built["dir"] / "again.img"
    done = build(built["out"], again)
    assert done.returncode == 0, done.stderr
    assert standin.fat_read(str(again), "/config.txt").decode().splitlines().count("dtparam=i2c_arm=on") == 1
    for path in (
        "/etc/passwd",
        "/etc/group",
        "/etc/shadow",
        "/etc/gshadow",
        SLOT + "/firmware/config.py",
        SLOT + "/SOTTO_VERSION",
        "/opt/sotto/abguard.py",
        "/etc/systemd/system/sotto.service",
    ):
        assert standin.ext_read(str(again), path) == standin.ext_read(built["out"], path)
    for name in ("/config.txt", "/sotto.toml", "/sotto-data.img"):
        assert standin.fat_read(str(again), name) == standin.fat_read(built["out"], name)
    # Nothing was rewritten at all: both partitions are byte for byte the same.
    assert standin.partition_bytes(str(again), 1) == standin.partition_bytes(built["out"], 1)
    assert standin.partition_bytes(str(again), 2) == standin.partition_bytes(built["out"], 2)


def test_given_configuration_goes_to_the_boot_partition_and_survives_a_rebuild(built, tmp_path):
    config = tmp_path / "phone.toml"
    config.write_text('[account]\nuri = "sip:alice@example.org"\npassword = "s3cret"\n\n[board]\nname = "sim"\n')
    first = tmp_path / "with-config.img"
    done = build(built["out"], first, "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert standin.fat_read(str(first), "/sotto.toml") == config.read_bytes()
    second = tmp_path / "rebuilt.img"
    assert build(first, second).returncode == 0
    assert standin.fat_read(str(second), "/sotto.toml") == config.read_bytes()


def test_an_old_tree_is_replaced(built, tmp_path):
    """Files the new tree no longer has disappear from the slot; the device's venv stays. An image of the
    single-tree layout (the tree in /opt/sotto) keeps only the venv and dist/ there."""
    offset = standin.partition_offsets(built["out"])[1][0]
    stale = tmp_path / "stale.img"
    stale.write_bytes(pathlib.Path(built["out"]).read_bytes())
    note = tmp_path / "note"
    note.write_text("old\n")
    units = sorted(os.listdir(pathlib.Path(SOURCE) / "tools/systemd"))
    lines = [
        "mkdir {slot}/old_module",
        "write {note} {slot}/old_module/gone.py",
        "mkdir /opt/sotto/.venv",
        "write {note} /opt/sotto/.venv/keep",
        "mkdir /opt/sotto/dist",
        "write {note} /opt/sotto/dist/MANIFEST",
        # the single-tree layout's leftovers
        "mkdir /opt/sotto/firmware",
        "write {note} /opt/sotto/firmware/config.py",
        "write {note} /opt/sotto/README.md",
        "rm {slot}/firmware/config.py",
        "write {note} {slot}/firmware/config.py",
        "rm {slot}/SOTTO_VERSION",
        "write {note} {slot}/SOTTO_VERSION",
        # a directory where the new tree has a file ...
        "rm {slot}/firmware/runtime/storage.py",
        "mkdir {slot}/firmware/runtime/storage.py",
        "write {note} {slot}/firmware/runtime/storage.py/inner",
    ]
    # ... and a file where it has a directory
    lines += ["rm {slot}/tools/systemd/" + name for name in units]
    lines += ["rmdir {slot}/tools/systemd", "write {note} {slot}/tools/systemd"]
    script = tmp_path / "script"
    script.write_text("\n".join(line.format(note=note, slot=SLOT) for line in lines) + "\n")
    done = subprocess.run(
        ["debugfs", "-w", "-f", str(script), "{}?offset={}".format(stale, offset)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stderr.strip().splitlines()[1:] == []  # only the version banner: the set-up happened
    out = tmp_path / "updated.img"
    done = build(stale, out)
    assert done.returncode == 0, done.stderr
    assert "old_module" not in standin.ext_names(str(out), SLOT)
    assert standin.ext_names(str(out), "/opt/sotto") == [".venv", "abguard.py", "dist"]
    assert standin.ext_read(str(out), "/opt/sotto/.venv/keep") == b"old\n"
    assert standin.ext_read(str(out), "/opt/sotto/dist/MANIFEST") == b"old\n"
    expected = (pathlib.Path(SOURCE) / "firmware/config.py").read_bytes()
    assert standin.ext_read(str(out), SLOT + "/firmware/config.py") == expected
    assert standin.ext_read(str(out), SLOT + "/SOTTO_VERSION") == standin.ext_read(
        built["out"], SLOT + "/SOTTO_VERSION"
    )
    storage = (pathlib.Path(SOURCE) / "firmware/runtime/storage.py").read_bytes()
    assert standin.ext_read(str(out), SLOT + "/firmware/runtime/storage.py") == storage
    assert standin.ext_names(str(out), SLOT + "/tools/systemd") == units
    check = subprocess.run(
        ["e2fsck", "-fn", "{}?offset={}".format(out, offset)], capture_output=True, timeout=60, check=False
    )
    assert check.returncode == 0, check.stdout


def _gpt(path):
    with open(path, "wb") as f:
        f.truncate(8 * standin.MIB)
    standin.run(["sfdisk", "-q", path], input=b"label: gpt\nsize=4MiB, type=L\n")


def _random(path):
    with open(path, "wb") as f:
        f.write(os.urandom(3 * standin.MIB))


def _fat_only(path, base):
    with open(base, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    table = "label: dos\nstart={}, size={}, type=c\n".format(standin.BOOT_START // 512, standin.BOOT_SIZE // 512)
    standin.run(["sfdisk", "-q", "--no-reread", path], input=table.encode())


def _wrong_types(path, base):
    with open(base, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    table = "label: dos\nstart={}, size={}, type=83\nstart={}, size={}, type=c\n".format(
        standin.BOOT_START // 512, standin.BOOT_SIZE // 512, standin.ROOT_START // 512, standin.ROOT_SIZE // 512
    )
    standin.run(["sfdisk", "-q", "--no-reread", path], input=table.encode())


@pytest.mark.parametrize("kind", ["random", "gpt", "no-ext4", "wrong-types", "missing", "no-config-txt", "xz"])
def test_bad_base_is_refused_with_one_line_and_no_output(built, tmp_path, kind):
    bad = str(tmp_path / "bad.img")
    expected = {
        "random": "no partition table",
        "gpt": "partition table is gpt",
        "no-ext4": "no ext4 root partition",
        "wrong-types": "has a FAT type but holds no FAT file system",
        "missing": "no such file",
        "no-config-txt": "has no config.txt",
        "xz": "compressed image; decompress it first (xz -dk",
    }[kind]
    if kind == "random":
        _random(bad)
    elif kind == "gpt":
        _gpt(bad)
    elif kind == "no-ext4":
        _fat_only(bad, built["base"])
    elif kind == "wrong-types":
        _wrong_types(bad, built["base"])
    elif kind == "xz":
        with open(bad, "wb") as f:
            f.write(b"\xfd7zXZ\x00" + os.urandom(4096))
    elif kind == "no-config-txt":
        directory = tmp_path / "noconf"
        directory.mkdir()
        bad = standin.make_base(str(directory), config_txt=None)
    out = tmp_path / "out.img"
    done = build(bad, out)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(n for n in os.listdir(tmp_path) if n != "out.img")
    assert not out.exists()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".partial")]


def test_out_same_as_base_is_refused(built, tmp_path):
    base = tmp_path / "same.img"
    base.write_bytes(pathlib.Path(built["out"]).read_bytes())
    before = standin.sha256(str(base))
    done = build(base, base)
    assert done.returncode == 2 and "OUT must be another file than BASE" in done.stderr
    assert standin.sha256(str(base)) == before


def test_bad_configuration_and_unknown_board_are_refused(built, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[media]\ncodecs = ['MP3']\n")
    out = tmp_path / "out.img"
    done = build(built["base"], out, "--config", str(config))
    assert done.returncode == 2 and "media.codecs" in done.stderr and len(done.stderr.splitlines()) == 1
    done = build(built["base"], out, "--board", "no-such-board")
    assert done.returncode == 2 and "unknown board" in done.stderr
    assert not out.exists()


def test_config_and_board_together(built, tmp_path):
    """`make image ... CONFIG=... BOARD=...`, as the guide writes it: the board joins the configuration."""
    config = tmp_path / "phone.toml"
    config.write_text('[account]\nuri = "sip:alice@example.org"\n')
    out = tmp_path / "both.img"
    done = build(built["out"], out, "--config", str(config), "--board", "pi4-oled")
    assert done.returncode == 0, done.stderr
    written = tomllib.loads(standin.fat_read(str(out), "/sotto.toml").decode())
    assert written["board"]["name"] == "pi4-oled" and written["account"]["uri"] == "sip:alice@example.org"
    config.write_text('[board]\nname = "pi5"\n')
    refused = build(built["out"], tmp_path / "conflict.img", "--config", str(config), "--board", "pi4-oled")
    assert refused.returncode == 2 and "give one of them" in refused.stderr
    assert not (tmp_path / "conflict.img").exists()


def test_device_environment_is_carried_and_replaced_when_it_changes(built, tmp_path):
    from tools.image import deviceenv

    dist = tmp_path / "env"
    (dist / "debs").mkdir(parents=True)
    (dist / "venv-aarch64.tar").write_bytes(b"archive one")
    (dist / "debs" / "libopus0_1.3.1-3_arm64.deb").write_bytes(b"deb")
    deviceenv.write_manifest(str(dist), {"machine": "aarch64", "python": "3.11.2", "imports": []})
    first = tmp_path / "with-env.img"
    done = build(built["out"], first, "--dist", str(dist))
    assert done.returncode == 0, done.stderr
    assert standin.ext_read(str(first), "/opt/sotto/dist/MANIFEST") == (dist / "MANIFEST").read_bytes()
    assert standin.ext_read(str(first), "/opt/sotto/dist/venv-aarch64.tar") == b"archive one"
    assert standin.ext_read(str(first), "/opt/sotto/dist/debs/libopus0_1.3.1-3_arm64.deb") == b"deb"
    # The same environment again: the partitions stay byte for byte the same.
    again = tmp_path / "again.img"
    assert build(first, again, "--dist", str(dist)).returncode == 0
    assert standin.partition_bytes(str(again), 2) == standin.partition_bytes(str(first), 2)
    # A new one replaces the old, and a tree update without --dist keeps it.
    (dist / "venv-aarch64.tar").write_bytes(b"archive two")
    (dist / "debs" / "libopus0_1.3.1-3_arm64.deb").unlink()
    deviceenv.write_manifest(str(dist), {"machine": "aarch64", "python": "3.11.2", "imports": []})
    second = tmp_path / "new-env.img"
    assert build(again, second, "--dist", str(dist)).returncode == 0
    assert standin.ext_read(str(second), "/opt/sotto/dist/venv-aarch64.tar") == b"archive two"
    assert standin.ext_read(str(second), "/opt/sotto/dist/debs/libopus0_1.3.1-3_arm64.deb") is None
    kept = tmp_path / "kept.img"
    assert build(second, kept).returncode == 0
    assert standin.ext_read(str(kept), "/opt/sotto/dist/MANIFEST") == (dist / "MANIFEST").read_bytes()
    missing = build(built["out"], tmp_path / "no.img", "--dist", str(tmp_path))
    assert missing.returncode == 2 and "not a device environment" in missing.stderr
