"""Digest credentials and the per-hop challenge cache (RFC 3261 §22, RFC 7616). Sans-I/O.

The UA answers a 401/407 once per realm (a second challenge of the same realm without stale=true means
the password is wrong: no retry loop), and afterwards answers the last challenge of each realm seen
from a next hop before being asked again, so REGISTER refreshes and requests inside a challenged call
are not challenged every time (RFC 7616 §3.4.5: the same nonce with the nonce count incremented).

API
---
Credentials(username, password, cnonce)
    `cnonce()` -> str, a fresh client nonce (the UA's injected rng). `password` None: never answers.
    can_answer -> bool (a password is configured).
    answer_challenge(request, status, challenge, destination) -> None, adds the
        Authorization/Proxy-Authorization answering `response` (401/407) to `request` (a copy being
        resent), replacing any older one, and caches the challenge for `destination`.
    challenge_of(response) -> auth challenge or None (None: no scheme we support).
    forget(status, realm, destination)   drop a cached challenge (the password was refused).
    add_cached(request, destination)     pre-emptive answers for `request` (not CANCEL/ACK, §22.1;
        only qop=auth with a non-session algorithm, where a new nc and cnonce make a fresh answer).
resend_with_credentials(ua, tx, response, now) -> (new transaction, None) or (None, failure reason)
    the UserAgent's answer to a 401/407: tx.request again, with a new branch and CSeq and credentials
MAX_AUTH_TRIES, MAX_CREDENTIALS
"""

from firmware.sip.auth import build_authorization, choose_challenge
from firmware.sip.message import Request

MAX_AUTH_TRIES = 3
MAX_CREDENTIALS = 8
# Methods never sent with credentials we were not asked for: CANCEL and ACK cannot be challenged
# (§22.1); they must match the INVITE they belong to.
NO_PREEMPTIVE_AUTH = ("CANCEL", "ACK")


def _header_for(status):
    # §22.2 / §22.3: a 401 asks for Authorization, a 407 (a proxy) for Proxy-Authorization.
    return "Authorization" if status == 401 else "Proxy-Authorization"


class _Cached:
    """The last digest challenge of one realm from one next hop (RFC 3261 §22.3, RFC 7616 §3.4.5)."""

    __slots__ = ("status", "destination", "challenge", "nc")

    def __init__(self, status, destination, challenge):
        self.status = status  # 401: Authorization, 407: Proxy-Authorization
        self.destination = destination
        self.challenge = challenge
        self.nc = 0


class Credentials:
    __slots__ = ("username", "password", "_cnonce", "_cache")

    def __init__(self, username, password, cnonce):
        self.username = username
        self.password = password
        self._cnonce = cnonce
        self._cache = []  # [_Cached], most recent last, at most MAX_CREDENTIALS

    @property
    def can_answer(self):
        return self.password is not None

    def challenge_of(self, response):
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        return choose_challenge(response.headers.get_all(header))

    def answer_challenge(self, request, status, challenge, destination):
        cached = self._remember(status, destination, challenge)
        cached.nc += 1
        request.headers.remove("Authorization")
        request.headers.remove("Proxy-Authorization")
        request.headers.add(_header_for(status), self._authorization(challenge, request, cached.nc))

    def _authorization(self, challenge, request, nc):
        return build_authorization(
            challenge, self.username, self.password, request.method, str(request.uri), self._cnonce(), nc
        )

    def _remember(self, status, destination, challenge):
        """The cache entry for this realm and next hop, now holding `challenge` (nc restarts at 0 for a
        new nonce, RFC 7616 §3.4.5)."""
        for cached in self._cache:
            if cached.status == status and cached.destination == destination:
                if cached.challenge.realm == challenge.realm:
                    if cached.challenge.nonce != challenge.nonce:
                        cached.nc = 0
                    cached.challenge = challenge
                    return cached
        if len(self._cache) >= MAX_CREDENTIALS:
            self._cache.pop(0)
        cached = _Cached(status, destination, challenge)
        self._cache.append(cached)
        return cached

    def forget(self, status, realm, destination):
        self._cache = [
            c
            for c in self._cache
            if not (c.status == status and c.destination == destination and c.challenge.realm == realm)
        ]

    def add_cached(self, request, destination):
        if self.password is None or request.method in NO_PREEMPTIVE_AUTH:
            return
        if request.headers.get("Authorization") is not None or request.headers.get("Proxy-Authorization"):
            return
        added = False
        for cached in self._cache:
            challenge = cached.challenge
            if cached.destination != destination or "auth" not in challenge.qop:
                continue
            if challenge.algorithm.upper().endswith("-SESS"):
                continue
            cached.nc += 1
            request.headers.add(_header_for(cached.status), self._authorization(challenge, request, cached.nc))
            added = True
        if added:
            request.invalidate()


def resend_with_credentials(ua, tx, response, now):
    """Resend tx.request through `ua` answering the 401/407 `response`, once per realm."""
    context = tx.context
    credentials = ua._credentials
    if not credentials.can_answer:
        return None, "authentication required"
    challenge = credentials.challenge_of(response)
    if challenge is None:
        return None, "unsupported authentication challenge"
    realm_key = (response.status, challenge.realm)
    if (realm_key in context.realms and not challenge.stale) or context.tries >= MAX_AUTH_TRIES:
        # We already answered a challenge of this realm and got challenged again without
        # stale=true (RFC 7616 §3.3): the credentials are wrong. No retry loop. (Credentials
        # sent unasked from the cache do not count: a new nonce for them is answered once.)
        credentials.forget(response.status, challenge.realm, tx.destination)
        return None, "wrong password"
    context.tries += 1
    context.realms.append(realm_key)
    old = tx.request
    request = Request(old.method, old.uri.copy(), old.headers.copy(), old.body)
    request.headers.set("Via", ua._via(ua._new_branch()))
    call = ua.calls.get(context.call_id) if context.call_id else None
    if context.kind in ("register", "unregister"):
        ua._reg.cseq += 1
        number = ua._reg.cseq
    elif call is not None and call.dialog is not None and context.kind != "invite":
        number = call.dialog.next_cseq()
    else:
        number = old.cseq[0] + 1  # §8.1.3.5: the same request again, with a higher CSeq
    request.headers.set("CSeq", "{} {}".format(number, old.method))
    credentials.answer_challenge(request, response.status, challenge, tx.destination)
    request.invalidate()
    new_tx = ua._send_request(request, tx.destination, now, context)
    if call is not None and context.kind == "invite":
        call.invite = request
        call.invite_tx = new_tx
    elif call is not None and context.kind in ("reinvite", "refresh"):
        call.reinvite_tx = new_tx
    return new_tx, None
