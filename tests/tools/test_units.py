"""The shipped systemd units pass `systemd-analyze verify` (syntax, known keys, valid values)."""

import pathlib
import re
import shutil
import subprocess

from tools.image import payload

REPO = pathlib.Path(__file__).resolve().parents[2]
# Programs that exist only on the phone are swapped for /bin/true: verify checks that they exist.
ON_THE_PHONE = ("/usr/bin/python3 /opt/sotto/tools/firstboot.py", "/opt/sotto/.venv/bin/sotto")


def _systemd_analyze():
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze missing (Debian package systemd; make system-test installs it)"
    return found


def test_units_verify_cleanly(tmp_path):
    paths = []
    for unit in payload.UNITS:
        text = payload.unit_text(unit)
        for program in ON_THE_PHONE:
            text = text.replace(program, "/bin/true")
        path = tmp_path / unit
        path.write_text(text)
        paths.append(str(path))
    done = subprocess.run(
        [_systemd_analyze(), "verify", "--man=no"] + paths, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""


def test_unit_settings_the_issue_requires():
    service = payload.unit_text("sotto.service").splitlines()
    for line in (
        "Type=notify",
        "Restart=always",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "ReadWritePaths=" + payload.DATA_DIR,
        "RestrictRealtime=no",
        "StandardOutput=journal",
        "RequiresMountsFor=" + payload.DATA_DIR,
        "User=" + payload.USER,
    ):
        assert line in service
    assert any(line.startswith("WatchdogSec=") for line in service)
    assert any(line.startswith("LimitRTPRIO=") for line in service)
    assert "ExecStart={}/.venv/bin/sotto run --config {}".format(payload.INSTALL_DIR, payload.CONFIG_FILE) in service
    mount = payload.unit_text("var-lib-sotto.mount").splitlines()
    assert "Where=" + payload.DATA_DIR in mount
    assert "What=/boot/firmware/" + payload.DATA_IMAGE_NAME in mount


def test_service_exposure_score_is_at_most_3_5(tmp_path):
    """systemd's own scoring of the sandbox (issue 10 asks for 3.5 or less; it was 7.4 MEDIUM)."""
    path = tmp_path / "sotto.service"
    path.write_text(payload.unit_text("sotto.service"))
    done = subprocess.run(
        [_systemd_analyze(), "security", "--offline=true", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for sotto\.service: (\d+\.\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    score = float(found.group(1))
    print("systemd-analyze security sotto.service:", score)
    assert score <= 3.5, done.stdout


def test_service_sandbox_keeps_the_phone_s_devices():
    """The devices the phone opens stay allowed (sound, GPIO character devices, I2C) and nothing else."""
    service = payload.unit_text("sotto.service").splitlines()
    allowed = sorted(line.split("=", 1)[1] for line in service if line.startswith("DeviceAllow="))
    assert allowed == ["char-alsa rw", "char-gpiochip rw", "char-i2c rw"]
    assert "DevicePolicy=closed" in service and "CapabilityBoundingSet=" in service
    for line in (
        "RestrictNamespaces=yes",
        "RestrictSUIDSGID=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "ProtectKernelLogs=yes",
        "ProtectProc=invisible",
        "SystemCallFilter=@system-service",
    ):
        assert line in service
