"""The SIP user agent: registration, calls in and out, in-dialog requests. Sans-I/O (aioquic shape).

The UserAgent never touches a socket, a clock or a random source: the runtime feeds it datagrams and
the time, and it returns datagrams, a deadline and events (firmware.sip.events).

Construction
------------
UserAgent(local_address, rng, transport="udp", aor=None, display_name=None, username=None,
          password=None, outbound_proxy=None, register_expires=3600, contact_user=None, max_calls=4,
          ring_timeout=180.0, t1=T1, t2=T2, t4=T4, same_session=None)
    local_address   (host, port) we listen on; used in Via and Contact (the "public" address is
                    updated from a registrar's received/rport, RFC 3581, so Contact is NAT friendly)
    rng             callable n -> n random bytes (Call-IDs, tags, branches, cnonces)
    transport       "udp", "tcp" or "tls": reliable transports skip retransmissions (§17)
    aor             our address of record, "sip:alice@example.com" (a str or uri.Uri); default
                    sip:sotto@<local host>
    display_name    put in From; username/password digest credentials (username defaults to the AOR
                    user); outbound_proxy (host, port) every out-of-dialog request is sent to
    register_expires the Expires we ask the registrar for
    max_calls       more simultaneous calls get 486 Busy Here
    ring_timeout    an incoming call nobody answers within this many seconds gets 480 (CallEnded
                    reason "no answer"), so a caller that vanished without CANCEL frees the line
    same_session    callable (previous body, offer body) -> True when an offer in a re-INVITE/UPDATE
                    changes nothing (RFC 4028 refresh, RFC 3264 §8 same o= version): answered with our
                    last body, no ReinviteReceived. Bodies are opaque to the UA, so the default only
                    knows identical bytes (RFC 3264 §8: an unchanged version means an identical
                    description); the shell passes firmware.sdp.same_session. A malformed offer is the
                    application's to refuse (reject_reinvite(call, 488)).

Sans-I/O interface
------------------
receive_datagram(data, addr, now)   one SIP message (a datagram, or a message framed off a stream by
                                    message.StreamFramer); addr = (host, port) it came from. Malformed
                                    input is dropped and counted in `malformed_dropped`; requests that
                                    parse but break a rule are answered (400, 415, 416, 420, 481, ...)
datagrams_to_send(now) -> list of (bytes, (host, port))
                                    `port` is None when the target is a host name without a port: the
                                    transport then resolves it per RFC 3263 (NAPTR/SRV/A)
get_timer() -> absolute deadline (float) or None;  handle_timer(now)
next_event() -> event or None
transport_error(addr, now)          the runtime could not send to addr: pending requests there fail now
                                    (503 "transport error") rather than after Timer B/F

Commands (every `call` argument is a call id, the str returned by invite() or carried by events)
--------
register(now)                       REGISTER with digest auth; refreshed before expiry; retried with
                                    backoff after failures (not after a wrong password)
Digest credentials are cached per next hop and realm (at most MAX_CREDENTIALS): every later request to
that hop (REGISTER refreshes, unregister, BYE/re-INVITE/new INVITEs through the same proxy) answers the
last challenge again with the nonce count incremented (RFC 7616 §3.4.5), so it is not challenged each
time; a 401/407 to such a request (stale=true, or a new nonce) is answered once as usual. Not for
CANCEL/ACK, nor for -sess algorithms or challenges without qop=auth.
While registered: a CRLFCRLF keep-alive to the registrar's next hop and an OPTIONS probe of our own
AOR through it (firmware.sip.registration); a probe answered 404/480/481, a probe timeout or a
transport_error() for that hop registers again at once; failures back off per RFC 5626 §4.5.
network_up(now)                     the network came back: register again at once, back-off reset
unregister(now)                     REGISTER Expires: 0, then Unregistered
invite(target_uri, sdp, now) -> call id
ringing(call, now)                  180 Ringing
answer(call, sdp, now)              200 OK with our SDP answer; retransmitted (Timer G schedule) until ACK
reject(call, status, now)           486 Busy Here, 603 Decline, 488 Not Acceptable Here, ...
hangup(call, now)                   BYE, CANCEL, or a 603 for an unanswered incoming call
reinvite(call, sdp, now)            re-INVITE (hold: an SDP with sendonly/inactive; resume: sendrecv)
answer_reinvite(call, sdp, now) / reject_reinvite(call, status=488, now=...)  for ReinviteReceived
invite(target_uri, sdp, now, replaces=V)  the transferee's INVITE with Replaces V (RFC 3891; the value a
                                    ReferReceived carried), sent with Require: replaces
refer(call, target_uri, now, replaces=None)  transfer (RFC 3515); progress arrives as ReferProgress.
                                    replaces=other call: attended transfer, the Refer-To names
                                    target_uri (None: that call's remote target) with Replaces
notify_refer(call, status, now)     report the outcome of a transfer we were asked to make: the
                                    sipfrag status of our new call, final when >= 200 (RFC 3515 §2.4.5)
An INVITE with Replaces (RFC 3891 §3) is matched against our dialogs before it rings: 400 malformed or
repeated, 481 no such dialog (or an early one we did not start), 486 early-only but confirmed, 603 the
dialog already ended; a match arrives as IncomingCall(..., replaces=that call id).
send_info_dtmf(call, digit, now, duration_ms=160)
Commands raise LocalProtocolError for an unknown call or a call in the wrong state.

Server transactions are bounded per source host (MAX_TRANSACTIONS_PER_SOURCE) and in total
(MAX_TRANSACTIONS); a request past the bound gets 503 with Retry-After (counted in `busy_rejected`).
A source host sending more than source_rate messages a second (source_burst at once) has the rest
dropped unparsed (counted in `flood_dropped`); source_rate=None turns that off.

Attributes: malformed_dropped (int), busy_rejected (int), flood_dropped (int), registration_state,
registration_next_hop, registered (bool), registration_expires (int or None),
public_address ((host, port)), calls (dict call id -> Call, read only for callers).
"""

import binascii

from firmware.digits import decimal_or_none, is_ascii_digits
from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.sip import call as call_states
from firmware.sip import events, session_timer
from firmware.sip import replaces as replaces_header
from firmware.sip.call import Call
from firmware.sip.credentials import MAX_AUTH_TRIES, Credentials
from firmware.sip.dialog import Dialog
from firmware.sip.headers import Headers, Via, parse_int_header, split_commas
from firmware.sip.indialog import ALLOW, KNOWN_METHODS, InDialog
from firmware.sip.message import (
    REASONS,
    BrokenMessage,
    Request,
    Response,
    check_request,
    check_response,
    has_control_character,
    make_response,
    parse_message,
)
from firmware.sip.registration import (
    BINDING_LOST,
    KEEPALIVE_INTERVAL,
    PROBE_INTERVAL,
    Registration,
)
from firmware.sip.transaction import (
    T1,
    T2,
    T4,
    ClientTransaction,
    Context,
    ServerTransaction,
    client_key,
    transaction_key,
)
from firmware.sip.uri import NameAddr, Uri, parse_local_uri, parse_name_addr, parse_uri

USER_AGENT = "Sotto"

MAX_TRANSACTIONS = 256  # client transactions, and server transactions in total
# Server transactions one source host may hold, finished ones (still absorbing retransmissions for
# Timer J, 32 s on UDP) included. Past it that host gets 503 + Retry-After while other hosts are served:
# one table for all senders let ~8 OPTIONS/s from one address lock every caller out (issue 11). 64 in
# 32 s still lets a proxy relay two requests a second (INFO digits, re-INVITEs, OPTIONS pings).
MAX_TRANSACTIONS_PER_SOURCE = 64
RETRY_AFTER_BUSY = 10  # seconds, RFC 3261 §20.33: a flooder is told to come back later
# Messages a source host may send: SOURCE_RATE a second on average, SOURCE_BURST at once. Beyond that
# they are dropped unparsed (counted in flood_dropped): parsing and answering a flood would otherwise
# take the loop from everyone else. A call set-up is about ten messages; a busy proxy stays well under.
# (Generous on purpose: a fuzz from a handful of hosts, as tests/hostile does, is still parsed in full.)
SOURCE_RATE = 200.0
SOURCE_BURST = 400
MAX_TRACKED_SOURCES = 256
MAX_OUTGOING = 512
MAX_EVENTS = 256
MAX_ENDED = 32
SUPPORTED_EXTENSIONS = session_timer.SUPPORTED_EXTENSIONS + (replaces_header.OPTION_TAG,)


def _is_ip_literal(host):
    if ":" in host:
        return True
    parts = host.split(".")
    return len(parts) == 4 and all(is_ascii_digits(p) and len(p) <= 3 for p in parts)


def destination_of(uri, transport="udp"):
    """(host, port) to send a request for `uri` to; port None = resolve per RFC 3263."""
    host = uri.param("maddr") or uri.host
    if uri.port is not None:
        return (host, uri.port)
    if _is_ip_literal(host):
        return (host, 5061 if uri.scheme == "sips" or transport == "tls" else 5060)
    return (host, None)


class UserAgent:
    def __init__(
        self,
        local_address,
        rng,
        transport="udp",
        aor=None,
        display_name=None,
        username=None,
        password=None,
        outbound_proxy=None,
        register_expires=3600,
        contact_user=None,
        max_calls=4,
        ring_timeout=180.0,
        t1=T1,
        t2=T2,
        t4=T4,
        keepalive_interval=KEEPALIVE_INTERVAL,
        probe_interval=PROBE_INTERVAL,
        source_rate=SOURCE_RATE,
        source_burst=SOURCE_BURST,
        same_session=None,
    ):
        if rng is None:
            raise LocalProtocolError("a random source is required")
        transport = transport.lower()
        if transport not in ("udp", "tcp", "tls"):
            raise LocalProtocolError("unknown transport " + transport)
        self.local_address = (local_address[0], int(local_address[1]))
        self.public_address = self.local_address
        self.transport = transport
        self.reliable = transport != "udp"
        self.rng = rng
        if aor is None:
            aor = Uri("sip", contact_user or "sotto", self.local_address[0], self.local_address[1])
        elif isinstance(aor, str):
            aor = parse_uri(aor)
        self.aor = aor
        self.display_name = display_name
        self.username = username or aor.user
        self.password = password
        self.outbound_proxy = outbound_proxy
        self.contact_user = contact_user or aor.user or "sotto"
        self.max_calls = max_calls
        self.ring_timeout = ring_timeout
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
        self.malformed_dropped = 0
        self.busy_rejected = 0
        self.flood_dropped = 0
        self.source_rate = source_rate
        self.source_burst = source_burst
        self._buckets = {}  # source host -> [tokens, last time]: at most MAX_TRACKED_SOURCES
        self.events_dropped = 0
        self.outgoing_dropped = 0
        self.calls = {}
        self._client = {}
        self._server = {}
        self._out = []
        self._events = []
        self._ended_acks = []  # [(call_id, ack bytes, dest)] to re-ACK late 2xx retransmissions
        self._ended_dialogs = []  # [(call_id, local tag, remote tag)]: RFC 3891 §3 answers 603 for these
        self._same_session = same_session or _identical
        self._dialog = InDialog(self)
        self._reg = Registration(register_expires, keepalive_interval, probe_interval)
        self._credentials = Credentials(self.username, password, lambda: self._token(8))

    # ------------------------------------------------------------------ sans-I/O plumbing

    def _token(self, n=8):
        return binascii.hexlify(self.rng(n)).decode()

    def _emit(self, event):
        if len(self._events) >= MAX_EVENTS:
            self._events.pop(0)
            self.events_dropped += 1
        self._events.append(event)

    def _queue(self, data, dest):
        if len(self._out) >= MAX_OUTGOING:
            self.outgoing_dropped += 1
            return
        self._out.append((data, dest))

    def _flush(self, tx):
        for data in tx.outgoing:
            self._queue(data, tx.destination)
        tx.outgoing = []

    def next_event(self):
        if self._events:
            return self._events.pop(0)
        return None

    def datagrams_to_send(self, now):
        out = self._out
        self._out = []
        return out

    def get_timer(self):
        deadlines = []
        for tx in self._client.values():
            d = tx.next_deadline()
            if d is not None:
                deadlines.append(d)
        for tx in self._server.values():
            d = tx.next_deadline()
            if d is not None:
                deadlines.append(d)
        for call in self.calls.values():
            for d in (call.ok_next, call.ok_give_up, call.cancel_deadline, call.session_refresh_at, call.ring_deadline):
                if d is not None:
                    deadlines.append(d)
        deadlines.extend(self._reg.deadlines())
        return min(deadlines) if deadlines else None

    def handle_timer(self, now):
        for key, tx in list(self._client.items()):
            d = tx.next_deadline()
            if d is not None and d <= now:
                result = tx.handle_timer(now)
                self._flush(tx)
                if result == "timeout":
                    self._client_timeout(tx, now)
            if tx.state == "terminated":
                self._client.pop(key, None)
        for key, tx in list(self._server.items()):
            d = tx.next_deadline()
            if d is not None and d <= now:
                tx.handle_timer(now)
                self._flush(tx)
            if tx.state == "terminated":
                self._server.pop(key, None)
        for call in list(self.calls.values()):
            self._call_timers(call, now)
        self._registration_timers(now)

    def _call_timers(self, call, now):
        if call.ring_deadline is not None and call.ring_deadline <= now:
            call.ring_deadline = None
            if call.state == call_states.INCOMING:
                # Nobody answered (or the caller vanished without CANCEL): free the line.
                self._respond(call.server_tx, make_response(call.invite, 480, to_tag=call.local_tag), now)
                self._end_call(call, "no answer", 480, False)
                return
        if call.ok_give_up is not None and call.ok_give_up <= now:
            # §13.3.1.4: no ACK within 64*T1 -> the UAS ends the session with a BYE.
            call.ok_next = call.ok_give_up = call.ok_data = None
            if call.state in (call_states.ANSWERED, call_states.CONFIRMED):
                self._send_bye(call, now)
                self._end_call(call, "no ACK", 408, False)
            return
        if call.ok_next is not None and call.ok_next <= now and call.ok_data is not None:
            self._queue(call.ok_data, call.peer)
            call.ok_interval = min(call.ok_interval * 2, self.t2)
            call.ok_next = now + call.ok_interval
        if call.session_refresh_at is not None and call.session_refresh_at <= now:
            self._refresh_session(call, now)
        if call.cancel_deadline is not None and call.cancel_deadline <= now:
            # §9.1: no final response 64*T1 after the CANCEL: consider the INVITE cancelled.
            call.cancel_deadline = None
            if call.invite_tx is not None:
                self._client.pop(call.invite_tx.key, None)
            self._end_call(call, "cancelled", 487, False)

    # ------------------------------------------------------------------ building requests

    def _via(self, branch):
        host, port = self.public_address if not self.reliable else self.local_address
        via = Via(self.transport.upper(), host, port, [["branch", branch], ["rport", None]])
        return str(via)

    def _contact_uri(self):
        host, port = self.public_address
        uri = Uri(
            "sips" if self.transport == "tls" and self.aor.scheme == "sips" else "sip", self.contact_user, host, port
        )
        if self.transport != "udp":
            uri.set_param("transport", self.transport)
        return uri

    def _contact(self, params=""):
        return "<" + str(self._contact_uri()) + ">" + params

    def _from(self, tag):
        na = NameAddr(self.aor.copy(), self.display_name, [["tag", tag]])
        return str(na)

    def _new_branch(self):
        return "z9hG4bK" + self._token(10)

    def _base_request(self, method, uri, from_value, to_value, call_id, cseq, routes=(), body=b"", ctype=None):
        headers = Headers()
        headers.add("Via", self._via(self._new_branch()))
        headers.add("Max-Forwards", "70")
        for route in routes:
            headers.add("Route", route)
        headers.add("From", from_value)
        headers.add("To", to_value)
        headers.add("Call-ID", call_id)
        headers.add("CSeq", "{} {}".format(cseq, method))
        headers.add("User-Agent", USER_AGENT)
        if body:
            headers.add("Content-Type", ctype or "application/sdp")
        return Request(method, uri, headers, body)

    def _out_of_dialog_destination(self, uri):
        if self.outbound_proxy is not None:
            host, port = self.outbound_proxy
            return (host, int(port) if port else None)
        if uri.host is None:
            raise LocalProtocolError("a tel: URI needs an outbound proxy")
        return destination_of(uri, self.transport)

    def _send_request(self, request, dest, now, context):
        if len(self._client) >= MAX_TRANSACTIONS:
            raise LocalProtocolError("too many pending SIP transactions")
        self._credentials.add_cached(request, dest)
        tx = ClientTransaction(request, dest, self.reliable, now, self.t1, self.t2, self.t4)
        tx.context = context
        self._client[tx.key] = tx
        self._flush(tx)
        return tx

    def _dialog_request(self, call, method, body=b"", ctype=None, cseq=None):
        dialog = call.dialog
        uri, routes = dialog.request_target()
        number = cseq if cseq is not None else dialog.next_cseq()
        request = self._base_request(
            method, uri, str(dialog.local_uri), str(dialog.remote_uri), dialog.call_id, number, routes, body, ctype
        )
        if routes:
            dest = destination_of(parse_name_addr(routes[0]).uri, self.transport)
        else:
            dest = destination_of(uri, self.transport)
        return request, dest

    # ------------------------------------------------------------------ registration

    @property
    def registered(self):
        """True while the registrar holds our binding: also during a refresh and until an unregister
        is answered."""
        return self._reg.granted is not None and self._reg.granted > 0

    @property
    def registration_expires(self):
        return self._reg.granted

    @property
    def registration_state(self):
        """One of firmware.sip.registration.STATES."""
        return self._reg.state

    @property
    def registration_next_hop(self):
        """(host, port) the last REGISTER went to, or None."""
        return self._reg.next_hop

    def register(self, now):
        reg = self._reg
        if reg.call_id is None:
            reg.call_id = self._token(16)
            reg.from_tag = self._token(8)
        reg.too_brief_tries = 0
        reg.retry_at = None
        self._send_register(now, reg.expires)

    def network_up(self, now):
        """The network came back (an interface or address appeared): re-register at once, with the
        back-off reset (issue 11), instead of waiting for the next retry."""
        if self._reg.network_up(now):
            self._send_register(now, self._reg.expires)

    def _fraction(self):
        """A random number in [0, 1) for back-off and keep-alive jitter (RFC 5626 §4.4.1, §4.5)."""
        data = self.rng(2)
        return (data[0] * 256 + data[1]) / 65536.0

    def _registration_timers(self, now):
        reg = self._reg
        for action in reg.due(now):
            if action in ("refresh", "retry"):
                self._send_register(now, reg.expires)
            elif action == "keepalive" and reg.next_hop is not None:
                # RFC 5626 §4.4.1: a CRLFCRLF ping on the registration's flow (a TCP/TLS peer answers
                # with a CRLF pong, which the transport checks; on UDP it keeps the NAT binding and
                # draws an ICMP error, reported through transport_error(), when nobody is there).
                self._queue(b"\r\n\r\n", reg.next_hop)
                reg.keepalive_sent(now, self._fraction())
            elif action == "probe":
                self._send_probe(now)
                reg.probe_sent(now, self._fraction())

    def _send_probe(self, now):
        """OPTIONS to our own address of record through the registrar: a registrar that restarted and
        lost our binding answers 404, which makes us register again at once (issue 11)."""
        reg = self._reg
        if reg.probe_tx is not None and reg.probe_tx.state not in ("completed", "terminated"):
            return
        target = self.aor.copy()
        call_id = self._token(16)
        request = self._base_request("OPTIONS", target, self._from(self._token(8)), "<{}>".format(target), call_id, 1)
        request.headers.add("Accept", "application/sdp")
        reg.probe_tx = self._send_request(request, self._out_of_dialog_destination(target), now, Context("probe"))

    def _probe_response(self, tx, response, now):
        reg = self._reg
        if tx is not reg.probe_tx or response.status < 200:
            return
        if response.status in (401, 407):
            new_tx, _ = self._auth_retry(tx, response, now)
            if new_tx is not None:
                reg.probe_tx = new_tx
            return
        reg.probe_tx = None
        if response.status in BINDING_LOST and reg.binding_lost(now):
            self._send_register(now, reg.expires)

    def unregister(self, now):
        reg = self._reg
        if reg.call_id is None:
            raise LocalProtocolError("not registered")
        reg.refresh_at = None
        reg.retry_at = None
        reg.keepalive_at = None
        reg.probe_at = None
        reg.move("unregister")
        if reg.tx is not None and reg.tx.state not in ("completed", "terminated"):
            self._client.pop(reg.tx.key, None)  # abandon a pending REGISTER: shutting down wins
            reg.tx = None
        self._send_register(now, 0)

    def _registrar_uri(self):
        return Uri(self.aor.scheme if self.aor.scheme in ("sip", "sips") else "sip", None, self.aor.host, self.aor.port)

    def _send_register(self, now, expires):
        reg = self._reg
        if reg.tx is not None and reg.tx.state not in ("completed", "terminated"):
            return  # one REGISTER at a time (§10.2)
        if expires != 0:
            reg.move("register")
        reg.cseq += 1
        aor = str(NameAddr(self.aor.copy(), self.display_name))
        uri = self._registrar_uri()
        request = self._base_request("REGISTER", uri, self._from(reg.from_tag), aor, reg.call_id, reg.cseq)
        request.headers.add("Contact", self._contact(";expires={}".format(expires)))
        request.headers.add("Expires", str(expires))
        request.headers.add("Allow", ALLOW)
        context = Context("unregister" if expires == 0 else "register")
        reg.next_hop = self._out_of_dialog_destination(uri)
        reg.tx = self._send_request(request, reg.next_hop, now, context)

    def _register_response(self, tx, response, now):
        reg = self._reg
        status = response.status
        if status < 200:
            return
        unregistering = tx.context.kind == "unregister"
        if status in (401, 407):
            new_tx, reason = self._auth_retry(tx, response, now)
            if new_tx is not None:
                reg.tx = new_tx
                return
            if not unregistering:  # an unanswerable challenge to our un-REGISTER ends it all the same (below)
                reg.failed(now, 0.0, retry=False)  # a wrong password is not retried
                self._emit(events.RegistrationFailed(status, reason, None))
                return
        if unregistering:
            reg.move("unregistered")
            reg.granted = None
            self._emit(events.Unregistered(status))
            return
        if 200 <= status < 300:
            if self._learn_public_address(response) and not reg.nat_updated:
                # RFC 3581: the registrar saw another address; register the reachable one instead.
                reg.nat_updated = True
                self._send_register(now, reg.expires)
                return
            granted = self._granted_expires(response, reg.expires)
            reg.succeeded(granted, now, self._fraction())
            self._emit(events.Registered(granted, str(self._contact_uri())))
            return
        if status == 423 and reg.too_brief_tries < 3:
            reg.too_brief_tries += 1
            minimum = response.headers.get("Min-Expires")
            try:
                reg.expires = parse_int_header(minimum, "Min-Expires")
            except RemoteProtocolError:
                reg.expires = max(reg.expires * 2, 60)
            self._send_register(now, reg.expires)
            return
        reason = "interval too brief" if status == 423 else response.reason or "registration refused"
        self._registration_failed(status, reason, now)

    def _registration_failed(self, status, reason, now):
        # RFC 5626 §4.5 back-off: a random 1-2 s after the first failure, doubling up to 10 min.
        backoff = self._reg.failed(now, self._fraction())
        self._emit(events.RegistrationFailed(status, reason, backoff))

    def _learn_public_address(self, response):
        if self.reliable:
            return False
        try:
            via = response.top_via
        except RemoteProtocolError:
            return False
        received = via.param("received")
        rport = via.param("rport")
        host = received or self.public_address[0]
        port = self.public_address[1]
        rport_number = decimal_or_none(rport, 65535, minimum=1)  # RFC 3581 §4; ignore a bad one
        if rport_number is not None:
            port = rport_number
        if (host, port) != self.public_address:
            self.public_address = (host, port)
            return True
        return False

    def _granted_expires(self, response, requested):
        mine = self._contact_uri()
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

    # ------------------------------------------------------------------ digest authentication

    def _auth_retry(self, tx, response, now):
        """Resend tx.request with credentials. -> (new transaction, None) or (None, failure reason)."""
        context = tx.context
        credentials = self._credentials
        if not credentials.can_answer:
            return None, "authentication required"
        challenge = credentials.challenge_of(response)
        if challenge is None:
            return None, "unsupported authentication challenge"
        realm_key = (response.status, challenge.realm)
        if (realm_key in context.realms and not challenge.stale) or context.tries >= MAX_AUTH_TRIES:
            # We already answered a challenge of this realm and got challenged again without
            # stale=true (RFC 7616 §3.3): the credentials are wrong. No retry loop. (Credentials
            # sent unasked from the cache do not count: a new nonce for them is answered once.)
            credentials.forget(response.status, challenge.realm, tx.destination)
            return None, "wrong password"
        context.tries += 1
        context.realms.append(realm_key)
        old = tx.request
        request = Request(old.method, old.uri.copy(), old.headers.copy(), old.body)
        request.headers.set("Via", self._via(self._new_branch()))
        number = self._next_cseq_for(context, old)
        request.headers.set("CSeq", "{} {}".format(number, old.method))
        credentials.answer_challenge(request, response.status, challenge, tx.destination)
        request.invalidate()
        new_tx = self._send_request(request, tx.destination, now, context)
        if context.kind == "invite":
            call = self.calls.get(context.call_id)
            if call is not None:
                call.invite = request
                call.invite_tx = new_tx
        elif context.kind in ("reinvite", "refresh"):
            call = self.calls.get(context.call_id)
            if call is not None:
                call.reinvite_tx = new_tx
        return new_tx, None

    def _next_cseq_for(self, context, old):
        if context.kind in ("register", "unregister"):
            self._reg.cseq += 1
            return self._reg.cseq
        call = self.calls.get(context.call_id) if context.call_id else None
        if call is not None and call.dialog is not None and context.kind != "invite":
            return call.dialog.next_cseq()
        return old.cseq[0] + 1

    # ------------------------------------------------------------------ outgoing calls

    def invite(self, target_uri, sdp, now, replaces=None):
        target_uri = parse_local_uri(target_uri, "bad target URI: ")
        if replaces is not None:
            replaces = replaces_header.parse_local_replaces(replaces)
        if len(self.calls) >= self.max_calls:
            raise LocalProtocolError("too many calls")
        if len(self._client) >= MAX_TRANSACTIONS:
            raise LocalProtocolError("too many pending SIP transactions")
        dest = self._out_of_dialog_destination(target_uri)
        call_id = self._token(16)
        call = Call(call_id, "uac")
        call.local_tag = self._token(8)
        call.local_sdp = sdp
        call.remote_uri = str(target_uri)
        request = self._base_request(
            "INVITE", target_uri, self._from(call.local_tag), "<" + str(target_uri) + ">", call_id, 1, (), sdp
        )
        request.headers.add("Contact", self._contact())
        request.headers.add("Allow", ALLOW)
        if replaces is not None:
            # RFC 3891 §6.1: take the place of the named dialog at the target; Require, so a target that
            # cannot replace refuses (420) instead of ringing as a second, unrelated call.
            request.headers.add("Replaces", str(replaces))
            request.headers.add("Require", replaces_header.OPTION_TAG)
        call.invite = request
        call.advance(call_states.SEND_INVITE)
        self.calls[call_id] = call
        call.invite_tx = self._send_request(request, dest, now, Context("invite", call_id))
        return call_id

    def _invite_response(self, tx, call, response, now):
        status = response.status
        if call.state == call_states.ENDED:
            return
        if status < 200:
            if status > 100:
                call.provisional = True
                if call.state == call_states.CALLING:
                    call.advance(call_states.PROVISIONAL)
                self._emit(events.CallRinging(call.id, status, response.body))
            elif status == 100:
                call.provisional = True
            if call.cancel_requested and call.state in (call_states.CALLING, call_states.EARLY):
                self._send_cancel(call, now)
            return
        if status < 300:
            self._invite_success(call, response, now)
            return
        if status in (401, 407) and not call.cancel_requested:
            new_tx, reason = self._auth_retry(tx, response, now)
            if new_tx is None:
                self._fail_call(call, status, reason)
            return
        if call.cancel_requested or call.state == call_states.CANCELLING:
            self._end_call(call, "cancelled", status, False)
            return
        self._fail_call(call, status, response.reason)

    def _invite_success(self, call, response, now):
        if call.dialog is not None:
            if response.to_addr.tag == call.dialog.remote_tag:
                if call.ack_data is not None:
                    self._queue(call.ack_data, call.ack_dest)  # a retransmitted 2xx: ACK again (§13.2.2.4)
            else:
                self._ack_and_bye_stray_dialog(call, response, now)  # another fork answered too
            return
        try:
            dialog = Dialog.from_uac_response(call.invite, response)
        except RemoteProtocolError:
            # No usable Contact: still ACK and BYE (to the Request-URI), then report the failure.
            self._ack_and_bye_stray_dialog(call, response, now)
            self._fail_call(call, 502, "2xx without a usable Contact")
            return
        call.dialog = dialog
        call.remote_sdp = response.body
        ack, dest = self._dialog_request(call, "ACK", cseq=call.invite.cseq[0])
        for name in ("Authorization", "Proxy-Authorization"):
            value = call.invite.headers.get(name)
            if value is not None:
                ack.headers.add(name, value)
        call.ack_data = ack.to_bytes()
        call.ack_dest = dest
        self._queue(call.ack_data, dest)
        call.cancel_deadline = None
        cancelled = call.cancel_requested or call.state == call_states.CANCELLING
        call.advance(call_states.ACCEPTED)
        if cancelled:
            self._send_bye(call, now)  # the 2xx crossed our CANCEL: end the dialog it made (§9.1)
            call.advance(call_states.SEND_BYE)
            return
        call.established = True
        self._session_timer_from_2xx(call, response, now)
        self._emit(events.CallAnswered(call.id, response.body))

    def _ack_and_bye_stray_dialog(self, call, response, now):
        """§13.2.2.4: a 2xx we do not want still gets its ACK, then a BYE ends that dialog."""
        try:
            dialog = Dialog.from_uac_response(call.invite, response)
        except RemoteProtocolError:
            dialog = Dialog(
                call.id,
                call.local_tag,
                response.to_addr.tag,
                call.invite.from_addr.copy(),
                response.to_addr.copy(),
                call.invite.uri.copy(),
                list(reversed(response.headers.get_all("Record-Route"))),
                call.invite.cseq[0],
                None,
            )
        stray = Call(call.id, "uac")
        stray.dialog = dialog
        ack, dest = self._dialog_request(stray, "ACK", cseq=call.invite.cseq[0])
        self._queue(ack.to_bytes(), dest)
        bye, dest = self._dialog_request(stray, "BYE")
        self._send_request(bye, dest, now, Context("stray-bye"))

    def _session_timer_from_2xx(self, call, response, now):
        """RFC 4028 §7.2: a 2xx may make us (the UAC) the refresher."""
        interval = session_timer.refresher_interval_from_2xx(response)
        if interval is not None:
            call.session_interval = interval
            call.session_refresher = "uac"
            call.session_refresh_at = session_timer.next_refresh(now, interval)

    def _fail_call(self, call, status, reason):
        call.advance(call_states.END)
        self._forget_call(call)
        self._emit(events.CallFailed(call.id, status, reason))

    def _send_cancel(self, call, now):
        invite = call.invite
        headers = Headers()
        headers.add("Via", invite.headers.get_all("Via")[0])
        headers.add("Max-Forwards", "70")
        for route in invite.headers.get_all("Route"):
            headers.add("Route", route)
        headers.add("From", invite.headers.get("From"))
        headers.add("To", invite.headers.get("To"))
        headers.add("Call-ID", invite.call_id)
        headers.add("CSeq", "{} CANCEL".format(invite.cseq[0]))
        headers.add("User-Agent", USER_AGENT)
        cancel = Request("CANCEL", invite.uri, headers, b"")
        self._send_request(cancel, call.invite_tx.destination, now, Context("cancel", call.id))
        call.advance(call_states.SEND_CANCEL)
        call.cancel_deadline = now + 64 * self.t1

    # ------------------------------------------------------------------ commands on calls

    def _call(self, call_id):
        call = self.calls.get(call_id)
        if call is None:
            raise LocalProtocolError("no such call")
        return call

    def ringing(self, call_id, now):
        call = self._call(call_id)
        if call.role != "uas" or call.state != call_states.INCOMING:
            raise LocalProtocolError("ringing() needs an unanswered incoming call")
        response = make_response(call.invite, 180, to_tag=call.local_tag)
        for value in call.invite.headers.get_all("Record-Route"):
            response.headers.add("Record-Route", value)  # §12.1.1: the 180 creates an early dialog
        response.headers.add("Contact", self._contact())
        self._respond(call.server_tx, response, now)

    def answer(self, call_id, sdp, now):
        call = self._call(call_id)
        if call.role != "uas" or call.state != call_states.INCOMING:
            raise LocalProtocolError("answer() needs an unanswered incoming call")
        call.dialog = Dialog.from_uas_request(call.invite, call.local_tag, 0)
        call.local_sdp = sdp
        call.advance(call_states.SEND_2XX)
        call.established = True
        self._send_2xx(call, call.server_tx, call.invite, sdp, now)

    def _send_2xx(self, call, tx, request, sdp, now):
        response = make_response(request, 200, to_tag=call.local_tag)
        for value in request.headers.get_all("Record-Route"):
            response.headers.add("Record-Route", value)
        response.headers.add("Contact", self._contact())
        response.headers.add("Allow", ALLOW)
        response.headers.add("Supported", ", ".join(SUPPORTED_EXTENSIONS))
        if call.session_interval:
            # RFC 4028 §9: say who refreshes; "uac" needs Require: timer.
            session_timer.add_to_2xx(response.headers, call.session_interval, call.session_refresher)
            if call.session_refresher == "uas":
                call.session_refresh_at = session_timer.next_refresh(now, call.session_interval)
        if sdp:
            response.headers.add("Content-Type", "application/sdp")
        response.body = sdp
        data = response.to_bytes()
        self._respond(tx, data, now)
        # §13.3.1.4: the UAS core retransmits the 2xx (T1 doubling to T2) until the ACK, for 64*T1.
        call.ok_data = data
        call.ok_cseq = request.cseq[0]
        call.ok_interval = self.t1
        if not self.reliable:
            call.ok_next = now + self.t1
        call.ok_give_up = now + 64 * self.t1

    def _refresh_session(self, call, now):
        """RFC 4028 §10: we are the refresher: a re-INVITE with the same SDP (same o= version)."""
        call.session_refresh_at = None
        if call.state != call_states.CONFIRMED or not call.session_interval:
            return
        if call.reinvite_tx is not None or call.reinvite_server is not None:
            call.session_refresh_at = now + 2.0  # an offer/answer is in progress: try a little later
            return
        request, dest = self._dialog_request(call, "INVITE", call.local_sdp)
        request.headers.add("Contact", self._contact())
        request.headers.add("Allow", ALLOW)
        session_timer.add_to_refresh(request.headers, call.session_interval)
        call.reinvite_tx = self._send_request(request, dest, now, Context("refresh", call.id))
        call.session_refresh_at = session_timer.next_refresh(now, call.session_interval)

    def _negotiate_session_timer(self, call, request):
        """RFC 4028 §9 as UAS. Returns None, or a 422 response when the interval is too small."""
        outcome = session_timer.negotiate(request)
        if outcome is None:
            return None
        if outcome == session_timer.TOO_SMALL:
            response = make_response(request, 422, to_tag=call.local_tag)
            response.headers.add("Min-SE", str(session_timer.MIN_SESSION_EXPIRES))
            return response
        call.session_interval, call.session_refresher = outcome
        return None

    def reject(self, call_id, status, now):
        call = self._call(call_id)
        if call.role != "uas" or call.state != call_states.INCOMING:
            raise LocalProtocolError("reject() needs an unanswered incoming call")
        if not 300 <= status <= 699:
            raise LocalProtocolError("reject() needs a final non-2xx status")
        response = make_response(call.invite, status, to_tag=call.local_tag)
        if status == 488:
            response.headers.add("Accept", "application/sdp")
        self._respond(call.server_tx, response, now)
        self._end_call(call, "rejected", status, False)

    def hangup(self, call_id, now):
        call = self._call(call_id)
        state = call.state
        if call.role == "uas" and state == call_states.INCOMING:
            self.reject(call_id, 603, now)
        elif state == call_states.CALLING:
            call.cancel_requested = True  # §9.1: CANCEL only after a provisional response
            if call.provisional:
                self._send_cancel(call, now)
        elif state == call_states.EARLY:
            call.cancel_requested = True
            self._send_cancel(call, now)
        elif state == call_states.ANSWERED:
            call.bye_after_ack = True  # §15: the callee waits for the ACK before sending BYE
        elif state == call_states.CONFIRMED:
            self._send_bye(call, now)
            call.advance(call_states.SEND_BYE)
        # CANCELLING, TERMINATING, ENDED: already on the way out

    def _send_bye(self, call, now):
        request, dest = self._dialog_request(call, "BYE")
        self._send_request(request, dest, now, Context("bye", call.id))
        call.ok_next = call.ok_give_up = call.ok_data = None

    def reinvite(self, call_id, sdp, now):
        self._dialog.reinvite(call_id, sdp, now)

    def answer_reinvite(self, call_id, sdp, now):
        self._dialog.answer_reinvite(call_id, sdp, now)

    def reject_reinvite(self, call_id, status=488, now=0.0):
        self._dialog.reject_reinvite(call_id, status, now)

    def refer(self, call_id, target_uri, now, replaces=None):
        self._dialog.refer(call_id, target_uri, now, replaces)

    def notify_refer(self, call_id, status, now):
        self._dialog.notify_refer(call_id, status, now)

    def send_info_dtmf(self, call_id, digit, now, duration_ms=160):
        self._dialog.send_info_dtmf(call_id, digit, now, duration_ms)

    def _end_call(self, call, reason, status, by_remote):
        if call.state == call_states.ENDED and call.id not in self.calls:
            return
        call.advance(call_states.END)
        self._forget_call(call)
        self._emit(events.CallEnded(call.id, reason, status, by_remote))

    def _forget_call(self, call):
        call.ok_next = call.ok_give_up = call.ok_data = call.cancel_deadline = call.session_refresh_at = None
        call.ring_deadline = None
        self.calls.pop(call.id, None)
        if call.dialog is not None:  # RFC 3891 §3: a Replaces naming it now gets 603, not 481
            self._ended_dialogs.append((call.id, call.dialog.local_tag, call.dialog.remote_tag))
            if len(self._ended_dialogs) > MAX_ENDED:
                self._ended_dialogs.pop(0)
        if call.ack_data is not None:
            self._ended_acks.append((call.id, call.ack_data, call.ack_dest))
            if len(self._ended_acks) > MAX_ENDED:
                self._ended_acks.pop(0)

    # ------------------------------------------------------------------ incoming datagrams

    def _within_rate(self, host, now):
        """A token bucket per source host (source_rate a second, source_burst at once): a flood is
        dropped before it costs a parse, so one sender cannot starve the loop (issue 11)."""
        if not self.source_rate:
            return True
        bucket = self._buckets.get(host)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_SOURCES:
                oldest = None
                for key, value in self._buckets.items():
                    if oldest is None or value[1] < self._buckets[oldest][1]:
                        oldest = key
                del self._buckets[oldest]
            bucket = [float(self.source_burst), now]
            self._buckets[host] = bucket
        tokens = bucket[0] + (now - bucket[1]) * self.source_rate
        if tokens > self.source_burst:
            tokens = float(self.source_burst)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def receive_datagram(self, data, addr, now):
        if not self._within_rate(addr[0], now):
            self.flood_dropped += 1
            return
        unframed = None
        try:
            message = parse_message(data)
        except BrokenMessage as exc:
            unframed = exc
        except RemoteProtocolError:
            self.malformed_dropped += 1
            return
        if unframed is not None:
            # §18.3: e.g. a request whose Content-Length does not frame its datagram is answered 400,
            # not dropped silently (issue 11); a broken response is dropped and counted.
            if isinstance(unframed.parsed, Request):
                self._answer_broken_request(unframed.parsed, addr, unframed)
            else:
                self.malformed_dropped += 1
            return
        if isinstance(message, Response):
            try:
                check_response(message)
            except RemoteProtocolError:
                self.malformed_dropped += 1
                return
            try:
                self._on_response(message, now)
            except RemoteProtocolError:
                self.malformed_dropped += 1
            return
        try:
            check_request(message)
            _stamp_via(message, addr)
            self._on_request(message, addr, now)
        except RemoteProtocolError as exc:
            self._answer_broken_request(message, addr, exc)

    def _answer_broken_request(self, request, addr, exc):
        if request.method == "ACK":
            self.malformed_dropped += 1
            return
        try:
            addressable = request.top_via is not None and request.call_id and request.headers.get("CSeq")
            tx = self._server.get(transaction_key(request))
        except RemoteProtocolError:
            addressable = False
        if addressable:
            # The response copies these headers (§8.2.6.2): never echo a control character back.
            for name in ("Via", "From", "To", "Call-ID", "CSeq"):
                for value in request.headers.get_all(name):
                    if has_control_character(value):
                        addressable = False
        if not addressable:
            self.malformed_dropped += 1  # not even enough to address a response
            return
        response = make_response(request, exc.status if 400 <= exc.status <= 699 else 400)
        if exc.status == 400:
            response.reason = "Bad Request ({})".format(exc.message[:80].replace("\r", " ").replace("\n", " "))
        if tx is not None and tx.state in ("proceeding", "trying"):
            self._respond(tx, response, 0.0 if tx.next_deadline() is None else tx.next_deadline())
        else:
            self._queue(response.to_bytes(), addr)

    # ---- responses

    def _on_response(self, response, now):
        via = response.top_via
        number, method = response.cseq
        tx = self._client.get(client_key(via.branch, method))
        if tx is None:
            if method == "INVITE" and 200 <= response.status < 300:
                self._stray_2xx(response)
            return
        deliver = tx.receive_response(response, now)
        self._flush(tx)
        if not deliver:
            return
        kind = tx.context.kind if tx.context is not None else None
        call = self.calls.get(tx.context.call_id) if tx.context is not None and tx.context.call_id else None
        if kind in ("register", "unregister"):
            if tx is self._reg.tx:
                self._register_response(tx, response, now)
        elif kind == "probe":
            self._probe_response(tx, response, now)
        elif kind == "invite":
            if call is not None:
                self._invite_response(tx, call, response, now)
            elif 200 <= response.status < 300:
                self._stray_2xx(response)
        elif call is None:
            return
        elif kind == "bye":
            if response.status in (401, 407):
                new_tx, _ = self._auth_retry(tx, response, now)
                if new_tx is not None:
                    return
            if response.status >= 200:
                self._end_call(call, "local hangup", 200, False)
        elif kind in ("reinvite", "refresh"):
            self._dialog.reinvite_response(tx, call, response, now)
        elif kind == "refer":
            if response.status in (401, 407) and self._auth_retry(tx, response, now)[0] is not None:
                return
            if response.status >= 200:
                self._emit(events.ReferProgress(call.id, response.status, response.status >= 300))
        elif kind in ("info", "notify"):
            if response.status in (401, 407):
                self._auth_retry(tx, response, now)
            elif response.status in (408, 481):
                self._remote_dialog_lost(call, response.status, now)

    def _stray_2xx(self, response):
        call_id = response.call_id
        for ended_id, ack, dest in self._ended_acks:
            if ended_id == call_id:
                self._queue(ack, dest)
                return

    def _remote_dialog_lost(self, call, status, now):
        # RFC 5057 §5.1: 481/408 to a mid-dialog request ends the dialog.
        if status == 408 and call.state == call_states.CONFIRMED:
            self._send_bye(call, now)
        self._end_call(call, "dialog lost", status, True)

    def _client_timeout(self, tx, now):
        self._client_failure(tx, 408, "timeout", now)

    def transport_error(self, addr, now):
        """The runtime could not send to `addr` (connection refused, TLS verification failed, no DNS
        answer): the pending client transactions towards it fail at once, as with a 503 (RFC 3261
        §8.1.3.1), instead of waiting for Timer B/F."""
        for key, tx in list(self._client.items()):
            if tx.destination != addr or tx.state not in ("calling", "trying", "proceeding"):
                continue
            tx.abort()
            self._client.pop(key, None)
            self._client_failure(tx, 503, "transport error", now)
        # The registration's flow failed (ICMP unreachable for a keep-alive, no pong, the connection
        # lost): RFC 5626 §4.4.1 says register again at once.
        if addr == self._reg.next_hop and self._reg.flow_failed(now):
            self._send_register(now, self._reg.expires)

    def _client_failure(self, tx, status, reason, now):
        context = tx.context
        kind = context.kind if context is not None else None
        call = self.calls.get(context.call_id) if context is not None and context.call_id else None
        if kind in ("register", "unregister"):
            if tx is not self._reg.tx:
                return
            if kind == "unregister":
                self._reg.move("unregistered")
                self._reg.granted = None
                self._emit(events.Unregistered(status))
            else:
                self._registration_failed(status, reason, now)
        elif kind == "probe":
            # The probe timed out or could not be sent: the flow to the registrar has failed
            # (RFC 5626 §4.4.1); register again now (the back-off applies if that fails too).
            if tx is self._reg.probe_tx:
                self._reg.probe_tx = None
                if self._reg.flow_failed(now):
                    self._send_register(now, self._reg.expires)
        elif call is None:
            return
        elif kind == "invite":
            if call.cancel_requested or call.state == call_states.CANCELLING:
                self._end_call(call, "cancelled", status, False)
            else:
                self._fail_call(call, status, reason)
        elif kind == "bye":
            self._end_call(call, "local hangup", status, False)
        elif kind in ("reinvite", "refresh"):
            call.reinvite_tx = None
            if kind == "reinvite":
                self._emit(events.ReinviteFailed(call.id, status))
            self._remote_dialog_lost(call, 408, now)
        elif kind == "refer":
            self._emit(events.ReferProgress(call.id, status, True))

    # ---- requests

    def _respond(self, tx, response, now):
        if tx is None:
            return
        tx.send_response(response, now)
        self._flush(tx)
        if tx.state == "terminated" and self._server.get(tx.key) is tx:
            del self._server[tx.key]  # §17.2.2 Timer J = 0 on reliable transports: leave at once

    def _on_request(self, request, addr, now):
        key = transaction_key(request)
        tx = self._server.get(key)
        if tx is not None:
            result = tx.receive_request(request, now)
            self._flush(tx)
            if result == "ack-2xx":
                self._on_ack(request, now)
            return
        method = request.method
        if method == "ACK":
            self._on_ack(request, now)
            return
        if not self._admit(addr[0]):
            self.busy_rejected += 1
            response = make_response(request, 503)
            response.headers.add("Retry-After", str(RETRY_AFTER_BUSY))
            self._queue(response.to_bytes(), addr)
            return
        tx = ServerTransaction(request, addr, self.reliable, now, self.t1, self.t2, self.t4)
        self._server[tx.key] = tx
        if method == "CANCEL":
            self._on_cancel(tx, request, now)
            return
        unsupported = self._unsupported_requirements(request)
        if unsupported:
            response = make_response(request, 420, to_tag=self._token(8))
            response.headers.add("Unsupported", ", ".join(unsupported))
            self._respond(tx, response, now)
            return
        if request.to_addr.tag is not None:
            self._in_dialog_request(tx, request, addr, now)
            return
        if method == "INVITE":
            self._new_incoming_call(tx, request, addr, now)
        elif method == "OPTIONS":
            response = make_response(request, 200, to_tag=self._token(8))
            response.headers.add("Allow", ALLOW)
            response.headers.add("Accept", "application/sdp")
            response.headers.add("Supported", ", ".join(SUPPORTED_EXTENSIONS))
            response.headers.add("Contact", self._contact())
            self._respond(tx, response, now)
        elif method in ("BYE", "NOTIFY"):
            self._respond(tx, make_response(request, 481, to_tag=self._token(8)), now)
        elif method in KNOWN_METHODS:
            response = make_response(request, 405, to_tag=self._token(8))
            response.headers.add("Allow", ALLOW)
            self._respond(tx, response, now)
        else:
            response = make_response(request, 501, to_tag=self._token(8))
            response.headers.add("Allow", ALLOW)
            self._respond(tx, response, now)

    def _admit(self, host):
        """Room for one more server transaction from `host`? Bounded per source host and in total.
        When only the total is reached, the finished transaction that expires first is forgotten early
        (it only absorbs retransmissions), so finished ones never lock new callers out."""
        from_host = 0
        evictable = None
        for tx in self._server.values():
            if tx.source[0] == host:
                from_host += 1
            if tx.absorbing():
                if evictable is None or _expiry(tx) < _expiry(evictable):
                    evictable = tx
        if from_host >= MAX_TRANSACTIONS_PER_SOURCE:
            return False
        if len(self._server) < MAX_TRANSACTIONS:
            return True
        if evictable is None:
            return False
        self._server.pop(evictable.key, None)
        return True

    def _unsupported_requirements(self, request):
        if request.method in ("ACK", "CANCEL"):
            return []
        supported = SUPPORTED_EXTENSIONS
        return [opt for opt in request.headers.get_all("Require") if opt.lower() not in supported]

    def _new_incoming_call(self, tx, request, addr, now):
        if request.call_id in self.calls:
            # Same Call-ID, no To tag, new branch: a merged/forked request (§8.2.2.2).
            self._respond(tx, make_response(request, 482, to_tag=self._token(8)), now)
            return
        if len(self.calls) >= self.max_calls:
            self._respond(tx, make_response(request, 486, to_tag=self._token(8)), now)
            return
        if request.body and request.content_type != "application/sdp":
            response = make_response(request, 415, to_tag=self._token(8))
            response.headers.add("Accept", "application/sdp")
            self._respond(tx, response, now)
            return
        if request.uri.scheme not in ("sip", "sips"):
            self._respond(tx, make_response(request, 416, to_tag=self._token(8)), now)
            return
        contacts = request.headers.get_all("Contact")
        if len(contacts) != 1:
            raise RemoteProtocolError("INVITE needs exactly one Contact")
        if parse_name_addr(contacts[0]).uri is None:
            raise RemoteProtocolError("wildcard Contact in INVITE")
        replaced = None
        if request.headers.get("Replaces") is not None:
            try:
                replaced = replaces_header.match_incoming(request, self.calls, self._ended_dialogs)
            except RemoteProtocolError as exc:
                self._respond(tx, make_response(request, exc.status, exc.message, to_tag=self._token(8)), now)
                return
        call = Call(request.call_id, "uas")
        call.invite = request
        call.server_tx = tx
        call.local_tag = self._token(8)
        call.remote_sdp = request.body
        call.peer = addr
        call.remote_uri = str(request.from_addr.uri)
        call.advance(call_states.RECEIVE_INVITE)
        too_small = self._negotiate_session_timer(call, request)
        if too_small is not None:
            self._respond(tx, too_small, now)
            return
        self.calls[call.id] = call
        call.ring_deadline = now + self.ring_timeout
        tx.context = call.id
        self._respond(tx, make_response(request, 100), now)
        frm = request.from_addr
        self._emit(
            events.IncomingCall(call.id, str(frm.uri), frm.display, str(request.to_addr.uri), request.body, replaced)
        )

    def _on_cancel(self, tx, request, now):
        # §9.2: the CANCEL matches the INVITE server transaction with the same branch.
        invite_key = transaction_key(request)
        invite_key = invite_key[:-1] + ("INVITE",)
        invite_tx = self._server.get(invite_key)
        if invite_tx is None:
            self._respond(tx, make_response(request, 481, to_tag=self._token(8)), now)
            return
        call = self.calls.get(request.call_id)
        to_tag = call.local_tag if call is not None else self._token(8)
        self._respond(tx, make_response(request, 200, to_tag=to_tag), now)
        if invite_tx.state == "proceeding":
            self._respond(invite_tx, make_response(invite_tx.request, 487, to_tag=to_tag), now)
            if call is not None and call.state == call_states.INCOMING:
                self._end_call(call, "cancelled", 487, True)

    def _on_ack(self, request, now):
        call = self.calls.get(request.call_id)
        if call is None or call.dialog is None:
            return
        if request.from_addr.tag != call.dialog.remote_tag or request.to_addr.tag != call.local_tag:
            return
        if call.ok_cseq is not None and request.cseq[0] != call.ok_cseq:
            return
        call.ok_next = call.ok_give_up = call.ok_data = None
        call.ok_cseq = None
        if call.state == call_states.ANSWERED:
            call.advance(call_states.RECEIVE_ACK)
            if request.body:
                call.remote_sdp = request.body
            self._emit(events.CallConfirmed(call.id, request.body))
            if call.bye_after_ack:
                self._send_bye(call, now)
                call.advance(call_states.SEND_BYE)

    def _find_dialog_call(self, request):
        call = self.calls.get(request.call_id)
        if call is None or call.dialog is None:
            return None
        dialog = call.dialog
        if request.to_addr.tag != dialog.local_tag or request.from_addr.tag != dialog.remote_tag:
            return None
        return call

    def _in_dialog_request(self, tx, request, addr, now):
        call = self._find_dialog_call(request)
        if call is None:
            self._respond(tx, make_response(request, 481), now)
            return
        if not call.dialog.check_remote_cseq(request.cseq[0]):
            self._respond(tx, make_response(request, 500, "Out of order CSeq"), now)
            return
        call.peer = addr
        self._dialog.on_request(tx, call, request, now)


def _identical(previous, offer):
    return previous == offer


def _expiry(tx):
    deadline = tx.next_deadline()
    return -1.0 if deadline is None else deadline


def _stamp_via(request, addr):
    """§18.2.1 and RFC 3581 §4: note in the top Via where the request really came from, so responses
    (which copy the Via) tell the peer its public address."""
    via = request.top_via
    host, port = addr[0], addr[1]
    changed = False
    if via.host != host:
        via.set_param("received", host)
        changed = True
    if via.param("rport") == "":
        via.set_param("rport", str(port))
        changed = True
    if not changed:
        return
    # The first Via field may carry several comma-separated values: only its first one is ours to stamp.
    headers = request.headers
    first = headers.get("Via")
    rest = split_commas(first)[1:] if first is not None else []
    headers.replace_first("Via", ", ".join([str(via)] + rest))


def _reason(status):
    return REASONS.get(status, "Unknown")
