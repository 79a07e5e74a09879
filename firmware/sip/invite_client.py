"""Outgoing calls: the INVITE client side of the UserAgent (RFC 3261 §13.2, §9.1, §13.2.2.4). Sans-I/O.

invite() sends the INVITE; provisional responses become CallRinging, the first 2xx makes the dialog
(we ACK it, and ACK again each retransmission), a 2xx from a second fork is ACKed and ended with a BYE,
a failure becomes CallFailed. Hanging up before the answer CANCELs (only after a provisional response,
§9.1); a 2xx that crosses our CANCEL is ACKed and ended with a BYE.
The INVITE says Supported: 100rel: a reliable provisional response (RFC 3262 §4) is answered with a PRACK
in its early dialog, and one whose RSeq is not one higher than the last of that dialog is dropped (a
retransmission, or out of order). An answer it carried stands when the 2xx brings none (RFC 3262 §5).

API (used by the UserAgent façade only)
---
InviteClient(ua)
    invite(target_uri, sdp, now, replaces=None) -> call id   (replaces: RFC 3891 Replaces value)
    on_response(tx, call, response, now)    a response to our INVITE
    on_failure(tx, call, status, reason, now)  our INVITE timed out or could not be sent
    hangup(call, now) -> True when it handled the call (not answered yet)
    fail_call(call, status, reason)
    deadlines(call) -> list;  on_timer(call, now) -> True when it ended the call
"""

from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.sip import call as call_states
from firmware.sip import events, reliable, session_timer
from firmware.sip import replaces as replaces_header
from firmware.sip.call import Call
from firmware.sip.dialog import Dialog
from firmware.sip.headers import Headers
from firmware.sip.indialog import ALLOW
from firmware.sip.message import Request
from firmware.sip.outgoing import SUPPORTED_EXTENSIONS
from firmware.sip.transaction import Context
from firmware.sip.uri import parse_local_uri

MAX_EARLY_DIALOGS = 8  # forks of one INVITE we PRACK; more reliable 1xx from new forks are dropped


class InviteClient:
    __slots__ = ("ua",)

    def __init__(self, ua):
        self.ua = ua

    def invite(self, target_uri, sdp, now, replaces=None):
        ua = self.ua
        target_uri = parse_local_uri(target_uri, "bad target URI: ")
        if replaces is not None:
            replaces = replaces_header.parse_local_replaces(replaces)
        if len(ua.calls) >= ua.max_calls:
            raise LocalProtocolError("too many calls")
        ua._check_room()
        dest = ua._out_of_dialog_destination(target_uri)
        call_id = ua._token(16)
        call = Call(call_id, "uac")
        call.local_tag = ua._token(8)
        call.local_sdp = sdp
        call.remote_uri = str(target_uri)
        request = ua._base_request(
            "INVITE", target_uri, ua._from(call.local_tag), "<" + str(target_uri) + ">", call_id, 1, (), sdp
        )
        request.headers.add("Contact", ua._contact())
        request.headers.add("Allow", ALLOW)
        request.headers.add("Supported", ", ".join(SUPPORTED_EXTENSIONS))
        if replaces is not None:
            # RFC 3891 §6.1: take the place of the named dialog at the target; Require, so a target that
            # cannot replace refuses (420) instead of ringing as a second, unrelated call.
            request.headers.add("Replaces", str(replaces))
            request.headers.add("Require", replaces_header.OPTION_TAG)
        call.invite = request
        call.advance(call_states.SEND_INVITE)
        ua.calls[call_id] = call
        call.invite_tx = ua._send_request(request, dest, now, Context("invite", call_id))
        return call_id

    def on_response(self, tx, call, response, now):
        ua = self.ua
        status = response.status
        if call.state == call_states.ENDED:
            return
        if status < 200:
            if status > 100 and reliable.required(response) and not self._reliable_provisional(call, response, now):
                return  # a retransmitted or out-of-order reliable provisional response (RFC 3262 §4)
            if status > 100:
                call.provisional = True
                if call.state == call_states.CALLING:
                    call.advance(call_states.PROVISIONAL)
                ua._emit(events.CallRinging(call.id, status, response.body))
            elif status == 100:
                call.provisional = True
            if call.cancel_requested and call.state in (call_states.CALLING, call_states.EARLY):
                self._send_cancel(call, now)
            return
        if status < 300:
            self._success(call, response, now)
            return
        if status in (401, 407) and not call.cancel_requested:
            new_tx, reason = ua._auth_retry(tx, response, now)
            if new_tx is None:
                self.fail_call(call, status, reason)
            return
        if call.cancel_requested or call.state == call_states.CANCELLING:
            ua._end_call(call, "cancelled", status, False)
            return
        self.fail_call(call, status, response.reason)

    def _reliable_provisional(self, call, response, now):
        """RFC 3262 §4: PRACK a new reliable provisional response. -> False to drop it."""
        rseq = reliable.rseq_of(response)
        tag = response.to_addr.tag
        if rseq is None or tag is None:
            return True  # not usable as reliable (no RSeq or To tag): taken as an ordinary one
        if not reliable.accept(call.rseq_seen.get(tag), rseq):
            return False
        dialog = call.early_dialogs.get(tag)
        if dialog is None:
            try:
                dialog = Dialog.from_uac_response(call.invite, response)
            except RemoteProtocolError:
                return True  # no usable Contact: no early dialog to PRACK in
            if len(call.early_dialogs) >= MAX_EARLY_DIALOGS:
                return False
            call.early_dialogs[tag] = dialog
        call.rseq_seen[tag] = rseq
        if response.body:
            call.early_sdp = response.body  # §5: the answer to our offer, when the 2xx brings none
        ua = self.ua
        prack, dest = ua._dialog_request(call, "PRACK", dialog=dialog)
        prack.headers.add("RAck", reliable.format_rack(rseq, call.invite.cseq[0], "INVITE"))
        ua._send_request(prack, dest, now, Context("prack", call.id))
        return True

    def on_failure(self, tx, call, status, reason, now):
        if call.cancel_requested or call.state == call_states.CANCELLING:
            self.ua._end_call(call, "cancelled", status, False)
        else:
            self.fail_call(call, status, reason)

    def _success(self, call, response, now):
        ua = self.ua
        if call.dialog is not None:
            if response.to_addr.tag == call.dialog.remote_tag:
                if call.ack_data is not None:
                    ua._queue(call.ack_data, call.ack_dest)  # a retransmitted 2xx: ACK again (§13.2.2.4)
            else:
                self._ack_and_bye_stray_dialog(call, response, now)  # another fork answered too
            return
        try:
            dialog = Dialog.from_uac_response(call.invite, response)
        except RemoteProtocolError:
            # No usable Contact: still ACK and BYE (to the Request-URI), then report the failure.
            self._ack_and_bye_stray_dialog(call, response, now)
            self.fail_call(call, 502, "2xx without a usable Contact")
            return
        early = call.early_dialogs.get(dialog.remote_tag)
        if early is not None:
            dialog.local_seq = early.local_seq  # our PRACKs used CSeq numbers in this dialog already
        call.dialog = dialog
        answer = response.body or call.early_sdp
        call.remote_sdp = answer
        ack, dest = ua._dialog_request(call, "ACK", cseq=call.invite.cseq[0])
        for name in ("Authorization", "Proxy-Authorization"):
            value = call.invite.headers.get(name)
            if value is not None:
                ack.headers.add(name, value)
        call.ack_data = ack.to_bytes()
        call.ack_dest = dest
        ua._queue(call.ack_data, dest)
        call.cancel_deadline = None
        cancelled = call.cancel_requested or call.state == call_states.CANCELLING
        call.advance(call_states.ACCEPTED)
        if cancelled:
            ua._send_bye(call, now)  # the 2xx crossed our CANCEL: end the dialog it made (§9.1)
            call.advance(call_states.SEND_BYE)
            return
        call.established = True
        self._session_timer_from_2xx(call, response, now)
        ua._emit(events.CallAnswered(call.id, answer))

    def _ack_and_bye_stray_dialog(self, call, response, now):
        """§13.2.2.4: a 2xx we do not want still gets its ACK, then a BYE ends that dialog."""
        ua = self.ua
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
        ack, dest = ua._dialog_request(stray, "ACK", cseq=call.invite.cseq[0])
        ua._queue(ack.to_bytes(), dest)
        bye, dest = ua._dialog_request(stray, "BYE")
        ua._send_request(bye, dest, now, Context("stray-bye"))

    def _session_timer_from_2xx(self, call, response, now):
        """RFC 4028 §7.2: a 2xx may make us (the UAC) the refresher; if it names the UAS, we end the
        session when no refresh arrives in time (§10)."""
        outcome = session_timer.from_2xx(response, self.ua.min_session_expires)
        if outcome is None:
            return
        call.session_interval, call.session_refresher = outcome
        if call.session_refresher == "uac":
            call.session_refresh_at = session_timer.next_refresh(now, call.session_interval)
        else:
            call.session_expire_at = session_timer.expiry(now, call.session_interval)

    def fail_call(self, call, status, reason):
        call.advance(call_states.END)
        self.ua._forget_call(call)
        self.ua._emit(events.CallFailed(call.id, status, reason))

    def _send_cancel(self, call, now):
        ua = self.ua
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
        headers.add("User-Agent", ua.user_agent)
        cancel = Request("CANCEL", invite.uri, headers, b"")
        ua._send_request(cancel, call.invite_tx.destination, now, Context("cancel", call.id))
        call.advance(call_states.SEND_CANCEL)
        call.cancel_deadline = now + 64 * ua.t1

    def hangup(self, call, now):
        if call.state == call_states.CALLING:
            call.cancel_requested = True  # §9.1: CANCEL only after a provisional response
            if call.provisional:
                self._send_cancel(call, now)
            return True
        if call.state == call_states.EARLY:
            call.cancel_requested = True
            self._send_cancel(call, now)
            return True
        return False

    # ---- timers

    def deadlines(self, call):
        return [] if call.cancel_deadline is None else [call.cancel_deadline]

    def on_timer(self, call, now):
        if call.cancel_deadline is not None and call.cancel_deadline <= now:
            # §9.1: no final response 64*T1 after the CANCEL: consider the INVITE cancelled.
            call.cancel_deadline = None
            if call.invite_tx is not None:
                call.invite_tx.abort()
                self.ua._client.pop(call.invite_tx.key, None)
            self.ua._end_call(call, "cancelled", 487, False)
            return True
        return False
