"""The one home of Sotto's ZRTP algorithm vocabulary and default preferences (RFC 6189 §4.1.2, §5.1).

Everything the engine implements is offered by default, most preferred first, filtered by what this
platform can compute (firmware.crypto.CAPABILITIES, probed once at import): under MicroPython there is
no S384, no curve (X255, X448, EC25, EC38), and the Hello offers only what can be completed, so no peer
can pick an algorithm we cannot run. config.py's defaults and the engine's Preferences() both come from
DEFAULTS below; nothing else lists them.

API:
- KINDS: ("hash", "cipher", "auth_tag", "key_agreement", "sas").
- IMPLEMENTED[kind]: every name the code implements, in default preference order.
- SUPPORTED[kind]: IMPLEMENTED filtered by this platform's capabilities.
- DEFAULTS[kind]: the default preference list (a tuple); today equal to SUPPORTED[kind].
- MANDATORY[kind]: what every endpoint supports even when its Hello does not list it (§5.1).
- COST[key_agreement]: rank by measured speed (1 = fastest), for the "faster first choice" rule.
- canonical(name): the GNU ZRTP spelling "E255" becomes "X255" (bzrtp's, and ours).

Key agreement order. §4.1.2: when the two first choices differ, the initiator takes the faster one, so a
Hello should lead with a fast, strong choice. Measured here (CPython 3.11, `cryptography` 46, one shared
x86-64 core; best of 5 runs; keygen + agree per side, what one exchange costs each end;
`python -m tools.bench zrtp` gives the same order for the whole handshake):

    X255  192 µs   (keygen  67, agree  125)
    EC25  258 µs   (keygen  68, agree  190)
    X448  987 µs   (keygen 334, agree  653)
    DH2k 1106 µs   (keygen 549, agree  557; 256-bit exponents)
    EC38 1613 µs   (keygen 726, agree  887)
    DH3k 2157 µs   (keygen 1053, agree 1104)

The default order is by speed among the algorithms of at least 128-bit strength: X255, EC25, X448, EC38,
DH3k; DH2k (about 112-bit, §5.1.5) comes last although it is faster than EC38 and DH3k, so it is only
chosen with a peer that offers nothing else. EC25 right after X255 means a peer that prefers EC25 and
has no X255 (GNU ZRTP's default Hello) gets EC25, and linphone's default (DH3k, Mult) gets DH3k.
Hashes: S256 first (mandatory, and what every peer leads with), S384 offered. Ciphers: AES1 first
(mandatory, faster), AES3 offered; when the peers' first choices differ the engine takes the stronger.
Auth tags: HS80 first (the stronger tag), HS32 offered. SAS: B32 first (four characters fit any
display), B256 offered.
"""

from firmware import crypto
from firmware.zrtp.keyagreement import canonical  # noqa: F401 (part of this module's API)

KINDS = ("hash", "cipher", "auth_tag", "key_agreement", "sas")

IMPLEMENTED = {
    "hash": ("S256", "S384"),
    "cipher": ("AES1", "AES3"),
    "auth_tag": ("HS80", "HS32"),
    "key_agreement": ("X255", "EC25", "X448", "EC38", "DH3k", "DH2k"),
    "sas": ("B32", "B256"),
}

# What each name needs from firmware.crypto (a CAPABILITIES name); absent means nothing special.
_NEEDS = {
    "S256": "sha256",
    "S384": "sha384",
    "AES1": "aes128",
    "AES3": "aes256",
    "HS80": "sha1",
    "HS32": "sha1",
    "X255": "x25519",
    "X448": "x448",
    "EC25": "p256",
    "EC38": "p384",
    "DH3k": "ffdh",
    "DH2k": "ffdh",
}

MANDATORY = {
    "hash": ("S256",),
    "cipher": ("AES1",),
    "auth_tag": ("HS32", "HS80"),
    "key_agreement": ("DH3k",),
    "sas": ("B32",),
}

# Rank by the measured cost above (1 = fastest).
COST = {"X255": 1, "EC25": 2, "X448": 3, "DH2k": 4, "EC38": 5, "DH3k": 6}


def _runnable(name):
    need = _NEEDS.get(name)
    return need is None or crypto.available(need)


SUPPORTED = {}
for _kind in KINDS:
    SUPPORTED[_kind] = tuple(name for name in IMPLEMENTED[_kind] if _runnable(name))
DEFAULTS = dict(SUPPORTED)
