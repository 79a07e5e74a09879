"""How the UserAgent builds and sends its requests (RFC 3261 §8.1.1, §12.2.1.1, §8.1.3.5). Sans-I/O.

A base class of the UserAgent (kept apart so the façade stays a dispatcher): Via with rport (RFC 3581),
Contact, From, the request line and headers every request carries, the destination of a request
(outbound proxy, Route set, or RFC 3263 resolution left to the transport: port None), and sending it
as a client transaction.

API (for the UserAgent and its parts: invite_client, invite_server, indialog, register_client)
---
destination_of(uri, transport="udp") -> (host, port); port None = resolve per RFC 3263
SUPPORTED_EXTENSIONS   the option tags we support (Supported in INVITEs, 2xx and OPTIONS answers)
RequestBuilder methods: _via(branch), _contact_uri(), _contact(params=""), _from(tag), _new_branch(),
    _base_request(method, uri, from_value, to_value, call_id, cseq, routes=(), body=b"", ctype=None),
    _out_of_dialog_destination(uri), _check_room(), _send_request(request, dest, now, context) -> tx,
    _dialog_request(call, method, body=b"", ctype=None, cseq=None, dialog=None) -> (request, dest)
        (dialog: an early dialog instead of call.dialog),
    _auth_retry(tx, response, now) -> (new tx, None) or (None, failure reason)
"""

from firmware.digits import is_ascii_digits
from firmware.errors import LocalProtocolError
from firmware.sip import reliable, replaces, session_timer
from firmware.sip.admission import MAX_TRANSACTIONS
from firmware.sip.credentials import resend_with_credentials
from firmware.sip.headers import Headers, Via
from firmware.sip.message import Request
from firmware.sip.transaction import ClientTransaction
from firmware.sip.uri import NameAddr, Uri, parse_name_addr

USER_AGENT = "Sotto"
# The option tags we support (anything else in Require gets 420): RFC 3262 reliable provisional
# responses, RFC 4028 session timers, RFC 3891 Replaces.
SUPPORTED_EXTENSIONS = (reliable.OPTION_TAG,) + session_timer.SUPPORTED_EXTENSIONS + (replaces.OPTION_TAG,)


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


class RequestBuilder:
    """Needs from the subclass: rng-backed _token(), _flush(tx), public_address, local_address,
    transport, reliable, aor, display_name, contact_user, outbound_proxy, t1/t2/t4, _client,
    _credentials."""

    user_agent = USER_AGENT

    def _via(self, branch):
        host, port = self.public_address if not self.reliable else self.local_address
        return str(Via(self.transport.upper(), host, port, [["branch", branch], ["rport", None]]))

    def _contact_uri(self):
        host, port = self.public_address
        scheme = "sips" if self.transport == "tls" and self.aor.scheme == "sips" else "sip"
        uri = Uri(scheme, self.contact_user, host, port)
        if self.transport != "udp":
            uri.set_param("transport", self.transport)
        return uri

    def _contact(self, params=""):
        return "<" + str(self._contact_uri()) + ">" + params

    def _from(self, tag):
        return str(NameAddr(self.aor.copy(), self.display_name, [["tag", tag]]))

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

    def _check_room(self):
        if len(self._client) >= MAX_TRANSACTIONS:
            raise LocalProtocolError("too many pending SIP transactions")

    def _send_request(self, request, dest, now, context):
        self._check_room()
        self._credentials.add_cached(request, dest)
        tx = ClientTransaction(request, dest, self.reliable, now, self.t1, self.t2, self.t4)
        tx.context = context
        self._client[tx.key] = tx
        self._flush(tx)
        return tx

    def _dialog_request(self, call, method, body=b"", ctype=None, cseq=None, dialog=None):
        dialog = dialog or call.dialog
        uri, routes = dialog.request_target()
        number = cseq if cseq is not None else dialog.next_cseq()
        request = self._base_request(
            method, uri, str(dialog.local_uri), str(dialog.remote_uri), dialog.call_id, number, routes, body, ctype
        )
        target = parse_name_addr(routes[0]).uri if routes else uri
        return request, destination_of(target, self.transport)

    def _auth_retry(self, tx, response, now):
        """Resend tx.request with credentials. -> (new transaction, None) or (None, failure reason)."""
        return resend_with_credentials(self, tx, response, now)
