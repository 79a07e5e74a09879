"""The one event base of the core: small immutable classes with __slots__ (DESIGN.md), MicroPython-clean.

Subclasses list their fields in __slots__, set them once with `_set(name, value)` in __init__, and may name
in `_hidden` the fields that must never be printed (keys).
"""


class Event:
    __slots__ = ()
    _hidden = ()

    def __setattr__(self, name, value):
        raise AttributeError("events are immutable")

    def _set(self, name, value):
        object.__setattr__(self, name, value)

    def __repr__(self):
        fields = ", ".join("{}={!r}".format(name, getattr(self, name)) for name in self.__slots__
                           if name not in self._hidden)
        return "{}({})".format(type(self).__name__, fields)

    def __eq__(self, other):
        return type(self) is type(other) and all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(tuple(getattr(self, n) for n in self.__slots__))
