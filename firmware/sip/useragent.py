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
    max_calls       a resource bound: calls past it get 486. Whether the line is busy is the
                    application's decision: every INVITE within the bound arrives as IncomingCall,
                    also during another call, and the application answers reject(call, 486) or rings
    ring_timeout    an incoming call nobody answers within this many seconds gets 480 (CallEnded
                    reason "no answer"), so a caller that vanished without CANCEL frees the line
    min_session_expires  the smallest RFC 4028 Session-Expires accepted (422 with Min-SE below it);
                    90 (§4). Without a refresh from the refresher, we send BYE at SE - min(32, SE/3)
                    (§10): CallEnded reason "session expired"
    reliable_provisional  "required" (default): our 180 is reliable (RFC 3262) only when the INVITE has
                    Require: 100rel; "supported": also when it only has Supported: 100rel (§3 MAY)
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
ringing(call, now)                  180 Ringing; sent reliably (RFC 3262: RSeq, retransmitted until its
                                    PRACK) when the INVITE has Require: 100rel
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

from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.sip import call as call_states
from firmware.sip import events, reliable, session_timer
from firmware.sip.admission import (
    MAX_TRANSACTIONS,
    MAX_TRANSACTIONS_PER_SOURCE,
    RETRY_AFTER_BUSY,
    SOURCE_BURST,
    SOURCE_RATE,
    SourceLimiter,
    admit,
)
from firmware.sip.credentials import Credentials
from firmware.sip.indialog import ALLOW, KNOWN_METHODS, InDialog
from firmware.sip.invite_client import InviteClient
from firmware.sip.invite_server import InviteServer
from firmware.sip.message import (
    BrokenMessage,
    Request,
    Response,
    check_request,
    check_response,
    has_control_character,
    make_response,
    parse_message,
    stamp_via,
)
from firmware.sip.outgoing import SUPPORTED_EXTENSIONS, USER_AGENT, RequestBuilder, destination_of
from firmware.sip.register_client import RegisterClient
from firmware.sip.registration import KEEPALIVE_INTERVAL, PROBE_INTERVAL, Registration
from firmware.sip.transaction import (
    T1,
    T2,
    T4,
    Context,
    ServerTransaction,
    client_key,
    transaction_key,
)
from firmware.sip.uri import Uri, parse_uri

# destination_of lives in firmware.sip.outgoing, the bounds in firmware.sip.admission: re-exported.
__all__ = ("UserAgent", "destination_of", "USER_AGENT", "SUPPORTED_EXTENSIONS")
__all__ += ("MAX_TRANSACTIONS", "MAX_TRANSACTIONS_PER_SOURCE", "SOURCE_RATE", "SOURCE_BURST")

MAX_OUTGOING = 512
MAX_EVENTS = 256
MAX_ENDED = 32


class UserAgent(RequestBuilder):
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
        min_session_expires=session_timer.MIN_SESSION_EXPIRES,
        reliable_provisional="required",
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
        self.min_session_expires = min_session_expires
        if reliable_provisional not in reliable.POLICIES:
            raise LocalProtocolError("reliable_provisional is one of " + ", ".join(reliable.POLICIES))
        self.reliable_provisional = reliable_provisional
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.malformed_dropped = self.busy_rejected = self.flood_dropped = 0
        self.events_dropped = self.outgoing_dropped = 0
        self._limiter = SourceLimiter(source_rate, source_burst)
        self.calls = {}
        self._client = {}
        self._server = {}
        self._out = []
        self._events = []
        self._ended_acks = []  # [(call_id, ack bytes, dest)] to re-ACK late 2xx retransmissions
        self._ended_dialogs = []  # [(call_id, local tag, remote tag)]: RFC 3891 §3 answers 603 for these
        self._same_session = same_session or _identical
        self._reg = Registration(register_expires, keepalive_interval, probe_interval)
        self._credentials = Credentials(self.username, password, lambda: self._token(8))
        self._registrar = RegisterClient(self)
        self._uac = InviteClient(self)
        self._uas = InviteServer(self)
        self._dialog = InDialog(self)
        # The handler tables (h11-style): out-of-dialog requests by method (in-dialog ones go to
        # InDialog's table by method), and the outcome of our own requests by Context.kind: a response
        # (handler(tx, call, response, now)) or a failure without one (handler(tx, call, status, reason,
        # now)); call is None for requests outside a call. Extensions register their kinds here.
        self.request_handlers = {
            "INVITE": self._uas.on_invite,
            "OPTIONS": self._on_options,
            "BYE": self._no_dialog,
            "NOTIFY": self._no_dialog,
            "PRACK": self._no_dialog,
        }
        self.response_handlers = {
            "register": self._registrar.on_response,
            "unregister": self._registrar.on_response,
            "probe": self._registrar.on_probe_response,
            "invite": self._uac.on_response,
            "bye": self._dialog.bye_response,
            "reinvite": self._dialog.reinvite_response,
            "refresh": self._dialog.reinvite_response,
            "refer": self._dialog.refer_response,
            "info": self._dialog.other_response,
            "notify": self._dialog.other_response,
            "prack": self._dialog.prack_response,
        }
        self.failure_handlers = {
            "register": self._registrar.on_failure,
            "unregister": self._registrar.on_failure,
            "probe": self._registrar.on_probe_failure,
            "invite": self._uac.on_failure,
            "bye": self._dialog.bye_failure,
            "reinvite": self._dialog.reinvite_failure,
            "refresh": self._dialog.reinvite_failure,
            "refer": self._dialog.refer_failure,
        }
        # Extensions outside calls (firmware.sip.subscription): each has deadlines(), on_timer(now) and
        # on_in_dialog_request(tx, request, addr, now) -> True when a request with a To tag is theirs.
        self.extensions = []
        # Context kinds whose handlers need the call they belong to (dropped once it is gone).
        self.call_kinds = ("invite", "bye", "reinvite", "refresh", "refer", "info", "notify", "prack")

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
        return self._events.pop(0) if self._events else None

    def datagrams_to_send(self, now):
        out = self._out
        self._out = []
        return out

    def get_timer(self):
        deadlines = [tx.next_deadline() for tx in self._client.values()]
        deadlines += [tx.next_deadline() for tx in self._server.values()]
        for call in self.calls.values():
            deadlines += self._uas.deadlines(call) + self._uac.deadlines(call) + self._dialog.deadlines(call)
        deadlines += self._reg.deadlines()
        for extension in self.extensions:
            deadlines += extension.deadlines()
        deadlines = [d for d in deadlines if d is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now):
        for table, client in ((self._client, True), (self._server, False)):
            for key, tx in list(table.items()):
                d = tx.next_deadline()
                if d is not None and d <= now:
                    result = tx.handle_timer(now)
                    self._flush(tx)
                    if client and result == "timeout":
                        self._client_failure(tx, 408, "timeout", now)
                if tx.state == "terminated":
                    table.pop(key, None)
        for call in list(self.calls.values()):
            if not self._uas.on_timer(call, now):
                self._dialog.on_timer(call, now)
                self._uac.on_timer(call, now)
        self._registrar.on_timer(now)
        for extension in self.extensions:
            extension.on_timer(now)

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
        self._registrar.register(now)

    def network_up(self, now):
        """The network came back (an interface or address appeared): re-register at once, with the
        back-off reset (issue 11), instead of waiting for the next retry."""
        self._registrar.network_up(now)

    def unregister(self, now):
        self._registrar.unregister(now)

    # ------------------------------------------------------------------ commands on calls

    def _call(self, call_id):
        call = self.calls.get(call_id)
        if call is None:
            raise LocalProtocolError("no such call")
        return call

    def invite(self, target_uri, sdp, now, replaces=None):
        return self._uac.invite(target_uri, sdp, now, replaces)

    def ringing(self, call_id, now, sdp=b""):
        """180 Ringing; with `sdp` (our offer, the INVITE having none) a reliable 183 carrying it, whose
        PRACK brings the answer (PrackAnswer, RFC 3262 §5); LocalProtocolError when the INVITE does not
        support 100rel (the offer then goes in the 2xx, the answer comes in the ACK: CallConfirmed)."""
        self._uas.ringing(call_id, now, sdp)

    def answer(self, call_id, sdp, now):
        self._uas.answer(call_id, sdp, now)

    def reject(self, call_id, status, now, contact=None):
        """Refuse an unanswered incoming call with `status`; `contact`: a URI for a 3xx (a local call forward:
        302 with the target in Contact, RFC 3261 §21.3.3)."""
        self._uas.reject(call_id, status, now, contact)

    def hangup(self, call_id, now):
        call = self._call(call_id)
        if self._uas.hangup(call, now) or self._uac.hangup(call, now):
            return
        if call.state == call_states.CONFIRMED:
            self._send_bye(call, now)
            call.advance(call_states.SEND_BYE)
        # CANCELLING, TERMINATING, ENDED: already on the way out

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

    def _send_bye(self, call, now):
        request, dest = self._dialog_request(call, "BYE")
        self._send_request(request, dest, now, Context("bye", call.id))
        call.ok_next = call.ok_give_up = call.ok_data = None

    def _end_call(self, call, reason, status, by_remote):
        if call.state == call_states.ENDED and call.id not in self.calls:
            return
        call.advance(call_states.END)
        self._forget_call(call)
        self._emit(events.CallEnded(call.id, reason, status, by_remote))

    def _forget_call(self, call):
        call.ok_next = call.ok_give_up = call.ok_data = call.cancel_deadline = call.session_refresh_at = None
        call.ring_deadline = call.session_expire_at = call.reliable_next = call.reliable_give_up = None
        self.calls.pop(call.id, None)
        if call.dialog is not None:  # RFC 3891 §3: a Replaces naming it now gets 603, not 481
            self._ended_dialogs.append((call.id, call.dialog.local_tag, call.dialog.remote_tag))
            if len(self._ended_dialogs) > MAX_ENDED:
                self._ended_dialogs.pop(0)
        if call.ack_data is not None:
            self._ended_acks.append((call.id, call.ack_data, call.ack_dest))
            if len(self._ended_acks) > MAX_ENDED:
                self._ended_acks.pop(0)

    def _remote_dialog_lost(self, call, status, now):
        # RFC 5057 §5.1: 481/408 to a mid-dialog request ends the dialog.
        if status == 408 and call.state == call_states.CONFIRMED:
            self._send_bye(call, now)
        self._end_call(call, "dialog lost", status, True)

    # ------------------------------------------------------------------ incoming datagrams

    def receive_datagram(self, data, addr, now):
        if not self._limiter.within_rate(addr[0], now):
            self.flood_dropped += 1
            return
        try:
            message = parse_message(data)
        except BrokenMessage as exc:
            # §18.3: e.g. a request whose Content-Length does not frame its datagram is answered 400,
            # not dropped silently (issue 11); a broken response is dropped and counted.
            if isinstance(exc.parsed, Request):
                self._answer_broken_request(exc.parsed, addr, exc)
            else:
                self.malformed_dropped += 1
            return
        except RemoteProtocolError:
            self.malformed_dropped += 1
            return
        if isinstance(message, Response):
            try:
                check_response(message)
                self._on_response(message, now)
            except RemoteProtocolError:
                self.malformed_dropped += 1
            return
        try:
            check_request(message)
            stamp_via(message, addr)
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

    # ---- responses to our requests

    def _context_call(self, tx):
        context = tx.context
        kind = context.kind if context is not None else None
        call = self.calls.get(context.call_id) if context is not None and context.call_id else None
        return kind, call

    def _on_response(self, response, now):
        tx = self._client.get(client_key(response.top_via.branch, response.cseq[1]))
        if tx is None:
            if response.cseq[1] == "INVITE" and 200 <= response.status < 300:
                self._stray_2xx(response)
            return
        deliver = tx.receive_response(response, now)
        self._flush(tx)
        if not deliver:
            return
        kind, call = self._context_call(tx)
        handler = self.response_handlers.get(kind)
        if kind == "invite" and call is None:
            if 200 <= response.status < 300:
                self._stray_2xx(response)
        elif handler is not None and (call is not None or kind not in self.call_kinds):
            handler(tx, call, response, now)

    def _client_failure(self, tx, status, reason, now):
        kind, call = self._context_call(tx)
        handler = self.failure_handlers.get(kind)
        if handler is not None and (call is not None or kind not in self.call_kinds):
            handler(tx, call, status, reason, now)

    def _stray_2xx(self, response):
        for ended_id, ack, dest in self._ended_acks:
            if ended_id == response.call_id:
                self._queue(ack, dest)
                return

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
        self._registrar.flow_failed(addr, now)

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
                self._uas.on_ack(request, now)
            return
        method = request.method
        if method == "ACK":
            self._uas.on_ack(request, now)
            return
        if not admit(self._server, addr[0]):
            self.busy_rejected += 1
            response = make_response(request, 503)
            response.headers.add("Retry-After", str(RETRY_AFTER_BUSY))
            self._queue(response.to_bytes(), addr)
            return
        tx = ServerTransaction(request, addr, self.reliable, now, self.t1, self.t2, self.t4)
        self._server[tx.key] = tx
        if method == "CANCEL":
            self._uas.on_cancel(tx, request, now)
            return
        unsupported = self._unsupported_requirements(request)
        if unsupported:
            response = make_response(request, 420, to_tag=self._token(8))
            response.headers.add("Unsupported", ", ".join(unsupported))
            self._respond(tx, response, now)
        elif request.to_addr.tag is not None:
            self._in_dialog_request(tx, request, addr, now)
        elif method in self.request_handlers:
            self.request_handlers[method](tx, request, addr, now)
        else:
            # §8.2.1: 405 for a method we know but do not take here, 501 for the rest; both with Allow.
            response = make_response(request, 405 if method in KNOWN_METHODS else 501, to_tag=self._token(8))
            response.headers.add("Allow", ALLOW)
            self._respond(tx, response, now)

    def _on_options(self, tx, request, addr, now):
        response = make_response(request, 200, to_tag=self._token(8))
        response.headers.add("Allow", ALLOW)
        response.headers.add("Accept", "application/sdp")
        response.headers.add("Supported", ", ".join(SUPPORTED_EXTENSIONS))
        response.headers.add("Contact", self._contact())
        self._respond(tx, response, now)

    def _no_dialog(self, tx, request, addr, now):
        self._respond(tx, make_response(request, 481, to_tag=self._token(8)), now)

    def _unsupported_requirements(self, request):
        if request.method in ("ACK", "CANCEL"):
            return []
        return [opt for opt in request.headers.get_all("Require") if opt.lower() not in SUPPORTED_EXTENSIONS]

    def _in_dialog_request(self, tx, request, addr, now):
        if request.method == "PRACK":
            self._uas.on_prack(tx, request, now)  # RFC 3262: also in an early dialog
            return
        call = self.calls.get(request.call_id)
        dialog = call.dialog if call is not None else None
        if dialog is None or request.to_addr.tag != dialog.local_tag or request.from_addr.tag != dialog.remote_tag:
            for extension in self.extensions:
                if extension.on_in_dialog_request(tx, request, addr, now):
                    return
            self._respond(tx, make_response(request, 481), now)
            return
        if not dialog.check_remote_cseq(request.cseq[0]):
            self._respond(tx, make_response(request, 500, "Out of order CSeq"), now)
            return
        call.peer = addr
        self._dialog.on_request(tx, call, request, now)


def _identical(previous, offer):
    return previous == offer
