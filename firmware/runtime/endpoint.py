"""One SIP identity on one local address: the SIP transport, the UserAgent, the ZRTP cache, and the timer that
keeps a sans-I/O engine's deadline armed on the Loop. Host-only (the shell)."""

import logging
import os
import socket

from firmware import config as configuration
from firmware import sdp
from firmware.errors import ConfigError

log = logging.getLogger("sotto.endpoint")


class StartupError(Exception):
    """The phone could not start (a port in use, no audio device...): one line, exit 1."""


class EngineTimer:
    """Keeps one Loop timer armed at a sans-I/O engine's `get_timer()` deadline."""

    def __init__(self, loop, engine, after_fire):
        self._loop = loop
        self._engine = engine
        self._after_fire = after_fire
        self._handle = None
        self._when = None

    def rearm(self):
        when = self._engine.get_timer()
        if when == self._when:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._when = when
        self._handle = None if when is None else self._loop.call_at(when, self._fire)

    def _fire(self):
        self._handle = None
        self._when = None
        self._engine.handle_timer(self._loop.now())
        self._after_fire()

    def cancel(self):
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._when = None


def _bind_udp(host, port, what):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError("cannot bind {} to {}:{}: {}".format(what, host, port, exc.strerror)) from None
    sock.setblocking(False)
    return sock


KEEPALIVE_INTERVAL = 30.0
NETWORK_CHECK_INTERVAL = 5.0  # s between route checks while the registration has failed
WILDCARD_HOSTS = ("0.0.0.0", "::")
# Where the default route's source address is looked up when nothing better is known: TEST-NET-1
# (RFC 5737) and the IPv6 documentation prefix (RFC 3849). Nothing is ever sent there.
DEFAULT_ROUTE_PROBE = {False: "192.0.2.1", True: "2001:db8::1"}


def _is_ip_literal(host):
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return True
    except (OSError, ValueError):
        return False


def _open_sip_transport(settings, local_address, loop, on_message, on_error):
    from firmware.runtime.sip_transport import SipTransport, client_tls_context

    account = settings.account
    tls_context = None
    if account.transport == "tls":
        try:
            tls_context = client_tls_context(pinned_cert=account.tls_certificate or None)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                settings.source, "account.tls_certificate", "a readable PEM certificate ({})".format(exc)
            ) from None
    try:
        # On the loop, TCP/TLS connects and handshakes never block; a target that fails is replaced by the
        # next RFC 3263 one, and when all fail on_error says so.
        return SipTransport(
            account.transport, local_address, loop, on_message=on_message, on_error=on_error, tls_context=tls_context
        )
    except OSError as exc:
        raise StartupError(
            "cannot bind SIP ({}) to {}:{}: {}".format(
                account.transport, local_address[0], local_address[1], exc.strerror
            )
        ) from None


class Endpoint:
    """One SIP identity on one local address: the SIP socket, the UserAgent and the ZRTP cache.

    Listeners registered with `listen(callback)` get `callback(kind, call_media, payload)` for:
    ("sip", None, sip event), ("secure", CallMedia, zrtp Secure), ("alarm", CallMedia, reason),
    ("zrtp-failed", CallMedia, reason).
    """

    def __init__(self, loop, settings, rng=os.urandom, public_address=None):
        from firmware.sip.useragent import UserAgent

        self.loop = loop
        self.settings = settings
        self.rng = rng
        host, port = configuration.host_port(settings.sip.listen)
        self.media_host = host
        self.public_address = public_address
        self.sip_host = self._host_for_peers(host, settings.account.proxy)
        self._rtp_port = settings.media.rtp_port
        account = settings.account
        proxy = configuration.host_port(account.proxy) if account.proxy else None
        self.transport = _open_sip_transport(settings, (host, port), loop, self._on_sip_message, self._on_sip_error)
        self.ua = UserAgent(
            (self.sip_host, port),
            rng,
            transport=account.transport,
            aor=account.uri or None,
            password=account.password or None,
            display_name=account.display_name or None,
            outbound_proxy=proxy,
            same_session=sdp.same_session,
            reliable_provisional=settings.sip.reliable_provisional,
        )
        self.ua_timer = EngineTimer(loop, self.ua, self.pump)
        self._listeners = []
        self._cache = None
        self._store = None
        self.cache_problem = None
        self._pumping = False
        self._keepalive = loop.call_later(KEEPALIVE_INTERVAL, self._send_keepalive)
        self._route_lost = False
        self._network_watch = loop.call_later(NETWORK_CHECK_INTERVAL, self._watch_network)
        self._warm_up()

    def _warm_up(self):
        """Load the media and ZRTP machinery and the cache now, not while the first call is being set up
        (on a cold start that costs a couple of hundred milliseconds of call set-up time)."""
        import firmware.runtime.media  # noqa: F401
        import firmware.srtp.sdes  # noqa: F401

        if self.settings.media.encryption == "zrtp":
            import firmware.zrtp.engine  # noqa: F401

            self.zrtp_cache()

    def listen(self, callback):
        self._listeners.append(callback)

    def emit(self, kind, call, payload):
        for callback in list(self._listeners):
            callback(kind, call, payload)

    # -- ports and addresses --------------------------------------------------------------------------
    def next_rtp_port(self):
        """The configured RTP port for the first call, then any free port (0)."""
        port, self._rtp_port = self._rtp_port, 0
        return port

    @staticmethod
    def _host_for_peers(host, proxy):
        """The address Via, Contact and SDP carry when we listen on every interface (0.0.0.0 or ::, the
        image's default): a wildcard there would tell the peer to send to itself (RFC 3264 §6 wants an
        address the peer can reach). Take the source address toward the proxy, else of the default
        route; with no route at all, the loopback address of the family."""
        if host not in WILDCARD_HOSTS:
            return host
        from firmware.runtime.sip_transport import source_address_toward

        ipv6 = ":" in host
        toward = None
        if proxy:
            proxy_host = configuration.host_port(proxy)[0]
            if _is_ip_literal(proxy_host) and (":" in proxy_host) == ipv6:
                toward = proxy_host
        found = source_address_toward(toward or DEFAULT_ROUTE_PROBE[ipv6])
        if found is None:
            found = "::1" if ipv6 else "127.0.0.1"
            log.warning("no route to anywhere: Via, Contact and SDP say %s until the network is up", found)
        return found

    def advertised_media(self, local_port, toward=None):
        """(address, port) for our SDP: the local ones, or --public-address (a NAT mapping, a relay).
        Listening on every interface, the address is the source address toward the peer's media address
        `toward` (an IP literal from its SDP) when known, else the one our SIP messages carry."""
        if not self.public_address:
            if self.media_host not in WILDCARD_HOSTS:
                return self.media_host, local_port
            from firmware.runtime.sip_transport import source_address_toward

            found = None
            if toward and (":" in toward) == (":" in self.media_host) and toward not in WILDCARD_HOSTS:
                found = source_address_toward(toward)
            return found or self.sip_host, local_port
        if ":" in self.public_address and not self.public_address.startswith("["):
            host, port = configuration.host_port(self.public_address)
            return host, port
        return self.public_address, local_port

    # -- ZRTP cache -----------------------------------------------------------------------------------
    def zrtp_cache(self):
        if self._cache is None:
            from firmware.runtime.zrtp_store import ZrtpStore

            self._store = ZrtpStore(self.settings.cache_path, rng=self.rng)
            try:
                self._cache = self._store.load()
            except OSError as exc:
                raise StartupError(
                    "cannot open the ZRTP cache {}: {}".format(self.settings.cache_path, exc.strerror or exc)
                ) from None
            # A corrupt cache was moved aside (the store logged it at ERROR); front ends report it too.
            self.cache_problem = self._store.problem
        return self._cache

    def save_zrtp_cache(self):
        if self._cache is not None:
            try:
                self._store.save_if_dirty(self._cache)
            except OSError as exc:  # a full or read-only disk must not end the call; say it loudly
                log.error("could not save the ZRTP cache %s: %s", self._store.path, exc)

    # -- SIP ------------------------------------------------------------------------------------------
    def _on_sip_message(self, data, addr):
        self.ua.receive_datagram(data, addr[:2], self.loop.now())
        self.pump()

    def _on_sip_error(self, addr):
        """Every transport target for `addr` failed after send() had queued a message: the UserAgent
        fails the transaction at once (503) instead of waiting for Timer B/F."""
        log.warning("SIP transport to %s failed", addr[0])
        self.ua.transport_error(addr, self.loop.now())
        self.pump()

    def _send_keepalive(self):
        """RFC 5626 §4.4.1: CRLF pings keep TCP/TLS connections (and their NAT bindings) open."""
        self.transport.keepalive()
        self._keepalive = self.loop.call_later(KEEPALIVE_INTERVAL, self._send_keepalive)

    def _watch_network(self):
        """While the registration has failed, look every few seconds whether the registrar has a route
        again (an interface came back, DHCP gave an address): then register at once instead of
        waiting out the back-off (issue 11). A route that was never lost changes nothing, so a
        registrar that refuses us is not hammered."""
        from firmware.runtime.sip_transport import route_available
        from firmware.sip import registration

        hop = self.ua.registration_next_hop
        if self.ua.registration_state == registration.FAILED and hop is not None and _is_ip_literal(hop[0]):
            if not route_available(hop):
                self._route_lost = True
            elif self._route_lost:
                self._route_lost = False
                log.warning("SIP: the route to %s is back; registering again", hop[0])
                self.ua.network_up(self.loop.now())
                self.pump()
        self._network_watch = self.loop.call_later(NETWORK_CHECK_INTERVAL, self._watch_network)

    def pump(self):
        """Send what the UserAgent wants sent, hand its events out, re-arm its timer.

        Listeners may issue commands while handling an event; the loop below sends what those produce
        (a nested pump() call just returns, the outer one carries on).
        """
        if self._pumping:
            return
        self._pumping = True
        try:
            while True:
                now = self.loop.now()
                for data, addr in self.ua.datagrams_to_send(now):
                    self._send_sip(data, addr)
                event = self.ua.next_event()
                if event is None:
                    break
                self.emit("sip", None, event)
            self.ua_timer.rearm()
        finally:
            self._pumping = False

    def _send_sip(self, data, addr):
        # The transport resolves host names per RFC 3263 and opens TCP/TLS connections as needed.
        if not self.transport.send(data, addr):
            log.warning("SIP send to %s failed", addr[0])
            self.ua.transport_error(addr, self.loop.now())

    def close(self):
        self.ua_timer.cancel()
        self._keepalive.cancel()
        self._network_watch.cancel()
        self.transport.close()


# Final SIP statuses that mean "the person or their phone declined", as opposed to a failure.
