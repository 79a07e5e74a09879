"""Bounded waits for tests: wait for the condition that matters, never sleep for a guessed while.

A fixed sleep before talking to a peer is too long on an idle machine and too short on a loaded one (the
suite shares two cores with other work): the test then fails at random or wastes time. Wait for what the
next step needs instead (a port bound, a line logged, a state reached), with a deadline that fails the
test with what it was waiting for.

- wait_until(condition, timeout, what, check=None, interval=0.05) -> the first truthy value of
  condition(). `check()` runs every round and may raise (a peer that exited cannot answer: fail at
  once, with its output). On timeout: WaitTimeout("... after N s: what").
- udp_bound(port, host=None) -> True when a UDP socket is bound to the port (on `host`, or the wildcard
  address; any local address when host is None), read from /proc/net/udp without sending anything.
- wait_udp_bound(port, timeout, what, check=None): wait_until(udp_bound(port)).
- tcp_listening(port) -> True when a TCP socket listens on the port (any local address), from
  /proc/net/tcp; wait_tcp_listening(port, timeout, what, check=None).
- stop_process(proc, timeout=10): terminate, wait, kill if it does not go; for a subprocess.Popen we
  started (by its PID, never by name).

Sleeps that pace a peer (one packet every 20 ms) or that are the test's subject (media flows for 2.5 s,
the network stays down for 10 s) are not waits, and stay time.sleep().
"""

import socket
import struct
import subprocess
import time


class WaitTimeout(AssertionError, TimeoutError):
    """A bounded wait ran out: an assertion failure (the test fails), and a TimeoutError for callers that
    catch the timeouts of a peer helper."""


def wait_until(condition, timeout, what, check=None, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if check is not None:
            check()
        if time.monotonic() >= deadline:
            raise WaitTimeout("timed out after {:g} s waiting for {}".format(timeout, what))
        time.sleep(interval)


def _proc_net_address(host, port):
    # /proc/net/udp writes the local address as the IPv4 address's 4 bytes in host order, then the port,
    # both in hex: 127.0.0.1:5060 is "0100007F:13C4" on a little-endian machine.
    packed = socket.inet_aton(host)
    return "{:08X}:{:04X}".format(struct.unpack("=I", packed)[0], port)


def udp_bound(port, host=None):
    with open("/proc/net/udp") as table:
        local = [line.split()[1] for line in table.readlines()[1:]]
    if host is None:
        return any(address.endswith(":{:04X}".format(port)) for address in local)
    wanted = (_proc_net_address(host, port), _proc_net_address("0.0.0.0", port))
    return any(address in wanted for address in local)


def wait_udp_bound(port, timeout, what, check=None, host=None):
    where = "{}:{}".format(host, port) if host else "port {}".format(port)
    wait_until(lambda: udp_bound(port, host), timeout, "{} (UDP {})".format(what, where), check)


def tcp_listening(port):
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    # The fourth column is the socket state; 0A is LISTEN.
    return any(row[1].endswith(":{:04X}".format(port)) and row[3] == "0A" for row in rows)


def wait_tcp_listening(port, timeout, what, check=None):
    wait_until(lambda: tcp_listening(port), timeout, "{} (TCP port {})".format(what, port), check)


def stop_process(proc, timeout=10):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
