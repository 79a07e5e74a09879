"""Registration requests: REGISTER, refresh, un-REGISTER and the reachability probe (RFC 3261 §10,
RFC 3581, RFC 5626 §4.4-§4.5). Sans-I/O.

firmware.sip.registration holds the binding's state and decides what comes next; this module builds
the requests, sends them through the UserAgent and feeds their outcomes back in.

API (used by the UserAgent façade only)
---
RegisterClient(ua)      works on ua._reg (a registration.Registration)
    register(now), network_up(now), unregister(now), send_register(now, expires)
    on_response(tx, call, response, now)          kinds "register"/"unregister"
    on_probe_response(tx, call, response, now)    kind "probe"
    on_failure(tx, call, status, reason, now) / on_probe_failure(...)   timeout or transport error
    flow_failed(addr, now)   the transport lost the flow to addr
    on_timer(now)            refresh, retry, keep-alive and probe when due
"""

from firmware.digits import decimal_or_none
from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.sip import events
from firmware.sip.headers import parse_int_header
from firmware.sip.indialog import ALLOW
from firmware.sip.registration import BINDING_LOST
from firmware.sip.transaction import Context
from firmware.sip.uri import NameAddr, Uri, parse_name_addr


class RegisterClient:
    __slots__ = ("ua",)

    def __init__(self, ua):
        self.ua = ua

    def register(self, now):
        ua = self.ua
        reg = ua._reg
        if reg.call_id is None:
            reg.call_id = ua._token(16)
            reg.from_tag = ua._token(8)
        reg.too_brief_tries = 0
        reg.retry_at = None
        self.send_register(now, reg.expires)

    def network_up(self, now):
        if self.ua._reg.network_up(now):
            self.send_register(now, self.ua._reg.expires)

    def unregister(self, now):
        ua = self.ua
        reg = ua._reg
        if reg.call_id is None:
            raise LocalProtocolError("not registered")
        reg.refresh_at = None
        reg.retry_at = None
        reg.keepalive_at = None
        reg.probe_at = None
        reg.move("unregister")
        if reg.tx is not None and reg.tx.state not in ("completed", "terminated"):
            reg.tx.abort()
            ua._client.pop(reg.tx.key, None)  # abandon a pending REGISTER: shutting down wins
            reg.tx = None
        self.send_register(now, 0)

    def _fraction(self):
        """A random number in [0, 1) for back-off and keep-alive jitter (RFC 5626 §4.4.1, §4.5)."""
        data = self.ua.rng(2)
        return (data[0] * 256 + data[1]) / 65536.0

    def on_timer(self, now):
        ua = self.ua
        reg = ua._reg
        for action in reg.due(now):
            if action in ("refresh", "retry"):
                self.send_register(now, reg.expires)
            elif action == "keepalive" and reg.next_hop is not None:
                # RFC 5626 §4.4.1: a CRLFCRLF ping on the registration's flow (a TCP/TLS peer answers
                # with a CRLF pong, which the transport checks; on UDP it keeps the NAT binding and
                # draws an ICMP error, reported through transport_error(), when nobody is there).
                ua._queue(b"\r\n\r\n", reg.next_hop)
                reg.keepalive_sent(now, self._fraction())
            elif action == "probe":
                self._send_probe(now)
                reg.probe_sent(now, self._fraction())

    def _send_probe(self, now):
        """OPTIONS to our own address of record through the registrar: a registrar that restarted and
        lost our binding answers 404, which makes us register again at once (issue 11)."""
        ua = self.ua
        reg = ua._reg
        if reg.probe_tx is not None and reg.probe_tx.state not in ("completed", "terminated"):
            return
        target = ua.aor.copy()
        call_id = ua._token(16)
        request = ua._base_request("OPTIONS", target, ua._from(ua._token(8)), "<{}>".format(target), call_id, 1)
        request.headers.add("Accept", "application/sdp")
        reg.probe_tx = ua._send_request(request, ua._out_of_dialog_destination(target), now, Context("probe"))

    def on_probe_response(self, tx, call, response, now):
        reg = self.ua._reg
        if tx is not reg.probe_tx or response.status < 200:
            return
        if response.status in (401, 407):
            new_tx, _ = self.ua._auth_retry(tx, response, now)
            if new_tx is not None:
                reg.probe_tx = new_tx
            return
        reg.probe_tx = None
        if response.status in BINDING_LOST and reg.binding_lost(now):
            self.send_register(now, reg.expires)

    def on_probe_failure(self, tx, call, status, reason, now):
        # The probe timed out or could not be sent: the flow to the registrar has failed
        # (RFC 5626 §4.4.1); register again now (the back-off applies if that fails too).
        reg = self.ua._reg
        if tx is reg.probe_tx:
            reg.probe_tx = None
            if reg.flow_failed(now):
                self.send_register(now, reg.expires)

    def flow_failed(self, addr, now):
        # The registration's flow failed (ICMP unreachable for a keep-alive, no pong, the connection
        # lost): RFC 5626 §4.4.1 says register again at once.
        reg = self.ua._reg
        if addr == reg.next_hop and reg.flow_failed(now):
            self.send_register(now, reg.expires)

    def _registrar_uri(self):
        aor = self.ua.aor
        return Uri(aor.scheme if aor.scheme in ("sip", "sips") else "sip", None, aor.host, aor.port)

    def send_register(self, now, expires):
        ua = self.ua
        reg = ua._reg
        if reg.tx is not None and reg.tx.state not in ("completed", "terminated"):
            return  # one REGISTER at a time (§10.2)
        if expires != 0:
            reg.move("register")
        reg.cseq += 1
        aor = str(NameAddr(ua.aor.copy(), ua.display_name))
        uri = self._registrar_uri()
        request = ua._base_request("REGISTER", uri, ua._from(reg.from_tag), aor, reg.call_id, reg.cseq)
        request.headers.add("Contact", ua._contact(";expires={}".format(expires)))
        request.headers.add("Expires", str(expires))
        request.headers.add("Allow", ALLOW)
        context = Context("unregister" if expires == 0 else "register")
        reg.next_hop = ua._out_of_dialog_destination(uri)
        reg.tx = ua._send_request(request, reg.next_hop, now, context)

    def on_response(self, tx, call, response, now):
        ua = self.ua
        reg = ua._reg
        status = response.status
        if tx is not reg.tx or status < 200:
            return
        unregistering = tx.context.kind == "unregister"
        if status in (401, 407):
            new_tx, reason = ua._auth_retry(tx, response, now)
            if new_tx is not None:
                reg.tx = new_tx
                return
            if not unregistering:  # an unanswerable challenge to our un-REGISTER ends it all the same (below)
                reg.failed(now, 0.0, retry=False)  # a wrong password is not retried
                ua._emit(events.RegistrationFailed(status, reason, None))
                return
        if unregistering:
            self._unregistered(status)
            return
        if 200 <= status < 300:
            if self._learn_public_address(response) and not reg.nat_updated:
                # RFC 3581: the registrar saw another address; register the reachable one instead.
                reg.nat_updated = True
                self.send_register(now, reg.expires)
                return
            granted = self._granted_expires(response, reg.expires)
            reg.succeeded(granted, now, self._fraction())
            ua._emit(events.Registered(granted, str(ua._contact_uri())))
            return
        if status == 423 and reg.too_brief_tries < 3:
            reg.too_brief_tries += 1
            minimum = response.headers.get("Min-Expires")
            try:
                reg.expires = parse_int_header(minimum, "Min-Expires")
            except RemoteProtocolError:
                reg.expires = max(reg.expires * 2, 60)
            self.send_register(now, reg.expires)
            return
        reason = "interval too brief" if status == 423 else response.reason or "registration refused"
        self._failed(status, reason, now)

    def on_failure(self, tx, call, status, reason, now):
        if tx is not self.ua._reg.tx:
            return
        if tx.context.kind == "unregister":
            self._unregistered(status)
        else:
            self._failed(status, reason, now)

    def _unregistered(self, status):
        reg = self.ua._reg
        reg.move("unregistered")
        reg.granted = None
        self.ua._emit(events.Unregistered(status))

    def _failed(self, status, reason, now):
        # RFC 5626 §4.5 back-off: a random 1-2 s after the first failure, doubling up to 10 min.
        backoff = self.ua._reg.failed(now, self._fraction())
        self.ua._emit(events.RegistrationFailed(status, reason, backoff))

    def _learn_public_address(self, response):
        ua = self.ua
        if ua.reliable:
            return False
        try:
            via = response.top_via
        except RemoteProtocolError:
            return False
        received = via.param("received")
        rport = via.param("rport")
        host = received or ua.public_address[0]
        port = ua.public_address[1]
        rport_number = decimal_or_none(rport, 65535, minimum=1)  # RFC 3581 §4; ignore a bad one
        if rport_number is not None:
            port = rport_number
        if (host, port) != ua.public_address:
            ua.public_address = (host, port)
            return True
        return False

    def _granted_expires(self, response, requested):
        mine = self.ua._contact_uri()
        for value in response.headers.get_all("Contact"):
            try:
                contact = parse_name_addr(value)
            except RemoteProtocolError:
                continue
            if contact.uri is not None and contact.uri.user == mine.user and contact.uri.host == mine.host:
                if contact.uri.port in (mine.port, None) and contact.param("expires"):
                    try:
                        return parse_int_header(contact.param("expires"), "expires")
                    except RemoteProtocolError:
                        pass
        value = response.headers.get("Expires")
        if value is not None:
            try:
                return parse_int_header(value, "Expires")
            except RemoteProtocolError:
                pass
        return requested
