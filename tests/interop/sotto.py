"""Run the real `sotto` command in tests: free loopback ports, bounded time, JSON summaries."""

import json
import os
import pathlib
import socket
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sotto_command(*args):
    return [sys.executable, "-m", "firmware", *args]


def environment(home):
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_DATA_HOME=str(home))
    return env


def start(args, home, stdout=subprocess.PIPE):
    """Start `sotto ARGS` in the background (end it with finish())."""
    return subprocess.Popen(sotto_command(*args), cwd=ROOT, env=environment(home), stdout=stdout,
                            stderr=subprocess.PIPE, text=True)


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


def run(args, home, timeout):
    return finish(start(args, home), timeout)
