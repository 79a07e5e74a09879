"""Message waiting: a subscriber for the message-summary event package (RFC 3842) over SIP-specific event
notification (RFC 6665). Sans-I/O, MicroPython-clean; it plugs into a UserAgent through its extension hooks
(ua.extensions, ua.request_handlers, ua.response_handlers, ua.failure_handlers) and never touches a socket.

    mwi = MessageSummarySubscription(ua, "sip:alice@example.org", accept_unsolicited=False)
    mwi.subscribe(now)         after registration: SUBSCRIBE with Event: message-summary, Accept:
                               application/simple-message-summary (RFC 3842 §4), refreshed before it expires
    mwi.unsubscribe(now)       SUBSCRIBE Expires: 0 (RFC 6665 §4.1.2.3)
    ... the UserAgent's events then include MessageWaiting(...) for every NOTIFY with a body

Every NOTIFY of the subscription is answered: 200 with a well-formed body, 400 when the body breaks the RFC
3842 §5.2 grammar (no "Messages-Waiting: yes|no" first, a message count that is not a decimal), 415 for
another body type, 489 for another event package (RFC 6665 §8.2.1). A malformed NOTIFY never changes what
the phone shows. A NOTIFY outside any subscription (an "unsolicited" MWI, as some PBXs send) is taken only
with accept_unsolicited=True; otherwise it keeps the UserAgent's 481.
"""

from firmware.digits import decimal_or_none, strip_lws
from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.events import Event
from firmware.sip.dialog import Dialog
from firmware.sip.message import make_response
from firmware.sip.transaction import Context
from firmware.sip.uri import NameAddr, parse_name_addr, parse_uri

EVENT_PACKAGE = "message-summary"
BODY_TYPE = "application/simple-message-summary"
DEFAULT_EXPIRES = 3600
MIN_EXPIRES = 60
MAX_BODY = 4096
MAX_COUNT = 999999  # a voice mailbox holds far fewer; bigger numbers are a broken body
RETRY_FIRST = 30.0  # after a failure: RFC 6665 §4.1.2.4 leaves the schedule to us; doubled up to RETRY_MAX
RETRY_MAX = 1800.0
REFRESH_FRACTION = 0.8  # refresh at 80 % of the granted time (RFC 6665 §4.1.2.2: before it expires)
# RFC 3842 §3.5: the message-context-class values; "voice-message" is what a desk phone counts.
CONTEXT_CLASSES = ("voice-message", "fax-message", "pager-message", "multimedia-message", "text-message", "none")
# Subscription-State reasons after which subscribing again is pointless (RFC 6665 §4.1.3).
FINAL_REASONS = ("rejected", "noresource", "invariant")

STATE_IDLE = "idle"
STATE_SUBSCRIBING = "subscribing"
STATE_ACTIVE = "active"
STATE_FAILED = "failed"  # waiting to retry
STATE_TERMINATED = "terminated"  # for good (rejected, 489, or unsubscribed)


class MessageWaiting(Event):
    """A message-summary (RFC 3842 §5.2): `waiting` (Messages-Waiting: yes), the voice-message counts `new`,
    `old`, `new_urgent`, `old_urgent` (None when the body gives no voice-message line), and `account` (the
    Message-Account URI, or None). `solicited`: False for a NOTIFY outside our subscription."""

    __slots__ = ("waiting", "new", "old", "new_urgent", "old_urgent", "account", "solicited")

    def __init__(self, waiting, new=None, old=None, new_urgent=None, old_urgent=None, account=None, solicited=True):
        self._init(self.__slots__, (waiting, new, old, new_urgent, old_urgent, account, solicited))


class SubscriptionFailed(Event):
    """The message-summary subscription failed with `status` (`reason`); `retry_in` seconds, or None when it
    will not be tried again (489 Bad Event, 403, a final Subscription-State reason)."""

    __slots__ = ("status", "reason", "retry_in")

    def __init__(self, status, reason, retry_in):
        self._init(self.__slots__, (status, reason, retry_in))


def _count(text):
    value = decimal_or_none(text, MAX_COUNT)
    if value is None:
        raise RemoteProtocolError("message-summary: a message count must be a decimal, not {!r}".format(text[:20]))
    return value


def _counts(value):
    """ "2/8 (0/2)" -> (2, 8, 0, 2); the urgent part is optional (RFC 3842 §5.2 msg-summary-line)."""
    urgent = None
    if "(" in value:
        value, _, urgent = value.partition("(")
        urgent = urgent.strip()
        if not urgent.endswith(")"):
            raise RemoteProtocolError("message-summary: unclosed urgent counts")
        urgent = urgent[:-1]
    new, slash, old = value.partition("/")
    if not slash:
        raise RemoteProtocolError("message-summary: counts are NEW/OLD")
    result = [_count(new), _count(old), None, None]
    if urgent is not None:
        new_urgent, slash, old_urgent = urgent.partition("/")
        if not slash:
            raise RemoteProtocolError("message-summary: urgent counts are NEW/OLD")
        result[2] = _count(new_urgent)
        result[3] = _count(old_urgent)
    return tuple(result)


def parse_message_summary(body, solicited=True):
    """The MessageWaiting of an application/simple-message-summary body (bytes); RemoteProtocolError (400)
    when it breaks the grammar of RFC 3842 §5.2. Names compare case-insensitively; unknown header-like lines
    (opt-msg-headers, extension classes) are ignored, as the RFC asks of a receiver."""
    if len(body) > MAX_BODY:
        raise RemoteProtocolError("message-summary: body larger than {} bytes".format(MAX_BODY))
    try:
        text = body.decode("utf-8")
    except UnicodeError:
        raise RemoteProtocolError("message-summary: body is not UTF-8") from None
    lines = [strip_lws(line) for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        raise RemoteProtocolError("message-summary: empty body")
    waiting = None
    account = None
    voice = None
    for index, line in enumerate(lines):
        if not line:
            break  # opt-msg-headers follow a blank line: not ours to read
        name, colon, value = line.partition(":")
        if not colon:
            raise RemoteProtocolError("message-summary: a line without ':'")
        name = name.strip().lower()
        value = strip_lws(value)
        for ch in value:
            if ord(ch) < 32 or ord(ch) == 127:
                raise RemoteProtocolError("message-summary: control character")
        if index == 0:
            if name != "messages-waiting":
                raise RemoteProtocolError("message-summary: the first line must be Messages-Waiting")
            if value.lower() not in ("yes", "no"):
                raise RemoteProtocolError("message-summary: Messages-Waiting is yes or no")
            waiting = value.lower() == "yes"
        elif name == "message-account":
            try:
                uri = parse_uri(value)
            except (RemoteProtocolError, LocalProtocolError, ValueError):
                raise RemoteProtocolError("message-summary: Message-Account is not a URI") from None
            if uri.scheme in ("sip", "sips") and len(value) <= 256:
                account = str(uri)
        elif name in CONTEXT_CLASSES:
            counts = _counts(value)
            if name == "voice-message":
                voice = counts
    if voice is None:
        voice = (None, None, None, None)
    return MessageWaiting(waiting, voice[0], voice[1], voice[2], voice[3], account, solicited)


def _subscription_state(request):
    """(state, expires or None, reason or None, retry_after or None) from Subscription-State (RFC 6665
    §8.2.3); RemoteProtocolError (400) when it is missing or broken."""
    value = request.headers.get("Subscription-State")
    if value is None:
        raise RemoteProtocolError("NOTIFY without Subscription-State")
    parts = [strip_lws(p) for p in value.split(";")]
    state = parts[0].lower()
    if state not in ("active", "pending", "terminated"):
        raise RemoteProtocolError("Subscription-State must be active, pending or terminated")
    expires = reason = retry_after = None
    for part in parts[1:]:
        name, _, param = part.partition("=")
        name = name.strip().lower()
        if name == "expires":
            expires = decimal_or_none(param, 4294967295)
        elif name == "reason":
            reason = param.strip().lower()
        elif name == "retry-after":
            retry_after = decimal_or_none(param, 4294967295)
    return state, expires, reason, retry_after


def _event_package(request):
    value = request.headers.get("Event")
    if value is None:
        return None
    return value.split(";")[0].strip().lower()


class MessageSummarySubscription:
    """One message-summary subscription of a UserAgent `ua` to `target` (our AOR or the voicemail's)."""

    def __init__(self, ua, target, expires=DEFAULT_EXPIRES, accept_unsolicited=False):
        self.ua = ua
        self.target = parse_uri(target) if isinstance(target, str) else target
        self.expires = max(MIN_EXPIRES, int(expires))
        self.accept_unsolicited = bool(accept_unsolicited)
        self.state = STATE_IDLE
        self.call_id = None
        self.local_tag = None
        self.cseq = 0
        self.dialog = None
        self.tx = None
        self.refresh_at = None
        self.retry_at = None
        self.retry_delay = RETRY_FIRST
        self.notifies = 0  # NOTIFYs accepted
        self.notifies_refused = 0  # NOTIFYs answered 4xx (malformed body, wrong event, wrong type)
        self._unsolicited_fallback = ua.request_handlers.get("NOTIFY")
        ua.request_handlers["NOTIFY"] = self._on_out_of_dialog_notify
        ua.response_handlers["subscribe"] = self._on_response
        ua.failure_handlers["subscribe"] = self._on_failure
        ua.extensions.append(self)

    # -- commands ----------------------------------------------------------------------------------

    def subscribe(self, now):
        """Start (or restart) the subscription: a new dialog (RFC 6665 §4.1.2.1)."""
        if self.state == STATE_SUBSCRIBING:
            return
        self.call_id = self.ua._token(12) + "@sotto"
        self.local_tag = self.ua._token(8)
        self.dialog = None
        self._send(now, self.expires)

    def unsubscribe(self, now):
        """Expires: 0 (RFC 6665 §4.1.2.3); the notifier answers and sends a final NOTIFY."""
        if self.call_id is None or self.state in (STATE_IDLE, STATE_TERMINATED):
            self.state = STATE_TERMINATED
            return
        self._send(now, 0)
        self.state = STATE_TERMINATED
        self.refresh_at = self.retry_at = None

    def _send(self, now, expires):
        ua = self.ua
        if self.dialog is not None:
            uri, routes = self.dialog.request_target()
            to_value = str(self.dialog.remote_uri)
            self.cseq = self.dialog.next_cseq()
        else:
            uri, routes = self.target.copy(), []
            to_value = str(NameAddr(self.target.copy()))
            self.cseq += 1
        request = ua._base_request(
            "SUBSCRIBE", uri, ua._from(self.local_tag), to_value, self.call_id, self.cseq, routes
        )
        request.headers.add("Contact", ua._contact())
        request.headers.add("Event", EVENT_PACKAGE)
        request.headers.add("Accept", BODY_TYPE)
        request.headers.add("Expires", str(expires))
        if routes:
            dest = self._route_destination(routes[0])
        elif self.dialog is not None:
            dest = self._route_destination("<" + str(uri) + ">")
        else:
            dest = ua._out_of_dialog_destination(uri)
        try:
            self.tx = ua._send_request(request, dest, now, Context("subscribe"))
        except LocalProtocolError:
            self._failed(503, "too many pending requests", now)
            return
        if expires:
            self.state = STATE_SUBSCRIBING
        self.refresh_at = self.retry_at = None

    def _route_destination(self, route):
        from firmware.sip.outgoing import destination_of

        if self.ua.outbound_proxy is not None:
            host, port = self.ua.outbound_proxy
            return (host, int(port) if port else None)
        return destination_of(parse_name_addr(route).uri, self.ua.transport)

    # -- the UserAgent's hooks ---------------------------------------------------------------------

    def deadlines(self):
        return [d for d in (self.refresh_at, self.retry_at) if d is not None]

    def on_timer(self, now):
        if self.refresh_at is not None and now >= self.refresh_at:
            self.refresh_at = None
            self._send(now, self.expires)  # a refresh inside the dialog (RFC 6665 §4.1.2.2)
        if self.retry_at is not None and now >= self.retry_at:
            self.retry_at = None
            self.state = STATE_IDLE
            self.subscribe(now)

    def on_in_dialog_request(self, tx, request, addr, now):
        """A request with a To tag no call claims: ours when it is a NOTIFY of this subscription."""
        if request.method != "NOTIFY" or self.call_id is None:
            return False
        if request.call_id != self.call_id or request.to_addr.tag != self.local_tag:
            return False
        self._on_notify(tx, request, now)
        return True

    def _on_response(self, tx, call, response, now):
        if tx is not self.tx or response.status < 200:
            return
        status = response.status
        if status in (401, 407):
            new_tx, reason = self.ua._auth_retry(tx, response, now)
            if new_tx is not None:
                self.tx = new_tx
                self.cseq = new_tx.request.cseq[0]
                if self.dialog is not None:
                    self.dialog.local_seq = self.cseq
                return
            self._failed(status, reason, now, retry=False)
            return
        if self.state == STATE_TERMINATED:
            return  # the answer to our unsubscribe
        if 200 <= status < 300:
            if self.dialog is None:
                try:
                    self.dialog = Dialog.from_uac_response(tx.request, response)
                except RemoteProtocolError:
                    self._failed(status, "2xx without a usable Contact", now)
                    return
            granted = decimal_or_none(response.headers.get("Expires"), 4294967295)
            if granted is None or granted > self.expires:
                granted = self.expires  # RFC 6665 §4.1.2.1: the 2xx MUST carry Expires; assume ours
            if granted == 0:
                self.state = STATE_TERMINATED
                return
            self.state = STATE_ACTIVE
            self.retry_delay = RETRY_FIRST
            self.refresh_at = now + granted * REFRESH_FRACTION
            return
        if status == 423:
            minimum = decimal_or_none(response.headers.get("Min-Expires"), 86400)
            if minimum is not None and minimum > self.expires:
                self.expires = minimum
                self.state = STATE_IDLE
                self.subscribe(now)
                return
        if status == 481 and self.dialog is not None:
            self.state = STATE_IDLE
            self.subscribe(now)  # the notifier forgot the subscription: a new one (RFC 6665 §4.1.2.2)
            return
        self._failed(status, response.reason or "refused", now, retry=status not in (403, 489))

    def _on_failure(self, tx, call, status, reason, now):
        if tx is self.tx and self.state != STATE_TERMINATED:
            self._failed(status, reason, now)

    def _failed(self, status, reason, now, retry=True):
        self.refresh_at = None
        if retry:
            self.state = STATE_FAILED
            self.retry_at = now + self.retry_delay
            retry_in = self.retry_delay
            self.retry_delay = min(self.retry_delay * 2, RETRY_MAX)
        else:
            self.state = STATE_TERMINATED
            self.retry_at = None
            retry_in = None
        self.ua._emit(SubscriptionFailed(status, reason, retry_in))

    # -- NOTIFY ------------------------------------------------------------------------------------

    def _refuse(self, tx, request, status, now, header=None):
        self.notifies_refused += 1
        response = make_response(request, status)
        if header is not None:
            response.headers.add(header[0], header[1])
        self.ua._respond(tx, response, now)

    def _check_notify(self, tx, request, now):
        """The summary in a NOTIFY, or None when it was refused (answered here)."""
        if _event_package(request) != EVENT_PACKAGE:
            self._refuse(tx, request, 489, now, ("Allow-Events", EVENT_PACKAGE))
            return None
        if not request.body:
            return False  # a NOTIFY may carry no body (pending, or terminated): nothing to show
        if request.content_type != BODY_TYPE:
            self._refuse(tx, request, 415, now, ("Accept", BODY_TYPE))
            return None
        try:
            return parse_message_summary(request.body)
        except RemoteProtocolError as exc:
            response = make_response(request, 400, "Bad Request ({})".format(exc.message[:60]))
            self.notifies_refused += 1
            self.ua._respond(tx, response, now)
            return None

    def _on_notify(self, tx, request, now):
        try:
            state, expires, reason, retry_after = _subscription_state(request)
        except RemoteProtocolError as exc:
            self.notifies_refused += 1
            self.ua._respond(tx, make_response(request, 400, "Bad Request ({})".format(exc.message[:60])), now)
            return
        summary = self._check_notify(tx, request, now)
        if summary is None:
            return
        dialog = self.dialog
        if dialog is not None:
            if request.from_addr.tag != dialog.remote_tag:
                dialog.remote_tag = request.from_addr.tag  # the NOTIFY's dialog wins (RFC 6665 §4.1.2.4)
                dialog.remote_uri = request.from_addr.copy()
                dialog.remote_seq = None
            if not dialog.check_remote_cseq(request.cseq[0]):
                self.ua._respond(tx, make_response(request, 500, "Out of order CSeq"), now)
                return
            contacts = request.headers.get_all("Contact")
            if len(contacts) == 1:
                dialog.update_target(contacts[0])
        self.notifies += 1
        self.ua._respond(tx, make_response(request, 200), now)
        if summary is not False:
            self.ua._emit(summary)
        if state == "terminated" and self.state != STATE_TERMINATED:
            self.refresh_at = None
            if reason in FINAL_REASONS:
                self._failed(481, "subscription " + reason, now, retry=False)
            else:
                # deactivated, timeout: subscribe again at once; probation, giveup: after retry-after.
                delay = 0.0 if reason in (None, "deactivated", "timeout") else float(retry_after or RETRY_FIRST)
                self.state = STATE_FAILED
                self.retry_at = now + delay
        elif state == "active" and expires is not None and self.state in (STATE_ACTIVE, STATE_SUBSCRIBING):
            self.refresh_at = now + max(1, min(expires, self.expires)) * REFRESH_FRACTION

    def _on_out_of_dialog_notify(self, tx, request, addr, now):
        """A NOTIFY without a To tag: an unsolicited message-summary (if allowed), else what the UA did."""
        if not self.accept_unsolicited or _event_package(request) != EVENT_PACKAGE:
            if self._unsolicited_fallback is not None:
                self._unsolicited_fallback(tx, request, addr, now)
            return
        # Answered with a tag of our own: no dialog comes of it (no subscription asked for it).
        if request.body and request.content_type != BODY_TYPE:
            self._refuse_unsolicited(tx, request, 415, now, ("Accept", BODY_TYPE))
            return
        try:
            summary = parse_message_summary(request.body, solicited=False) if request.body else None
        except RemoteProtocolError as exc:
            self.notifies_refused += 1
            response = make_response(request, 400, "Bad Request ({})".format(exc.message[:60]), self.ua._token(8))
            self.ua._respond(tx, response, now)
            return
        self.notifies += 1
        self.ua._respond(tx, make_response(request, 200, to_tag=self.ua._token(8)), now)
        if summary is not None:
            self.ua._emit(summary)

    def _refuse_unsolicited(self, tx, request, status, now, header):
        self.notifies_refused += 1
        response = make_response(request, status, to_tag=self.ua._token(8))
        response.headers.add(header[0], header[1])
        self.ua._respond(tx, response, now)
