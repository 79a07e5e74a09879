"""`sotto run` on the simulated board (issue 6 contract), with the built-in *43 echo test line that
`make run` offers: a secure call, the SAS, the trust button, and "verified" on the next call."""

import json
import struct
import zlib

import pytest

from tests.interop import sotto

pytestmark = pytest.mark.interop

SCRIPT = """\
wait idle 5
press *43#
wait secure 10
trust
wait verified 5
hangup
wait idle 10
press *43#
wait verified 10
hangup
wait ended 5
quit
"""


def _png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_echo_line_secure_then_verified(tmp_path):
    script = tmp_path / "script.txt"
    script.write_text(SCRIPT)
    log = tmp_path / "display.jsonl"
    png = tmp_path / "png"
    port = sotto.free_udp_port()
    rc, _summary, err = sotto.run(
        [
            "run",
            "--board",
            "sim",
            "--listen",
            "127.0.0.1:{}".format(port),
            "--script",
            str(script),
            "--display-log",
            str(log),
            "--display-png",
            str(png),
        ],
        tmp_path / "home",
        timeout=60,
    )
    assert rc == 0, err
    frames = [json.loads(line) for line in log.read_text().splitlines()]
    states = [frame["state"] for frame in frames]
    assert states[0] == "idle"
    first_secure = states.index("secure")
    assert "verified" in states[first_secure:]
    secure_frame = frames[first_secure]
    sas_lines = [line for line in secure_frame["lines"] if line.strip()]
    assert any(len(word) == 4 for line in sas_lines for word in line.split()), sas_lines
    # the second call goes straight to verified: no "secure" state between its "calling" and "verified"
    second_call = len(states) - 1 - states[::-1].index("calling")
    assert "secure" not in states[second_call:]
    assert "verified" in states[second_call:]
    images = sorted(png.iterdir())
    assert len(images) == len(frames)
    data = images[first_secure].read_bytes()
    assert _png_size(data) == (128, 64)
    assert zlib.crc32(data) != zlib.crc32(images[0].read_bytes())  # the SAS frame differs from idle


def test_wait_timeout_fails_the_script(tmp_path):
    script = tmp_path / "script.txt"
    script.write_text("wait secure 0.5\nquit\n")
    rc, _summary, err = sotto.run(
        ["run", "--listen", "127.0.0.1:{}".format(sotto.free_udp_port()), "--script", str(script)],
        tmp_path / "home",
        timeout=30,
    )
    assert rc != 0
    assert "secure" in err


def test_bad_script_line_is_one_clear_error(tmp_path):
    script = tmp_path / "script.txt"
    script.write_text("press 12a\n")
    rc, _summary, err = sotto.run(
        ["run", "--listen", "127.0.0.1:{}".format(sotto.free_udp_port()), "--script", str(script)],
        tmp_path / "home",
        timeout=30,
    )
    assert rc == 2
    assert err.strip().splitlines()[-1].startswith("sotto: ")
    assert "Traceback" not in err


def test_systemd_ready_and_watchdog_from_the_main_loop(tmp_path):
    import os
    import socket
    import subprocess

    notify_path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(notify_path)
    server.settimeout(5)
    script = tmp_path / "script.txt"
    script.write_text("wait idle 5\nsleep 1\nquit\n")
    env = dict(sotto.environment(tmp_path / "home"), NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="200000")
    process = subprocess.Popen(
        sotto.sotto_command("run", "--listen", "127.0.0.1:{}".format(sotto.free_udp_port()), "--script", str(script)),
        cwd=sotto.ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    messages = []
    try:
        while len([m for m in messages if m == b"WATCHDOG=1"]) < 3:
            messages.append(server.recv(256))
    finally:
        process.communicate(timeout=20)
        server.close()
    assert process.returncode == 0
    assert messages[0] == b"READY=1"
    assert os.path.exists(notify_path)


def test_a_corrupt_cache_is_moved_aside_and_shown_on_the_display(tmp_path):
    cache = tmp_path / "zrtp-cache"
    cache.write_bytes(b"SottoZC1 but then garbage")
    script = tmp_path / "script.txt"
    script.write_text("wait error 5\nquit\n")
    log = tmp_path / "display.jsonl"
    rc, _summary, err = sotto.run(
        [
            "run",
            "--listen",
            "127.0.0.1:{}".format(sotto.free_udp_port()),
            "--cache",
            str(cache),
            "--script",
            str(script),
            "--display-log",
            str(log),
        ],
        tmp_path / "home",
        timeout=30,
    )
    assert rc == 0, err
    frames = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(f["state"] == "error" and f["lines"][0] == "Trust cache lost" for f in frames)
    assert "corrupt" in err  # logged loudly too
    moved = [p.name for p in tmp_path.iterdir() if p.name.startswith("zrtp-cache.corrupt-")]
    assert len(moved) == 1
    assert (tmp_path / moved[0]).read_bytes() == b"SottoZC1 but then garbage"
