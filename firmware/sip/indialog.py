"""Requests inside an established dialog (RFC 3261 §12-§15): re-INVITE and UPDATE (RFC 3311, with
RFC 4028 refreshes), REFER/NOTIFY (RFC 3515), INFO digits (application/dtmf-relay), BYE and OPTIONS.
Sans-I/O: it works through the UserAgent that owns it (its transactions, dialog requests, events).

API (used by the UserAgent façade only)
---
InDialog(ua)
    on_request(tx, call, request, now)   a request of `call`'s dialog (CSeq already checked): the
        handler of METHOD_HANDLERS[method]; 405/501 with Allow for the rest
    reinvite/answer_reinvite/reject_reinvite/refer/notify_refer/send_info_dtmf   the UA's commands
    (refer(call, target, now, replaces=other call): attended transfer, RFC 3891 Replaces in Refer-To)
    reinvite_response(tx, call, response, now)   the outcome of our re-INVITE or session refresh
    refresh_session(call, now)   RFC 4028 §10: our refresh re-INVITE, when we are the refresher
    bye_response/refer_response/other_response/prack_response(tx, call, response, now), bye_failure/refer_failure/
    reinvite_failure(tx, call, status, reason, now)   outcomes of our in-dialog requests
    deadlines(call) -> list;  on_timer(call, now)   the session refresh
ALLOW, DTMF_DIGITS
"""

from firmware.digits import decimal_or_none
from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.sip import call as call_states
from firmware.sip import events, session_timer
from firmware.sip.message import REASONS, make_response
from firmware.sip.replaces import for_dialog, refer_to_value, split_refer_to
from firmware.sip.transaction import Context
from firmware.sip.uri import parse_local_uri, parse_name_addr
from firmware.text import decode_utf8

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE, PRACK"
# Methods we know but do not handle in a dialog: 405 with Allow (§8.2.1). Anything else: 501.
KNOWN_METHODS = ("REGISTER", "SUBSCRIBE", "PUBLISH", "MESSAGE", "PRACK", "UPDATE", "INFO", "REFER", "NOTIFY")
DTMF_DIGITS = "0123456789*#ABCD"

# The handler of each method inside a dialog, by name (a table, not an if-chain).
METHOD_HANDLERS = {
    "BYE": "on_bye",
    "INVITE": "on_reinvite",
    "UPDATE": "on_update",
    "INFO": "on_info",
    "REFER": "on_refer",
    "NOTIFY": "on_notify",
    "OPTIONS": "on_options",
}


class InDialog:
    __slots__ = ("ua",)

    def __init__(self, ua):
        self.ua = ua

    def on_request(self, tx, call, request, now):
        handler = METHOD_HANDLERS.get(request.method)
        if handler is not None:
            getattr(self, handler)(tx, call, request, now)
            return
        response = make_response(request, 405 if request.method in KNOWN_METHODS else 501)
        response.headers.add("Allow", ALLOW)
        self.ua._respond(tx, response, now)

    def on_bye(self, tx, call, request, now):
        self.ua._respond(tx, make_response(request, 200), now)
        self.ua._end_call(call, "remote hangup", 200, True)

    def on_options(self, tx, call, request, now):
        response = make_response(request, 200)
        response.headers.add("Allow", ALLOW)
        response.headers.add("Accept", "application/sdp")
        self.ua._respond(tx, response, now)

    def reinvite(self, call_id, sdp, now):
        call = self.ua._call(call_id)
        if call.state != call_states.CONFIRMED:
            raise LocalProtocolError("reinvite() needs an established call")
        if call.reinvite_tx is not None or call.reinvite_server is not None:
            raise LocalProtocolError("an offer/answer exchange is already in progress")
        request, dest = self.ua._dialog_request(call, "INVITE", sdp)
        request.headers.add("Contact", self.ua._contact())
        request.headers.add("Allow", ALLOW)
        call.local_sdp = sdp
        call.reinvite_tx = self.ua._send_request(request, dest, now, Context("reinvite", call.id))

    def answer_reinvite(self, call_id, sdp, now):
        call = self.ua._call(call_id)
        if call.reinvite_server is None:
            raise LocalProtocolError("no re-INVITE to answer")
        tx, request = call.reinvite_server
        call.reinvite_server = None
        call.local_sdp = sdp
        call.remote_sdp = request.body or call.remote_sdp
        self.ua._uas.send_2xx(call, tx, request, sdp, now)

    def reject_reinvite(self, call_id, status=488, now=0.0):
        call = self.ua._call(call_id)
        if call.reinvite_server is None:
            raise LocalProtocolError("no re-INVITE to reject")
        tx, request = call.reinvite_server
        call.reinvite_server = None
        self.ua._respond(tx, make_response(request, status, to_tag=call.local_tag), now)

    def refer(self, call_id, target_uri, now, replaces=None):
        call = self.ua._call(call_id)
        if call.state != call_states.CONFIRMED:
            raise LocalProtocolError("refer() needs an established call")
        other = None
        if replaces is not None:
            # Attended transfer (RFC 5589 §7): the transferee calls the far end of our other call with
            # Replaces naming that dialog, so the far end swaps its leg with us for one with them.
            other = self.ua._call(replaces)
            if replaces == call_id or other.dialog is None or other.state != call_states.CONFIRMED:
                raise LocalProtocolError("refer(replaces=) needs another established call")
            if target_uri is None:
                target_uri = other.dialog.remote_target
        if target_uri is None:
            raise LocalProtocolError("refer() needs a target URI")
        target_uri = parse_local_uri(target_uri, "bad transfer target: ")
        request, dest = self.ua._dialog_request(call, "REFER")
        request.headers.add(
            "Refer-To", refer_to_value(target_uri, for_dialog(other.dialog) if other is not None else None)
        )
        request.headers.add("Referred-By", "<" + str(self.ua.aor) + ">")
        request.headers.add("Contact", self.ua._contact())
        self.ua._send_request(request, dest, now, Context("refer", call.id))

    def notify_refer(self, call_id, status, now):
        call = self.ua._call(call_id)
        if call.dialog is None or call.state not in (call_states.CONFIRMED, call_states.TERMINATING):
            raise LocalProtocolError("no dialog to notify")
        self._send_refer_notify(call, status, now)

    def _send_refer_notify(self, call, status, now):
        final = status >= 200
        body = "SIP/2.0 {} {}\r\n".format(status, REASONS.get(status, "Unknown")).encode()
        request, dest = self.ua._dialog_request(call, "NOTIFY", body, "message/sipfrag;version=2.0")
        request.headers.add("Event", "refer")
        request.headers.add("Subscription-State", "terminated;reason=noresource" if final else "active;expires=60")
        request.headers.add("Contact", self.ua._contact())
        self.ua._send_request(request, dest, now, Context("notify", call.id))

    def send_info_dtmf(self, call_id, digit, now, duration_ms=160):
        call = self.ua._call(call_id)
        if call.state != call_states.CONFIRMED:
            raise LocalProtocolError("send_info_dtmf() needs an established call")
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            raise LocalProtocolError("bad DTMF digit")
        body = "Signal={}\r\nDuration={}\r\n".format(digit, int(duration_ms)).encode()
        request, dest = self.ua._dialog_request(call, "INFO", body, "application/dtmf-relay")
        self.ua._send_request(request, dest, now, Context("info", call.id))

    def reinvite_response(self, tx, call, response, now):
        status = response.status
        if status < 200:
            return
        if 200 <= status < 300:
            if call.reinvite_tx is tx or tx.state == "accepted":
                if response.headers.get("Contact"):
                    try:
                        call.dialog.update_target(response.headers.get_all("Contact")[0])
                    except RemoteProtocolError:
                        pass
                ack, dest = self.ua._dialog_request(call, "ACK", cseq=tx.request.cseq[0])
                self.ua._queue(ack.to_bytes(), dest)
                if call.reinvite_tx is tx:
                    call.reinvite_tx = None
                    call.remote_sdp = response.body or call.remote_sdp
                    if tx.context.kind == "reinvite":
                        self.ua._emit(events.ReinviteAnswered(call.id, response.body))
            return
        if status in (401, 407):
            new_tx, _ = self.ua._auth_retry(tx, response, now)
            if new_tx is not None:
                return
        call.reinvite_tx = None
        if tx.context.kind == "reinvite":
            self.ua._emit(events.ReinviteFailed(call.id, status))
        elif status == 491:
            call.session_refresh_at = now + 2.0  # glare on a refresh: try again (RFC 3261 §14.1)
        if status in (408, 481):
            self.ua._remote_dialog_lost(call, status, now)

    def refresh_session(self, call, now):
        """RFC 4028 §10: we are the refresher: a re-INVITE with the same SDP (same o= version)."""
        ua = self.ua
        call.session_refresh_at = None
        if call.state != call_states.CONFIRMED or not call.session_interval:
            return
        if call.reinvite_tx is not None or call.reinvite_server is not None:
            call.session_refresh_at = now + 2.0  # an offer/answer is in progress: try a little later
            return
        request, dest = ua._dialog_request(call, "INVITE", call.local_sdp)
        request.headers.add("Contact", ua._contact())
        request.headers.add("Allow", ALLOW)
        session_timer.add_to_refresh(request.headers, call.session_interval)
        call.reinvite_tx = ua._send_request(request, dest, now, Context("refresh", call.id))
        call.session_refresh_at = session_timer.next_refresh(now, call.session_interval)

    def bye_response(self, tx, call, response, now):
        if response.status in (401, 407) and self.ua._auth_retry(tx, response, now)[0] is not None:
            return
        if response.status >= 200:
            self.ua._end_call(call, "local hangup", 200, False)

    def refer_response(self, tx, call, response, now):
        if response.status in (401, 407) and self.ua._auth_retry(tx, response, now)[0] is not None:
            return
        if response.status >= 200:
            self.ua._emit(events.ReferProgress(call.id, response.status, response.status >= 300))

    def other_response(self, tx, call, response, now):
        """INFO and NOTIFY: only a challenge or a lost dialog matters."""
        if response.status in (401, 407):
            self.ua._auth_retry(tx, response, now)
        elif response.status in (408, 481):
            self.ua._remote_dialog_lost(call, response.status, now)

    def prack_response(self, tx, call, response, now):
        """RFC 3262 §4: a PRACK's own outcome changes nothing about the call, a challenge aside."""
        if response.status in (401, 407):
            self.ua._auth_retry(tx, response, now)

    def bye_failure(self, tx, call, status, reason, now):
        self.ua._end_call(call, "local hangup", status, False)

    def refer_failure(self, tx, call, status, reason, now):
        self.ua._emit(events.ReferProgress(call.id, status, True))

    def reinvite_failure(self, tx, call, status, reason, now):
        call.reinvite_tx = None
        if tx.context.kind == "reinvite":
            self.ua._emit(events.ReinviteFailed(call.id, status))
        self.ua._remote_dialog_lost(call, 408, now)

    def deadlines(self, call):
        return [d for d in (call.session_refresh_at, call.session_expire_at) if d is not None]

    def on_timer(self, call, now):
        if call.session_expire_at is not None and call.session_expire_at <= now:
            # RFC 4028 §10: the refresher let the session expire: we end it with a BYE.
            call.session_expire_at = None
            if call.state == call_states.CONFIRMED:
                self.ua._send_bye(call, now)
                self.ua._end_call(call, "session expired", 408, False)
                return
        if call.session_refresh_at is not None and call.session_refresh_at <= now:
            self.refresh_session(call, now)

    def _is_session_refresh(self, call, body):
        """RFC 4028 / RFC 3264 §8: an offer with the previous o= version changes nothing."""
        if not body:
            return True
        if not call.remote_sdp:
            return False
        return bool(self.ua._same_session(call.remote_sdp, body))

    def on_reinvite(self, tx, call, request, now):
        if call.state != call_states.CONFIRMED:
            response = make_response(request, 500)
            response.headers.add("Retry-After", "2")
            self.ua._respond(tx, response, now)
            return
        if call.reinvite_tx is not None or call.reinvite_server is not None:
            self.ua._respond(tx, make_response(request, 491), now)  # RFC 3261 §14.2 glare
            return
        if request.body and request.content_type != "application/sdp":
            response = make_response(request, 415)
            response.headers.add("Accept", "application/sdp")
            self.ua._respond(tx, response, now)
            return
        contacts = request.headers.get_all("Contact")
        if contacts:
            call.dialog.update_target(contacts[0])
        too_small = self.ua._uas.negotiate_session_timer(call, request)
        if too_small is not None:
            self.ua._respond(tx, too_small, now)
            return
        self.ua._respond(tx, make_response(request, 100), now)
        if self._is_session_refresh(call, request.body):
            self.ua._uas.send_2xx(call, tx, request, call.local_sdp, now)
            return
        call.reinvite_server = (tx, request)
        self.ua._emit(events.ReinviteReceived(call.id, request.body))

    def on_update(self, tx, call, request, now):
        if self._is_session_refresh(call, request.body):
            if call.session_expire_at is not None:
                call.session_expire_at = session_timer.expiry(now, call.session_interval)  # RFC 4028 §10
            response = make_response(request, 200)
            response.headers.add("Contact", self.ua._contact())
            if request.body:
                response.headers.add("Content-Type", "application/sdp")
                response.body = call.local_sdp
            self.ua._respond(tx, response, now)
        else:
            self.ua._respond(tx, make_response(request, 488), now)

    def on_info(self, tx, call, request, now):
        ctype = request.content_type
        if not request.body:
            self.ua._respond(tx, make_response(request, 200), now)
            return
        digit = duration = None
        text = decode_utf8(request.body) if ctype in ("application/dtmf-relay", "application/dtmf") else None
        if text is None and ctype in ("application/dtmf-relay", "application/dtmf"):
            self.ua._respond(tx, make_response(request, 400, "Bad DTMF"), now)
            return
        if ctype == "application/dtmf-relay":
            for line in text.replace("\r", "").split("\n"):
                name, _, value = line.partition("=")
                name = name.strip().lower()
                value = value.strip(" \t")
                if name == "signal":
                    digit = value
                elif name == "duration":
                    duration = decimal_or_none(value, 86400000)
        elif ctype == "application/dtmf":
            digit = text.strip()
        else:
            response = make_response(request, 415)
            response.headers.add("Accept", "application/dtmf-relay, application/dtmf")
            self.ua._respond(tx, response, now)
            return
        if digit in ("10", "11"):
            digit = "*" if digit == "10" else "#"
        if digit is not None and len(digit) == 1 and digit.upper() in DTMF_DIGITS:
            self.ua._respond(tx, make_response(request, 200), now)
            self.ua._emit(events.DtmfReceived(call.id, digit.upper(), duration if duration is not None else 160))
        else:
            self.ua._respond(tx, make_response(request, 400, "Bad DTMF"), now)

    def on_refer(self, tx, call, request, now):
        targets = request.headers.get_all("Refer-To")
        if len(targets) != 1:
            self.ua._respond(tx, make_response(request, 400, "Need one Refer-To"), now)
            return
        target = parse_name_addr(targets[0])
        if target.uri is None:
            self.ua._respond(tx, make_response(request, 400, "Bad Refer-To"), now)
            return
        try:
            target_uri, replaces = split_refer_to(target.uri)  # RFC 3891 §6.1: Replaces rides in the URI
        except RemoteProtocolError:
            self.ua._respond(tx, make_response(request, 400, "Bad Replaces in Refer-To"), now)
            return
        response = make_response(request, 202)
        response.headers.add("Contact", self.ua._contact())
        self.ua._respond(tx, response, now)
        referred_by = request.headers.get("Referred-By")
        self.ua._emit(events.ReferReceived(call.id, str(target_uri), referred_by, replaces))
        self._send_refer_notify(call, 100, now)

    def on_notify(self, tx, call, request, now):
        event = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        if event != "refer":
            self.ua._respond(tx, make_response(request, 489, "Bad Event"), now)
            return
        self.ua._respond(tx, make_response(request, 200), now)
        status = 0
        body = decode_utf8(request.body) or ""
        parts = body.split(" ")
        if len(parts) >= 2 and parts[0].startswith("SIP/2.0"):
            # RFC 3515 §2.4.5: the body is a message/sipfrag status line; an unreadable code is 0.
            status = decimal_or_none(parts[1][:3], 699, minimum=100) or 0
        state = (request.headers.get("Subscription-State") or "").lower()
        self.ua._emit(events.ReferProgress(call.id, status, state.startswith("terminated") or status >= 200))
