"""SIP transports for the UserAgent: UDP, TCP and TLS sockets on the shell's Loop. Host only.

The UserAgent is sans-I/O; this module is the socket side of it. It runs only on a
firmware.runtime.loop.Loop (readers, writers, timers and its clock), the way the phone runs it: nothing
here ever blocks on the network, and nothing polls on its own. RFC 3263 lookups are in
firmware/runtime/dns.py.

API
---
SipTransport(transport, local_address, loop, on_message=None, on_error=None, resolver=None,
             tls_context=None, server_tls_context=None, connect_timeout=2.0, max_connections=32,
             listen=True)
    The one way to build it: the phone (runtime/endpoint.py) and the interop tests' Driver both call it.
    transport       "udp", "tcp" or "tls" (the UserAgent must be built with the same one)
    local_address   where to bind (port 0: any; see `local_address` after construction for the real one)
    loop            the Loop that drives it: add_reader/remove_reader, add_writer/remove_writer,
                    call_later (connect, pong and partial-message deadlines) and now() (the clock)
    on_message      callback(data, (host, port)) for every SIP message received (datagrams as read;
                    on streams, one message framed by Content-Length, RFC 3261 §18.3)
    on_error        callback(addr) when something accepted by send(data, addr) could not be delivered
                    after all: every resolved target refused the connection, timed out
                    (connect_timeout per target, TCP connect + TLS handshake) or failed TLS
                    verification, or the connection broke with that data still queued. `addr` is the
                    very tuple given to send(); tell the UserAgent: ua.transport_error(addr, now).
                    Called from loop callbacks (writer, reader, timer), or from inside send() when a
                    connection still opening has to be evicted for a new one (max_connections).
                    None: such failures are only logged and counted.
    resolver        an Rfc3263Resolver (default: one using the system's DNS servers)
    tls_context     ssl.SSLContext for outgoing TLS (default: client_tls_context(), system CAs)
    server_tls_context  ssl.SSLContext with our certificate to accept incoming TLS (optional)

send() never waits on the network: a TCP connect is started with EINPROGRESS and completes on
writability, the client TLS handshake is driven by SSLWantRead/SSLWantWrite through the loop, and what
is sent meanwhile is queued (bounded, MAX_QUEUED_BYTES) and written when the connection is up, in
order. A target that refuses, times out or fails TLS is replaced by the next resolved one (RFC 3263
§4.3, up to MAX_CONNECT_ATTEMPTS targets) with the same queue; when none is left, on_error(addr) is
called once per address queued for. Writes on an open connection are non-blocking too; what the kernel
does not take waits for writability.
UDP failover (RFC 3263 §4.3): for a name with several targets, send() keeps using one target and moves
to the next when that one answers ICMP unreachable (read from the socket's error queue, IP_RECVERR on
Linux) or when a retransmission (the same bytes again) finds that nothing came back from it within
UDP_FAILOVER_SILENCE (4 s) of the first copy. The UserAgent's retransmissions (Timers A/E) then reach
the next target within the same transaction: §4.3 asks for a new transaction with a new branch, but the
new server has never seen this one. ICMP unreachable for the last target of a name, or for a lone
target, calls on_error(addr), so the transaction fails at once with 503 instead of after Timer B/F.

Methods
    send(data, addr) -> bool     addr = (host, port); port None or a host name -> RFC 3263 lookup;
                                 opens a TCP/TLS connection when none exists to that peer (or reuses
                                 one being opened), trying up to 3 resolved targets in order.
                                 False = failed now (no target resolved, queue full, every target
                                 refused at once, a UDP send error): tell the UserAgent
                                 (ua.transport_error(addr, now)); on_error is NOT called for it.
                                 True = sent or queued: a later failure comes through on_error(addr).
    keepalive()                  RFC 5626 §4.4.1: a CRLFCRLF ping on every open connection (call it
                                 every ~30 s; pongs and pings from peers are handled automatically).
                                 A ping (from here or sent with send()) that gets no pong, nor any
                                 other data, within PONG_TIMEOUT (10 s) fails the flow: the
                                 connection is closed and on_error(addr) told for every address
                                 send() used it for (also when the peer closes it), so the UserAgent
                                 re-registers at once (counted in `flow_failures`).
    sockets() -> list            the listener and the open connections (what the loop reads)
    close()
    Attributes: local_address, errors (count of failed targets, dropped connections and sends),
    malformed (framing errors), flow_failures, refused, slow_dropped
Bounds on a stream listener (issue 11): at most MAX_CONNECTIONS_PER_SOURCE (8) inbound connections
per source host (more are closed at accept, counted in `refused`) and max_connections in all (the
next accept evicts a slow or handshaking inbound connection first, else the least recently used); a
message must arrive within PARTIAL_MESSAGE_TIMEOUT (10 s) of its first byte (slowloris: counted in
`slow_dropped`); a header beyond 64 KiB or a buffer beyond 128 KiB closes the connection (framing).
route_available(addr) -> bool   whether the routing table has a way to `addr` (an IP literal) now
client_tls_context(cafile=None, pinned_cert=None) -> ssl.SSLContext
    Verifies the server against the system CAs, or against one pinned certificate (PEM file): then the
    certificate itself is the trust anchor and the host name is not checked.
"""

import errno
import logging
import socket
import ssl
import struct
import time

from firmware.errors import RemoteProtocolError
from firmware.runtime.dns import Rfc3263Resolver, is_ip_literal
from firmware.sip.message import KEEPALIVE_PING, StreamFramer

log = logging.getLogger("sotto.sip.transport")

MAX_DATAGRAM = 65535
MAX_READS_PER_WAKE = 32
MAX_CONNECT_ATTEMPTS = 3
MAX_QUEUED_BYTES = 256 * 1024  # per connection, while it opens or while the peer reads slowly
MAX_ORIGINS = 8  # distinct send() addresses remembered per opening connection (for on_error)
WRITE_CHUNK = 16384
# UDP failover (RFC 3263 §4.3) between the targets of one host name: a target that answers ICMP
# unreachable is left at once; one we have heard nothing from this long after sending to it, too.
UDP_FAILOVER_SILENCE = 4.0
# Bounds on what peers may hold on a stream listener (issue 11, TCP abuse): connections per source
# host, and how long a message may take to arrive once it has started (slowloris). A message is at
# most MAX_MESSAGE (64 KiB) and the framer's buffer twice that, so memory stays bounded per connection.
MAX_CONNECTIONS_PER_SOURCE = 8
PARTIAL_MESSAGE_TIMEOUT = 10.0  # s from the first byte of a message to its last
LISTEN_BACKLOG = 128  # a connect churn must not fill it before the loop accepts (a dropped SYN costs 1 s)
PONG_TIMEOUT = 10.0  # RFC 5626 §4.4.1: no CRLF pong within 10 s of a ping -> the flow has failed
MAX_UDP_ROUTES = 64
MAX_RECENT_DESTINATIONS = 64
# Linux: queue ICMP errors of an unconnected UDP socket, with the destination they are about (ip(7)).
_IP_RECVERR = 11
_IPV6_RECVERR = 25
PING = b"\r\n\r\n"
PONG = b"\r\n"



def route_available(addr):
    """Does the host have a route to `addr` (an IP literal) now? A connect() on a UDP socket asks the
    routing table and sends nothing: ENETUNREACH while the network is down (no address, no link)."""
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.connect((addr[0], addr[1] or 5060))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def _remember_flow(conn, addr):
    if addr not in conn.flow_addrs and len(conn.flow_addrs) < MAX_ORIGINS:
        conn.flow_addrs.append(addr)


def client_tls_context(cafile=None, pinned_cert=None):
    if pinned_cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=pinned_cert)
        context.check_hostname = False  # the pinned certificate is the identity
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


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


class _Connection:
    """One TCP/TLS connection. Outgoing ones start in "connecting" (non-blocking connect, then the TLS
    handshake) and hold what is sent meanwhile in `outgoing`; `targets` are the RFC 3263 targets left to
    try if this one fails, `origins` the addresses send() was asked for (reported to on_error)."""

    __slots__ = (
        "sock",
        "peer",
        "framer",
        "outgoing",
        "last_used",
        "handshaking",
        "connecting",
        "outbound",
        "server_name",
        "targets",
        "origins",
        "deadline",
        "writing",
        "write_size",
        "ping_sent",
        "flow_addrs",
        "partial_since",
    )

    def __init__(self, sock, peer, handshaking=False):
        self.sock = sock
        self.peer = peer
        self.framer = StreamFramer()
        self.outgoing = b""
        self.last_used = time.monotonic()
        self.handshaking = handshaking
        self.connecting = False
        self.outbound = False
        self.server_name = None
        self.targets = []
        self.origins = []
        self.deadline = None
        self.writing = False
        self.write_size = 0  # a TLS write that wanted a retry must be retried with the same length
        self.ping_sent = None  # when our unanswered CRLFCRLF ping went out (RFC 5626 §4.4.1)
        self.flow_addrs = []  # addresses send() used this connection for: told when the flow fails
        self.partial_since = None  # when the message now being received began (None: between messages)


class SipTransport:
    def __init__(self, transport, local_address, loop, on_message=None, on_error=None, resolver=None,
                 tls_context=None, server_tls_context=None, connect_timeout=2.0, max_connections=32, listen=True):
        transport = transport.lower()
        if transport not in ("udp", "tcp", "tls"):
            raise ValueError("unknown SIP transport " + transport)
        self.transport = transport
        self.on_message = on_message
        self.on_error = on_error
        self._loop = loop
        self._clock = loop.now
        self.resolver = resolver
        self.tls_context = tls_context
        self.server_tls_context = server_tls_context
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.errors = 0
        self.malformed = 0
        self.flow_failures = 0
        self.refused = 0  # connections refused: their host already held MAX_CONNECTIONS_PER_SOURCE
        self.slow_dropped = 0  # connections dropped: a message took over PARTIAL_MESSAGE_TIMEOUT
        self._connections = {}  # peer (ip, port) -> _Connection
        self._routes = {}  # UDP: addr given to send() -> _Route, for names with several targets
        self._recent = {}  # UDP: (ip, port) we sent to -> the addr send() was given, for ICMP errors
        host, port = local_address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if transport == "udp":
            self._sock = socket.socket(family, socket.SOCK_DGRAM)
        else:
            self._sock = socket.socket(family, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
            if transport != "udp" and listen:
                self._sock.listen(LISTEN_BACKLOG)
        except OSError:
            self._sock.close()
            raise
        self._sock.setblocking(False)
        if transport == "udp":
            try:  # ICMP errors are otherwise invisible on an unconnected UDP socket
                if family == socket.AF_INET6:
                    self._sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
                else:
                    self._sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
            except OSError:
                pass
        self.local_address = self._sock.getsockname()[:2]
        self._listening = transport == "udp" or listen
        if self._listening:
            self._watch(self._sock, self._on_listen_readable)

    # -- loop plumbing --------------------------------------------------------------------------------
    def _watch(self, sock, callback):
        self._loop.add_reader(sock, callback)

    def _unwatch(self, sock):
        self._loop.remove_reader(sock)

    def _call_later(self, delay, callback):
        self._loop.call_later(delay, callback)

    def _want_write(self, conn, callback):
        if conn.writing:
            return
        conn.writing = True
        self._loop.add_writer(conn.sock, callback)

    def _stop_writing(self, conn):
        if not conn.writing:
            return
        conn.writing = False
        self._loop.remove_writer(conn.sock)

    def sockets(self):
        """The sockets the loop watches for reading: the listener and the open connections."""
        out = [self._sock] if self._listening else []
        out.extend(c.sock for c in self._connections.values() if not c.connecting)
        return out

    def _deliver(self, data, peer):
        if self.on_message is not None:
            self.on_message(data, peer)

    # -- receiving --------------------------------------------------------------------------------------
    def _on_listen_readable(self):
        if self.transport == "udp":
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
            return
        # Accept a batch per wake, so a churn of connects cannot fill the backlog while others wait.
        for _ in range(MAX_READS_PER_WAKE):
            try:
                sock, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.errors += 1
                return
            self._accepted(sock, addr)

    def _accepted(self, sock, addr):
        host = addr[0]
        from_host = 0
        for conn in self._connections.values():
            if not conn.outbound and conn.peer[0] == host:
                from_host += 1
        if from_host >= MAX_CONNECTIONS_PER_SOURCE:
            # One host may not take every slot: the new connection is refused, the others keep theirs.
            self.refused += 1
            sock.close()
            return
        if len(self._connections) >= self.max_connections:
            self._evict_one()
        handshaking = False
        if self.transport == "tls":
            if self.server_tls_context is None:
                sock.close()
                self.errors += 1
                return
            # The handshake is driven by readable events, so a slow or silent client never blocks
            # the loop (it only holds a connection slot until evicted).
            sock.setblocking(False)
            try:
                sock = self.server_tls_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ssl.SSLError) as exc:
                log.warning("TLS from %s refused: %s", addr[0], exc)
                sock.close()
                self.errors += 1
                return
            handshaking = True
        sock.setblocking(False)
        conn = self._add_connection(sock, addr[:2], handshaking)
        if handshaking:
            self._continue_handshake(conn)

    def _evict_one(self):
        """Make room: drop an inbound connection still in its handshake or in the middle of a message
        first (a slow or silent client), else the least recently used."""
        pending = [
            c
            for c in self._connections.values()
            if not c.outbound and (c.handshaking or c.partial_since is not None)
        ]
        victims = pending or list(self._connections.values())
        victim = min(victims, key=lambda c: c.last_used)
        self.errors += 1
        if victim.outbound and (victim.connecting or victim.handshaking):
            self._give_up(victim, "too many connections")
        else:
            self._lost(victim)

    def _continue_handshake(self, conn):
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._stop_writing(conn)
            return False
        except ssl.SSLWantWriteError:
            self._want_write(conn, lambda conn=conn: self._on_writable(conn))
            return False
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.warning("TLS handshake with %s failed: %s", conn.peer[0], exc)
            self.errors += 1
            if conn.outbound:
                self._fail_over(conn)
            else:
                self._lost(conn)
            return False
        conn.handshaking = False
        conn.deadline = None
        self._stop_writing(conn)
        if conn.outgoing:
            self._flush(conn)
        return True

    def _add_connection(self, sock, peer, handshaking=False):
        conn = _Connection(sock, peer, handshaking)
        self._connections[peer] = conn
        self._watch(sock, lambda conn=conn: self._on_connection_readable(conn))
        return conn

    def _drop(self, conn):
        if self._connections.get(conn.peer) is conn:
            del self._connections[conn.peer]
        self._stop_writing(conn)
        if not conn.connecting:
            self._unwatch(conn.sock)
        conn.deadline = None
        try:
            conn.sock.close()
        except OSError:
            pass

    def _lost(self, conn):
        """Drop a broken connection; whoever still had data queued on it hears of it (on_error), and so
        does every address that used it: its flow has failed (RFC 5626 §4.4.1, e.g. the registrar
        restarted), so a registration over it is renewed at once."""
        origins = conn.origins
        self._drop(conn)
        for addr in conn.flow_addrs:
            if addr not in origins:
                origins.append(addr)
        conn.flow_addrs = []
        if origins:
            conn.origins = origins
            self._report(conn)

    def _track_partial(self, conn):
        """Start or stop the clock on a message being received (slowloris: PARTIAL_MESSAGE_TIMEOUT)."""
        if conn.framer.pending() == 0:
            conn.partial_since = None
            return
        if conn.partial_since is None:
            conn.partial_since = self._clock()
            self._call_later(PARTIAL_MESSAGE_TIMEOUT, lambda conn=conn: self._partial_overdue(conn))

    def _partial_overdue(self, conn):
        if self._connections.get(conn.peer) is not conn or conn.partial_since is None:
            return
        if self._clock() - conn.partial_since < PARTIAL_MESSAGE_TIMEOUT - 0.001:
            # a later message started since: check that one in time
            left = conn.partial_since + PARTIAL_MESSAGE_TIMEOUT - self._clock()
            self._call_later(left, lambda conn=conn: self._partial_overdue(conn))
            return
        log.warning("SIP %s connection from %s:%s dropped: a message took more than %.0f s", self.transport,
                    conn.peer[0], conn.peer[1], PARTIAL_MESSAGE_TIMEOUT)
        self.slow_dropped += 1
        self._lost(conn)

    def _pong_overdue(self, conn):
        """RFC 5626 §4.4.1: a ping unanswered for PONG_TIMEOUT means the flow failed."""
        if self._connections.get(conn.peer) is not conn or conn.ping_sent is None:
            return
        if self._clock() - conn.ping_sent < PONG_TIMEOUT - 0.001:
            return
        log.warning("SIP %s flow to %s:%s failed: no pong to a keep-alive in %.0f s", self.transport,
                    conn.peer[0], conn.peer[1], PONG_TIMEOUT)
        self.errors += 1
        self.flow_failures += 1
        self._lost(conn)

    def _on_connection_readable(self, conn):
        if conn.handshaking and not self._continue_handshake(conn):
            return
        for _ in range(MAX_READS_PER_WAKE):
            try:
                data = conn.sock.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except (BlockingIOError, InterruptedError):
                return
            except (OSError, ssl.SSLError):
                self.errors += 1
                self._lost(conn)
                return
            if not data:
                self._lost(conn)
                return
            conn.last_used = time.monotonic()
            conn.ping_sent = None  # a pong, or anything at all, shows the flow is alive
            try:
                items = conn.framer.feed(data)
            except RemoteProtocolError:
                self.malformed += 1
                self._lost(conn)  # §18.3: a framing error on a stream closes the connection
                return
            self._track_partial(conn)
            for item in items:
                if item == KEEPALIVE_PING:
                    self._stream_send(conn, PONG)
                elif isinstance(item, bytes):
                    self._deliver(item, conn.peer)
            if conn.sock.fileno() < 0:
                return  # a callback closed us
            if not (isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending()):
                if len(data) < 65536:
                    return

    # -- sending --------------------------------------------------------------------------------------
    def _resolver(self):
        if self.resolver is None:
            self.resolver = Rfc3263Resolver()
        return self.resolver

    def _targets(self, addr):
        host, port = addr
        if is_ip_literal(host) and port is not None:
            return [(self.transport, host, port)]
        return self._resolver().resolve(host, port, self.transport)

    def send(self, data, addr):
        try:
            targets = self._targets(addr)
        except Exception as exc:  # a resolver failure must not end the phone
            log.warning("cannot resolve %s: %s", addr[0], exc)
            targets = []
        if not targets:
            self.errors += 1
            return False
        if self.transport == "udp":
            return self._udp_send(data, self._udp_target(addr, targets, data), addr)
        # Streams: an open (or opening) connection to any target first, else connect in RFC 3263 order.
        for _, ip, port in targets:
            conn = self._connections.get((ip, port))
            if conn is not None:
                _remember_flow(conn, addr)
                if conn.connecting or conn.handshaking:
                    return self._queue(conn, data, addr)
                return self._stream_send(conn, data, addr)
        peers = [(ip, port) for _, ip, port in targets[:MAX_CONNECT_ATTEMPTS]]
        return self._open(peers, addr[0], data, addr)

    def _queue(self, conn, data, origin):
        if len(conn.outgoing) + len(data) > MAX_QUEUED_BYTES:
            log.warning("SIP %s queue towards %s:%s is full", self.transport, conn.peer[0], conn.peer[1])
            self.errors += 1
            return False
        conn.outgoing += data
        if origin is not None and origin not in conn.origins and len(conn.origins) < MAX_ORIGINS:
            conn.origins.append(origin)
        return True

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
            log.warning("SIP target %s:%s silent for %.0f s; trying %s:%s", silent[0], silent[1],
                        UDP_FAILOVER_SILENCE, route.current()[0], route.current()[1])
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
                log.warning("SIP: trying the next target of %s, %s:%s", addr[0], route.current()[0],
                            route.current()[1])
            else:
                reported.append(addr)
        origin = self._recent.get(peer)
        if origin is not None and origin not in self._routes and origin not in reported:
            reported.append(origin)
        if self.on_error is not None:
            for addr in reported:
                self.on_error(addr)

    # -- connecting without blocking (RFC 3263 §4.3 failover) -----------------------------------------
    def _open(self, peers, server_name, data, origin):
        """Start connecting to peers[0] with `data` queued; later peers are the failover list.
        False when every peer failed at once (the caller learns it from the return value)."""
        if len(self._connections) >= self.max_connections:
            self._evict_one()
        conn = _Connection(None, peers[0])
        conn.outbound = True
        conn.connecting = True
        conn.server_name = server_name
        conn.targets = list(peers[1:])
        _remember_flow(conn, origin)
        if not self._queue(conn, data, origin):
            return False
        return self._start_connect(conn, peers[0], report=False)

    def _start_connect(self, conn, peer, report):
        """Connect conn to peer, or to the next of conn.targets when that fails at once. `report`: tell
        on_error when all failed (False while inside send(), whose return value says it)."""
        while True:
            conn.peer = peer
            conn.connecting = True
            conn.handshaking = False
            conn.writing = False
            conn.write_size = 0
            family = socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
            error = None
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as exc:
                sock = None
                error = exc.errno
            if sock is not None:
                sock.setblocking(False)
                error = sock.connect_ex(peer)
                if error in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
                    conn.sock = sock
                    self._connections[peer] = conn
                    conn.deadline = self._clock() + self.connect_timeout
                    self._call_later(self.connect_timeout + 0.01, self._check_deadlines)
                    if error == 0:
                        self._connected(conn)
                    else:
                        self._want_write(conn, lambda conn=conn: self._on_writable(conn))
                    return True
                sock.close()
            log.warning("SIP %s connection to %s:%s failed: %s", self.transport, peer[0], peer[1],
                        errno.errorcode.get(error, error))
            self.errors += 1
            if not conn.targets:
                if report:
                    self._report(conn)
                return False
            peer = conn.targets.pop(0)

    def _on_writable(self, conn):
        if conn.connecting:
            try:
                error = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            except OSError as exc:
                error = exc.errno
            if error:
                log.warning("SIP %s connection to %s:%s failed: %s", self.transport, conn.peer[0], conn.peer[1],
                            errno.errorcode.get(error, error))
                self.errors += 1
                self._fail_over(conn)
                return
            self._connected(conn)
        elif conn.handshaking:
            self._continue_handshake(conn)
        else:
            self._flush(conn)

    def _connected(self, conn):
        """The TCP connect completed: start TLS, or send what was queued."""
        self._stop_writing(conn)
        conn.connecting = False
        if self.transport == "tls":
            context = self.tls_context or client_tls_context()
            name = conn.server_name if not is_ip_literal(conn.server_name) else None
            if name is None and context.check_hostname:
                name = conn.server_name
            try:
                conn.sock = context.wrap_socket(conn.sock, server_hostname=name, do_handshake_on_connect=False)
            except (OSError, ssl.SSLError, ValueError) as exc:
                log.warning("TLS to %s:%s failed: %s", conn.peer[0], conn.peer[1], exc)
                self.errors += 1
                conn.connecting = True  # the reader is not registered yet
                self._fail_over(conn)
                return
            conn.handshaking = True
            self._watch(conn.sock, lambda conn=conn: self._on_connection_readable(conn))
            self._continue_handshake(conn)
            return
        conn.deadline = None
        self._watch(conn.sock, lambda conn=conn: self._on_connection_readable(conn))
        if conn.outgoing:
            self._flush(conn)

    def _fail_over(self, conn):
        """This target failed (refused, timed out, TLS): try the next one with the same queue (§4.3)."""
        outgoing, origins, targets = conn.outgoing, conn.origins, conn.targets
        self._drop(conn)
        while targets:
            peer = targets.pop(0)
            existing = self._connections.get(peer)
            if existing is not None:  # already connected (or connecting) there: hand the queue over
                for origin in origins:
                    if origin not in existing.origins and len(existing.origins) < MAX_ORIGINS:
                        existing.origins.append(origin)
                existing.outgoing += outgoing
                if not (existing.connecting or existing.handshaking):
                    self._flush(existing)
                return
            retry = _Connection(None, peer)
            retry.outbound = True
            retry.server_name = conn.server_name
            retry.targets = targets
            retry.outgoing = outgoing
            retry.origins = origins
            retry.flow_addrs = conn.flow_addrs
            self._start_connect(retry, peer, report=True)
            return
        self._report(conn)

    def _give_up(self, conn, reason):
        log.warning("SIP %s connection to %s:%s abandoned: %s", self.transport, conn.peer[0], conn.peer[1], reason)
        conn.targets = []
        self._drop(conn)
        self._report(conn)

    def _report(self, conn):
        """Every target failed: what was queued is lost; tell the owner for each address it asked for."""
        conn.outgoing = b""
        origins, conn.origins = conn.origins, []
        if self.on_error is not None:
            for origin in origins:
                self.on_error(origin)

    def _check_deadlines(self):
        now = self._clock()
        for conn in list(self._connections.values()):
            if conn.ping_sent is not None and now - conn.ping_sent >= PONG_TIMEOUT:
                self._pong_overdue(conn)
                continue
            if conn.partial_since is not None and now - conn.partial_since >= PARTIAL_MESSAGE_TIMEOUT:
                self._partial_overdue(conn)
                continue
            if conn.deadline is not None and conn.deadline <= now and (conn.connecting or conn.handshaking):
                log.warning("SIP %s connection to %s:%s timed out", self.transport, conn.peer[0], conn.peer[1])
                self.errors += 1
                self._fail_over(conn)

    def _flush(self, conn):
        """Write what is queued without blocking; the rest waits for writability."""
        while conn.outgoing:
            size = conn.write_size or min(len(conn.outgoing), WRITE_CHUNK)
            try:
                sent = conn.sock.send(conn.outgoing[:size])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                conn.write_size = size
                self._want_write(conn, lambda conn=conn: self._on_writable(conn))
                return True
            except (OSError, ssl.SSLError, ValueError) as exc:
                log.warning("SIP send on %s connection failed: %s", self.transport, exc)
                self.errors += 1
                self._lost(conn)
                return False
            conn.write_size = 0
            conn.outgoing = conn.outgoing[sent:]
            conn.last_used = time.monotonic()
        conn.origins = []
        self._stop_writing(conn)
        return True

    def _stream_send(self, conn, data, origin=None):
        if data == PING and conn.ping_sent is None and not (conn.connecting or conn.handshaking):
            conn.ping_sent = self._clock()
            self._call_later(PONG_TIMEOUT, lambda conn=conn: self._pong_overdue(conn))
        if not self._queue(conn, data, None):
            return False
        if not conn.writing and not self._flush(conn):
            return False  # send() says it; on_error went only to earlier senders still queued
        if conn.outgoing:  # waits for writability (after what was queued before, in order)
            self._queue(conn, b"", origin)
        return True

    def keepalive(self):
        for conn in list(self._connections.values()):
            if not (conn.connecting or conn.handshaking):
                self._stream_send(conn, PING)

    def close(self):
        for conn in list(self._connections.values()):
            self._drop(conn)
        if self._listening:
            self._unwatch(self._sock)
        self._sock.close()
