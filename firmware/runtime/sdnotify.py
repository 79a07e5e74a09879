"""systemd's notify protocol (sd_notify(3)) in pure stdlib: READY=1, WATCHDOG=1, STOPPING=1, STATUS=.

sotto.service is Type=notify with WatchdogSec=: systemd passes $NOTIFY_SOCKET (a filesystem path, or
an abstract socket name starting with "@") and $WATCHDOG_USEC. The main loop calls
``sd_notify("READY=1")`` once it listens, then ``sd_notify("WATCHDOG=1")`` at least every
``watchdog_interval() / 2`` seconds (``keep_alive(loop)`` schedules that on the loop). Outside
systemd there is no $NOTIFY_SOCKET and every call is a cheap no-op returning False. A failed send
never raises: losing one keep-alive must not take the phone down (systemd restarts it if they keep
failing). Host-only (sockets).
"""

import os
import socket

READY = "READY=1"
WATCHDOG = "WATCHDOG=1"
STOPPING = "STOPPING=1"
RELOADING = "RELOADING=1"
MAX_MESSAGE = 4096


def _address(name):
    if name.startswith("@"):
        return "\0" + name[1:]  # Linux abstract namespace
    return name


def sd_notify(message, environ=None):
    """Send `message` (str, e.g. "READY=1" or "STATUS=registered") to systemd; True when it was sent."""
    env = os.environ if environ is None else environ
    name = env.get("NOTIFY_SOCKET", "")
    if not name or not (name.startswith("/") or name.startswith("@")):
        return False
    data = message.encode("utf-8")
    if not data or len(data) > MAX_MESSAGE:
        return False
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    except OSError:
        return False
    try:
        sock.connect(_address(name))
        sock.sendall(data)
    except OSError:
        return False
    finally:
        sock.close()
    return True


def status(text, environ=None):
    """Show `text` in `systemctl status sotto` (one line)."""
    return sd_notify("STATUS=" + " ".join(str(text).split()), environ)


def watchdog_interval(environ=None):
    """The watchdog timeout in seconds systemd expects keep-alives within, or None when there is none."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6


class Watchdog:
    """Keep-alive pacing for the main loop: call ``tick(now)`` every turn; it pings at half the timeout.

    `now` is a monotonic time in seconds. Does nothing when systemd set no watchdog.
    """

    __slots__ = ("interval", "next_ping", "_environ")

    def __init__(self, environ=None):
        self._environ = environ
        timeout = watchdog_interval(environ)
        self.interval = None if timeout is None else timeout / 2
        self.next_ping = None

    def deadline(self):
        """When the loop must wake up next for the watchdog (None: no watchdog)."""
        return self.next_ping

    def tick(self, now):
        """Ping when due; returns True when a keep-alive was sent."""
        if self.interval is None:
            return False
        if self.next_ping is not None and now < self.next_ping:
            return False
        self.next_ping = now + self.interval
        return sd_notify(WATCHDOG, self._environ)


def keep_alive(loop, environ=None):
    """Ping the watchdog from `loop`'s own timers, so a stuck loop stops the pings and gets restarted.

    `loop` needs ``now()`` and ``call_at(when, callback)`` (firmware.runtime.loop.Loop has both).
    Returns the Watchdog, or None when systemd set no watchdog (then nothing is scheduled).
    """
    dog = Watchdog(environ)
    if dog.interval is None:
        return None

    def ping():
        dog.tick(loop.now())
        loop.call_at(dog.deadline(), ping)

    ping()
    return dog
