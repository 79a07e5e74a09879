"""The shipped systemd units pass `systemd-analyze verify` (syntax, known keys, valid values)."""

import pathlib
import re
import shutil
import subprocess

from tools.image import payload

REPO = pathlib.Path(__file__).resolve().parents[2]
# Programs that exist only on the phone are swapped for /bin/true: verify checks that they exist.
ON_THE_PHONE = (
    "/usr/bin/python3 /opt/sotto-ab/current/tools/firstboot.py",
    "/usr/bin/python3 /opt/sotto/abguard.py",
    "/opt/sotto/.venv/bin/python /opt/sotto-ab/current/tools/run_from_slot.py",
    "/opt/sotto/.venv/bin/python /opt/sotto-ab/current/tools/abupdate.py",
)


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
    # The firmware runs from the current A/B slot with the shared venv; the start guard comes from
    # outside the slots, first, and confirms the slot once READY=1 came.
    assert (
        "ExecStart={}/.venv/bin/python {}/tools/run_from_slot.py run --config {}".format(
            payload.INSTALL_DIR, payload.CURRENT, payload.CONFIG_FILE
        )
        in service
    )
    pre = [line for line in service if line.startswith("ExecStartPre=")]
    assert pre[0] == "ExecStartPre=+-/usr/bin/python3 {} start".format(payload.GUARD)
    assert "ExecStartPost=+-/usr/bin/python3 {} ready".format(payload.GUARD) in service
    firstboot = payload.unit_text("sotto-firstboot.service").splitlines()
    assert "ExecStartPre=-/usr/bin/python3 {} start".format(payload.GUARD) in firstboot
    assert "ExecStart=/usr/bin/python3 {}/tools/firstboot.py all".format(payload.CURRENT) in firstboot
    mount = payload.unit_text("var-lib-sotto.mount").splitlines()
    assert "Where=" + payload.DATA_DIR in mount
    assert "What=/boot/firmware/" + payload.DATA_IMAGE_NAME in mount


def test_update_units_hand_the_spool_to_the_root_installer():
    """The phone may write only the data directory: a path unit on the spool starts the root installer,
    which runs the current slot's code with the key pinned in the root-owned configuration."""
    path_unit = payload.unit_text("sotto-update.path").splitlines()
    assert "PathExists={}/request".format(payload.UPDATE_SPOOL) in path_unit
    assert "Unit=sotto-update.service" in path_unit
    assert ("multi-user.target.wants", "sotto-update.path") in payload.ENABLED
    service = payload.unit_text("sotto-update.service").splitlines()
    assert "Type=oneshot" in service
    assert not any(line.startswith("User=") for line in service)  # root: it writes /opt/sotto-ab
    assert (
        "ExecStart={}/.venv/bin/python {}/tools/abupdate.py apply-spool --spool {} --config {}".format(
            payload.INSTALL_DIR, payload.CURRENT, payload.UPDATE_SPOOL, payload.CONFIG_FILE
        )
        in service
    )
    assert "ReadWritePaths={} {}".format(payload.AB_ROOT, payload.DATA_DIR) in service
    assert "ProtectSystem=strict" in service
    # The phone's own unit still cannot write /opt: only the data directory.
    assert "ReadWritePaths=" + payload.DATA_DIR in payload.unit_text("sotto.service").splitlines()


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
