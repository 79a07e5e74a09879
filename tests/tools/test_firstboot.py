"""tools/firstboot.py: config import, data directory, and the Debian/PyPI dependency plan."""

import os
import pathlib
import subprocess
import sys

from tests.tools.test_install import make_root
from tools import firstboot

REPO = pathlib.Path(__file__).resolve().parents[2]


def run(root, step):
    return subprocess.run([sys.executable, str(REPO / "tools" / "firstboot.py"), step, "--root", str(root)],
                          capture_output=True, text=True, timeout=60, check=False)


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


def test_requirements_parsing():
    text = "# comment\n-r other.txt\ncryptography==50.0.2\nluma.oled==3.16.0  # display\n\nsmbus2>=0.4\n"
    assert firstboot.parse_requirements(text) == [
        ("cryptography", "cryptography==50.0.2"), ("luma.oled", "luma.oled==3.16.0"), ("smbus2", "smbus2>=0.4"),
    ]


def test_plan_prefers_debian_packages_and_falls_back_to_pypi():
    requirements = firstboot.parse_requirements(
        "cryptography==50.0.2\nsmbus2==0.6.1\ng722==1.2.8\npyalsaaudio==0.11.0\n")
    available = {"python3-venv", "libopus0", "python3-cryptography", "python3-smbus2", "python3-rpi-lgpio",
                 "python3-rpi.gpio"}
    apt, checks = firstboot.plan_dependencies(requirements, available)
    assert apt == ["python3-venv", "libopus0", "python3-cryptography", "python3-smbus2", "python3-rpi-lgpio"]
    assert "python3-setuptools" in firstboot.plan_dependencies([], {"python3-setuptools"})[0]
    # Everything is still checked in the venv; whatever does not import comes from PyPI, pinned.
    assert checks == [("cryptography==50.0.2", "cryptography"), ("smbus2==0.6.1", "smbus2"),
                      ("g722==1.2.8", "g722"), ("pyalsaaudio==0.11.0", "alsaaudio")]


def test_plan_takes_classic_rpi_gpio_when_lgpio_is_missing():
    apt, _ = firstboot.plan_dependencies([], {"python3-rpi.gpio"})
    assert apt == ["python3-rpi.gpio"]


class FakeSystem:
    """Records commands; pretends apt knows `available` and the venv imports `importable`."""

    def __init__(self, available, importable):
        self.available = set(available)
        self.importable_modules = set(importable)
        self.commands = []

    def run(self, args, env=None):
        self.commands.append(list(args))
        if args[1:4] == ["-m", "venv", "--system-site-packages"]:
            os.makedirs(os.path.join(args[4], "bin"))
            open(os.path.join(args[4], "bin", "python"), "w").close()
        if "-e" in args:  # the editable install creates the command
            open(os.path.join(args[-1], ".venv", "bin", "sotto"), "w").close()

    def apt_available(self, names):
        return self.available & set(names)

    def importable(self, python, module):
        return module in self.importable_modules


def test_install_dependencies_takes_debian_first_pypi_for_the_rest_then_stops(tmp_path):
    tree = tmp_path / "sotto"
    tree.mkdir()
    (tree / "requirements.txt").write_text("cryptography==50.0.2\nsmbus2==0.6.1\ng722==1.2.8\n")
    (tree / "pyproject.toml").write_text("[project]\nname = 'sotto'\n")
    system = FakeSystem({"python3-venv", "python3-setuptools", "python3-smbus2", "python3-cryptography",
                         "python3-rpi-lgpio", "build-essential", "python3-dev"}, {"cryptography", "smbus2"})
    assert firstboot.install_dependencies(str(tree), system) is True
    venv_python = str(tree / ".venv" / "bin" / "python")
    assert system.commands == [
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "python3-venv", "python3-setuptools",
         "python3-cryptography", "python3-smbus2", "python3-rpi-lgpio"],
        ["python3", "-m", "venv", "--system-site-packages", str(tree / ".venv")],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "build-essential", "python3-dev"],
        [venv_python, "-m", "pip", "install", "-q", "g722==1.2.8"],
        [venv_python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(tree)],
    ]
    # Next boot: nothing to do.
    again = FakeSystem(system.available, system.importable_modules)
    assert firstboot.install_dependencies(str(tree), again) is False and again.commands == []
    # A changed pin runs it again (the venv is reused).
    (tree / "requirements.txt").write_text("cryptography==50.0.2\nsmbus2==0.6.1\ng722==1.2.9\n")
    third = FakeSystem(system.available, system.importable_modules | {"g722"})
    assert firstboot.install_dependencies(str(tree), third) is True
    assert ["python3", "-m", "venv", "--system-site-packages", str(tree / ".venv")] not in third.commands
    assert not [c for c in third.commands if c[-1] == "g722==1.2.9"]  # already importable: no PyPI
