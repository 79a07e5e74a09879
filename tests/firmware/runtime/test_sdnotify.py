"""sd_notify against a real AF_UNIX datagram socket standing in for systemd's notify socket."""

import os
import socket
import tempfile

from firmware.runtime import sdnotify


class FakeSystemd:
    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.settimeout(2)
        if abstract:
            name = "sotto-test-notify-{}".format(os.getpid())
            self.sock.bind("\0" + name)
            self.env = {"NOTIFY_SOCKET": "@" + name}
            self.dir = None
        else:
            self.dir = tempfile.mkdtemp(prefix="sotto-notify-")
            path = os.path.join(self.dir, "notify")
            self.sock.bind(path)
            self.env = {"NOTIFY_SOCKET": path}

    def receive(self):
        return self.sock.recv(8192).decode()

    def pending(self):
        self.sock.setblocking(False)
        try:
            self.sock.recv(8192)
            return True
        except BlockingIOError:
            return False
        finally:
            self.sock.settimeout(2)

    def close(self):
        self.sock.close()
        if self.dir:
            os.unlink(self.env["NOTIFY_SOCKET"])
            os.rmdir(self.dir)


def test_ready_and_watchdog_reach_the_socket():
    systemd = FakeSystemd()
    try:
        assert sdnotify.sd_notify(sdnotify.READY, systemd.env) is True
        assert systemd.receive() == "READY=1"
        assert sdnotify.sd_notify(sdnotify.WATCHDOG, systemd.env) is True
        assert systemd.receive() == "WATCHDOG=1"
        assert sdnotify.status("registered as\nsip:alice@example.org", systemd.env) is True
        assert systemd.receive() == "STATUS=registered as sip:alice@example.org"
    finally:
        systemd.close()


def test_abstract_socket_name():
    systemd = FakeSystemd(abstract=True)
    try:
        assert sdnotify.sd_notify("READY=1\nSTATUS=up", systemd.env) is True
        assert systemd.receive() == "READY=1\nSTATUS=up"
    finally:
        systemd.close()


def test_without_systemd_nothing_is_sent():
    assert sdnotify.sd_notify("READY=1", {}) is False
    assert sdnotify.sd_notify("READY=1", {"NOTIFY_SOCKET": "relative/path"}) is False


def test_a_dead_socket_does_not_raise():
    directory = tempfile.mkdtemp(prefix="sotto-notify-")
    try:
        env = {"NOTIFY_SOCKET": os.path.join(directory, "gone")}
        assert sdnotify.sd_notify("WATCHDOG=1", env) is False
    finally:
        os.rmdir(directory)


def test_oversized_or_empty_message_is_refused():
    systemd = FakeSystemd()
    try:
        assert sdnotify.sd_notify("", systemd.env) is False
        assert sdnotify.sd_notify("STATUS=" + "x" * 5000, systemd.env) is False
        assert not systemd.pending()
    finally:
        systemd.close()


def test_watchdog_interval_from_the_environment():
    assert sdnotify.watchdog_interval({}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "15000000"}) == 15.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "abc"}) is None
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert sdnotify.watchdog_interval(mine) == 2.0
    other = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert sdnotify.watchdog_interval(other) is None


def test_watchdog_pings_at_half_the_timeout():
    systemd = FakeSystemd()
    try:
        env = dict(systemd.env, WATCHDOG_USEC="10000000")
        dog = sdnotify.Watchdog(env)
        assert dog.tick(100.0) is True
        assert systemd.receive() == "WATCHDOG=1"
        assert dog.deadline() == 105.0
        assert dog.tick(104.9) is False
        assert not systemd.pending()
        assert dog.tick(105.0) is True
        assert systemd.receive() == "WATCHDOG=1"
    finally:
        systemd.close()


def test_no_watchdog_configured():
    dog = sdnotify.Watchdog({"NOTIFY_SOCKET": "/nonexistent"})
    assert dog.deadline() is None
    assert dog.tick(1.0) is False


class FakeLoop:
    def __init__(self):
        self.time = 50.0
        self.timers = []

    def now(self):
        return self.time

    def call_at(self, when, callback):
        self.timers.append((when, callback))

    def advance_to_next_timer(self):
        self.timers.sort(key=lambda timer: timer[0])
        when, callback = self.timers.pop(0)
        self.time = when
        callback()


def test_keep_alive_pings_from_the_loop_timers():
    systemd = FakeSystemd()
    try:
        loop = FakeLoop()
        dog = sdnotify.keep_alive(loop, dict(systemd.env, WATCHDOG_USEC="4000000"))
        assert dog is not None
        assert systemd.receive() == "WATCHDOG=1"
        assert [when for when, _ in loop.timers] == [52.0]
        loop.advance_to_next_timer()
        assert systemd.receive() == "WATCHDOG=1"
        assert [when for when, _ in loop.timers] == [54.0]
    finally:
        systemd.close()


def test_keep_alive_without_watchdog_schedules_nothing():
    loop = FakeLoop()
    assert sdnotify.keep_alive(loop, {}) is None
    assert loop.timers == []
