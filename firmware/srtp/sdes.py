"""SDES keying: the SDP `a=crypto` attribute (RFC 4568) for SRTP without ZRTP.

    a=crypto:<tag> <crypto-suite> inline:<base64(master key || master salt)>[|<lifetime>][|<MKI>:<len>]
             [<session params>]

API (attribute values are the text after "a=crypto:"):
    CryptoAttribute(tag, suite, master_key, master_salt, lifetime=None, mki=None)
        .value() -> str                     "1 AES_CM_128_HMAC_SHA1_80 inline:..."
        .params() -> (profile, master_key, master_salt)   the immutable tuple SrtpContext takes
                                            (suite aliases such as AES_CM_256_HMAC_SHA1_80 mapped)
    parse_crypto(value) -> CryptoAttribute  RemoteProtocolError for malformed text, an unknown suite,
                                            wrong key length or a session parameter we do not honour
    make_offer(rng, suites=DEFAULT_OFFER) -> [CryptoAttribute]   tags 1..n, fresh keys from rng(n)
    answer_offer(values, rng, suites=SUPPORTED_PROFILES) -> (theirs, ours) or None
        picks the first offered line (the offerer's preference order) whose suite we support and
        can use, and returns the peer's attribute (our receive key) and our answer with the same
        tag and suite and a fresh key (our send key). None if nothing is acceptable (answer 488).
    accept_answer(offer, value) -> (ours, theirs)
        offer: the list make_offer returned; value: the answerer's a=crypto value. RemoteProtocolError
        if the answer's tag is not one we offered or its suite differs from the offered one.

Keys go to SrtpContext as `ours.params()` (send) and `theirs.params()` (receive). MKI is not supported:
offered lines with an MKI are skipped when answering, and never generated.
"""

import binascii

from firmware.digits import decimal_or_none, is_ascii_digits
from firmware.errors import RemoteProtocolError
from firmware.srtp.context import PROFILES, SUPPORTED_PROFILES
from firmware.srtp.kdf import SALT_LENGTH

# What we offer, strongest first (the AES-192 suites are rarely implemented by peers).
DEFAULT_OFFER = (
    "AES_256_CM_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_80",
    "AES_256_CM_HMAC_SHA1_32",
    "AES_CM_128_HMAC_SHA1_32",
)

# Spellings some implementations use for the RFC 6188 suites (FreeSWITCH, older SDKs): accepted, and
# echoed back as they were offered, since the answer must repeat the offered suite name.
SUITE_ALIASES = {
    "AES_CM_256_HMAC_SHA1_80": "AES_256_CM_HMAC_SHA1_80",
    "AES_CM_256_HMAC_SHA1_32": "AES_256_CM_HMAC_SHA1_32",
    "AES_CM_192_HMAC_SHA1_80": "AES_192_CM_HMAC_SHA1_80",
    "AES_CM_192_HMAC_SHA1_32": "AES_192_CM_HMAC_SHA1_32",
}


def profile_of(suite):
    """Our SrtpContext profile name for an a=crypto suite name (or None if unsupported)."""
    profile = SUITE_ALIASES.get(suite, suite)
    return profile if profile in PROFILES else None


# Session parameters (RFC 4568 §6.3) that would weaken or change what SrtpContext does.
_REFUSED_SESSION_PARAMS = (
    "UNENCRYPTED_SRTP",
    "UNENCRYPTED_SRTCP",
    "UNAUTHENTICATED_SRTP",
    "KDR=",
    "FEC_ORDER=",
    "FEC_KEY=",
    "WSH=",
)


class CryptoAttribute:
    __slots__ = ("tag", "suite", "master_key", "master_salt", "lifetime", "mki")

    def __init__(self, tag, suite, master_key, master_salt, lifetime=None, mki=None):
        self.tag = tag
        self.suite = suite
        self.master_key = master_key
        self.master_salt = master_salt
        self.lifetime = lifetime
        self.mki = mki

    def __repr__(self):  # never shows key material
        return "CryptoAttribute(tag={}, suite={})".format(self.tag, self.suite)

    def params(self):
        return (profile_of(self.suite), self.master_key, self.master_salt)

    def value(self):
        inline = binascii.b2a_base64(self.master_key + self.master_salt).strip().decode()
        text = "{} {} inline:{}".format(self.tag, self.suite, inline)
        if self.lifetime is not None:
            text += "|" + self.lifetime
        if self.mki is not None:
            text += "|" + self.mki
        return text


def _decode_base64(text):
    # RFC 4568 §9.2's key-salt grammar does not require "=" padding, and rtpengine (a carrier's media
    # relay) strips it from the keys it passes on: pad before decoding. A length of 4n + 1 stays invalid.
    text = text + "=" * (-len(text) % 4)
    try:
        return binascii.a2b_base64(text)
    except ValueError:  # binascii.Error is a ValueError
        pass
    raise RemoteProtocolError("a=crypto key is not valid base64")


def _parse_key_params(text, suite):
    if not text.startswith("inline:"):
        raise RemoteProtocolError("a=crypto key method is not inline:", 488)
    parts = text[len("inline:") :].split("|")
    if len(parts) > 3:
        raise RemoteProtocolError("a=crypto key parameters have too many fields")
    material = _decode_base64(parts[0])
    key_length = PROFILES[profile_of(suite)][0]
    if len(material) != key_length + SALT_LENGTH:
        raise RemoteProtocolError("a=crypto key length does not match {}".format(suite), 488)
    lifetime = mki = None
    for extra in parts[1:]:
        if ":" in extra:
            mki = extra
            mki_value, _, mki_length = extra.partition(":")
            # ASCII digits only (firmware.digits): str.isdigit() let "²" through to int() (issue 11).
            if not is_ascii_digits(mki_value) or decimal_or_none(mki_length, 128, minimum=1) is None:
                raise RemoteProtocolError("a=crypto MKI is malformed")
        else:
            lifetime = extra
            digits = extra[2:] if extra.startswith("2^") else extra
            if not is_ascii_digits(digits):
                raise RemoteProtocolError("a=crypto lifetime is malformed")
    return material[:key_length], material[key_length:], lifetime, mki


def parse_crypto(value):
    fields = value.split()
    if len(fields) < 3:
        raise RemoteProtocolError("a=crypto needs a tag, a suite and key parameters")
    tag_text, suite, key_params = fields[0], fields[1], fields[2]
    if not is_ascii_digits(tag_text) or len(tag_text) > 9:
        raise RemoteProtocolError("a=crypto tag is not a 1-9 digit number")
    if profile_of(suite) is None:
        raise RemoteProtocolError("a=crypto suite {} is not supported".format(suite), 488)
    if ";" in key_params:
        raise RemoteProtocolError("a=crypto with several keys (MKI) is not supported", 488)
    master_key, master_salt, lifetime, mki = _parse_key_params(key_params, suite)
    for param in fields[3:]:
        for refused in _REFUSED_SESSION_PARAMS:
            if param == refused or (refused.endswith("=") and param.startswith(refused)):
                raise RemoteProtocolError("a=crypto session parameter {} is not honoured".format(param), 488)
    return CryptoAttribute(decimal_or_none(tag_text, 999999999), suite, master_key, master_salt, lifetime, mki)


def _fresh(rng, tag, suite):
    key_length = PROFILES[profile_of(suite)][0]
    return CryptoAttribute(tag, suite, rng(key_length), rng(SALT_LENGTH))


def make_offer(rng, suites=DEFAULT_OFFER):
    return [_fresh(rng, tag, suite) for tag, suite in zip(range(1, len(suites) + 1), suites)]


def answer_offer(values, rng, suites=SUPPORTED_PROFILES):
    for value in values:
        try:
            theirs = parse_crypto(value)
        except RemoteProtocolError:
            continue  # RFC 4568 §7.1.2: skip lines we cannot use, answer with one we can
        if profile_of(theirs.suite) in suites and theirs.mki is None:
            return theirs, _fresh(rng, theirs.tag, theirs.suite)
    return None


def accept_answer(offer, value):
    theirs = parse_crypto(value)
    for ours in offer:
        if ours.tag == theirs.tag:
            if ours.suite != theirs.suite:
                raise RemoteProtocolError("a=crypto answer changed the suite of tag {}".format(theirs.tag), 488)
            if theirs.mki is not None:
                raise RemoteProtocolError("a=crypto answer uses an MKI", 488)
            return ours, theirs
    raise RemoteProtocolError("a=crypto answer tag {} was not offered".format(theirs.tag), 488)
