"""The shipped systemd units pass `systemd-analyze verify` (syntax, known keys, valid values)."""

import pathlib
import shutil
import subprocess

import pytest

from tools.image import payload

REPO = pathlib.Path(__file__).resolve().parents[2]
# Programs that exist only on the phone are swapped for /bin/true: verify checks that they exist.
ON_THE_PHONE = ("/usr/bin/python3 /opt/sotto/tools/firstboot.py", "/opt/sotto/.venv/bin/sotto")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze (Debian package systemd) missing")
def test_units_verify_cleanly(tmp_path):
    paths = []
    for unit in payload.UNITS:
        text = payload.unit_text(unit)
        for program in ON_THE_PHONE:
            text = text.replace(program, "/bin/true")
        path = tmp_path / unit
        path.write_text(text)
        paths.append(str(path))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no"] + paths,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""


def test_unit_settings_the_issue_requires():
    service = payload.unit_text("sotto.service").splitlines()
    for line in ("Type=notify", "Restart=always", "ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes",
                 "ReadWritePaths=" + payload.DATA_DIR, "RestrictRealtime=no", "StandardOutput=journal",
                 "RequiresMountsFor=" + payload.DATA_DIR, "User=" + payload.USER):
        assert line in service
    assert any(line.startswith("WatchdogSec=") for line in service)
    assert any(line.startswith("LimitRTPRIO=") for line in service)
    assert "ExecStart={}/.venv/bin/sotto run --config {}".format(payload.INSTALL_DIR, payload.CONFIG_FILE) in service
    mount = payload.unit_text("var-lib-sotto.mount").splitlines()
    assert "Where=" + payload.DATA_DIR in mount
    assert "What=/boot/firmware/" + payload.DATA_IMAGE_NAME in mount
