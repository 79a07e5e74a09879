"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).

API
---
parse_challenge(value) -> Challenge
    A WWW-Authenticate / Proxy-Authenticate value ("Digest realm=..., nonce=..., qop=\"auth\", ...").
    Raises RemoteProtocolError for a malformed value, a scheme other than Digest, or missing realm/nonce.
choose_challenge(values) -> Challenge or None
    The best challenge we can answer among several header values: SHA-256 before MD5 (RFC 8760 §2.4),
    only algorithms MD5, MD5-sess, SHA-256, SHA-256-sess; qop "auth" or none. Unparseable values skipped.
Challenge: scheme, realm, nonce, opaque, algorithm ("MD5", "SHA-256", "MD5-sess", "SHA-256-sess"),
    qop (list of str), stale (bool).
parse_auth_params(text) -> list of [name(lower), value] pairs; comma-separated, quoted strings allowed.
compute_response(algorithm, username, realm, password, method, uri, nonce, nc=None, cnonce=None,
                 qop=None) -> hex str
    The "response" value of RFC 7616 §3.4.1 (qop "auth" or none; -sess variants per §3.4.2).
build_authorization(challenge, username, password, method, uri, cnonce, nc) -> header value
    `uri` is the Request-URI text, `cnonce` a random token from the caller's rng, `nc` the nonce count
    (int, starting at 1 for each new nonce).
parse_authorization(value) -> list of pairs (used by tests and a registrar-side check).
"""

import binascii

from firmware import crypto
from firmware.errors import RemoteProtocolError
from firmware.sip.uri import quote, unquote

_ALGORITHMS = {"MD5": "md5", "MD5-SESS": "md5", "SHA-256": "sha256", "SHA-256-SESS": "sha256"}
_PREFERENCE = ("SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS")
_CANONICAL = {"MD5": "MD5", "MD5-SESS": "MD5-sess", "SHA-256": "SHA-256", "SHA-256-SESS": "SHA-256-sess"}


class Challenge:
    __slots__ = ("scheme", "realm", "nonce", "opaque", "algorithm", "qop", "stale")

    def __init__(self, realm, nonce, opaque=None, algorithm="MD5", qop=None, stale=False, scheme="Digest"):
        self.scheme = scheme
        self.realm = realm
        self.nonce = nonce
        self.opaque = opaque
        self.algorithm = algorithm
        self.qop = qop if qop is not None else []
        self.stale = stale


def parse_auth_params(text):
    params = []
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        eq = text.find("=", i)
        if eq < 0:
            raise RemoteProtocolError("auth parameter without value")
        name = text[i:eq].strip().lower()
        if not name or " " in name or "," in name or '"' in name:
            raise RemoteProtocolError("bad auth parameter name")
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            j = i + 1
            while j < n:
                if text[j] == "\\":
                    j += 2
                    continue
                if text[j] == '"':
                    break
                j += 1
            if j >= n:
                raise RemoteProtocolError("unterminated quoted auth parameter")
            value = unquote(text[i : j + 1])
            i = j + 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] != ",":
                raise RemoteProtocolError("junk after quoted auth parameter")
        else:
            j = text.find(",", i)
            if j < 0:
                j = n
            value = text[i:j].strip()
            if '"' in value or " " in value:
                raise RemoteProtocolError("bad auth parameter value")
            i = j
        params.append([name, value])
        if len(params) > 32:
            raise RemoteProtocolError("too many auth parameters")
    return params


def _param(params, name):
    for key, value in params:
        if key == name:
            return value
    return None


def parse_challenge(value):
    value = value.strip()
    space = value.find(" ")
    if space < 0:
        raise RemoteProtocolError("challenge without parameters")
    scheme = value[:space]
    if scheme.lower() != "digest":
        raise RemoteProtocolError("unsupported authentication scheme " + scheme)
    params = parse_auth_params(value[space + 1 :])
    realm = _param(params, "realm")
    nonce = _param(params, "nonce")
    if realm is None or nonce is None:
        raise RemoteProtocolError("challenge without realm or nonce")
    algorithm = (_param(params, "algorithm") or "MD5").upper()
    qop_text = _param(params, "qop")
    qop = [q.strip().lower() for q in qop_text.split(",") if q.strip()] if qop_text else []
    stale = (_param(params, "stale") or "").lower() == "true"
    return Challenge(realm, nonce, _param(params, "opaque"), algorithm, qop, stale, "Digest")


def _usable(challenge):
    if challenge.algorithm not in _ALGORITHMS:
        return False
    return not challenge.qop or "auth" in challenge.qop


def choose_challenge(values):
    usable = []
    for value in values:
        try:
            challenge = parse_challenge(value)
        except RemoteProtocolError:
            continue
        if _usable(challenge):
            usable.append(challenge)
    for algorithm in _PREFERENCE:
        for challenge in usable:
            if challenge.algorithm == algorithm:
                return challenge
    return None


def _hex_hash(hash_name, text):
    return binascii.hexlify(crypto.digest(hash_name, text.encode())).decode()


def compute_response(algorithm, username, realm, password, method, uri, nonce, nc=None, cnonce=None, qop=None):
    algorithm = algorithm.upper()
    hash_name = _ALGORITHMS.get(algorithm)
    if hash_name is None:
        raise RemoteProtocolError("unsupported digest algorithm " + algorithm)
    ha1 = _hex_hash(hash_name, "{}:{}:{}".format(username, realm, password))
    if algorithm.endswith("-SESS"):
        ha1 = _hex_hash(hash_name, "{}:{}:{}".format(ha1, nonce, cnonce or ""))
    ha2 = _hex_hash(hash_name, "{}:{}".format(method, uri))
    if qop:
        return _hex_hash(hash_name, "{}:{}:{:08x}:{}:{}:{}".format(ha1, nonce, nc, cnonce, qop, ha2))
    return _hex_hash(hash_name, "{}:{}:{}".format(ha1, nonce, ha2))


def build_authorization(challenge, username, password, method, uri, cnonce, nc):
    qop = "auth" if "auth" in challenge.qop else None
    response = compute_response(
        challenge.algorithm, username, challenge.realm, password, method, uri, challenge.nonce, nc, cnonce, qop
    )
    parts = [
        "username=" + quote(username),
        "realm=" + quote(challenge.realm),
        "nonce=" + quote(challenge.nonce),
        "uri=" + quote(uri),
        "response=" + quote(response),
        "algorithm=" + _CANONICAL[challenge.algorithm],
    ]
    if qop:
        parts.append("cnonce=" + quote(cnonce))
        parts.append("qop=auth")
        parts.append("nc={:08x}".format(nc))
    if challenge.opaque is not None:
        parts.append("opaque=" + quote(challenge.opaque))
    return "Digest " + ", ".join(parts)


def parse_authorization(value):
    value = value.strip()
    space = value.find(" ")
    if space < 0 or value[:space].lower() != "digest":
        raise RemoteProtocolError("bad Authorization")
    return parse_auth_params(value[space + 1 :])
