"""RFC 3263 server location for the SIP transport: NAPTR, SRV, then A/AAAA. Host only.

The loop never waits on a resolver: resolve_async() runs the lookup as a small machine of
non-blocking UDP queries (DnsClient) on the transport's Loop, with a timeout and retries per query,
and answers through a callback. dnspython builds and parses the messages only; the sockets, timers
and retries are ours. The same lookup plan (a generator that yields the queries it needs) drives the
blocking resolve(), kept for tools and tests that want an answer in one call.

API
---
Rfc3263Resolver(nameservers=None, port=53, timeout=2.0, cache_size=64, clock=time.monotonic, tries=3)
    nameservers None: those of /etc/resolv.conf. `timeout` is the whole budget of one query; it is
    spread over `tries` sends (to the nameservers in turn).
    resolve_async(loop, host, port, transport, callback, secure=False) -> list or None
      The targets now when they are known without asking (an IP literal, a cached answer), else None
      and callback(targets) later, from the loop (an empty list when nothing resolved). Lookups of
      the same key already under way are shared.
    resolve(host, port, transport, secure=False) -> list of (transport, ip, port), best first, blocking:
      IP literal -> itself; explicit port -> A/AAAA; else NAPTR (RFC 3263 §4.1, services SIP+D2U,
      SIP+D2T, SIPS+D2T, only those of `transport`), else SRV (_sip._udp / _sip._tcp / _sips._tcp,
      RFC 2782 order: priority, then weight), else A/AAAA on 5060/5061 (§4.2). Results are cached
      for their TTL (bounded), by both paths.
    addresses(host) -> (list of IPs, ttl)   A then AAAA records (an IP literal: itself), blocking
    pending -> number of lookups under way; queries_sent, queries_timed_out (counters)
DnsClient(loop, nameservers, port, timeout, tries, clock)   one query: query(name, rdtype, callback)
    callback([(rdata, ttl)]) from the loop; [] for NXDOMAIN or no data, None for no answer after all
    tries (not cached: the next lookup asks again).
    A reply that does not answer our question (wrong id, name, type or source) is ignored.
is_ip_literal(host) -> bool       an IPv4 or IPv6 address, not a name
default_port(transport) -> int    5061 for "tls", else 5060 (RFC 3261 §19.1.2)
"""

import logging
import socket
import time

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver

log = logging.getLogger("sotto.sip.transport")  # the transport's logger: the lookups are its own

_NAPTR_SERVICES = {"udp": "SIP+D2U", "tcp": "SIP+D2T", "tls": "SIPS+D2T"}
_SRV_PREFIX = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}
MAX_PENDING = 32  # lookups under way at once; more fail at once (a name per peer is plenty)
MAX_REPLY = 4096
NEGATIVE_TTL = 30  # s: how long "no such record" is remembered (RFC 2308 lets the SOA say; we cap it)


def is_ip_literal(host):
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except OSError:
            continue
    return False


def default_port(transport):
    return 5061 if transport == "tls" else 5060


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _plan(host, port, transport):
    """The RFC 3263 lookup as a generator: yields (name, rdtype), is sent [(rdata, ttl)] back, and
    returns (targets, ttl). Both resolve() and resolve_async() drive it."""
    if port is not None:
        ips, ttl = yield from _addresses(host)
        return [(transport, ip, port) for ip in ips], ttl
    # §4.1: NAPTR for the domain, keeping the services of our transport.
    wanted = _NAPTR_SERVICES[transport]
    naptrs = yield (host, "NAPTR")
    naptrs.sort(key=lambda item: (item[0].order, item[0].preference))
    for rdata, _ in naptrs:
        if _text(rdata.service).upper() != wanted or _text(rdata.flags).lower() != "s":
            continue
        targets, ttl = yield from _srv(str(rdata.replacement).rstrip("."), transport)
        if targets:
            return targets, ttl
    # §4.2: no usable NAPTR -> SRV for our transport.
    targets, ttl = yield from _srv(_SRV_PREFIX[transport] + host, transport)
    if targets:
        return targets, ttl
    # No SRV: A/AAAA on the default port.
    ips, ttl = yield from _addresses(host)
    return [(transport, ip, default_port(transport)) for ip in ips], ttl


def _addresses(host):
    if is_ip_literal(host):
        return [host], 3600
    ips = []
    ttl = 3600
    for rdtype in ("A", "AAAA"):
        records = yield (host, rdtype)
        for rdata, record_ttl in records:
            ips.append(rdata.address)
            ttl = min(ttl, record_ttl)
    return ips, ttl


def _srv(name, transport):
    records = yield (name, "SRV")
    if not records:
        return [], 0
    # RFC 2782: lowest priority first; within a priority, heavier weight first (deterministic).
    records.sort(key=lambda item: (item[0].priority, -item[0].weight))
    targets = []
    ttl = min(r[1] for r in records)
    for rdata, _ in records:
        target = str(rdata.target).rstrip(".")
        if target == "":
            continue  # "." means the service is decidedly not available here
        ips, ip_ttl = yield from _addresses(target)
        ttl = min(ttl, ip_ttl) if ips else ttl
        for ip in ips:
            targets.append((transport, ip, rdata.port))
    return targets, ttl


def records_of(response, name, rdtype):
    """[(rdata, ttl)] answering (name, rdtype) in `response`, following CNAMEs within the answer."""
    qname = dns.name.from_text(name)
    wanted = dns.rdatatype.from_text(rdtype)
    for _ in range(8):  # a CNAME chain longer than this is a loop or an attack
        found = None
        for rrset in response.answer:
            if rrset.name != qname or rrset.rdclass != dns.rdataclass.IN:
                continue
            if rrset.rdtype == wanted:
                return [(rdata, rrset.ttl) for rdata in rrset]
            if rrset.rdtype == dns.rdatatype.CNAME:
                found = rrset
        if found is None:
            return []
        qname = found[0].target
    return []


class _Query:
    __slots__ = ("name", "rdtype", "message", "sock", "timer", "tries", "callbacks")


class DnsClient:
    """Non-blocking UDP queries on a Loop: a socket per query, resent to the next nameserver on each
    timeout, at most `tries` sends in `timeout` seconds."""

    def __init__(self, loop, nameservers, port=53, timeout=2.0, tries=3):
        self.loop = loop
        self.nameservers = list(nameservers)
        self.port = port
        self.tries = max(1, tries)
        self.interval = timeout / self.tries
        self._queries = {}  # (name, rdtype) -> _Query
        self.sent = 0
        self.timed_out = 0

    @property
    def pending(self):
        return len(self._queries)

    def query(self, name, rdtype, callback):
        key = (name.lower(), rdtype)
        query = self._queries.get(key)
        if query is not None:
            query.callbacks.append(callback)  # the same question is under way: share the answer
            return
        if not self.nameservers:
            self.loop.call_later(0, lambda: callback([]))
            return
        query = _Query()
        query.name, query.rdtype, query.tries, query.callbacks = name, rdtype, 0, [callback]
        query.message = dns.message.make_query(name, rdtype)
        query.sock = None
        query.timer = None
        self._queries[key] = query
        self._send(key, query)

    def _send(self, key, query):
        server = self.nameservers[query.tries % len(self.nameservers)]
        query.tries += 1
        if query.sock is not None:
            self.loop.remove_reader(query.sock)
            query.sock.close()
        family = socket.AF_INET6 if ":" in server else socket.AF_INET
        # A fresh socket (a new random source port) per send, so a late or forged reply to an earlier
        # send cannot be taken for this one (RFC 5452 §9).
        query.sock = socket.socket(family, socket.SOCK_DGRAM)
        query.sock.setblocking(False)
        try:
            query.sock.connect((server, self.port))
            query.sock.send(query.message.to_wire())
            self.sent += 1
        except OSError as exc:
            log.warning("DNS query to %s failed: %s", server, exc)
        self.loop.add_reader(query.sock, lambda: self._readable(key, query))
        query.timer = self.loop.call_later(self.interval, lambda: self._timeout(key, query))

    def _readable(self, key, query):
        try:
            data = query.sock.recv(MAX_REPLY)
        except OSError:
            return  # ICMP unreachable and the like: the timeout moves on to the next server
        try:
            response = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return  # not a DNS message: ignored, the real answer may still come
        if not query.message.is_response(response):
            return
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            log.warning("DNS %s %s: %s", query.rdtype, query.name, dns.rcode.to_text(rcode))
        self._finish(key, query, records_of(response, query.name, query.rdtype))

    def _timeout(self, key, query):
        if self._queries.get(key) is not query:
            return
        if query.tries < self.tries:
            self._send(key, query)
            return
        self.timed_out += 1
        log.warning("DNS %s %s: no answer in %d tries", query.rdtype, query.name, query.tries)
        self._finish(key, query, None)

    def _finish(self, key, query, records):
        if self._queries.get(key) is query:
            del self._queries[key]
        if query.timer is not None:
            query.timer.cancel()
        if query.sock is not None:
            self.loop.remove_reader(query.sock)
            query.sock.close()
            query.sock = None
        for callback in query.callbacks:
            callback(None if records is None else list(records))

    def close(self):
        for query in list(self._queries.values()):
            if query.timer is not None:
                query.timer.cancel()
            if query.sock is not None:
                self.loop.remove_reader(query.sock)
                query.sock.close()
        self._queries = {}


class Rfc3263Resolver:
    def __init__(self, nameservers=None, port=53, timeout=2.0, cache_size=64, clock=time.monotonic, tries=3):
        self.port = port
        self.timeout = timeout
        self.tries = tries
        self.cache_size = cache_size
        self._clock = clock
        self._cache = {}  # key -> (expires_at, result)
        self._records = {}  # (name, rdtype) -> (expires_at, records): the async path's answers
        self._lookups = {}  # key -> [callbacks] of lookups under way
        self._client = None
        self._dns = None
        if nameservers is None:
            try:
                nameservers = dns.resolver.Resolver(configure=True).nameservers
            except Exception as exc:  # no /etc/resolv.conf: nothing to ask
                log.warning("DNS resolver unavailable (%s)", exc)
                nameservers = []
        self.nameservers = list(nameservers)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = self.nameservers
        resolver.port = port
        resolver.lifetime = timeout
        resolver.timeout = timeout
        self._dns = resolver

    @property
    def pending(self):
        return len(self._lookups)

    @property
    def queries_sent(self):
        return self._client.sent if self._client is not None else 0

    @property
    def queries_timed_out(self):
        return self._client.timed_out if self._client is not None else 0

    def _cached(self, table, key):
        entry = table.get(key)
        if entry is None:
            return None
        if entry[0] < self._clock():
            del table[key]
            return None
        return entry[1]

    def _store(self, table, key, result, ttl):
        if len(table) >= self.cache_size:
            oldest = min(table, key=lambda k: table[k][0])
            del table[oldest]
        table[key] = (self._clock() + max(1, min(ttl, 3600)), result)

    # -- blocking -------------------------------------------------------------------------------------
    def _query(self, name, rdtype):
        """[(rdata, ttl)] or [] for NXDOMAIN/NODATA/timeouts."""
        if not self.nameservers:
            return []
        try:
            answer = self._dns.resolve(name, rdtype, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            log.warning("DNS %s %s failed: %s", rdtype, name, exc)
            return []
        if answer.rrset is None:
            return []
        return [(rdata, answer.rrset.ttl) for rdata in answer.rrset]

    def _run(self, plan):
        try:
            question = next(plan)
            while True:
                question = plan.send(self._query(*question))
        except StopIteration as done:
            return done.value

    def addresses(self, host):
        """A then AAAA records of `host` -> (list of IPs, ttl)."""
        return self._run(_addresses(host))

    def _known(self, host, port, transport, secure):
        """(key, targets): targets without a lookup (an IP literal, a live cache entry), else None."""
        transport = "tls" if secure else transport
        if is_ip_literal(host):
            return None, [(transport, host, port or default_port(transport))]
        key = (host.lower(), port, transport)
        return key, self._cached(self._cache, key)

    def resolve(self, host, port, transport, secure=False):
        key, known = self._known(host, port, transport, secure)
        if known is not None:
            return known
        transport = key[2]
        result, ttl = self._run(_plan(host, port, transport))
        if result:
            self._store(self._cache, key, result, ttl)
        return result

    # -- on the loop ----------------------------------------------------------------------------------
    def resolve_async(self, loop, host, port, transport, callback, secure=False):
        key, known = self._known(host, port, transport, secure)
        if known is not None:
            return known
        transport = key[2]
        waiting = self._lookups.get(key)
        if waiting is not None:
            waiting.append(callback)
            return None
        if len(self._lookups) >= MAX_PENDING:
            log.warning("too many DNS lookups under way; %s not resolved", host)
            return []
        if self._client is None or self._client.loop is not loop:
            self._client = DnsClient(loop, self.nameservers, self.port, self.timeout, self.tries)
        self._lookups[key] = [callback]
        self._step(key, _plan(host, port, transport), None)
        return None

    def _step(self, key, plan, records):
        """Drive `plan` until it needs a record not in the cache (then wait for it) or finishes."""
        try:
            question = next(plan) if records is None else plan.send(records)
            while True:
                cached = self._cached(self._records, question)
                if cached is None:
                    self._ask(key, plan, question)
                    return
                question = plan.send(list(cached))
        except StopIteration as done:
            result, ttl = done.value
        if result:
            self._store(self._cache, key, result, ttl)
        for callback in self._lookups.pop(key, []):
            callback(result)

    def _ask(self, key, plan, question):
        self._client.query(question[0], question[1], lambda found: self._answered(key, plan, question, found))

    def _answered(self, key, plan, question, records):
        if records is None:
            records = []  # no answer at all: go on without it, and ask again next time
        else:
            self._store(self._records, question, records, min([r[1] for r in records]) if records else NEGATIVE_TTL)
        self._step(key, plan, records)

    def close(self):
        if self._client is not None:
            self._client.close()
