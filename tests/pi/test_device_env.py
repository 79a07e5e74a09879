"""The device environment as first boot installs it, run for real on aarch64 (qemu-user), then called.

What `make image` puts on the card (tools/image/deviceenv.py: the venv built for aarch64 with the pinned
requirements.txt, the Debian arm64 packages, the MANIFEST) goes through tools/firstboot.py's offline
installation in an arm64 Debian bookworm root (the build chroot, same python3 3.11.2 as Raspberry Pi OS),
under qemu-user; then that venv's `sotto answer` takes a call from this host's `sotto call`, which must
go secure with the same SAS on both sides. Prints the first-boot and call-to-secure times (qemu-user is
slower than a Pi 4). Needs root (chroot), binfmt_misc's qemu-aarch64 (`make test-pi` sets it up).
"""

import json
import os
import shutil
import subprocess
import sys
import time

from tools.image import deviceenv, payload

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("SOTTO_PI_CACHE", "/var/cache/sotto-pi")
PHONE_SIP, PHONE_RTP, HOST_SIP, HOST_RTP = 26060, 26100, 26070, 26200


def _chroot_argv(root, argv):
    mounts = deviceenv.dev_mounts(root) + " && mount -t proc proc {r}/proc && mount -t sysfs sys {r}/sys".format(r=root)
    command = (
        '{} && exec chroot {} /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LANG=C.UTF-8 "$@"'
    ).format(mounts, root)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", command, "sh"] + list(argv)


def _udp_bound(port):
    """True once something listens on 127.0.0.1:port (UDP), from /proc/net/udp."""
    wanted = "0100007F:{:04X}".format(port)
    with open("/proc/net/udp", encoding="ascii") as f:
        return any(line.split()[1] == wanted for line in f.readlines()[1:])


def test_first_boot_installs_the_environment_on_aarch64_and_the_phone_goes_secure(tmp_path):
    deviceenv.check_binfmt()
    done = subprocess.run(
        [sys.executable, "-m", "tools.image.deviceenv", "--cache", CACHE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    dist = done.stdout.strip().splitlines()[-1]
    root = deviceenv.build_chroot(CACHE)
    # /opt/sotto as the image has it: this tree, its dist/, no venv yet.
    tree = os.path.join(root, "opt", "sotto")
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(tree)
    for rel, is_dir, mode in payload.source_tree(REPO):
        path = os.path.join(tree, rel)
        if is_dir:
            os.makedirs(path, exist_ok=True)
        else:
            shutil.copyfile(os.path.join(REPO, rel), path)
            os.chmod(path, mode)
    shutil.copytree(dist, os.path.join(tree, payload.DIST_DIR))

    code = (
        "import sys, time; sys.path.insert(0, '/opt/sotto'); from tools import firstboot; "
        "t = time.monotonic(); firstboot.install_dependencies('/opt/sotto'); "
        "print('first boot: %.1f s' % (time.monotonic() - t))"
    )
    done = subprocess.run(
        _chroot_argv(root, ["python3", "-c", code]), capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dependencies installed from the image" in done.stdout and "pip" not in done.stdout, done.stdout
    seconds = float(done.stdout.split("first boot: ")[1].split(" s")[0])
    print("device env: first boot (offline install, qemu-user): {:.1f} s".format(seconds), flush=True)
    assert seconds < 120

    answer = subprocess.Popen(
        _chroot_argv(
            root,
            [
                "/opt/sotto/.venv/bin/sotto",
                "answer",
                "--listen",
                "127.0.0.1:{}".format(PHONE_SIP),
                "--rtp-port",
                str(PHONE_RTP),
                "--cache",
                "/tmp/phone-zrtp-cache",
                "--timeout",
                "150",
            ],
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The aarch64 python starts slowly under emulation: wait until its SIP socket is bound.
        deadline = time.monotonic() + 120
        while not _udp_bound(PHONE_SIP):
            assert answer.poll() is None, answer.communicate()[1]
            assert time.monotonic() < deadline, "the aarch64 phone did not bind its SIP port in 120 s"
            time.sleep(0.5)
        call = subprocess.run(
            [
                sys.executable,
                "-m",
                "firmware",
                "call",
                "sip:phone@127.0.0.1:{}".format(PHONE_SIP),
                "--listen",
                "127.0.0.1:{}".format(HOST_SIP),
                "--rtp-port",
                str(HOST_RTP),
                "--duration",
                "4",
                "--secure-only",
                "--cache",
                str(tmp_path / "host-cache"),
                "--timeout",
                "120",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        try:
            out, err = answer.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                "the aarch64 phone did not end its call: host said {}{}".format(
                    call.stdout[-1500:], call.stderr[-1500:]
                )
            ) from None
    finally:
        if answer.poll() is None:
            answer.kill()
            answer.wait(timeout=10)
    host = json.loads(call.stdout.strip().splitlines()[-1])
    phone = json.loads(out.strip().splitlines()[-1])
    assert host["secure"] and phone["secure"], (call.stderr[-2000:], err[-2000:])
    assert host["sas"] == phone["sas"]
    assert host["rtp"]["auth_failures"] == 0 and phone["rtp"]["auth_failures"] == 0
    print(
        "device env: call to secure: host {:.0f} ms, aarch64 phone {:.0f} ms, SAS {} on both".format(
            host["zrtp"]["secure_ms"], phone["zrtp"]["secure_ms"], host["sas"]
        ),
        flush=True,
    )
