"""Incoming calls: the INVITE server side of the UserAgent (RFC 3261 §13.3, §9.2, §13.3.1.4). Sans-I/O.

A new INVITE becomes a Call in state "incoming" and an IncomingCall event; whether the line is busy is
the application's decision (it answers with reject(call, 486)), the UA only bounds how many calls it
holds (max_calls, a resource limit). The application then rings, answers or rejects; our 2xx is
retransmitted (T1 doubling to T2) until the ACK, and a call nobody ACKs within 64*T1 is ended with a BYE.
When the INVITE has Require: 100rel (or Supported: 100rel and the UA's reliable_provisional is
"supported"), ringing() sends the 180 reliably (RFC 3262 §3): RSeq, retransmitted
(T1 doubling) until the PRACK whose RAck matches; none within 64*T1 gets the INVITE a 500 (CallEnded
reason "no PRACK"). A PRACK that matches nothing unacknowledged gets 481.
When we are not the RFC 4028 refresher, each 2xx we send arms the session expiry (session_timer.expiry).

API (used by the UserAgent façade only)
---
InviteServer(ua)
    on_invite(tx, request, addr, now)    an out-of-dialog INVITE (Require already checked)
    on_cancel(tx, request, now)          a CANCEL (§9.2), matched to its INVITE server transaction
    on_ack(request, now)                 an ACK for our 2xx (the transaction layer passes it up)
    on_prack(tx, request, now)           a PRACK (RFC 3262 §3), early dialog or confirmed
    ringing/answer/reject(call_id, ...)  the UA's commands for an incoming call
    hangup(call, now) -> True when it handled the call (incoming or answered)
    send_2xx(call, tx, request, sdp, now) a 2xx with our SDP, retransmitted until the ACK
    negotiate_session_timer(call, request) -> None, or a 422 response (RFC 4028 §9)
    deadlines(call) -> list;  on_timer(call, now) -> True when it ended the call
"""

from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.sip import call as call_states
from firmware.sip import events, reliable, session_timer
from firmware.sip import replaces as replaces_header
from firmware.sip.call import Call
from firmware.sip.dialog import Dialog
from firmware.sip.indialog import ALLOW
from firmware.sip.message import make_response
from firmware.sip.outgoing import SUPPORTED_EXTENSIONS
from firmware.sip.transaction import transaction_key
from firmware.sip.uri import NameAddr, parse_name_addr, parse_uri


class InviteServer:
    __slots__ = ("ua",)

    def __init__(self, ua):
        self.ua = ua

    def on_invite(self, tx, request, addr, now):
        ua = self.ua
        if request.call_id in ua.calls:
            # Same Call-ID, no To tag, new branch: a merged/forked request (§8.2.2.2).
            ua._respond(tx, make_response(request, 482, to_tag=ua._token(8)), now)
            return
        if len(ua.calls) >= ua.max_calls:
            # A resource bound, not the busy policy: the application decides "busy" on IncomingCall.
            ua._respond(tx, make_response(request, 486, to_tag=ua._token(8)), now)
            return
        if request.body and request.content_type != "application/sdp":
            response = make_response(request, 415, to_tag=ua._token(8))
            response.headers.add("Accept", "application/sdp")
            ua._respond(tx, response, now)
            return
        if request.uri.scheme not in ("sip", "sips"):
            ua._respond(tx, make_response(request, 416, to_tag=ua._token(8)), now)
            return
        contacts = request.headers.get_all("Contact")
        if len(contacts) != 1:
            raise RemoteProtocolError("INVITE needs exactly one Contact")
        if parse_name_addr(contacts[0]).uri is None:
            raise RemoteProtocolError("wildcard Contact in INVITE")
        replaced = None
        if request.headers.get("Replaces") is not None:
            try:
                replaced = replaces_header.match_incoming(request, ua.calls, ua._ended_dialogs)
            except RemoteProtocolError as exc:
                ua._respond(tx, make_response(request, exc.status, exc.message, to_tag=ua._token(8)), now)
                return
        call = Call(request.call_id, "uas")
        call.invite = request
        call.server_tx = tx
        call.local_tag = ua._token(8)
        call.remote_sdp = request.body
        call.peer = addr
        call.remote_uri = str(request.from_addr.uri)
        call.advance(call_states.RECEIVE_INVITE)
        too_small = self.negotiate_session_timer(call, request)
        if too_small is not None:
            ua._respond(tx, too_small, now)
            return
        ua.calls[call.id] = call
        call.ring_deadline = now + ua.ring_timeout
        tx.context = call.id
        ua._respond(tx, make_response(request, 100), now)
        frm = request.from_addr
        ua._emit(
            events.IncomingCall(call.id, str(frm.uri), frm.display, str(request.to_addr.uri), request.body, replaced)
        )

    def on_cancel(self, tx, request, now):
        ua = self.ua
        # §9.2: the CANCEL matches the INVITE server transaction with the same branch.
        invite_key = transaction_key(request)
        invite_key = invite_key[:-1] + ("INVITE",)
        invite_tx = ua._server.get(invite_key)
        if invite_tx is None:
            ua._respond(tx, make_response(request, 481, to_tag=ua._token(8)), now)
            return
        call = ua.calls.get(request.call_id)
        to_tag = call.local_tag if call is not None else ua._token(8)
        ua._respond(tx, make_response(request, 200, to_tag=to_tag), now)
        if invite_tx.state == "proceeding":
            ua._respond(invite_tx, make_response(invite_tx.request, 487, to_tag=to_tag), now)
            if call is not None and call.state == call_states.INCOMING:
                ua._end_call(call, "cancelled", 487, True)

    def on_ack(self, request, now):
        ua = self.ua
        call = ua.calls.get(request.call_id)
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
            ua._emit(events.CallConfirmed(call.id, request.body))
            if call.bye_after_ack:
                ua._send_bye(call, now)
                call.advance(call_states.SEND_BYE)

    # ---- commands

    def _incoming(self, call_id, what):
        call = self.ua._call(call_id)
        if call.role != "uas" or call.state != call_states.INCOMING:
            raise LocalProtocolError(what + "() needs an unanswered incoming call")
        return call

    def ringing(self, call_id, now, sdp=b""):
        ua = self.ua
        call = self._incoming(call_id, "ringing")
        if sdp:
            # RFC 3262 §5: a late-offer INVITE's offer may go in a reliable provisional response (183), the
            # answer then comes in its PRACK. Only reliable: an offer in an unreliable 1xx could be lost.
            if call.invite.body:
                raise LocalProtocolError("the INVITE carried an offer: the answer goes in the 2xx")
            if not reliable.supported(call.invite):
                raise LocalProtocolError("an offer in a provisional response needs 100rel (RFC 3262 §5)")
            if call.reliable_data is not None or call.early_offer is not None:
                raise LocalProtocolError("our offer already went out")
            sent_reliably = True
        else:
            sent_reliably = reliable.send_reliably(call.invite, ua.reliable_provisional)
        if sent_reliably and call.reliable_data is not None:
            return  # RFC 3262 §3: no second reliable provisional response before the first is PRACKed
        response = make_response(call.invite, 183 if sdp else 180, to_tag=call.local_tag)
        for value in call.invite.headers.get_all("Record-Route"):
            response.headers.add("Record-Route", value)  # §12.1.1: the 180 creates an early dialog
        response.headers.add("Contact", ua._contact())
        if sent_reliably:
            call.rseq_sent = reliable.first_rseq(ua.rng) if call.rseq_sent is None else call.rseq_sent + 1
            response.headers.add("Require", reliable.OPTION_TAG)
            response.headers.add("RSeq", str(call.rseq_sent))
        if sdp:
            response.headers.add("Content-Type", "application/sdp")
            response.body = sdp
            call.early_offer = "sent"
            call.local_sdp = sdp
        data = response.to_bytes()
        ua._respond(call.server_tx, data, now)
        if sent_reliably:
            # §3: the UAS core retransmits it, T1 doubling, until the PRACK; 64*T1 at most.
            call.reliable_data = data
            call.reliable_rseq = call.rseq_sent
            call.reliable_interval = ua.t1
            call.reliable_next = None if ua.reliable else now + ua.t1
            call.reliable_give_up = now + 64 * ua.t1

    def on_prack(self, tx, request, now):
        ua = self.ua
        call = ua.calls.get(request.call_id)
        if (
            call is None
            or call.role != "uas"
            or request.to_addr.tag != call.local_tag
            or request.from_addr.tag != call.invite.from_addr.tag
        ):
            ua._respond(tx, make_response(request, 481), now)
            return
        if call.dialog is not None and not call.dialog.check_remote_cseq(request.cseq[0]):
            ua._respond(tx, make_response(request, 500, "Out of order CSeq"), now)
            return
        try:
            rack = reliable.parse_rack(request.headers.get("RAck"))
        except RemoteProtocolError:
            ua._respond(tx, make_response(request, 400, "Bad RAck"), now)
            return
        if call.reliable_data is None or rack != (call.reliable_rseq, call.invite.cseq[0], "INVITE"):
            # §3: a PRACK matching no unacknowledged reliable provisional response.
            ua._respond(tx, make_response(request, 481, "No Matching Provisional Response"), now)
            return
        self._stop_reliable(call)
        ua._respond(tx, make_response(request, 200), now)
        if call.early_offer == "sent":
            # §5: the PRACK of a reliable 1xx with an offer carries the answer.
            call.early_offer = "answered"
            ua._emit(events.PrackAnswer(call.id, request.body or b""))

    def _stop_reliable(self, call):
        call.reliable_data = call.reliable_next = call.reliable_give_up = None

    def answer(self, call_id, sdp, now):
        call = self._incoming(call_id, "answer")
        if call.early_offer == "sent":
            # RFC 3262 §3: no 2xx while a reliable 1xx with a session description awaits its PRACK.
            raise LocalProtocolError("the 183 with our offer is not PRACKed yet")
        call.dialog = Dialog.from_uas_request(call.invite, call.local_tag, 0)
        # §3: a 180 without SDP need not be PRACKed before the 2xx; a late PRACK is still 200.
        call.reliable_next = call.reliable_give_up = None
        call.local_sdp = sdp
        call.advance(call_states.SEND_2XX)
        call.established = True
        self.send_2xx(call, call.server_tx, call.invite, sdp, now)

    def reject(self, call_id, status, now, contact=None):
        call = self._incoming(call_id, "reject")
        if not 300 <= status <= 699:
            raise LocalProtocolError("reject() needs a final non-2xx status")
        if (contact is not None) != (300 <= status < 400):
            raise LocalProtocolError("a 3xx needs a Contact, and only a 3xx has one")
        response = make_response(call.invite, status, to_tag=call.local_tag)
        if contact is not None:
            # A local call forward: the target in Contact (RFC 3261 §21.3.3, the caller recurses §8.1.3.4).
            response.headers.add("Contact", str(NameAddr(parse_uri(contact))))
        if status == 488:
            response.headers.add("Accept", "application/sdp")
        self._stop_reliable(call)
        self.ua._respond(call.server_tx, response, now)
        self.ua._end_call(call, "rejected", status, False)

    def hangup(self, call, now):
        if call.role != "uas":
            return False
        if call.state == call_states.INCOMING:
            self.reject(call.id, 603, now)
            return True
        if call.state == call_states.ANSWERED:
            call.bye_after_ack = True  # §15: the callee waits for the ACK before sending BYE
            return True
        return False

    def send_2xx(self, call, tx, request, sdp, now):
        ua = self.ua
        response = make_response(request, 200, to_tag=call.local_tag)
        for value in request.headers.get_all("Record-Route"):
            response.headers.add("Record-Route", value)
        response.headers.add("Contact", ua._contact())
        response.headers.add("Allow", ALLOW)
        response.headers.add("Supported", ", ".join(SUPPORTED_EXTENSIONS))
        if call.session_interval:
            # RFC 4028 §9: say who refreshes; "uac" needs Require: timer.
            session_timer.add_to_2xx(response.headers, call.session_interval, call.session_refresher)
            if call.session_refresher == "uas":
                call.session_refresh_at = session_timer.next_refresh(now, call.session_interval)
                call.session_expire_at = None
            elif request.headers.get("Session-Expires") is not None or call.session_expire_at is not None:
                # §10: the peer (the UAC of this request) refreshes, and any re-INVITE it sends is a
                # refresh; without one by then, we end the session. (Roles are per transaction: only a
                # request naming them moves them.)
                call.session_refresh_at = None
                call.session_expire_at = session_timer.expiry(now, call.session_interval)
        if sdp:
            response.headers.add("Content-Type", "application/sdp")
        response.body = sdp
        data = response.to_bytes()
        ua._respond(tx, data, now)
        # §13.3.1.4: the UAS core retransmits the 2xx (T1 doubling to T2) until the ACK, for 64*T1.
        call.ok_data = data
        call.ok_cseq = request.cseq[0]
        call.ok_interval = ua.t1
        if not ua.reliable:
            call.ok_next = now + ua.t1
        call.ok_give_up = now + 64 * ua.t1

    def negotiate_session_timer(self, call, request):
        """RFC 4028 §9 as UAS. Returns None, or a 422 response when the interval is too small."""
        outcome = session_timer.negotiate(request, self.ua.min_session_expires)
        if outcome is None:
            return None
        if outcome == session_timer.TOO_SMALL:
            response = make_response(request, 422, to_tag=call.local_tag)
            response.headers.add("Min-SE", str(self.ua.min_session_expires))
            return response
        call.session_interval, call.session_refresher = outcome
        return None

    # ---- timers

    def deadlines(self, call):
        found = (call.ok_next, call.ok_give_up, call.ring_deadline, call.reliable_next, call.reliable_give_up)
        return [d for d in found if d is not None]

    def on_timer(self, call, now):
        ua = self.ua
        if call.reliable_give_up is not None and call.reliable_give_up <= now:
            self._stop_reliable(call)
            if call.state == call_states.INCOMING:
                # RFC 3262 §3: no PRACK for 64*T1: the INVITE gets a 5xx.
                ua._respond(call.server_tx, make_response(call.invite, 500, to_tag=call.local_tag), now)
                ua._end_call(call, "no PRACK", 500, False)
                return True
        if call.reliable_next is not None and call.reliable_next <= now and call.reliable_data is not None:
            ua._queue(call.reliable_data, call.peer)
            call.reliable_interval *= 2  # §3: doubling, not capped at T2
            call.reliable_next = now + call.reliable_interval
        if call.ring_deadline is not None and call.ring_deadline <= now:
            call.ring_deadline = None
            if call.state == call_states.INCOMING:
                # Nobody answered (or the caller vanished without CANCEL): free the line.
                ua._respond(call.server_tx, make_response(call.invite, 480, to_tag=call.local_tag), now)
                ua._end_call(call, "no answer", 480, False)
                return True
        if call.ok_give_up is not None and call.ok_give_up <= now:
            # §13.3.1.4: no ACK within 64*T1 -> the UAS ends the session with a BYE.
            call.ok_next = call.ok_give_up = call.ok_data = None
            if call.state in (call_states.ANSWERED, call_states.CONFIRMED):
                ua._send_bye(call, now)
                ua._end_call(call, "no ACK", 408, False)
            return True
        if call.ok_next is not None and call.ok_next <= now and call.ok_data is not None:
            ua._queue(call.ok_data, call.peer)
            call.ok_interval = min(call.ok_interval * 2, ua.t2)
            call.ok_next = now + call.ok_interval
        return False
