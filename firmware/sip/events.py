"""Events the UserAgent hands to the application (UserAgent.next_event()). Immutable, with __slots__.

Every call event carries `call_id` (the SIP Call-ID, which is also the call handle used by commands).

IncomingCall(call_id, from_uri, from_display, to_uri, sdp, replaces)   an INVITE arrived; answer/ringing/
                                         reject it. `replaces` is None, or the id of our call it takes
                                         over (RFC 3891, already matched): answer it, then hang that one up
CallRinging(call_id, status, sdp)        a provisional response (180/183...) to our INVITE; sdp may be b""
CallAnswered(call_id, sdp)               our INVITE got a 2xx; sdp is the answer (we sent the ACK)
CallConfirmed(call_id, sdp)              the ACK for our 2xx arrived (incoming call fully set up); sdp is
                                         the answer when the INVITE had no offer (late offer), else b""
PrackAnswer(call_id, sdp)                the PRACK of the reliable 183 that carried our offer (late-offer
                                         INVITE, ringing(..., sdp=offer)) arrived with the answer (RFC 3262
                                         §5); b"" when it carried none (refuse the call: 488)
CallEnded(call_id, reason, sip_status, by_remote)
                                         an established or cancelled call is over. reason is one of
                                         "remote hangup", "local hangup", "cancelled", "rejected",
                                         "no ACK", "no answer", "dialog lost", "session expired"
                                         (RFC 4028 §10), "no PRACK" (RFC 3262 §3)
CallFailed(call_id, status, reason)      our INVITE failed: final status >= 300, 408 on timeout, or
                                         reason "wrong password"/"authentication required" for auth
ReinviteReceived(call_id, sdp)           the peer changed the session (hold/resume/new address): answer
                                         with UserAgent.answer_reinvite() or reject_reinvite()
ReinviteAnswered(call_id, sdp)           our re-INVITE was accepted with this answer
ReinviteFailed(call_id, status)          our re-INVITE was refused (491: try again later)
ReferReceived(call_id, target, referred_by, replaces)  the peer asks us to call `target` (RFC 3515);
                                         `replaces` is None (blind transfer) or the Replaces value the
                                         Refer-To carried (attended): pass it to invite(..., replaces=).
                                         Report the new call with notify_refer() (100 Trying is sent)
ReferProgress(call_id, status, final)    our REFER: 202 accepted, then NOTIFY sipfrag statuses
DtmfReceived(call_id, digit, duration_ms)  a SIP INFO DTMF (application/dtmf-relay or application/dtmf)
Registered(expires, contact)             the registrar accepted our binding for `expires` seconds
RegistrationFailed(status, reason, retry_in)
                                         reason like "wrong password", "authentication required",
                                         "timeout", "interval too brief"; retry_in seconds or None (no retry)
Unregistered(status)                     the binding was removed (or the unregister attempt ended)
"""

from firmware.events import Event as _Event


class IncomingCall(_Event):
    __slots__ = ("call_id", "from_uri", "from_display", "to_uri", "sdp", "replaces")

    def __init__(self, call_id, from_uri, from_display, to_uri, sdp, replaces=None):
        self._init(self.__slots__, (call_id, from_uri, from_display, to_uri, sdp, replaces))


class CallRinging(_Event):
    __slots__ = ("call_id", "status", "sdp")

    def __init__(self, call_id, status, sdp):
        self._init(self.__slots__, (call_id, status, sdp))


class PrackAnswer(_Event):
    __slots__ = ("call_id", "sdp")

    def __init__(self, call_id, sdp):
        self._init(self.__slots__, (call_id, sdp))


class CallAnswered(_Event):
    __slots__ = ("call_id", "sdp")

    def __init__(self, call_id, sdp):
        self._init(self.__slots__, (call_id, sdp))


class CallConfirmed(_Event):
    __slots__ = ("call_id", "sdp")

    def __init__(self, call_id, sdp=b""):
        self._init(self.__slots__, (call_id, sdp))


class CallEnded(_Event):
    __slots__ = ("call_id", "reason", "sip_status", "by_remote")

    def __init__(self, call_id, reason, sip_status, by_remote):
        self._init(self.__slots__, (call_id, reason, sip_status, by_remote))


class CallFailed(_Event):
    __slots__ = ("call_id", "status", "reason")

    def __init__(self, call_id, status, reason):
        self._init(self.__slots__, (call_id, status, reason))


class ReinviteReceived(_Event):
    __slots__ = ("call_id", "sdp")

    def __init__(self, call_id, sdp):
        self._init(self.__slots__, (call_id, sdp))


class ReinviteAnswered(_Event):
    __slots__ = ("call_id", "sdp")

    def __init__(self, call_id, sdp):
        self._init(self.__slots__, (call_id, sdp))


class ReinviteFailed(_Event):
    __slots__ = ("call_id", "status")

    def __init__(self, call_id, status):
        self._init(self.__slots__, (call_id, status))


class ReferReceived(_Event):
    __slots__ = ("call_id", "target", "referred_by", "replaces")

    def __init__(self, call_id, target, referred_by, replaces=None):
        self._init(self.__slots__, (call_id, target, referred_by, replaces))


class ReferProgress(_Event):
    __slots__ = ("call_id", "status", "final")

    def __init__(self, call_id, status, final):
        self._init(self.__slots__, (call_id, status, final))


class DtmfReceived(_Event):
    __slots__ = ("call_id", "digit", "duration_ms")

    def __init__(self, call_id, digit, duration_ms):
        self._init(self.__slots__, (call_id, digit, duration_ms))


class Registered(_Event):
    __slots__ = ("expires", "contact")

    def __init__(self, expires, contact):
        self._init(self.__slots__, (expires, contact))


class RegistrationFailed(_Event):
    __slots__ = ("status", "reason", "retry_in")

    def __init__(self, status, reason, retry_in):
        self._init(self.__slots__, (status, reason, retry_in))


class Unregistered(_Event):
    __slots__ = ("status",)

    def __init__(self, status):
        self._init(self.__slots__, (status,))
