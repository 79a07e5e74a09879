"""What the phone is fed (sans-I/O, MicroPython-clean): input events from the board (keys, the trust button,
the hook switch) and call events the session maps from SIP, media and ZRTP. Immutable, with __slots__."""

from firmware.events import Event

# --- input events: from the board -------------------------------------------------------------------


class KeyPressed(Event):
    """A key: one of '0'-'9', '*', '#', or a named key (NAMED_KEYS)."""

    __slots__ = ("key",)
    _positional = ("key",)

    def __init__(self, key):
        self._set("key", key)


class TrustPressed(Event):
    """The trust button was released (short) or held for 2 s or more (long=True)."""

    __slots__ = ("long",)

    def __init__(self, long=False):
        self._set("long", long)


class Hook(Event):
    """The hook switch: off=True when the handset is lifted."""

    __slots__ = ("off",)

    def __init__(self, off):
        self._set("off", off)


# --- call events: from the session (SIP, media, ZRTP) -----------------------------------------------
# Each carries `call`: the session's key of the call it is about (two calls at once, issue 15), or None for
# "the call" of a session that only ever has one.


class CallIncoming(Event):
    """An INVITE for us. `remote`: the caller's URI; `display_name`: from the From header, or None."""

    __slots__ = ("remote", "display_name", "call")

    def __init__(self, remote, display_name=None, call=None):
        self._set("remote", remote)
        self._set("display_name", display_name)
        self._set("call", call)


class CallRinging(Event):
    """Our call rings at the far end (180/183)."""

    __slots__ = ("call",)

    def __init__(self, call=None):
        self._set("call", call)


class CallAnswered(Event):
    """The media is up (200 OK / ACK exchanged, RTP flowing), not yet secure. Also called MediaUp."""

    __slots__ = ("call",)

    def __init__(self, call=None):
        self._set("call", call)


MediaUp = CallAnswered


class CallSecure(Event):
    """ZRTP reached SecureState. `sas`: the rendered SAS (B32: 4 characters; B256: two words);
    `sas_type`: "B32" or "B256"; `verified`: the cache's V flag for this peer; `cache_mismatch`: the
    retained secrets did not match (RFC 6189 section 4.3.2); `algorithms`: e.g. "X255 AES1 S256 HS80";
    `peer_zid`: the peer's ZID as hex, or None; `known`: the cache held a retained secret of this peer before
    the call (the history's "known key" mark), or None when the session cannot tell."""

    __slots__ = ("sas", "sas_type", "verified", "cache_mismatch", "algorithms", "peer_zid", "call", "known")

    def __init__(
        self,
        sas,
        sas_type="B32",
        verified=False,
        cache_mismatch=False,
        algorithms=None,
        peer_zid=None,
        call=None,
        known=None,
    ):
        self._set("call", call)
        self._set("sas", sas)
        self._set("sas_type", sas_type)
        self._set("verified", verified)
        self._set("cache_mismatch", cache_mismatch)
        self._set("algorithms", algorithms)
        self._set("peer_zid", peer_zid)
        self._set("known", known)


class CallAlarm(Event):
    """A security event during the call; `reason` is one of the ALARM_* names."""

    __slots__ = ("reason", "call")

    def __init__(self, reason, call=None):
        self._set("reason", reason)
        self._set("call", call)


class CallNotSecure(Event):
    """The call goes on without end-to-end keys (the call layer's verdict, firmware.call.NotSecure): `kind` is
    "sdes-only" (encrypted, but to the server: shown, no alarm), "no-zrtp", "zrtp-failed" or
    "encryption-off" (each a loud NOT SECURE alarm)."""

    __slots__ = ("kind", "reason", "call")

    def __init__(self, kind, reason=None, call=None):
        self._set("call", call)
        self._set("kind", kind)
        self._set("reason", reason)


class CallEnded(Event):
    """The call is over (BYE, CANCEL, an error response, a timeout). `reason`: short human text;
    `sip_status`: the final response code when there was one."""

    __slots__ = ("reason", "sip_status", "call")

    def __init__(self, reason, sip_status=None, call=None):
        self._set("call", call)
        self._set("reason", reason)
        self._set("sip_status", sip_status)


class TransferTo(Event):
    """The far end transferred the call (SIP REFER, RFC 3515) and the phone calls `uri`.

    kept=False: the session has ended the current call; the phone records it as "transferred".
    kept=True: the session keeps the current call, silenced, until the new call is answered (RFC 5589
    §6.1: a transfer that fails leaves the transferee's call to the transferor); the phone holds it behind
    the new call, so that if the new call fails the held call comes back in front (its CallEnded, reason
    "transferred", follows a transfer that succeeded)."""

    __slots__ = ("uri", "call", "kept")

    def __init__(self, uri, call=None, kept=False):
        self._set("uri", uri)
        self._set("call", call)
        self._set("kept", bool(kept))


class TransferFailed(Event):
    """Our attended transfer (the transfer key) did not complete: the REFER was refused or its final NOTIFY
    carried a failure `status` (RFC 3515 §2.4.5), or None when no REFER could be sent. Both calls go on as
    they were. Also: the call a transfer we followed (TransferTo kept=True) asked for failed with `status`;
    `call` is the held call that goes on."""

    __slots__ = ("status", "call")

    def __init__(self, status, call=None):
        self._set("status", status)
        self._set("call", call)


class OurZid(Event):
    """Our own ZID (hex), for the menu's fingerprint page; the session sends it once it knows it."""

    __slots__ = ("zid",)

    def __init__(self, zid):
        self._set("zid", zid)
