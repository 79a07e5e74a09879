"""The desk features' events and commands (sans-I/O, MicroPython-clean): message waiting (RFC 3842), the
address book's trust marks, do not disturb and call forward. Immutable, with __slots__; re-exported by
firmware.phone like the others."""

from firmware.events import Event

# --- fed to the phone by the session ----------------------------------------------------------------


class MessageSummary(Event):
    """A message-summary NOTIFY (RFC 3842 §3.5): `waiting` ("Messages-Waiting: yes"), the voice messages
    `new` and `old` (None when the body did not say), and the `account` URI to dial for them (the
    Message-Account header, or None)."""

    __slots__ = ("waiting", "new", "old", "account")

    def __init__(self, waiting, new=None, old=None, account=None):
        self._set("waiting", bool(waiting))
        self._set("new", new)
        self._set("old", old)
        self._set("account", account)


class TrustMarks(Event):
    """The trust mark of every contact, from the ZRTP cache and its contact bindings: a tuple of (uri,
    mark) pairs (mark: firmware.phone.contacts.MARKS). The session sends it at start and after each call."""

    __slots__ = ("marks",)
    _counted = ("marks",)

    def __init__(self, marks):
        self._set("marks", tuple(marks))


# --- asked of the session by the phone --------------------------------------------------------------


class Forward(Event):
    """Answer an incoming call with `status` and `uri` in Contact: 302 for a local call forward (RFC 3261
    §21.3.3). `call`: the session's key of that call (CallIncoming.call), or None for the ringing one."""

    __slots__ = ("uri", "status", "call")
    _positional = ("uri",)

    def __init__(self, uri, status=302, call=None):
        self._set("uri", uri)
        self._set("status", status)
        self._set("call", call)


class SaveSettings(Event):
    """Do not disturb or a call forward changed: persist `settings` (DeskSettings.to_dict())."""

    __slots__ = ("settings",)

    def __init__(self, settings):
        self._set("settings", dict(settings))

    def __hash__(self):
        return hash(tuple(sorted(self.settings.items())))


class SaveContacts(Event):
    """The address book changed: persist `entries` (a tuple of {"name", "uri"} dicts)."""

    __slots__ = ("entries",)
    _counted = ("entries",)

    def __init__(self, entries):
        self._set("entries", tuple(dict(e) for e in entries))


class MessageLight(Event):
    """Light (on=True) or put out the message-waiting LED."""

    __slots__ = ("on",)
    _positional = ("on",)

    def __init__(self, on):
        self._set("on", bool(on))
