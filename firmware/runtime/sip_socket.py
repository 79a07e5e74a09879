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
        return self._send_to_targets(data, addr, targets)

    def keepalive(self):
        """RFC 5626 §4.4.1 keep-alives: only streams have connections to keep."""

    def close(self):
        if self._listening:
            self._unwatch(self._sock)
        self._sock.close()
