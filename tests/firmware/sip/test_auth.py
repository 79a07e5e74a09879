"""Digest authentication (RFC 2617, RFC 7616, RFC 8760): vectors, parsing, and the UA against a fake
registrar/proxy that checks our answers."""

from firmware.errors import RemoteProtocolError
from firmware.sip import events
from firmware.sip.auth import (
    build_authorization,
    choose_challenge,
    compute_response,
    parse_authorization,
    parse_challenge,
)
from firmware.sip.message import make_response, parse_message
from firmware.sip.useragent import UserAgent
from tests.firmware.sip.netsim import Network, counter_rng
from tests.portable import raises

MICROPYTHON = True

UA = ("127.0.0.1", 5061)
REGISTRAR = ("127.0.0.1", 5080)


def test_rfc2617_md5_qop_auth_vector():
    response = compute_response(
        "MD5",
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
        "GET",
        "/dir/index.html",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        1,
        "0a4f113b",
        "auth",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


def test_rfc7616_sha256_and_md5_vectors():
    args = (
        "Mufasa",
        "http-auth@example.org",
        "Circle of Life",
        "GET",
        "/dir/index.html",
        "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        1,
        "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        "auth",
    )
    assert compute_response("SHA-256", *args) == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    assert compute_response("MD5", *args) == "8ca523f5e9506fed4657c9700eebdbec"


def test_parse_and_choose_challenge():
    md5 = 'Digest realm="example.com", nonce="abc", qop="auth,auth-int", opaque="xyz", stale=TRUE'
    sha = 'Digest realm="example.com", nonce="def", algorithm=SHA-256, qop="auth"'
    challenge = parse_challenge(md5)
    assert challenge.realm == "example.com" and challenge.nonce == "abc" and challenge.opaque == "xyz"
    assert challenge.qop == ["auth", "auth-int"] and challenge.stale is True and challenge.algorithm == "MD5"
    assert choose_challenge([md5, sha]).nonce == "def"
    assert choose_challenge(['Digest realm="r", nonce="n", algorithm=SHA-512-256', "Basic realm=x"]) is None
    for bad in (
        "Digest",
        'Digest realm="r"',
        'Basic realm="r", nonce="n"',
        'Digest realm="r, nonce=n',
        'Digest realm="r" x, nonce="n"',
        "Digest =x",
    ):
        raises(RemoteProtocolError, parse_challenge, bad)


def test_build_authorization_round_trip():
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth", opaque="o", algorithm=SHA-256')
    value = build_authorization(challenge, "alice", "pw", "REGISTER", "sip:example.com", "c1", 3)
    params = dict((k, v) for k, v in parse_authorization(value))
    assert params["nc"] == "00000003" and params["qop"] == "auth" and params["algorithm"] == "SHA-256"
    assert params["opaque"] == "o" and params["uri"] == "sip:example.com"
    expected = compute_response("SHA-256", "alice", "r", "pw", "REGISTER", "sip:example.com", "n", 3, "c1", "auth")
    assert params["response"] == expected


class FakeRegistrar:
    """Challenges every REGISTER without valid credentials (qop=auth), then grants the binding."""

    def __init__(
        self,
        password="secret",
        algorithm="MD5",
        grant=None,
        min_expires=None,
        stale_first=False,
        proxy_auth=False,
        fresh_nonce_on_failure=False,
    ):
        self.password = password
        self.algorithm = algorithm
        self.grant = grant
        self.min_expires = min_expires
        self.stale_first = stale_first
        self.proxy_auth = proxy_auth
        self.fresh_nonce_on_failure = fresh_nonce_on_failure
        self.nonce_count = 0
        self.nonce = None
        self.last_nc = 0  # the highest nonce count seen for self.nonce: a lower or equal one is a replay
        self.requests = []
        self.verified = []
        self.nc_seen = []

    def new_nonce(self):
        """The registrar's nonce expires: answers with the old one get 401 stale=true."""
        self.nonce_count += 1
        self.nonce = "nonce{}".format(self.nonce_count)
        self.last_nc = 0

    def _challenge(self, request, stale=False):
        self.new_nonce()
        status = 407 if self.proxy_auth else 401
        response = make_response(request, status, to_tag="reg")
        header = "Proxy-Authenticate" if self.proxy_auth else "WWW-Authenticate"
        value = 'Digest realm="example.com", nonce="{}", qop="auth", algorithm={}'.format(self.nonce, self.algorithm)
        if stale:
            value += ", stale=true"
        response.headers.add(header, value)
        return [response.to_bytes()]

    def __call__(self, data, src, now):
        request = parse_message(data)
        if request.method == "ACK":
            return []
        self.requests.append(request)
        header = request.headers.get("Proxy-Authorization" if self.proxy_auth else "Authorization")
        if header is None:
            return self._challenge(request)
        params = dict((k, v) for k, v in parse_authorization(header))
        expected = compute_response(
            self.algorithm,
            params["username"],
            params["realm"],
            self.password,
            request.method,
            params["uri"],
            params["nonce"],
            int(params["nc"], 16),
            params["cnonce"],
            params["qop"],
        )
        if params["nonce"] != self.nonce and params["response"] == expected and not self.fresh_nonce_on_failure:
            return self._challenge(request, stale=True)  # right password, expired nonce (RFC 7616 §3.3)
        nc = int(params["nc"], 16)
        if params["nonce"] == self.nonce and params["response"] == expected and nc <= self.last_nc:
            return self._challenge(request, stale=True)  # a replayed nonce count (RFC 7616 §3.4.5)
        if params["nonce"] != self.nonce or params["response"] != expected:
            if self.stale_first and len(self.verified) == 0 and params["nonce"] == self.nonce:
                pass
            elif self.fresh_nonce_on_failure:
                return self._challenge(request)
            else:
                response = make_response(request, 401 if not self.proxy_auth else 407, to_tag="reg")
                header_name = "Proxy-Authenticate" if self.proxy_auth else "WWW-Authenticate"
                response.headers.add(
                    header_name,
                    'Digest realm="example.com", nonce="{}", qop="auth", algorithm={}'.format(
                        self.nonce, self.algorithm
                    ),
                )
                return [response.to_bytes()]
        if self.stale_first and not self.verified:
            self.verified.append("stale")
            return self._challenge(request, stale=True)
        self.last_nc = nc
        self.nc_seen.append(nc)
        self.verified.append(params["username"])
        if request.method != "REGISTER":
            return [make_response(request, 200, to_tag="x").to_bytes()]
        expires = int(request.headers.get("Expires"))
        if self.min_expires and 0 < expires < self.min_expires:
            response = make_response(request, 423, to_tag="reg")
            response.headers.add("Min-Expires", str(self.min_expires))
            return [response.to_bytes()]
        response = make_response(request, 200, to_tag="reg")
        granted = self.grant if self.grant is not None and expires else expires
        contact = request.headers.get("Contact").split(";")[0]
        response.headers.add("Contact", "{};expires={}".format(contact, granted))
        return [response.to_bytes()]


def _ua(password="secret", expires=3600):
    return UserAgent(
        UA,
        counter_rng("r"),
        aor="sip:alice@example.com",
        password=password,
        outbound_proxy=REGISTRAR,
        register_expires=expires,
        # These tests count every request and nonce count; keep-alives and probes have their own tests.
        keepalive_interval=None,
        probe_interval=None,
    )


def _setup(registrar, ua):
    net = Network()
    net.add(UA, ua)
    net.add_sink(REGISTRAR, registrar)
    return net


def test_register_md5_then_refresh_before_expiry_then_unregister():
    registrar = FakeRegistrar(grant=120)
    ua = _ua()
    net = _setup(registrar, ua)
    ua.register(net.now)
    net.run(1)
    assert net.find(UA, events.Registered)[0].expires == 120
    assert ua.registered and ua.registration_expires == 120
    first = registrar.requests[0]
    assert first.uri.host == "example.com" and first.to_addr.uri.user == "alice"
    assert [r.cseq[0] for r in registrar.requests] == [1, 2]
    assert len({r.call_id for r in registrar.requests}) == 1
    net.run(59)
    assert len(registrar.requests) == 2
    assert net.run_until(lambda: len(registrar.requests) == 3, 2)  # refresh at half of 120 s (§10.2.4)
    assert ua.registered  # the binding stands during the refresh
    net.run(1)
    # The refresh answers the last challenge again (same nonce, nc 2) and is not challenged.
    assert len(registrar.requests) == 3 and len(net.find(UA, events.Registered)) == 2
    assert "nc=00000002" in registrar.requests[2].headers.get("Authorization")
    ua.unregister(net.now)
    assert ua.registered  # the binding stands until the registrar answers
    net.run(1)
    assert net.find(UA, events.Unregistered) == [events.Unregistered(200)]
    assert registrar.requests[-1].headers.get("Expires") == "0"
    assert not ua.registered
    assert registrar.nc_seen == [1, 2, 3]
    net.run(200)
    assert len(registrar.requests) == 4  # nothing after unregistering


def test_register_sha256():
    registrar = FakeRegistrar(algorithm="SHA-256")
    ua = _ua()
    net = _setup(registrar, ua)
    ua.register(net.now)
    net.run(1)
    assert ua.registered and registrar.verified == ["alice"]
    assert "algorithm=SHA-256" in registrar.requests[-1].headers.get("Authorization")


def test_wrong_password_fails_clearly_without_retry_loop():
    registrar = FakeRegistrar(password="right")
    ua = _ua(password="wrong")
    net = _setup(registrar, ua)
    ua.register(net.now)
    net.run(3600)
    assert net.find(UA, events.RegistrationFailed) == [events.RegistrationFailed(401, "wrong password", None)]
    assert len(registrar.requests) == 2
    assert not ua.registered


def test_wrong_password_with_a_fresh_nonce_each_time_still_fails_at_once():
    registrar = FakeRegistrar(password="right", fresh_nonce_on_failure=True)
    ua = _ua(password="wrong")
    net = _setup(registrar, ua)
    ua.register(net.now)
    net.run(10)
    assert net.find(UA, events.RegistrationFailed) == [events.RegistrationFailed(401, "wrong password", None)]
    assert len(registrar.requests) == 2


def test_no_password_is_authentication_required():
    registrar = FakeRegistrar()
    ua = _ua(password=None)
    net = _setup(registrar, ua)
    ua.register(net.now)
    net.run(10)
    assert net.find(UA, events.RegistrationFailed)[0].reason == "authentication required"


def test_stale_nonce_is_retried():
    registrar = FakeRegistrar(stale_first=True)
    ua = _ua()
    net = _setup(registrar, ua)
    ua.register(net.now)
    net.run(2)
    assert ua.registered
    assert len(registrar.requests) == 3


def test_423_interval_too_brief_uses_min_expires():
    registrar = FakeRegistrar(min_expires=1800)
    ua = _ua(expires=60)
    net = _setup(registrar, ua)
    ua.register(net.now)
    net.run(2)
    assert net.find(UA, events.Registered)[0].expires == 1800
    assert registrar.requests[-1].headers.get("Expires") == "1800"


def test_invite_with_proxy_authentication():
    proxy = FakeRegistrar(proxy_auth=True, algorithm="SHA-256")
    ua = _ua()
    net = _setup(proxy, ua)
    ua.invite("sip:bob@example.com", b"", net.now)
    net.run(1)
    assert proxy.verified == ["alice"]
    invites = net.sent(src=UA, line_prefix="INVITE")
    assert len(invites) == 2
    assert b"CSeq: 2 INVITE" in invites[1]["data"] and b"Proxy-Authorization: Digest" in invites[1]["data"]
    assert net.sent(src=UA, line_prefix="ACK")  # the 407 is ACKed by the transaction (§17.1.1.3)


def test_refresh_with_an_expired_nonce_gets_stale_and_is_answered():
    registrar = FakeRegistrar(grant=120)
    ua = _ua()
    net = _setup(registrar, ua)
    ua.register(net.now)
    net.run(1)
    registrar.new_nonce()  # the registrar forgets our nonce before the refresh
    stale_nonce = registrar.nonce
    net.run(60)
    assert len(net.find(UA, events.Registered)) == 2 and not net.find(UA, events.RegistrationFailed)
    # refresh with the old nonce -> 401 stale=true -> the new nonce, counted from 1 again
    assert len(registrar.requests) == 4
    assert registrar.nc_seen == [1, 1]
    assert registrar.nonce != stale_nonce and registrar.nonce in registrar.requests[3].headers.get("Authorization")
    # The next refresh uses the new nonce, nc 2, unchallenged.
    net.run(61)
    assert len(registrar.requests) == 5 and registrar.nc_seen == [1, 1, 2]


def test_refresh_challenged_with_a_new_nonce_without_stale_is_answered_once():
    registrar = FakeRegistrar(grant=120, fresh_nonce_on_failure=True)
    ua = _ua()
    net = _setup(registrar, ua)
    ua.register(net.now)
    net.run(1)
    registrar.new_nonce()
    net.run(60)
    # Credentials sent unasked that the registrar refuses are not a wrong password: answered once.
    assert len(net.find(UA, events.Registered)) == 2 and not net.find(UA, events.RegistrationFailed)
    assert len(registrar.requests) == 4


def test_wrong_password_drops_the_cached_credentials():
    registrar = FakeRegistrar(grant=120)
    ua = _ua()
    net = _setup(registrar, ua)
    ua.register(net.now)
    net.run(1)
    registrar.password = "changed"  # the account's password changed on the server
    net.run(60)
    assert net.find(UA, events.RegistrationFailed)[0].reason == "wrong password"
    count = len(registrar.requests)
    ua.register(net.now)
    net.run(1)
    # No stale credentials sent unasked any more: the new attempt starts by being challenged.
    assert registrar.requests[count].headers.get("Authorization") is None


def test_session_algorithms_are_not_reused():
    registrar = FakeRegistrar(grant=120, algorithm="MD5-sess")
    ua = _ua()
    net = _setup(registrar, ua)
    ua.register(net.now)
    net.run(61)
    assert len(net.find(UA, events.Registered)) == 2
    assert registrar.requests[2].headers.get("Authorization") is None  # the refresh is challenged again


def test_second_invite_through_the_proxy_answers_the_last_challenge():
    proxy = FakeRegistrar(proxy_auth=True)
    ua = _ua()
    net = _setup(proxy, ua)
    ua.invite("sip:bob@example.com", b"", net.now)
    net.run(1)
    ua.invite("sip:carol@example.com", b"", net.now)
    net.run(1)
    invites = net.sent(src=UA, line_prefix="INVITE")
    assert len(invites) == 3  # the first one was challenged, the second one was not
    assert b"nc=00000002" in invites[2]["data"] and b"Proxy-Authorization: Digest" in invites[2]["data"]
    assert proxy.nc_seen == [1, 2]
    # CANCEL and ACK never carry credentials nobody asked for.
    for line in ("ACK", "CANCEL"):
        for sent in net.sent(src=UA, line_prefix=line):
            assert b"Authorization" not in sent["data"]
