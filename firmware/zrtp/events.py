"""Events the ZRTP engine hands to the shell (ZrtpEngine.next_event()). Immutable, with __slots__.

Every Alarm and Failed carries a `kind`, one of the constants below, so no caller ever matches on the
reason text; `reason` is the human sentence for the log, the summary and the display.

Secure(key_agreement, cipher, hash, auth_tag, sas, sas_type, verified, cache_mismatch, peer_zid, role,
       send_profile, send_key, send_salt, receive_profile, receive_key, receive_salt, rekey, exchange)
    The stream is keyed. send_* are our SRTP sending keys (the initiator's for the initiator, §4.5.3),
    receive_* the peer's. verified: our V and the peer's V were both set and a retained secret matched.
    rekey: False for the call's first exchange, True for a later one on the same stream (the peer
    restarted ZRTP, e.g. GNU ZRTP after hold/retrieve); exchange counts them from 1. A re-key is not an
    alarm: the shell swaps the SRTP keys (see ZrtpEngine's docstring for when each direction switches).
ReceiveKeys(receive_profile, receive_key, receive_salt, rekey, exchange)
    Initiator only, queued when it sends Confirm2: from now on the responder may send SRTP under these
    keys (RFC 6189 §4.6: the initiator must be ready to receive SRTP once it has sent Confirm2). The
    Secure event that follows repeats them; a shell that installs receive keys only at Secure loses at
    most the packets that overtake a lost Conf2ACK.
Alarm(kind, reason, code)
    A security event that does not end the call by itself. code is the ZRTP error code sent or received
    (§5.9), or None.
Failed(kind, reason, code)
    ZRTP gave up on this stream; the call is not secure (for a failed re-key the engine stays secure with
    the previous keys and raises Alarm(REKEY_FAILED) instead).
CacheUpdated()
    The cache changed; the shell should persist it.
"""

from firmware.events import Event

# Alarm kinds. The values are stable strings (they double as firmware.phone's CallAlarm reasons).
ZRTP_HASH_MISMATCH = "zrtp-hash-mismatch"  # the peer's Hello does not match its SDP a=zrtp-hash (§8.1.1)
CACHE_MISMATCH = "cache-mismatch"  # the peer's retained secret differs from ours (§4.3.2, §4.6.1.1)
NEW_KEY_FOR_CONTACT = "new-key-for-contact"  # a verified contact (AOR) shows up with a different ZID
GOCLEAR = "goclear"  # an authentic GoClear: the peer wants to drop SRTP (§4.7.2); never obeyed
UNTRUSTED_MITM = "untrusted-mitm"  # an authentic SASrelay from a PBX we never enrolled (§7.3)
REKEY_FAILED = "rekey-failed"  # a ZRTP restart on a secure stream did not complete; old keys kept
ALARM_KINDS = (ZRTP_HASH_MISMATCH, CACHE_MISMATCH, NEW_KEY_FOR_CONTACT, GOCLEAR, UNTRUSTED_MITM, REKEY_FAILED)

# Failed kinds.
NO_ZRTP = "no-zrtp"  # our Hello was never answered: the peer has no ZRTP (§6, T1 exhausted)
TIMEOUT = "timeout"  # the peer stopped answering mid-exchange (§6, T2 exhausted)
PEER_ERROR = "peer-error"  # the peer sent an Error message (§5.9); code says which
NO_COMMON_ALGORITHM = "no-common-algorithm"  # no algorithm in common, or the peer chose one we lack
AUTHENTICATION = "authentication"  # hvi, a Confirm MAC, the H0 chain or a DH public value failed (§4.4)
PROTOCOL = "protocol"  # malformed or out-of-order message, version, equal ZIDs
LOCAL = "local"  # this platform could not do what was negotiated (never expected; reported, not raised)
FAILED_KINDS = (NO_ZRTP, TIMEOUT, PEER_ERROR, NO_COMMON_ALGORITHM, AUTHENTICATION, PROTOCOL, LOCAL)


class Secure(Event):
    __slots__ = (
        "key_agreement",
        "cipher",
        "hash",
        "auth_tag",
        "sas",
        "sas_type",
        "verified",
        "cache_mismatch",
        "peer_zid",
        "role",
        "send_profile",
        "send_key",
        "send_salt",
        "receive_profile",
        "receive_key",
        "receive_salt",
        "rekey",
        "exchange",
    )

    def __init__(self, **fields):
        fields.setdefault("rekey", False)
        fields.setdefault("exchange", 1)
        self._init(self.__slots__, [fields[name] for name in self.__slots__])

    def __repr__(self):  # never shows the keys
        return "Secure({} {} {} {} sas={} verified={} cache_mismatch={}{})".format(
            self.key_agreement,
            self.cipher,
            self.hash,
            self.auth_tag,
            self.sas,
            self.verified,
            self.cache_mismatch,
            " rekey #{}".format(self.exchange) if self.rekey else "",
        )


class ReceiveKeys(Event):
    __slots__ = ("receive_profile", "receive_key", "receive_salt", "rekey", "exchange")

    def __init__(self, receive_profile, receive_key, receive_salt, rekey=False, exchange=1):
        self._init(self.__slots__, (receive_profile, receive_key, receive_salt, rekey, exchange))

    def __repr__(self):  # never shows the keys
        return "ReceiveKeys({}{})".format(self.receive_profile, " rekey" if self.rekey else "")


class Alarm(Event):
    __slots__ = ("kind", "reason", "code")

    def __init__(self, kind, reason, code=None):
        self._init(self.__slots__, (kind, reason, code))

    def __repr__(self):
        return "Alarm({}: {!r})".format(self.kind, self.reason)


class Failed(Event):
    __slots__ = ("kind", "reason", "code")

    def __init__(self, kind, reason, code=None):
        self._init(self.__slots__, (kind, reason, code))

    def __repr__(self):
        return "Failed({}: {!r})".format(self.kind, self.reason)


class CacheUpdated(Event):
    __slots__ = ()
