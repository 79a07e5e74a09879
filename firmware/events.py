"""The one event base of the core: small immutable classes with __slots__ (DESIGN.md), MicroPython-clean.

Subclasses list their fields in __slots__, set them once in __init__ with `_set(name, value)` (or all at
once with `_init(names, values)`), and may name in `_hidden` the fields that must never be printed (keys),
in `_positional` the fields printed as a bare value (`Dial('sip:1@d')`, not `Dial(uri='sip:1@d')`), and in
`_counted` collections printed as their size (`SaveHistory(50 entries)`: a whole call history would flood
the log).
"""


class Event:
    __slots__ = ()
    _hidden = ()
    _positional = ()
    _counted = ()

    def __setattr__(self, name, value):
        raise AttributeError("events are immutable")

    def _set(self, name, value):
        object.__setattr__(self, name, value)

    def _init(self, names, values):
        """_set() each of `names` to the value at the same place in `values`."""
        for name, value in zip(names, values):
            self._set(name, value)

    def __repr__(self):
        return "{}({})".format(
            type(self).__name__, ", ".join(self._shown(name) for name in self.__slots__ if name not in self._hidden)
        )

    def _shown(self, name):
        value = getattr(self, name)
        if name in self._counted:
            return "{} {}".format(len(value), name)
        if name in self._positional:
            return repr(value)
        return "{}={!r}".format(name, value)

    def __eq__(self, other):
        return type(self) is type(other) and all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(tuple(getattr(self, n) for n in self.__slots__))
