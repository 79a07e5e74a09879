"""When to fetch (sans-I/O, MicroPython-clean): at boot, then daily with jitter, and after a failure
again soon, backing off.

The jitter (up to an hour) keeps a fleet that was powered on together (after a power cut) from asking
the server in the same second every day. After a failure (server down, a refused file) the phone tries
again after RETRY_FIRST seconds, doubling up to RETRY_MAX, each with up to a quarter of jitter.
"""

DAILY = 24 * 3600.0
DAILY_JITTER = 3600.0
RETRY_FIRST = 60.0
RETRY_MAX = 3600.0


def _fraction(rng):
    """A number in [0, 1) from the injected rng (rng(n) -> n random bytes, as os.urandom)."""
    raw = rng(4)
    value = 0
    for byte in raw:
        value = value * 256 + byte
    return value / 4294967296.0


class Schedule:
    """next_at: the monotonic time of the next fetch. The shell arms a timer there and reports back."""

    __slots__ = ("rng", "interval", "retry_first", "retry_max", "next_at", "failures")

    def __init__(self, now, rng, interval=DAILY, retry_first=RETRY_FIRST, retry_max=RETRY_MAX):
        self.rng = rng
        self.interval = interval
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.next_at = now  # at boot: at once
        self.failures = 0

    def get_timer(self):
        return self.next_at

    def succeeded(self, now):
        self.failures = 0
        jitter = min(DAILY_JITTER, self.interval / 24.0)
        self.next_at = now + self.interval + jitter * _fraction(self.rng)
        return self.next_at

    def failed(self, now):
        delay = min(self.retry_max, self.retry_first * (1 << min(self.failures, 16)))
        self.failures += 1
        self.next_at = now + delay * (1.0 + 0.25 * _fraction(self.rng))
        return self.next_at
