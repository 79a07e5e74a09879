"""Helpers for tests that also run under MicroPython (no pytest there).

A test module that sets `MICROPYTHON = True` must be plain: functions named test_*, no fixtures, no
parametrize, no hypothesis; it may import only the core, `tests.portable` and the standard modules
MicroPython has. tests/test_micropython.py runs every such module under the `micropython` command.
"""


def raises(exc_type, func, *args, **kwargs):
    """Call func and return the exception it raised; fail unless it is an `exc_type`."""
    try:
        func(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError("{} did not raise {}".format(func, exc_type.__name__))


def unhex(text):
    """Bytes from hex text that may contain spaces and newlines (RFC vectors are printed that way)."""
    import binascii

    return binascii.unhexlify("".join(text.split()))
