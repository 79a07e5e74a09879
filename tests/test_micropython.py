"""The core must import and run under MicroPython (DESIGN.md, "MicroPython-compatible subset").

Every module under firmware/ and audio/ is core except the host-only ones listed in HOST_ONLY: they do
I/O or wrap a CPython-only library by design. Core test modules that set `MICROPYTHON = True` are run
under the `micropython` command with tests/micropython/runner.py.
"""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
MICROPYTHON = pathlib.Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "micropython"

# Host-only modules: the shell and the adapters around CPython-only libraries and hardware.
HOST_ONLY = (
    "firmware/__main__.py",
    "firmware/cli.py",
    "firmware/config.py",  # tomllib
    "firmware/validation.py",  # tomllib, files: the validator of config.py and boards/schema.py
    "firmware/runtime/",  # the shell: sockets, threads, files, clocks
    "audio/alsa.py",  # pyalsaaudio
    "audio/wavfile.py",  # files, the stdlib wave module
    "audio/g722.py",  # the PyPI g722 extension
    "audio/opus.py",  # libopus through opuslib
    "boards/drivers/",  # RPi.GPIO, smbus2, Pillow, the terminal (the display drivers are portable, tested alone)
    "boards/schema.py",  # tomllib
)


def _is_host_only(rel):
    return any(rel == h or (h.endswith("/") and rel.startswith(h)) for h in HOST_ONLY)


def core_modules():
    found = []
    for top in ("firmware", "audio"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if _is_host_only(rel):
                continue
            module = rel[: -len(".py")].replace("/", ".")
            if module.endswith(".__init__"):
                module = module[: -len(".__init__")]
            found.append(module)
    return found


def portable_test_modules():
    found = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        text = path.read_text()
        if "\nMICROPYTHON = True" in text:
            found.append(path.relative_to(ROOT).as_posix()[: -len(".py")].replace("/", "."))
    return found


def _micropython(*args, timeout=600):
    if not MICROPYTHON.exists():
        pytest.fail("micropython not installed in .venv: run `make test`, which installs it")
    env = dict(os.environ, MICROPYPATH=str(ROOT))
    return subprocess.run([str(MICROPYTHON), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_every_core_module_imports_under_micropython():
    modules = core_modules()
    assert "firmware.errors" in modules and "firmware.crypto" in modules
    template = "try:\n import {m}\nexcept Exception as e:\n print('IMPORT-FAIL {m}', type(e).__name__, e)"
    script = "\n".join(template.format(m=m) for m in modules)
    result = _micropython("-c", script + "\nprint('DONE')")
    assert result.returncode == 0, result.stdout + result.stderr
    failures = [line for line in result.stdout.splitlines() if line.startswith("IMPORT-FAIL")]
    assert not failures, "\n".join(failures)
    assert result.stdout.rstrip().endswith("DONE")


@pytest.mark.parametrize("module", portable_test_modules())
def test_portable_tests_pass_under_micropython(module):
    result = _micropython("tests/micropython/runner.py", module)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed, 0 failed" in result.stdout
