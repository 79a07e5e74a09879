"""What the UDP and the stream SIP transports share: the bound socket on the Loop, the counters, and the
RFC 3263 targets of a send(). Host only; see firmware/runtime/sip_transport.py for the API."""

import logging
import socket

from firmware.runtime.dns import Rfc3263Resolver, is_ip_literal

log = logging.getLogger("sotto.sip.transport")

MAX_READS_PER_WAKE = 32
LISTEN_BACKLOG = 128  # a connect churn must not fill it before the loop accepts (a dropped SYN costs 1 s)
PING = b"\r\n\r\n"  # RFC 5626 §4.4.1 keep-alive ping (CRLFCRLF) and its pong (CRLF)
PONG = b"\r\n"
MAX_QUEUED_PER_LOOKUP = 16  # messages waiting for one name's lookup


class SipSocket:
    """One bound SIP socket driven by a firmware.runtime.loop.Loop; subclasses say how to send and read."""

    kind = None  # socket.SOCK_DGRAM or socket.SOCK_STREAM

    def __init__(
        self,
        transport,
        local_address,
        loop,
        on_message=None,
        on_error=None,
        resolver=None,
        tls_context=None,
        server_tls_context=None,
        connect_timeout=2.0,
        max_connections=32,
        listen=True,
    ):
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
        self._connections = {}  # streams: peer (ip, port) -> connection
        self._awaiting_lookup = {}  # addr given to send() -> [messages] while its DNS lookup runs
        self._closed = False
        host, port = local_address
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(self._family, self.kind)
        if self.kind == socket.SOCK_STREAM:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listening = self.kind == socket.SOCK_DGRAM or listen
        try:
            self._sock.bind((host, port))
            if self.kind == socket.SOCK_STREAM and listen:
                self._sock.listen(LISTEN_BACKLOG)
        except OSError:
            self._sock.close()
            raise
        self._sock.setblocking(False)
        self._prepare_socket()
        self.local_address = self._sock.getsockname()[:2]
        if self._listening:
            self._watch(self._sock, self._on_listen_readable)

    def _prepare_socket(self):
        """Socket options of the kind (before the loop watches it)."""

    # -- loop plumbing --------------------------------------------------------------------------------
    def _watch(self, sock, callback):
        self._loop.add_reader(sock, callback)

    def _unwatch(self, sock):
        self._loop.remove_reader(sock)

    def _call_later(self, delay, callback):
        self._loop.call_later(delay, callback)

    def sockets(self):
        """The sockets the loop watches for reading: the listener and the open connections."""
        out = [self._sock] if self._listening else []
        out.extend(c.sock for c in self._connections.values() if not c.connecting)
        return out

    def _deliver(self, data, peer):
        if self.on_message is not None:
            self.on_message(data, peer)

    # -- sending --------------------------------------------------------------------------------------
    def _resolver(self):
        if self.resolver is None:
            self.resolver = Rfc3263Resolver()
        return self.resolver

    def _targets(self, addr):
        """The targets of `addr` now, or None when a lookup has started (its answer goes to _resolved)."""
        host, port = addr
        if is_ip_literal(host) and port is not None:
            return [(self.transport, host, port)]
        resolver = self._resolver()
        start = getattr(resolver, "resolve_async", None)
        if start is None:  # a resolver that answers at once (tests' fixed targets)
            return resolver.resolve(host, port, self.transport)
        return start(self._loop, host, port, self.transport, lambda targets: self._resolved(addr, targets))

    def send(self, data, addr):
        waiting = self._awaiting_lookup.get(addr)
        if waiting is not None:
            # Its lookup is under way: queue behind it (bounded; a retransmission may replace nothing).
            if len(waiting) >= MAX_QUEUED_PER_LOOKUP:
                self.errors += 1
                return False
            waiting.append(data)
            return True
        try:
            targets = self._targets(addr)
        except Exception as exc:  # a resolver failure must not end the phone
            log.warning("cannot resolve %s: %s", addr[0], exc)
            targets = []
        if targets is None:
            self._awaiting_lookup[addr] = [data]
            return True
        if not targets:
            self.errors += 1
            return False
        return self._send_to_targets(data, addr, targets)

    def _resolved(self, addr, targets):
        """A lookup finished (from a loop callback): send what waited for it, or report the failure."""
        queued = self._awaiting_lookup.pop(addr, [])
        if self._closed or not queued:
            return
        if not targets:
            self.errors += 1
            log.warning("cannot resolve %s: no SIP target", addr[0])
            self._report_error(addr)
            return
        for data in queued:
            if not self._send_to_targets(data, addr, targets):
                self._report_error(addr)
                return

    def _report_error(self, addr):
        if self.on_error is not None:
            self.on_error(addr)

    def keepalive(self):
        """RFC 5626 §4.4.1 keep-alives: only streams have connections to keep."""

    def close(self):
        self._closed = True
        self._awaiting_lookup = {}
        if self.resolver is not None and hasattr(self.resolver, "close"):
            self.resolver.close()
        if self._listening:
            self._unwatch(self._sock)
        self._sock.close()
