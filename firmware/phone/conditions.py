"""The conditions that make calls impossible, or possible again (sans-I/O, MicroPython-clean): the events
the session reports them with, and how each changes the phone's error list, a list of (kind, title, detail)
triples shown as the error state when no call is up."""

from firmware.events import Event
from firmware.phone.states import (
    ERROR_AUDIO,
    ERROR_NETWORK,
    ERROR_PROVISIONING,
    ERROR_REGISTRATION,
    ERROR_TRUST_CACHE,
)


class Registered(Event):
    """Registration succeeded (clears a registration error)."""

    __slots__ = ()


class RegistrationFailed(Event):
    __slots__ = ("reason",)

    def __init__(self, reason):
        self._set("reason", reason)


class NetworkDown(Event):
    __slots__ = ("reason",)

    def __init__(self, reason=None):
        self._set("reason", reason)


class NetworkUp(Event):
    __slots__ = ()


class AudioDeviceMissing(Event):
    __slots__ = ("device",)

    def __init__(self, device):
        self._set("device", device)


class AudioDeviceOk(Event):
    __slots__ = ()


class TrustCacheLost(Event):
    """The ZRTP cache was damaged and set aside at start-up: every peer's SAS must be compared again.
    Shown as an error until the next call becomes secure (a new cache then holds a secret again)."""

    __slots__ = ("detail",)

    def __init__(self, detail=None):
        self._set("detail", detail)


class ProvisioningRefused(Event):
    """The provisioning server's file was refused (unsigned, badly signed, older, malformed) or could not
    be fetched: the phone keeps its configuration and still calls; `reason` is the one-line why."""

    __slots__ = ("reason",)

    def __init__(self, reason):
        self._set("reason", reason)


class ProvisioningOk(Event):
    """A provisioning round went through (clears ProvisioningRefused)."""

    __slots__ = ()


# Per condition event: the error kind, its title and detail; a title of None clears the error.
_ERRORS = {
    RegistrationFailed: (ERROR_REGISTRATION, "Not registered", lambda event: event.reason),
    Registered: (ERROR_REGISTRATION, None, None),
    NetworkDown: (ERROR_NETWORK, "No network", lambda event: event.reason),
    NetworkUp: (ERROR_NETWORK, None, None),
    AudioDeviceMissing: (ERROR_AUDIO, "No audio device", lambda event: event.device),
    AudioDeviceOk: (ERROR_AUDIO, None, None),
    TrustCacheLost: (ERROR_TRUST_CACHE, "Trust cache lost", lambda event: "compare every SAS again"),
    ProvisioningRefused: (ERROR_PROVISIONING, "Provisioning", lambda event: event.reason),
    ProvisioningOk: (ERROR_PROVISIONING, None, None),
}
CONDITION_EVENTS = tuple(_ERRORS)


def without(errors, kind):
    """The error list without errors of this kind."""
    return [error for error in errors if error[0] != kind]


def apply(errors, event):
    """The error list after a condition event: its error set (replacing one of the same kind) or cleared."""
    kind, title, detail = _ERRORS[type(event)]
    errors = without(errors, kind)
    if title is not None:
        detail = detail(event)
        errors.append((kind, title, str(detail) if detail else ""))
    return errors
