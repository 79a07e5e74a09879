"""SIP transports for the UserAgent: UDP, TCP and TLS sockets on the shell's Loop. Host only.

The UserAgent is sans-I/O; this module is the socket side of it. It runs only on a
firmware.runtime.loop.Loop (readers, writers, timers and its clock), the way the phone runs it: nothing
here ever blocks on the network, and nothing polls on its own. RFC 3263 lookups are in
firmware/runtime/dns.py; the UDP side is sip_udp.py, TCP/TLS connections are sip_stream.py (opening
them: sip_connect.py), and what both share (the bound socket, counters, the targets of a send) is
sip_socket.py.

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
    send(data, addr) -> bool     addr = (host, port); port None or a host name -> RFC 3263 lookup,
                                 never waited for: a name not in the resolver's cache starts a
                                 non-blocking lookup on the loop and the message waits for it (True);
                                 when nothing resolves, on_error(addr) is called then;
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
source_address_toward(host) -> str or None   the local address the routing table sends from to `host`
route_available(addr) -> bool   whether the routing table has a way to `addr` (an IP literal) now
client_tls_context(cafile=None, pinned_cert=None) -> ssl.SSLContext
    Verifies the server against the system CAs, or against one pinned certificate (PEM file): then the
    certificate itself is the trust anchor and the host name is not checked.
"""

import socket

from firmware.runtime.dns import Rfc3263Resolver  # noqa: F401  (the resolver to pass as `resolver`)
from firmware.runtime.sip_connect import client_tls_context  # noqa: F401 (part of this API)
from firmware.runtime.sip_stream import (  # noqa: F401  (bounds the tests and tools refer to)
    MAX_CONNECTIONS_PER_SOURCE,
    PARTIAL_MESSAGE_TIMEOUT,
    PONG_TIMEOUT,
    StreamTransport,
)
from firmware.runtime.sip_udp import UDP_FAILOVER_SILENCE, UdpTransport  # noqa: F401


def SipTransport(transport, local_address, loop, **options):  # noqa: N802  (it stands for the classes)
    """The SIP transport of `transport` ("udp", "tcp" or "tls") bound to `local_address`, on `loop`."""
    kind = transport.lower()
    if kind not in ("udp", "tcp", "tls"):
        raise ValueError("unknown SIP transport " + transport)
    cls = UdpTransport if kind == "udp" else StreamTransport
    return cls(kind, local_address, loop, **options)


def source_address_toward(host):
    """The local address the kernel would send from to `host` (an IP literal), or None with no route.
    A connect() on a UDP socket only asks the routing table: nothing is sent."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.connect((host, 9))
        return sock.getsockname()[0]
    except OSError:
        return None
    finally:
        sock.close()


def route_available(addr):
    """Does the host have a route to `addr` (an IP literal) now? ENETUNREACH while the network is down (no
    address, no link)."""
    return source_address_toward(addr[0]) is not None
