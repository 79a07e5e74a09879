"""Run the real `sotto` command in tests: free loopback ports, bounded time, JSON summaries."""

import contextlib
import json
import os
import pathlib
import socket
import subprocess
import sys

from tests.waiting import wait_udp_bound

ROOT = pathlib.Path(__file__).resolve().parents[2]


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port, process=None, timeout=15.0):
    """Wait until something listens on UDP PORT (a sotto that is still importing under load would answer our
    INVITE with ICMP port unreachable)."""
    wait_udp_bound(port, timeout, "sotto to listen", _alive(process))


def wait_listening_anywhere(port, process=None, timeout=15.0):
    """Wait until something listens on UDP 0.0.0.0:PORT."""
    wait_udp_bound(port, timeout, "sotto to listen", _alive(process), host="0.0.0.0")


def _alive(process):
    def check():
        if process is not None and process.poll() is not None:
            raise AssertionError("sotto exited before listening: {}".format(process.communicate()))

    return check


def sotto_command(*args):
    return [sys.executable, "-m", "firmware", *args]


def environment(home):
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_DATA_HOME=str(home))
    return env


def sim_phone_args(listen_port, script, display_log, *extra):
    """The arguments of `sotto run` on the simulated board, driven by a sim script and writing its display
    log (what the phone tests share); `extra`: more options, such as --dial-domain or --play."""
    return [
        "run",
        "--board",
        "sim",
        "--listen",
        "127.0.0.1:{}".format(listen_port),
        *extra,
        "--script",
        str(script),
        "--display-log",
        str(display_log),
        "--log-level",
        "info",
    ]


def start(args, home, stdout=subprocess.PIPE):
    """Start `sotto ARGS` in the background (end it with finish())."""
    return subprocess.Popen(
        sotto_command(*args), cwd=ROOT, env=environment(home), stdout=stdout, stderr=subprocess.PIPE, text=True
    )


def finish(process, timeout):
    """Wait for a started sotto; (exit code, summary dict or None, stderr). Kills it by PID on timeout."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError("sotto did not finish in {} s: {}".format(timeout, err[-2000:])) from None
    summary = json.loads(out) if out and out.strip().startswith("{") else None
    return process.returncode, summary, err


@contextlib.contextmanager
def running(args, home):
    """start() for the length of a with block: a sotto still running when the block is left (a failed
    assertion, a timeout) is killed by its PID."""
    process = start(args, home)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def run(args, home, timeout):
    return finish(start(args, home), timeout)
