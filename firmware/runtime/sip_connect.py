"""Outgoing SIP connections over TCP and TLS without blocking, and their RFC 3263 §4.3 failover. Host only.

Apart from sip_stream.py (which accepts, reads, writes and watches connections) because opening one is
its own state machine: a non-blocking connect, then the TLS handshake (RFC 3261 §26.2.1: TLS for
sips), each bounded by connect_timeout, and on failure the next resolved target with the same queue
(RFC 3263 §4.3), until none is left and each address send() was asked for is reported to on_error.
OutgoingConnections is a mixin of StreamTransport, on its state and its loop.
"""

import errno
import logging
import socket
import ssl
import time

from firmware.runtime.dns import is_ip_literal
from firmware.sip.message import StreamFramer

log = logging.getLogger("sotto.sip.transport")

MAX_CONNECT_ATTEMPTS = 3
MAX_ORIGINS = 8  # distinct send() addresses remembered per opening connection (for on_error)


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


def remember_flow(conn, addr):
    if addr not in conn.flow_addrs and len(conn.flow_addrs) < MAX_ORIGINS:
        conn.flow_addrs.append(addr)


class Connection:
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


class OutgoingConnections:
    __slots__ = ()

    def _send_to_targets(self, data, addr, targets):
        # An open (or opening) connection to any target first, else connect in RFC 3263 order.
        for _, ip, port in targets:
            conn = self._connections.get((ip, port))
            if conn is not None:
                remember_flow(conn, addr)
                if conn.connecting or conn.handshaking:
                    return self._queue(conn, data, addr)
                return self._stream_send(conn, data, addr)
        peers = [(ip, port) for _, ip, port in targets[:MAX_CONNECT_ATTEMPTS]]
        return self._open(peers, addr[0], data, addr)

    def _open(self, peers, server_name, data, origin):
        """Start connecting to peers[0] with `data` queued; later peers are the failover list.
        False when every peer failed at once (the caller learns it from the return value)."""
        if len(self._connections) >= self.max_connections:
            self._evict_one()
        conn = Connection(None, peers[0])
        conn.outbound = True
        conn.connecting = True
        conn.server_name = server_name
        conn.targets = list(peers[1:])
        remember_flow(conn, origin)
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
            log.warning(
                "SIP %s connection to %s:%s failed: %s",
                self.transport,
                peer[0],
                peer[1],
                errno.errorcode.get(error, error),
            )
            self.errors += 1
            if not conn.targets:
                if report:
                    self._report(conn)
                return False
            peer = conn.targets.pop(0)

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
            retry = Connection(None, peer)
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
