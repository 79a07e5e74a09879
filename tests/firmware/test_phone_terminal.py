"""`sotto run --board sim` on a terminal (a real pseudo-terminal): keys typed act at once and the screen
is redrawn in place; the built-in *43 echo line gives a secure call, `t` verifies it, `q` quits."""

import os
import pty
import select
import subprocess
import time

import pytest

from tests.interop import sotto

pytestmark = pytest.mark.interop


def read_until(fd, marker, timeout, seen):
    deadline = time.monotonic() + timeout
    while marker not in seen[0]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("never saw {!r} on the terminal; last output:\n{}".format(marker, seen[0][-1500:]))
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                seen[0] += os.read(fd, 65536).decode("utf-8", "replace")
            except OSError:  # the child closed the terminal
                break
    return seen[0]


def test_terminal_keys_drive_a_secure_verified_call(tmp_path):
    master, slave = pty.openpty()
    port = sotto.free_udp_port()
    process = subprocess.Popen(
        sotto.sotto_command("run", "--board", "sim", "--listen", "127.0.0.1:{}".format(port)),
        cwd=sotto.ROOT,
        env=sotto.environment(tmp_path / "home"),
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    os.close(slave)
    seen = [""]
    try:
        read_until(master, "state: idle", 20, seen)
        assert "keys: 0-9*#" in seen[0]
        os.write(master, b"*43#")
        read_until(master, "state: secure", 20, seen)
        assert "Compare SAS" in seen[0]
        seen[0] = ""
        os.write(master, b"t")
        read_until(master, "state: verified", 10, seen)
        os.write(master, b"x")
        read_until(master, "state: ended", 10, seen)
        os.write(master, b"q")
        assert process.wait(timeout=20) == 0, process.stderr.read().decode()[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
        os.close(master)
