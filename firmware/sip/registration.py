"""Registration that recovers: when to REGISTER, refresh, keep the flow alive and retry. Sans-I/O.

The first piece split out of firmware/sip/useragent.py (issue 13): the UserAgent builds and sends the
requests and feeds their outcomes in here; this module holds the binding's state and decides what
comes next. Nothing here sends, reads a clock or draws randomness: `now` and a `fraction` in [0, 1)
are passed in.

What makes it recover (issue 11: a registrar that restarted and lost its location table went unnoticed
until the refresh, 3,540 s later, and the back-off after a failure started at 30 s):
- Keep-alive (RFC 5626 §4.4.1): while registered, a CRLFCRLF ping goes to the registrar's next hop
  every KEEPALIVE_INTERVAL (80-100 % of it, §4.4.1's jitter). On UDP it keeps the NAT binding open and
  draws an ICMP error when the registrar is gone; on TCP/TLS the transport expects a CRLF pong within
  10 s and reports the flow failed without one.
- Reachability probe: every PROBE_INTERVAL (jittered likewise) an OPTIONS to our own address of record
  through the registrar. A registrar that lost our binding answers it 404 (or 480/410/481/604): that
  is the binding lost, so we re-register at once. A registrar that restarted between two keep-alives
  is caught this way even on UDP, where it sends no pong.
- Flow failure (ICMP error, no pong, connection closed, a probe or refresh that times out) while
  registered: re-register at once, as RFC 5626 §4.4.1 asks when a flow fails.
- Network back (network_up()): re-register at once with the back-off reset.
- Back-off after a failed REGISTER (RFC 5626 §4.5): wait = min(MAX_BACKOFF, BASE_BACKOFF * 2^n) for the
  n-th consecutive failure, then a random 50-100 % of it: 1-2 s, 2-4 s, 4-8 s ... capped at 10 min.

States (STATES, with the triggers that move between them in TRANSITIONS):
  idle           nothing registered, nothing pending
  registering    a REGISTER is on its way (first one, refresh, or re-registration after a failure)
  registered     the registrar holds our binding until the granted expiry
  failed         the last REGISTER failed; retry_at says when the next one goes (None: never, e.g. a
                 wrong password, until register() is called again)
  unregistering  a REGISTER with Expires: 0 is on its way

API
---
Registration(expires=3600, keepalive_interval=KEEPALIVE_INTERVAL, probe_interval=PROBE_INTERVAL)
    Attributes the UserAgent reads and writes: state, call_id, from_tag, cseq, expires (asked for),
    granted (seconds, or None), tx (the pending REGISTER), probe_tx, next_hop ((host, port) the
    REGISTER went to), too_brief_tries, nat_updated, failures, backoff (seconds of the last back-off),
    refresh_at, retry_at, keepalive_at, probe_at (absolute deadlines or None).
    move(trigger) -> new state (TRANSITIONS; a trigger that does not apply leaves the state alone).
    succeeded(granted, now, fraction)        2xx: registered; schedules refresh, keep-alive, probe
    failed(now, fraction, retry=True) -> seconds until the retry (or None without one)
    flow_failed(now) -> True when a REGISTER should go now (we were registered)
    binding_lost(now) -> True likewise (the registrar answered 404/481 for our own address)
    network_up(now) -> True when a REGISTER should go now (back-off reset)
    deadlines() -> list of absolute deadlines
    due(now) -> list of the actions due: "refresh", "retry", "keepalive", "probe" (and clears them)
    keepalive_sent(now, fraction) / probe_sent(now, fraction) schedule the next ones.
retry_delay(failures, fraction) -> seconds (RFC 5626 §4.5)
BINDING_LOST: statuses that, in answer to a probe, mean the registrar has no binding for us.
"""

IDLE = "idle"
REGISTERING = "registering"
REGISTERED = "registered"
FAILED = "failed"
UNREGISTERING = "unregistering"
STATES = (IDLE, REGISTERING, REGISTERED, FAILED, UNREGISTERING)

# (state, trigger) -> next state. Triggers: "register" (a REGISTER is sent: first, refresh or retry),
# "ok" (2xx), "fail" (a final failure or a timeout), "unregister" (Expires: 0 sent), "unregistered"
# (its answer). A pair that is not listed leaves the state as it is (e.g. "register" while
# unregistering: shutting down wins).
TRANSITIONS = {
    (IDLE, "register"): REGISTERING,
    (FAILED, "register"): REGISTERING,
    (REGISTERED, "register"): REGISTERING,
    (REGISTERING, "register"): REGISTERING,
    (REGISTERING, "ok"): REGISTERED,
    (REGISTERING, "fail"): FAILED,
    (REGISTERED, "fail"): FAILED,
    (IDLE, "unregister"): UNREGISTERING,
    (REGISTERING, "unregister"): UNREGISTERING,
    (REGISTERED, "unregister"): UNREGISTERING,
    (FAILED, "unregister"): UNREGISTERING,
    (UNREGISTERING, "unregistered"): IDLE,
    (UNREGISTERING, "fail"): IDLE,
}

KEEPALIVE_INTERVAL = 15.0  # s; RFC 5626 §4.4.1 leaves it to the flow; NATs drop UDP bindings in ~30 s
PROBE_INTERVAL = 20.0  # s; a registrar restart is noticed within this (jittered to 80-100 %)
BASE_BACKOFF = 1.0  # s; RFC 5626 §4.5 base-time (it suggests 30/90 s; a desk phone wants seconds)
MAX_BACKOFF = 600.0  # s; RFC 5626 §4.5 max-time (1800 s there): a phone is back within 10 min
# In answer to the OPTIONS we send to our own address of record: the registrar has no binding for us.
BINDING_LOST = (404, 410, 480, 481, 604)


def retry_delay(failures, fraction):
    """RFC 5626 §4.5: min(max-time, base-time * 2^failures), then a random 50-100 % of that."""
    exponent = failures if failures < 30 else 30
    upper = BASE_BACKOFF * (1 << exponent)
    if upper > MAX_BACKOFF:
        upper = MAX_BACKOFF
    return upper * (0.5 + 0.5 * fraction)


def _jittered(interval, fraction):
    """RFC 5626 §4.4.1: a keep-alive interval chosen between 80 and 100 % of the nominal one."""
    return interval * (0.8 + 0.2 * fraction)


class Registration:
    __slots__ = (
        "state",
        "call_id",
        "from_tag",
        "cseq",
        "expires",
        "granted",
        "tx",
        "probe_tx",
        "next_hop",
        "too_brief_tries",
        "nat_updated",
        "failures",
        "backoff",
        "refresh_at",
        "retry_at",
        "keepalive_at",
        "probe_at",
        "keepalive_interval",
        "probe_interval",
    )

    def __init__(self, expires=3600, keepalive_interval=KEEPALIVE_INTERVAL, probe_interval=PROBE_INTERVAL):
        self.state = IDLE
        self.call_id = None
        self.from_tag = None
        self.cseq = 0
        self.expires = expires
        self.granted = None
        self.tx = None
        self.probe_tx = None
        self.next_hop = None
        self.too_brief_tries = 0
        self.nat_updated = False
        self.failures = 0
        self.backoff = 0
        self.refresh_at = None
        self.retry_at = None
        self.keepalive_at = None
        self.probe_at = None
        self.keepalive_interval = keepalive_interval
        self.probe_interval = probe_interval

    def move(self, trigger):
        self.state = TRANSITIONS.get((self.state, trigger), self.state)
        return self.state

    def _stop_flow_checks(self):
        self.keepalive_at = None
        self.probe_at = None

    def succeeded(self, granted, now, fraction):
        self.move("ok")
        self.granted = granted
        self.failures = 0
        self.backoff = 0
        self.retry_at = None
        self.refresh_at = None
        self._stop_flow_checks()
        if granted > 0:
            # §10.2.4 leaves the refresh time to us: halfway, or a minute before expiry if that is later.
            self.refresh_at = now + max(granted * 0.5, granted - 60)
            if self.keepalive_interval:
                self.keepalive_at = now + _jittered(self.keepalive_interval, fraction)
            if self.probe_interval:
                self.probe_at = now + _jittered(self.probe_interval, 1.0 - fraction)

    def failed(self, now, fraction, retry=True):
        self.move("fail")
        self.granted = None
        self.refresh_at = None
        self._stop_flow_checks()
        if not retry:
            self.retry_at = None
            return None
        self.failures += 1
        self.backoff = retry_delay(self.failures, fraction)
        self.retry_at = now + self.backoff
        return self.backoff

    def _register_now(self):
        if self.state not in (REGISTERED, REGISTERING):
            return False
        self._stop_flow_checks()
        self.refresh_at = None
        return self.state == REGISTERED

    def flow_failed(self, now):
        return self._register_now()

    def binding_lost(self, now):
        return self._register_now()

    def network_up(self, now):
        if self.state == FAILED and self.call_id is not None:
            self.failures = 0
            self.retry_at = None
            return True
        return self.flow_failed(now)

    def keepalive_sent(self, now, fraction):
        if self.state == REGISTERED and self.keepalive_interval:
            self.keepalive_at = now + _jittered(self.keepalive_interval, fraction)

    def probe_sent(self, now, fraction):
        if self.state == REGISTERED and self.probe_interval:
            self.probe_at = now + _jittered(self.probe_interval, fraction)

    def deadlines(self):
        return [d for d in (self.refresh_at, self.retry_at, self.keepalive_at, self.probe_at) if d is not None]

    def due(self, now):
        actions = []
        if self.refresh_at is not None and self.refresh_at <= now:
            self.refresh_at = None
            actions.append("refresh")
        if self.retry_at is not None and self.retry_at <= now:
            self.retry_at = None
            actions.append("retry")
        if self.keepalive_at is not None and self.keepalive_at <= now:
            self.keepalive_at = None
            actions.append("keepalive")
        if self.probe_at is not None and self.probe_at <= now:
            self.probe_at = None
            actions.append("probe")
        return actions
