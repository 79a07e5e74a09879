"""The UDP side of the SIP transport: datagrams, CRLF keep-alives, and RFC 3263 §4.3 failover between the
targets of a name (ICMP unreachable from the socket's error queue, or a silent target). Host only; see
firmware/runtime/sip_transport.py for the API."""

import errno
import logging
import socket
import struct

from firmware.runtime.sip_socket import MAX_READS_PER_WAKE, PING, PONG, SipSocket

log = logging.getLogger("sotto.sip.transport")

MAX_DATAGRAM = 65535
# UDP failover (RFC 3263 §4.3) between the targets of one host name: a target that answers ICMP
# unreachable is left at once; one we have heard nothing from this long after sending to it, too.
UDP_FAILOVER_SILENCE = 4.0
MAX_UDP_ROUTES = 64
MAX_RECENT_DESTINATIONS = 64
# Linux: queue ICMP errors of an unconnected UDP socket, with the destination they are about (ip(7)).
_IP_RECVERR = 11
_IPV6_RECVERR = 25


class _Route:
    """The RFC 3263 targets of one UDP destination given to send() and the one in use."""

    __slots__ = ("targets", "index", "waiting_since", "last_sent")

    def __init__(self, targets):
        self.targets = targets
        self.index = 0
        self.waiting_since = None  # when we first sent the current datagram there without hearing back
        self.last_sent = None  # hash of the last datagram: the same again is a retransmission

    def current(self):
        return self.targets[self.index]

    def advance(self):
        """Move to the next target; False (and back to the first) when there is none left."""
        self.waiting_since = None
        self.index += 1
        if self.index >= len(self.targets):
            self.index = 0
            return False
        return True


class UdpTransport(SipSocket):
    kind = socket.SOCK_DGRAM

    def __init__(self, *args, **kwargs):
        self._routes = {}  # addr given to send() -> _Route, for names with several targets
        self._recent = {}  # (ip, port) we sent to -> the addr send() was given, for ICMP errors
        super().__init__(*args, **kwargs)

    def _prepare_socket(self):
        try:  # ICMP errors are otherwise invisible on an unconnected UDP socket
            if self._family == socket.AF_INET6:
                self._sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
            else:
                self._sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
        except OSError:
            pass

    def _on_listen_readable(self):
        for _ in range(MAX_READS_PER_WAKE):
            try:
                data, addr = self._sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.errors += 1  # e.g. ICMP port unreachable reported on the next read
                self._read_udp_errors()
                continue
            if self._routes:
                self._heard_from(addr[:2])
            if data in (PING, PONG):
                if data == PING:
                    self._udp_send(PONG, addr[:2])
                continue
            self._deliver(data, addr[:2])

    def _send_to_targets(self, data, addr, targets):
        return self._udp_send(data, self._udp_target(addr, targets, data), addr)

    def _udp_send(self, data, addr, origin=None):
        if origin is not None:
            if addr not in self._recent and len(self._recent) >= MAX_RECENT_DESTINATIONS:
                del self._recent[next(iter(self._recent))]
            self._recent[addr] = origin
        try:
            self._sock.sendto(data, addr)
            return True
        except OSError as exc:
            self.errors += 1
            if exc.errno not in (errno.ECONNREFUSED, errno.EAGAIN):
                log.warning("SIP send to %s:%s failed: %s", addr[0], addr[1], exc.strerror or exc)
            return False

    # -- UDP failover (RFC 3263 §4.3) -----------------------------------------------------------------
    def _udp_target(self, addr, targets, data):
        """(ip, port) to send to for `addr`: the first target, or for a name with several targets the one
        in use, moving on when a retransmission (the same bytes again) finds it silent for
        UDP_FAILOVER_SILENCE since the first copy was sent.

        The UserAgent's retransmissions of a request (Timers A/E) go through here too, so a transaction
        whose first target is dead reaches the next one with its own branch: that server never saw it.
        """
        if len(targets) == 1:
            return targets[0][1:]
        peers = [(ip, port) for _, ip, port in targets]
        route = self._routes.get(addr)
        if route is None or route.targets != peers:
            if route is None and len(self._routes) >= MAX_UDP_ROUTES:
                del self._routes[next(iter(self._routes))]
            route = self._routes[addr] = _Route(peers)
        now = self._clock()
        digest = hash(data)
        if digest != route.last_sent:  # a new message (an ACK expects no answer: the next one restarts)
            route.last_sent = digest
            route.waiting_since = now
        elif route.waiting_since is not None and now - route.waiting_since >= UDP_FAILOVER_SILENCE:
            silent = route.current()
            route.advance()
            route.waiting_since = now
            log.warning(
                "SIP target %s:%s silent for %.0f s; trying %s:%s",
                silent[0],
                silent[1],
                UDP_FAILOVER_SILENCE,
                route.current()[0],
                route.current()[1],
            )
        elif route.waiting_since is None:
            route.waiting_since = now
        return route.current()

    def _heard_from(self, peer):
        for route in self._routes.values():
            if route.current() == peer:
                route.waiting_since = None

    def _read_udp_errors(self):
        """Drain the socket's error queue (IP_RECVERR): an ICMP unreachable for a target moves its name
        on to the next target; with none left, or for a single target, on_error(addr)."""
        for _ in range(MAX_READS_PER_WAKE):
            try:
                _data, ancillary, _flags, dest = self._sock.recvmsg(1, 512, socket.MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                return
            except (OSError, AttributeError, ValueError):
                return
            code = None
            for _level, _type, payload in ancillary:
                if len(payload) >= 4:
                    code = struct.unpack("=I", payload[:4])[0]
            if code not in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
                continue
            self._unreachable(dest[:2], code)

    def _unreachable(self, peer, code):
        log.warning("SIP target %s:%s unreachable: %s", peer[0], peer[1], errno.errorcode.get(code, code))
        reported = []
        for addr, route in list(self._routes.items()):
            if route.current() != peer:
                continue
            if route.advance():
                log.warning("SIP: trying the next target of %s, %s:%s", addr[0], route.current()[0], route.current()[1])
            else:
                reported.append(addr)
        origin = self._recent.get(peer)
        if origin is not None and origin not in self._routes and origin not in reported:
            reported.append(origin)
        if self.on_error is not None:
            for addr in reported:
                self.on_error(addr)
