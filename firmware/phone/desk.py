"""The desk settings a person sets from the menu (sans-I/O, MicroPython-clean): do not disturb and the local
call forward (always, when busy, when nobody answers within N seconds).

They are kept in the data directory (the session persists DeskSettings.to_dict() on SaveSettings). A desk
phone forwards locally by answering the INVITE with 302 Moved Temporarily and the target in Contact (RFC
3261 §21.3.3 and §8.3: the caller's UA or proxy recurses on the Contact); do not disturb answers 486 Busy
Here (§21.4.24), so the caller hears busy and a PBX may go to voicemail.
"""

from firmware.phone.contacts import MAX_URI, is_uri

FORWARD_ALWAYS = "always"
FORWARD_BUSY = "busy"
FORWARD_NO_ANSWER = "no-answer"
FORWARD_KINDS = (FORWARD_ALWAYS, FORWARD_BUSY, FORWARD_NO_ANSWER)

NO_ANSWER_DEFAULT = 20
NO_ANSWER_MIN = 5
NO_ANSWER_MAX = 120
MAX_TARGET = MAX_URI  # the configuration's bound for URIs
DND_STATUS = 486  # Busy Here: the caller hears busy; a PBX may send the call to voicemail
FORWARD_STATUS = 302  # Moved Temporarily, the target in Contact


def is_target(uri):
    """A forward target: a sip:/sips: URI of at most MAX_TARGET printable characters without spaces (it goes
    into a Contact header: no control character may ever reach one, RFC 3261 §25.1). The same rule as a
    contact's address, so it is stated once, in contacts.is_uri."""
    return is_uri(uri)


class DeskSettings:
    """dnd (bool); forward: the target URI per kind (FORWARD_KINDS) or None; no_answer_seconds."""

    __slots__ = ("dnd", "always", "busy", "no_answer", "no_answer_seconds")

    def __init__(self):
        self.dnd = False
        self.always = None
        self.busy = None
        self.no_answer = None
        self.no_answer_seconds = NO_ANSWER_DEFAULT

    def forward_to(self, kind):
        return getattr(self, _ATTRIBUTE[kind])

    def set_forward(self, kind, uri):
        if uri is not None and not is_target(uri):
            raise ValueError("not a forward target: {!r}".format(uri))
        setattr(self, _ATTRIBUTE[kind], uri)

    def set_no_answer_seconds(self, seconds):
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise ValueError("seconds must be an integer")
        if not NO_ANSWER_MIN <= seconds <= NO_ANSWER_MAX:
            raise ValueError("from {} to {} seconds".format(NO_ANSWER_MIN, NO_ANSWER_MAX))
        self.no_answer_seconds = seconds

    def to_dict(self):
        return {
            "dnd": self.dnd,
            "forward_always": self.always or "",
            "forward_busy": self.busy or "",
            "forward_no_answer": self.no_answer or "",
            "no_answer_seconds": self.no_answer_seconds,
        }

    @staticmethod
    def from_dict(data):
        """Settings from a saved dict; each bad or missing value keeps its default. Returns (settings,
        problems): problems is a list of the keys that were ignored (the session logs them)."""
        settings = DeskSettings()
        problems = []
        if not isinstance(data, dict):
            return settings, (["<file>"] if data is not None else [])
        dnd = data.get("dnd", False)
        if isinstance(dnd, bool):
            settings.dnd = dnd
        else:
            problems.append("dnd")
        for kind in FORWARD_KINDS:
            key = "forward_" + kind.replace("-", "_")
            value = data.get(key, "")
            if value == "":
                continue
            try:
                settings.set_forward(kind, value)
            except ValueError:
                problems.append(key)
        seconds = data.get("no_answer_seconds", NO_ANSWER_DEFAULT)
        try:
            settings.set_no_answer_seconds(seconds)
        except ValueError:
            problems.append("no_answer_seconds")
        return settings, problems

    def summary(self):
        """One short line for the idle screen, or None when nothing is set."""
        parts = []
        if self.dnd:
            parts.append("DND")
        if self.always:
            parts.append("FWD " + _short(self.always))
        else:
            if self.busy:
                parts.append("fwd busy")
            if self.no_answer:
                parts.append("fwd {}s".format(self.no_answer_seconds))
        return " ".join(parts) if parts else None


_ATTRIBUTE = {FORWARD_ALWAYS: "always", FORWARD_BUSY: "busy", FORWARD_NO_ANSWER: "no_answer"}


def _short(uri):
    if uri.startswith("sip:"):
        uri = uri[4:]
    elif uri.startswith("sips:"):
        uri = uri[5:]
    return uri.split("@", 1)[0] or uri


def incoming_verdict(settings, busy):
    """What to do with an incoming call before it rings: (DND_STATUS, None) to refuse it, (FORWARD_STATUS,
    uri) to forward it, or None to let it ring (or, when busy, let the session answer busy as before).
    Forward always wins over do not disturb: the person asked for their calls to go elsewhere."""
    if settings.always:
        return (FORWARD_STATUS, settings.always)
    if settings.dnd:
        return (DND_STATUS, None)
    if busy and settings.busy:
        return (FORWARD_STATUS, settings.busy)
    return None
