"""SIP transactions (RFC 3261 §17, with the RFC 6026 "Accepted" states). Sans-I/O.

A transaction never sends by itself: it appends datagrams (bytes) to `self.outgoing`, which its owner
(the UserAgent) drains and sends to `self.destination`. Time comes in as `now` (seconds).

Timers (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2, Table 4), T1 = 0.5 s, T2 = 4 s, T4 = 5 s:
  A  INVITE client retransmit: T1, doubling (no cap), unreliable transports only
  B  INVITE client timeout: 64*T1
  D  wait in Completed for response retransmissions: 32 s (UDP), 0 (reliable)
  E  non-INVITE client retransmit: T1 doubling up to T2 (T2 once Proceeding)
  F  non-INVITE client timeout: 64*T1
  G  INVITE server retransmits its non-2xx final: T1 doubling up to T2
  H  INVITE server gives up waiting for ACK: 64*T1
  I  INVITE server in Confirmed absorbs ACKs: T4 (UDP), 0 (reliable)
  J  non-INVITE server Completed: 64*T1 (UDP), 0 (reliable)
  K  non-INVITE client Completed: T4 (UDP), 0 (reliable)
  L  INVITE server Accepted (RFC 6026): 64*T1
  M  INVITE client Accepted (RFC 6026): 64*T1

API
---
ClientTransaction(request, destination, reliable, now, t1=T1, t2=T2, t4=T4)
    Sends `request` (a message.Request with its Via branch set). Attributes: request, destination,
    state ("calling"/"trying"/"proceeding"/"completed"/"accepted"/"terminated"), key, outgoing, timers
    (list of [name, deadline]), context (free slot for the owner), last_response.
    receive_response(response, now) -> True when the TU must see the response (first of each status
    class transition; retransmitted 2xx of an INVITE too, so the TU can re-ACK), False to absorb.
    handle_timer(now) -> "timeout" when Timer B/F fired (the TU reports 408), else None.
    next_deadline() -> float or None.   retransmissions -> count of retransmitted requests.
    abort() -> None: terminated at once with no timers left (the TU gave up on it, e.g. the
    transport reported the destination unreachable, RFC 3261 §8.1.3.1).
ServerTransaction(request, source, reliable, now, ...)
    For a received request. send_response(response, now) sends it (and caches it: a retransmitted
    request gets the last response again, §17.2). receive_request(request, now) -> "retransmission",
    "ack" (an ACK for our non-2xx: Confirmed), or "ack-2xx" (an ACK in Accepted: pass to the TU).
    handle_timer(now) -> "timeout" when Timer H fired without ACK, else None.
    absorbing() -> True once only retransmissions are left to absorb (evictable under pressure).
    On a reliable transport a non-INVITE final response terminates it at once (Timer J = 0).
transaction_key(request) -> hashable key for server matching (§17.2.3; RFC 2543 fallback).
client_key(branch, method) -> key of a client transaction (§17.1.3).
build_ack_for_non2xx(request, response) -> Request (§17.1.1.3).
Context(kind, call_id=None): what the TU sent a client transaction for (kind, call_id, realms, tries).
"""

from firmware.sip.headers import Headers
from firmware.sip.message import Request

T1 = 0.5
T2 = 4.0
T4 = 5.0

MAGIC_COOKIE = "z9hG4bK"


class Context:
    """What a client transaction is for (its `context`), so the TU can route its outcome back: `kind`
    ("invite", "bye", "register", ...), the call it belongs to, and the digest realms answered so far."""

    __slots__ = ("kind", "call_id", "realms", "tries")

    def __init__(self, kind, call_id=None):
        self.kind = kind
        self.call_id = call_id
        self.realms = []
        self.tries = 0


def client_key(branch, method):
    if method == "ACK":
        method = "INVITE"
    return (branch, method)


def transaction_key(request):
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    if branch.startswith(MAGIC_COOKIE):
        return (branch, via.host, via.port, method)
    # RFC 2543 peers (§17.2.3): match on the request's identifying fields instead.
    to_tag = request.to_addr.tag if request.method != "ACK" else None
    return ("2543", request.call_id, request.cseq[0], request.from_addr.tag, to_tag, str(via), method)


def build_ack_for_non2xx(request, response):
    headers = Headers()
    headers.add("Via", request.headers.get_all("Via")[0])
    headers.add("Max-Forwards", "70")
    headers.add("From", request.headers.get("From"))
    headers.add("To", response.headers.get("To"))
    headers.add("Call-ID", request.headers.get("Call-ID"))
    headers.add("CSeq", "{} ACK".format(request.cseq[0]))
    for route in request.headers.get_all("Route"):
        headers.add("Route", route)
    return Request("ACK", request.uri, headers, b"")


class _Transaction:
    __slots__ = (
        "request",
        "destination",
        "reliable",
        "state",
        "key",
        "outgoing",
        "timers",
        "context",
        "t1",
        "t2",
        "t4",
        "retransmissions",
        "is_invite",
        "interval",
        "last_response",
    )

    def __init__(self, request, destination, reliable, key, t1, t2, t4):
        self.request = request
        self.destination = destination
        self.reliable = reliable
        self.key = key
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
        self.is_invite = request.method == "INVITE"
        self.outgoing = []
        self.timers = []
        self.context = None
        self.last_response = None
        self.retransmissions = 0
        self.interval = t1

    def _set_timer(self, name, deadline):
        for timer in self.timers:
            if timer[0] == name:
                timer[1] = deadline
                return
        self.timers.append([name, deadline])

    def handle_timer(self, now):
        """Run the timers due at `now`, earliest first: "timeout" when one ended the transaction unanswered
        (Timer B, F or H), else None."""
        result = None
        for name, _ in self._expired(now):
            if self.state == "terminated":
                break
            result = self._on_timer(name, now) or result
        return result

    def _retransmit(self, data, timer, interval, now):
        """Send `data` again and re-arm `timer` `interval` from now (Timers A and E, §17.1.1.2 and
        §17.1.2.2; Timer G, §17.2.1)."""
        self.outgoing.append(data)
        self.retransmissions += 1
        self.interval = interval
        self._set_timer(timer, now + interval)

    def _cancel_timer(self, name):
        self.timers = [t for t in self.timers if t[0] != name]

    def _timer(self, name):
        for timer in self.timers:
            if timer[0] == name:
                return timer[1]
        return None

    def next_deadline(self):
        if not self.timers:
            return None
        return min(t[1] for t in self.timers)

    def _terminate(self):
        self.state = "terminated"
        self.timers = []

    def abort(self):
        """The TU gives up on this transaction: no retransmission or timeout will follow."""
        self._terminate()

    def _expired(self, now):
        """Names of the timers due at `now`, removed from the list, earliest first."""
        due = [t for t in self.timers if t[1] <= now]
        due.sort(key=lambda t: t[1])
        self.timers = [t for t in self.timers if t[1] > now]
        return due


class ClientTransaction(_Transaction):
    __slots__ = ("_data", "_ack")

    def __init__(self, request, destination, reliable, now, t1=T1, t2=T2, t4=T4):
        _Transaction.__init__(
            self, request, destination, reliable, client_key(request.top_via.branch, request.method), t1, t2, t4
        )
        self._ack = None
        self._data = request.to_bytes()
        self.outgoing.append(self._data)
        if self.is_invite:
            self.state = "calling"
            if not reliable:
                self._set_timer("A", now + t1)
            self._set_timer("B", now + 64 * t1)
        else:
            self.state = "trying"
            if not reliable:
                self._set_timer("E", now + t1)
            self._set_timer("F", now + 64 * t1)

    def receive_response(self, response, now):
        status = response.status
        self.last_response = response
        if self.is_invite:
            return self._invite_response(response, status, now)
        return self._non_invite_response(status, now)

    def _invite_response(self, response, status, now):
        state = self.state
        if state in ("calling", "proceeding"):
            if status < 200:
                self.state = "proceeding"
                self._cancel_timer("A")
                self._cancel_timer("B")  # §17.1.1.2: no timeout once a provisional arrived
                return True
            if status < 300:
                # RFC 6026 §8.4: Accepted; 2xx retransmissions go to the TU, which ACKs them.
                self.state = "accepted"
                self.timers = []
                self._set_timer("M", now + 64 * self.t1)
                return True
            self.state = "completed"
            self.timers = []
            self._ack = build_ack_for_non2xx(self.request, response).to_bytes()
            self.outgoing.append(self._ack)
            self._set_timer("D", now + (0 if self.reliable else 32.0))
            return True
        if state == "accepted":
            return 200 <= status < 300
        if state == "completed" and status >= 300 and self._ack is not None:
            self.outgoing.append(self._ack)  # §17.1.1.2: re-ACK retransmitted finals
        return False

    def _non_invite_response(self, status, now):
        state = self.state
        if state not in ("trying", "proceeding"):
            return False
        if status < 200:
            first = state == "trying"
            self.state = "proceeding"
            return first
        self.state = "completed"
        self.timers = []
        self._set_timer("K", now + (0 if self.reliable else self.t4))
        return True

    def _on_timer(self, name, now):
        if name == "A" and self.state == "calling":
            self._retransmit(self._data, "A", 2 * self.interval, now)
        elif name == "E" and self.state in ("trying", "proceeding"):
            interval = min(2 * self.interval, self.t2) if self.state == "trying" else self.t2
            self._retransmit(self._data, "E", interval, now)
        elif name in ("B", "F"):
            unanswered = self.state in ("calling", "trying", "proceeding")
            self._terminate()
            return "timeout" if unanswered else None
        elif name in ("D", "K", "M"):
            self._terminate()
        return None


class ServerTransaction(_Transaction):
    __slots__ = ("last_status", "source")

    def __init__(self, request, source, reliable, now, t1=T1, t2=T2, t4=T4):
        _Transaction.__init__(self, request, source, reliable, transaction_key(request), t1, t2, t4)
        self.source = source
        self.last_status = 0
        self.state = "proceeding" if self.is_invite else "trying"

    def send_response(self, response, now):
        data = response.to_bytes() if not isinstance(response, bytes) else response
        status = response.status if not isinstance(response, bytes) else int(data[8:11])
        if self.state in ("completed", "confirmed", "terminated"):
            return False
        if self.state == "accepted":
            if 200 <= status < 300:
                self.outgoing.append(data)  # RFC 6026 §7.1: TU's 2xx retransmissions pass through
                return True
            return False
        self.last_response = data
        self.last_status = status
        self.outgoing.append(data)
        if status < 200:
            if not self.is_invite:
                self.state = "proceeding"
            return True
        if self.is_invite:
            if status < 300:
                self.state = "accepted"
                self._set_timer("L", now + 64 * self.t1)
            else:
                self.state = "completed"
                if not self.reliable:
                    self.interval = self.t1
                    self._set_timer("G", now + self.t1)
                self._set_timer("H", now + 64 * self.t1)
        elif self.reliable:
            # §17.2.2: Timer J is 0 on a reliable transport, so Completed ends at once: nothing will be
            # retransmitted to absorb, and the transaction leaves the table now (issue 11).
            self._terminate()
        else:
            self.state = "completed"
            self._set_timer("J", now + 64 * self.t1)
        return True

    def absorbing(self):
        """True once the transaction only waits to absorb retransmissions (§17.2.1 Completed/Confirmed
        after the final response, §17.2.2 Completed): forgetting it early costs at most a repeated
        answer to a late retransmission, so the owner may evict it when its table is full."""
        return self.state in ("completed", "confirmed", "terminated")

    def receive_request(self, request, now):
        if request.method == "ACK":
            if self.state == "completed":
                self.state = "confirmed"
                self.timers = []
                self._set_timer("I", now + (0 if self.reliable else self.t4))
                return "ack"
            if self.state == "accepted":
                return "ack-2xx"
            return "absorbed"
        if self.state in ("proceeding", "trying", "completed") and self.last_response is not None:
            self.outgoing.append(self.last_response)
        return "retransmission"

    def _on_timer(self, name, now):
        if name == "G" and self.state == "completed":
            self._retransmit(self.last_response, "G", min(2 * self.interval, self.t2), now)
        elif name == "H":
            unanswered = self.state == "completed"
            self._terminate()
            return "timeout" if unanswered else None
        elif name in ("I", "J", "L"):
            self._terminate()
        return None
