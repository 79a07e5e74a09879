"""What the phone asks the session to do (Phone.next_command()), sans-I/O and MicroPython-clean.
Immutable, with __slots__; printed as Name(value), the way the tests and logs read them."""

from firmware.events import Event


class Dial(Event):
    __slots__ = ("uri",)
    _positional = ("uri",)

    def __init__(self, uri):
        self._set("uri", uri)


class Answer(Event):
    __slots__ = ()


class Reject(Event):
    """Decline the incoming call with this SIP status (603 Decline by default)."""

    __slots__ = ("status",)
    _positional = ("status",)

    def __init__(self, status=603):
        self._set("status", status)


class Hangup(Event):
    __slots__ = ()


class ConfirmSas(Event):
    """The user confirmed the SAS: set the cache's V flag and apply a deferred cache update."""

    __slots__ = ()


class RejectSas(Event):
    """The user said the SAS did NOT match: clear V and mark the peer untrusted."""

    __slots__ = ()


class SendDtmf(Event):
    __slots__ = ("digit",)
    _positional = ("digit",)

    def __init__(self, digit):
        self._set("digit", digit)


class SetVolume(Event):
    """Playback volume, 0 (silent) to VOLUME_MAX."""

    __slots__ = ("level",)
    _positional = ("level",)

    def __init__(self, level):
        self._set("level", level)


class SetMute(Event):
    __slots__ = ("muted",)
    _positional = ("muted",)

    def __init__(self, muted):
        self._set("muted", muted)


class ResetTrust(Event):
    """Forget the cached secrets and V flag of this peer (ZID as hex)."""

    __slots__ = ("peer_zid",)
    _positional = ("peer_zid",)

    def __init__(self, peer_zid):
        self._set("peer_zid", peer_zid)


class PlayTone(Event):
    """Play a tone until StopTone: "ring", "ringback" or "alarm"."""

    __slots__ = ("name",)
    _positional = ("name",)

    def __init__(self, name):
        self._set("name", name)


class StopTone(Event):
    __slots__ = ()


class SaveHistory(Event):
    """The call history changed: persist `entries` (a tuple of dicts, newest first, at most HISTORY_LIMIT)."""

    __slots__ = ("entries",)
    _counted = ("entries",)

    def __init__(self, entries):
        self._set("entries", tuple(entries))


# --- two calls (issue 15): the session keeps a focused call that the commands above act on --------------


class Focus(Event):
    """From now on Hangup, ConfirmSas, RejectSas and SendDtmf act on the call `call` (the session's key of
    it, as the call events carry it)."""

    __slots__ = ("call",)
    _positional = ("call",)

    def __init__(self, call):
        self._set("call", call)


class Hold(Event):
    """Put the call on hold: re-INVITE a=sendonly (RFC 3264 §8.4), its media paused, its ZRTP session kept."""

    __slots__ = ("call",)
    _positional = ("call",)

    def __init__(self, call):
        self._set("call", call)


class Resume(Event):
    """Take the call off hold: re-INVITE a=sendrecv; its audio is the earpiece's and the microphone's again."""

    __slots__ = ("call",)
    _positional = ("call",)

    def __init__(self, call):
        self._set("call", call)


class Busy(Event):
    """Refuse that incoming call with 486 Busy Here (a second call the phone does not take, or declined)."""

    __slots__ = ("call",)
    _positional = ("call",)

    def __init__(self, call):
        self._set("call", call)


class Transfer(Event):
    """Attended transfer (RFC 5589 §7): REFER the call `call` (held) to the far end of the call `to`, with
    Replaces naming that dialog (RFC 3891), so the two far ends talk to each other and both our calls end."""

    __slots__ = ("call", "to")

    def __init__(self, call, to):
        self._set("call", call)
        self._set("to", to)


class Conference(Event):
    """on=True: mix both calls (each leg hears the microphone and the other leg; the earpiece both legs);
    on=False: back to one call at a time."""

    __slots__ = ("on",)
    _positional = ("on",)

    def __init__(self, on):
        self._set("on", on)
