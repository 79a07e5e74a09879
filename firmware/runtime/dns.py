"""RFC 3263 server location for the SIP transport: NAPTR, SRV, then A/AAAA, with dnspython. Host only.

API
---
Rfc3263Resolver(nameservers=None, port=53, timeout=2.0, cache_size=64, clock=time.monotonic)
    resolve(host, port, transport, secure=False) -> list of (transport, ip, port), best first:
      IP literal -> itself; explicit port -> A/AAAA; else NAPTR (RFC 3263 §4.1, services SIP+D2U,
      SIP+D2T, SIPS+D2T, only those of `transport`), else SRV (_sip._udp / _sip._tcp / _sips._tcp,
      RFC 2782 order: priority, then weight), else A/AAAA on 5060/5061 (§4.2). Results are cached
      for their TTL (bounded). Uses dnspython; without it, only A/AAAA via getaddrinfo.
    addresses(host) -> (list of IPs, ttl)   A then AAAA records (an IP literal: itself)
    Blocking: the lookup runs on the loop's thread with `timeout` (a registrar lookup is rare).
is_ip_literal(host) -> bool       an IPv4 or IPv6 address, not a name
default_port(transport) -> int    5061 for "tls", else 5060 (RFC 3261 §19.1.2)
"""

import logging
import socket
import time

log = logging.getLogger("sotto.sip.transport")  # the transport's logger: the lookups are its own

_NAPTR_SERVICES = {"udp": "SIP+D2U", "tcp": "SIP+D2T", "tls": "SIPS+D2T"}
_SRV_PREFIX = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}


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


class Rfc3263Resolver:
    def __init__(self, nameservers=None, port=53, timeout=2.0, cache_size=64, clock=time.monotonic):
        self.nameservers = nameservers
        self.port = port
        self.timeout = timeout
        self.cache_size = cache_size
        self._clock = clock
        self._cache = {}  # key -> (expires_at, result)
        self._dns = None
        try:
            import dns.resolver

            resolver = dns.resolver.Resolver(configure=nameservers is None)
            if nameservers is not None:
                resolver.nameservers = list(nameservers)
                resolver.port = port
            resolver.lifetime = timeout
            resolver.timeout = timeout
            self._dns = resolver
        except ImportError:  # pragma: no cover - dnspython is a runtime dependency
            self._dns = None
        except Exception as exc:  # no /etc/resolv.conf: fall back to getaddrinfo
            log.warning("DNS resolver unavailable (%s); using getaddrinfo only", exc)
            self._dns = None

    def _cached(self, key):
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry[0] < self._clock():
            del self._cache[key]
            return None
        return entry[1]

    def _store(self, key, result, ttl):
        if len(self._cache) >= self.cache_size:
            oldest = min(self._cache, key=lambda k: self._cache[k][0])
            del self._cache[oldest]
        self._cache[key] = (self._clock() + max(1, min(ttl, 3600)), result)

    def _query(self, name, rdtype):
        """[(rdata, ttl)] or [] for NXDOMAIN/NODATA/timeouts."""
        import dns.exception
        import dns.resolver

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

    def addresses(self, host):
        """A then AAAA records of `host` -> (list of IPs, ttl)."""
        if is_ip_literal(host):
            return [host], 3600
        if self._dns is None:
            try:
                infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
            except OSError:
                return [], 0
            return [info[4][0] for info in infos], 60
        ips = []
        ttl = 3600
        for rdtype in ("A", "AAAA"):
            for rdata, record_ttl in self._query(host, rdtype):
                ips.append(rdata.address)
                ttl = min(ttl, record_ttl)
        return ips, ttl

    def _srv(self, name, transport):
        records = self._query(name, "SRV")
        if not records:
            return None, 0
        # RFC 2782: lowest priority first; within a priority, heavier weight first (deterministic).
        records.sort(key=lambda item: (item[0].priority, -item[0].weight))
        targets = []
        ttl = min(r[1] for r in records)
        for rdata, _ in records:
            target = str(rdata.target).rstrip(".")
            if target == "":
                continue  # "." means the service is decidedly not available here
            ips, ip_ttl = self.addresses(target)
            ttl = min(ttl, ip_ttl) if ips else ttl
            for ip in ips:
                targets.append((transport, ip, rdata.port))
        return targets, ttl

    def resolve(self, host, port, transport, secure=False):
        transport = "tls" if secure else transport
        if is_ip_literal(host):
            return [(transport, host, port or default_port(transport))]
        key = (host.lower(), port, transport)
        cached = self._cached(key)
        if cached is not None:
            return cached
        result, ttl = self._resolve_uncached(host, port, transport)
        if result:
            self._store(key, result, ttl)
        return result

    def _resolve_uncached(self, host, port, transport):
        if port is not None or self._dns is None:
            ips, ttl = self.addresses(host)
            return [(transport, ip, port or default_port(transport)) for ip in ips], ttl
        # §4.1: NAPTR for the domain, keeping the services of our transport.
        wanted = _NAPTR_SERVICES[transport]
        naptrs = self._query(host, "NAPTR")
        naptrs.sort(key=lambda item: (item[0].order, item[0].preference))
        for rdata, _ in naptrs:
            service = rdata.service.decode() if isinstance(rdata.service, bytes) else str(rdata.service)
            flags = rdata.flags.decode() if isinstance(rdata.flags, bytes) else str(rdata.flags)
            if service.upper() != wanted or flags.lower() != "s":
                continue
            targets, ttl = self._srv(str(rdata.replacement).rstrip("."), transport)
            if targets:
                return targets, ttl
        # §4.2: no usable NAPTR -> SRV for our transport.
        targets, ttl = self._srv(_SRV_PREFIX[transport] + host, transport)
        if targets:
            return targets, ttl
        # No SRV: A/AAAA on the default port.
        ips, ttl = self.addresses(host)
        return [(transport, ip, default_port(transport)) for ip in ips], ttl
