"""ZRTP algorithm negotiation (RFC 6189 §4.1.2, §5.1): our preferences and the initiator's choice.

Apart from the engine because the choice is a pure function of the two Hellos' lists: it is the rule
both sides must reach the same answer with whichever side wins the Commit contention (§4.2), so it is
stated and tested on its own, with no state machine around it.

API:
- Preferences(hashes, ciphers, auth_tags, key_agreements, sas_types): our lists, most preferred first.
- choose(kind, preferences, peer_hello) -> the initiator's choice of one `kind`, or None (§4.1.2).
- not_offered(chosen, preferences) -> the first kind of a Commit's choice we did not offer, or None.
- UNSUPPORTED_ERROR[kind]: the Error code (§5.9) for "no {kind} in common".
"""

from firmware.errors import LocalProtocolError
from firmware.zrtp import algorithms, messages

# §5.1: algorithms every endpoint supports even when its Hello does not list them.
MANDATORY = algorithms.MANDATORY
# What this platform can run (firmware/zrtp/algorithms.py; probed once at import).
SUPPORTED = algorithms.SUPPORTED
UNSUPPORTED_ERROR = {
    "hash": messages.ERROR_HASH_UNSUPPORTED,
    "cipher": messages.ERROR_CIPHER_UNSUPPORTED,
    "auth_tag": messages.ERROR_AUTH_TAG_UNSUPPORTED,
    "key_agreement": messages.ERROR_KEY_AGREEMENT_UNSUPPORTED,
    "sas": messages.ERROR_SAS_UNSUPPORTED,
}

# Weakest first, for the choice between two differing first choices (see choose).
STRENGTH = {"hash": ("S256", "S384"), "cipher": ("AES1", "AES3")}


class Preferences:
    """Algorithm preferences: lists of ZRTP names, most preferred first (at most 7 of each).

    A list left out (or empty) takes firmware.zrtp.algorithms.DEFAULTS: everything this platform can
    run, in the documented order. A name the platform cannot run is API misuse (LocalProtocolError).
    """

    __slots__ = ("hashes", "ciphers", "auth_tags", "key_agreements", "sas_types")

    def __init__(self, hashes=None, ciphers=None, auth_tags=None, key_agreements=None, sas_types=None):
        defaults = algorithms.DEFAULTS
        self.hashes = _check_names("hash", hashes or defaults["hash"])
        self.ciphers = _check_names("cipher", ciphers or defaults["cipher"])
        self.auth_tags = _check_names("auth_tag", auth_tags or defaults["auth_tag"])
        self.key_agreements = _check_names("key_agreement", key_agreements or defaults["key_agreement"])
        self.sas_types = _check_names("sas", sas_types or defaults["sas"])

    def of(self, kind):
        return {
            "hash": self.hashes,
            "cipher": self.ciphers,
            "auth_tag": self.auth_tags,
            "key_agreement": self.key_agreements,
            "sas": self.sas_types,
        }[kind]


def _check_names(kind, names):
    out = []
    for name in names:
        if kind == "key_agreement":
            name = algorithms.canonical(name)
        if name not in SUPPORTED[kind]:
            raise LocalProtocolError(
                "ZRTP {} {!r} is not supported on this platform".format(kind.replace("_", " "), name)
            )
        if name not in out:
            out.append(name)
    if not out or len(out) > messages.MAX_ALGORITHMS:
        raise LocalProtocolError("between 1 and 7 ZRTP {} names".format(kind.replace("_", " ")))
    return out


def _effective(names, kind):
    out = list(names)
    for name in MANDATORY[kind]:
        if name not in out:
            out.append(name)
    return out


def choose(kind, preferences, peer_hello):
    """The initiator's choice of one algorithm of `kind` (§4.1.2).

    Names both Hellos list explicitly come first; the implicit mandatory ones (§5.1) are only a
    fallback. When the two sides' first choices (within what both list) differ:
    - key agreement: the faster of the two (§4.1.2);
    - hash and cipher: the stronger of the two (S384 over S256, AES3 over AES1);
    - auth tag and SAS rendering: the responder's (the peer's) first choice.
    A peer that picks its own first choice when it commits (bzrtp does) then ends up with the same
    result whichever side wins the Commit contention.
    """
    ours = preferences.of(kind)
    theirs = {
        "hash": peer_hello.hashes,
        "cipher": peer_hello.ciphers,
        "auth_tag": peer_hello.auth_tags,
        "key_agreement": [algorithms.canonical(n) for n in peer_hello.key_agreements],
        "sas": peer_hello.sas_types,
    }[kind]
    explicit_ours = [name for name in ours if name in theirs]
    if not explicit_ours:
        theirs_all = _effective(theirs, kind)
        fallback = [name for name in _effective(ours, kind) if name in theirs_all]
        return fallback[0] if fallback else None
    our_first = explicit_ours[0]
    their_first = [name for name in theirs if name in ours][0]
    if our_first == their_first:
        return our_first
    if kind == "key_agreement":
        faster = algorithms.COST.get(their_first, 99) < algorithms.COST.get(our_first, 99)
        return their_first if faster else our_first
    if kind in STRENGTH:
        return their_first if STRENGTH[kind].index(their_first) > STRENGTH[kind].index(our_first) else our_first
    return their_first


def not_offered(chosen, preferences):
    """The first kind whose choice in a peer's Commit (`chosen`, kind -> name) our Hello did not offer,
    counting the implicit mandatory names (§5.1), or None when we offered all of them (§4.1.2)."""
    for kind in algorithms.KINDS:
        if chosen[kind] not in _effective(preferences.of(kind), kind):
            return kind
    return None
