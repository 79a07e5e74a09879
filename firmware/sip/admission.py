"""What the UserAgent lets in before it parses or serves a request (issue 11). Sans-I/O.

Two bounds keep one sender from starving the others:
- a token bucket per source host: SOURCE_RATE messages a second on average, SOURCE_BURST at once;
  beyond that messages are dropped unparsed (parsing and answering a flood would take the loop from
  everyone else). A call set-up is about ten messages; a busy proxy stays well under. Generous on
  purpose: a fuzz from a handful of hosts, as tests/hostile does, is still parsed in full.
- server transactions per source host (MAX_TRANSACTIONS_PER_SOURCE) and in total (MAX_TRANSACTIONS);
  a request past them gets 503 with Retry-After (RETRY_AFTER_BUSY, RFC 3261 §20.33).

API
---
SourceLimiter(rate, burst)   rate None/0: no limit
    within_rate(host, now) -> bool
admit(server_transactions, host) -> bool   may forget the finished transaction that expires first
"""

MAX_TRANSACTIONS = 256  # client transactions, and server transactions in total
# Server transactions one source host may hold, finished ones (still absorbing retransmissions for
# Timer J, 32 s on UDP) included. Past it that host gets 503 + Retry-After while other hosts are served:
# one table for all senders let ~8 OPTIONS/s from one address lock every caller out (issue 11). 64 in
# 32 s still lets a proxy relay two requests a second (INFO digits, re-INVITEs, OPTIONS pings).
MAX_TRANSACTIONS_PER_SOURCE = 64
RETRY_AFTER_BUSY = 10  # seconds, RFC 3261 §20.33: a flooder is told to come back later
SOURCE_RATE = 200.0
SOURCE_BURST = 400
MAX_TRACKED_SOURCES = 256


class SourceLimiter:
    __slots__ = ("rate", "burst", "_buckets")

    def __init__(self, rate=SOURCE_RATE, burst=SOURCE_BURST):
        self.rate = rate
        self.burst = burst
        self._buckets = {}  # source host -> [tokens, last time]: at most MAX_TRACKED_SOURCES

    def within_rate(self, host, now):
        """A token bucket per source host: a flood is dropped before it costs a parse."""
        if not self.rate:
            return True
        buckets = self._buckets
        bucket = buckets.get(host)
        if bucket is None:
            if len(buckets) >= MAX_TRACKED_SOURCES:
                oldest = None
                for key, value in buckets.items():
                    if oldest is None or value[1] < buckets[oldest][1]:
                        oldest = key
                del buckets[oldest]
            bucket = [float(self.burst), now]
            buckets[host] = bucket
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self.burst:
            tokens = float(self.burst)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True


def admit(server, host):
    """Room in `server` (key -> ServerTransaction) for one more transaction from `host`? When only the
    total is reached, the finished transaction that expires first is forgotten early (it only absorbs
    retransmissions), so finished ones never lock new callers out."""
    from_host = 0
    evictable = None
    for tx in server.values():
        if tx.source[0] == host:
            from_host += 1
        if tx.absorbing():
            if evictable is None or _expiry(tx) < _expiry(evictable):
                evictable = tx
    if from_host >= MAX_TRANSACTIONS_PER_SOURCE:
        return False
    if len(server) < MAX_TRANSACTIONS:
        return True
    if evictable is None:
        return False
    server.pop(evictable.key, None)
    return True


def _expiry(tx):
    deadline = tx.next_deadline()
    return -1.0 if deadline is None else deadline
