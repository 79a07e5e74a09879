"""The stream side of the SIP transport: TCP and TLS connections on the Loop. Outgoing ones connect and
handshake without blocking and fail over between RFC 3263 targets (§4.3); incoming ones are bounded
(issue 11: per source host, in all, slowloris); RFC 5626 §4.4.1 CRLF keep-alives watch the flows.
Host only; see firmware/runtime/sip_transport.py for the API. Opening connections (connect, TLS, the
RFC 3263 §4.3 failover) is sip_connect.py, a mixin of StreamTransport."""

import errno
import logging
import socket
import ssl
import time

from firmware.errors import RemoteProtocolError
from firmware.runtime.sip_connect import MAX_ORIGINS, Connection, OutgoingConnections
from firmware.runtime.sip_socket import MAX_READS_PER_WAKE, PING, PONG, SipSocket
from firmware.sip.message import KEEPALIVE_PING

log = logging.getLogger("sotto.sip.transport")

MAX_QUEUED_BYTES = 256 * 1024  # per connection, while it opens or while the peer reads slowly
WRITE_CHUNK = 16384
# Bounds on what peers may hold on a stream listener (issue 11, TCP abuse): connections per source
# host, and how long a message may take to arrive once it has started (slowloris). A message is at
# most MAX_MESSAGE (64 KiB) and the framer's buffer twice that, so memory stays bounded per connection.
MAX_CONNECTIONS_PER_SOURCE = 8
PARTIAL_MESSAGE_TIMEOUT = 10.0  # s from the first byte of a message to its last
PONG_TIMEOUT = 10.0  # RFC 5626 §4.4.1: no CRLF pong within 10 s of a ping -> the flow has failed


class StreamTransport(OutgoingConnections, SipSocket):
    kind = socket.SOCK_STREAM

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

    # -- receiving --------------------------------------------------------------------------------------
    def _on_listen_readable(self):
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
            c for c in self._connections.values() if not c.outbound and (c.handshaking or c.partial_since is not None)
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
        conn = Connection(sock, peer, handshaking)
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
        log.warning(
            "SIP %s connection from %s:%s dropped: a message took more than %.0f s",
            self.transport,
            conn.peer[0],
            conn.peer[1],
            PARTIAL_MESSAGE_TIMEOUT,
        )
        self.slow_dropped += 1
        self._lost(conn)

    def _pong_overdue(self, conn):
        """RFC 5626 §4.4.1: a ping unanswered for PONG_TIMEOUT means the flow failed."""
        if self._connections.get(conn.peer) is not conn or conn.ping_sent is None:
            return
        if self._clock() - conn.ping_sent < PONG_TIMEOUT - 0.001:
            return
        log.warning(
            "SIP %s flow to %s:%s failed: no pong to a keep-alive in %.0f s",
            self.transport,
            conn.peer[0],
            conn.peer[1],
            PONG_TIMEOUT,
        )
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
    def _queue(self, conn, data, origin):
        if len(conn.outgoing) + len(data) > MAX_QUEUED_BYTES:
            log.warning("SIP %s queue towards %s:%s is full", self.transport, conn.peer[0], conn.peer[1])
            self.errors += 1
            return False
        conn.outgoing += data
        if origin is not None and origin not in conn.origins and len(conn.origins) < MAX_ORIGINS:
            conn.origins.append(origin)
        return True

    def _on_writable(self, conn):
        if conn.connecting:
            try:
                error = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            except OSError as exc:
                error = exc.errno
            if error:
                log.warning(
                    "SIP %s connection to %s:%s failed: %s",
                    self.transport,
                    conn.peer[0],
                    conn.peer[1],
                    errno.errorcode.get(error, error),
                )
                self.errors += 1
                self._fail_over(conn)
                return
            self._connected(conn)
        elif conn.handshaking:
            self._continue_handshake(conn)
        else:
            self._flush(conn)

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
        super().close()
