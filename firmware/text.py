"""Peer bytes to text, shared by the SIP and SDP parsers (neither imports the other: SIP bodies are
opaque to the SIP layer).

API
---
decode_utf8(data) -> str or None
    `data` (bytes) decoded as UTF-8 (RFC 3261 §25.1 and RFC 4566 §5 both use UTF-8), or None when it
    is not valid UTF-8: the caller raises its own RemoteProtocolError with a status that fits.
"""


def decode_utf8(data):
    # None rather than an exception: MicroPython's UnicodeError has no useful chain to keep.
    try:
        return data.decode()
    except UnicodeError:
        return None
