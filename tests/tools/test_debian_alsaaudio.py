"""Debian bookworm's python3-alsaaudio (0.8.4) is not what the phone runs, and says so in one line.

The image ships the pinned pyalsaaudio 0.11, built for aarch64, in its venv (tools/image/deviceenv.py);
the venv does not see the system's packages. Were audio/alsa.py ever run against Debian's 0.8.4 (its
PCM() takes no keywords), it must say which version is wrong instead of "no audio device" on every call.
This runs the real Debian package with Debian's python3.
"""

import pathlib
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_debian_pyalsaaudio_is_refused_with_a_clear_message():
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "python3-alsaaudio"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert version.returncode == 0, "Debian package python3-alsaaudio missing (make system-test installs it)"
    code = "from audio import alsa\ntry:\n    alsa.AlsaCapture('null')\nexcept RuntimeError as exc:\n    print(exc)\n"
    done = subprocess.run(
        ["/usr/bin/python3", "-c", code], cwd=str(REPO), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "is too old: Sotto needs the pinned version in requirements.txt (0.11)" in done.stdout, done.stdout
