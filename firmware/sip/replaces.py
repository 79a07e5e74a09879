"""The Replaces header (RFC 3891): name a dialog that a new INVITE takes the place of (attended transfer,
call pick-up). Sans-I/O, pure functions on strings, the UA's calls and its memory of ended dialogs.

API
---
OPTION_TAG = "replaces"   the option tag we put in Supported and accept in Require (§6.1)
Replaces(call_id, to_tag, from_tag, early_only=False): `str()` is the header value
parse_replaces(text) -> Replaces; RemoteProtocolError(400) for anything malformed (§6.1 grammar:
    exactly one to-tag and one from-tag)
parse_local_replaces(value) -> Replaces; LocalProtocolError when our own caller's value is malformed
for_dialog(dialog) -> Replaces naming `dialog` as the far end of it sees it: we send this to a third
    party (in a Refer-To) who then sends it to that far end, whose local tag is our remote tag (§6.1)
refer_to_value(target_uri, replaces=None) -> "<sip:...?Replaces=...>" (RFC 3515 §2.1, RFC 3891 §6.1:
    the header is embedded, escaped, in the Refer-To URI)
split_refer_to(uri) -> (target Uri without its embedded headers, Replaces value str or None);
    RemoteProtocolError(400) for a malformed or repeated embedded Replaces
match_incoming(request, calls, ended) -> call id to replace; RemoteProtocolError with the status to
    answer (§3): 400 more than one header or malformed, 481 no such dialog (or an early one we did not
    start), 486 "early-only" but the dialog is confirmed, 603 the dialog already ended
"""

from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.sip import call as call_states
from firmware.sip.uri import parse_header_params

OPTION_TAG = "replaces"
MAX_VALUE = 512  # a Call-ID and two tags; anything longer is not a Replaces we will ever match

# A dialog of ours that is up, or being set up by us, may be replaced (§3); one we are asked to take
# (an unanswered incoming call) may not.
_CONFIRMED = (call_states.ANSWERED, call_states.CONFIRMED)
_OUR_EARLY = (call_states.CALLING, call_states.EARLY)
_ENDING = (call_states.CANCELLING, call_states.TERMINATING, call_states.ENDED)


class Replaces:
    __slots__ = ("call_id", "to_tag", "from_tag", "early_only")

    def __init__(self, call_id, to_tag, from_tag, early_only=False):
        self.call_id = call_id
        self.to_tag = to_tag
        self.from_tag = from_tag
        self.early_only = early_only

    def __str__(self):
        text = "{};to-tag={};from-tag={}".format(self.call_id, self.to_tag, self.from_tag)
        return text + ";early-only" if self.early_only else text

    def __eq__(self, other):
        return isinstance(other, Replaces) and str(self) == str(other)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(str(self))


def _is_word(text):
    """RFC 3261 §25.1 `word` (what a Call-ID is made of), and `token` for the tags: no white space,
    no separators that would end the header or a parameter."""
    if not text:
        return False
    for c in text:
        if ord(c) <= 32 or ord(c) >= 127 or c in ';,"':
            return False
    return True


def parse_replaces(text):
    if not isinstance(text, str) or len(text) > MAX_VALUE:
        raise RemoteProtocolError("Replaces too long", 400)
    call_id, sep, rest = text.strip().partition(";")
    call_id = call_id.strip()
    if not _is_word(call_id) or call_id.count("@") > 1:
        raise RemoteProtocolError("bad Call-ID in Replaces", 400)
    params = parse_header_params(";" + rest) if sep else []
    to_tag = from_tag = None
    early_only = False
    for name, value in params:
        if name == "to-tag" or name == "from-tag":
            if value is None or not _is_word(value) or "@" in value:
                raise RemoteProtocolError("bad {} in Replaces".format(name), 400)
            if (to_tag if name == "to-tag" else from_tag) is not None:
                raise RemoteProtocolError("two {}s in Replaces".format(name), 400)
            if name == "to-tag":
                to_tag = value
            else:
                from_tag = value
        elif name == "early-only":
            early_only = True
    if to_tag is None or from_tag is None:
        raise RemoteProtocolError("Replaces needs to-tag and from-tag", 400)  # §6.1
    return Replaces(call_id, to_tag, from_tag, early_only)


def parse_local_replaces(value):
    """A Replaces our own caller gave us (a Replaces or its text): malformed is API misuse."""
    if isinstance(value, Replaces):
        return value
    error = None
    try:
        return parse_replaces(value)
    except RemoteProtocolError as exc:
        error = exc.message
    raise LocalProtocolError("bad Replaces: " + error)


def for_dialog(dialog):
    return Replaces(dialog.call_id, dialog.remote_tag, dialog.local_tag)


def refer_to_value(target_uri, replaces=None):
    uri = target_uri.copy()
    uri.headers = [h for h in uri.headers if h[0].lower() != "replaces"]
    if replaces is not None:
        uri.headers.append(["Replaces", str(replaces)])
    return "<" + str(uri) + ">"


def split_refer_to(uri):
    found = [value for name, value in uri.headers if name.lower() == "replaces"]
    if len(found) > 1:
        raise RemoteProtocolError("two Replaces in Refer-To", 400)
    target = uri.copy()
    # Other embedded headers (Accept-Contact, ...) we do not act on: the new INVITE goes without them.
    target.headers = []
    if not found:
        return target, None
    return target, str(parse_replaces(found[0]))


def match_incoming(request, calls, ended):
    """§3: which of our dialogs an INVITE with Replaces takes over. `calls`: the UA's {call id: Call};
    `ended`: recently ended dialogs as (call id, local tag, remote tag). The tags are compared as if
    they came in a request of that dialog: to-tag against our local tag, from-tag against the remote."""
    values = request.headers.get_all("Replaces")
    if len(values) != 1:
        raise RemoteProtocolError("more than one Replaces", 400)
    wanted = parse_replaces(values[0])
    key = (wanted.call_id, wanted.to_tag, wanted.from_tag)
    call = calls.get(wanted.call_id)
    if call is None or call.local_tag != wanted.to_tag:
        if key in ended:
            raise RemoteProtocolError("the replaced dialog has ended", 603)
        raise RemoteProtocolError("no dialog to replace", 481)
    if call.state in _CONFIRMED:
        if call.dialog is None or call.dialog.remote_tag != wanted.from_tag:
            raise RemoteProtocolError("no dialog to replace", 481)
        if wanted.early_only:
            raise RemoteProtocolError("the dialog to replace is confirmed (early-only)", 486)
        return call.id
    if call.state in _OUR_EARLY:
        # An early dialog we started: its remote tag is the far end's To tag, which we do not keep
        # per fork; our own tag and the Call-ID already single it out.
        return call.id
    if call.state in _ENDING:
        raise RemoteProtocolError("the replaced dialog has ended", 603)
    raise RemoteProtocolError("no dialog to replace", 481)  # an early dialog we did not start
