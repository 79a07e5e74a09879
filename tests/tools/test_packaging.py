"""The project installs with Debian bookworm's own Python toolchain (Raspberry Pi OS: setuptools 66.1).

Not the dev venv's tools: /usr/bin/python3's venv module bootstraps the pip and setuptools wheels Debian
ships (python3-pip-whl, python3-setuptools-whl; python3-wheel-whl gives setuptools its bdist_wheel), and
the tree installed is the one the image ships (tools.image.payload.source_tree). No network: --no-index,
--no-build-isolation.
"""

import os
import pathlib
import shutil
import subprocess
import tomllib

from tools.image import payload

REPO = pathlib.Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = "/usr/bin/python3"
DEBIAN_WHEELS = "/usr/share/python-wheels"


def _debian_setuptools():
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "python3-setuptools-whl"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, "Debian package python3-setuptools-whl missing (make system-test installs it)"
    return done.stdout.split("-")[0]


def _shipped_tree(target):
    for rel, is_dir, _mode in payload.source_tree(str(REPO)):
        if is_dir:
            (target / rel).mkdir(parents=True, exist_ok=True)
        else:
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, target / rel)
    return target


def _run(args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, timeout=240, check=False, **kwargs)
    assert done.returncode == 0, "{}\n{}{}".format(" ".join(map(str, args)), done.stdout, done.stderr)
    return done


def test_build_requirement_is_met_by_bookworm_setuptools():
    debian = tuple(int(part) for part in _debian_setuptools().split(".")[:2])
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    for requirement in requires:
        name, _, minimum = requirement.partition(">=")
        assert name.strip() == "setuptools" and minimum, requirement
        assert tuple(int(part) for part in minimum.split(".")[:2]) <= debian, requirement


def test_installs_with_debian_python_and_setuptools(tmp_path):
    assert os.path.exists(DEBIAN_PYTHON), "Debian's python3 missing"
    source = _shipped_tree(tmp_path / "sotto")
    venv = tmp_path / "venv"
    _run([DEBIAN_PYTHON, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    version = _run([python, "-c", "import setuptools; print(setuptools.__version__)"]).stdout.strip()
    assert version == _debian_setuptools(), "the venv must use Debian's setuptools, not {}".format(version)
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    # setuptools 66 builds wheels (editable ones too) with the `wheel` package: Debian's python3-wheel-whl.
    _run([python, "-m", "pip", "install", "--find-links", DEBIAN_WHEELS, "wheel"], env=env)
    # Editable, as first boot and tools/install.py install it: the `sotto` command runs /opt/sotto's code.
    _run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-e", str(source)], env=env)
    assert (venv / "bin" / "sotto").exists()
    found = _run([python, "-c", "import firmware, boards; print(firmware.__file__)"], cwd=str(tmp_path)).stdout
    assert found.strip().startswith(str(source))
    # A regular install too: the package data (board files, default config) must be in it.
    _run([python, "-m", "pip", "uninstall", "-y", "sotto"], env=env)
    _run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", str(source)], env=env)
    site = _run(
        [python, "-c", "import boards, os; print(os.path.dirname(boards.__file__))"], cwd=str(tmp_path)
    ).stdout.strip()
    assert "site-packages" in site and any(name.endswith(".toml") for name in os.listdir(site))
