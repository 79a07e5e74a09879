"""The fuzz invariant (DESIGN.md): any bytes in, either a parsed value or RemoteProtocolError out."""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.errors import RemoteProtocolError
from firmware.sdp import answer_offer, parse_sdp, remote_media
from firmware.sip.message import Request, StreamFramer, check_request, check_response, make_response, parse_message
from firmware.sip.uri import parse_name_addr, parse_uri
from tests.firmware.sip.test_message import INVITE
from tests.firmware.test_sdp import LINPHONE_OFFER

# SIP_FUZZ_EXAMPLES=5000 for a longer hunt (the default keeps `make test` quick).
FUZZ = settings(
    max_examples=int(os.environ.get("SIP_FUZZ_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

SIP_ALPHABET = st.sampled_from(
    [b"\r\n", b" ", b":", b";", b",", b'"', b"<", b">", b"@", b"=", b"\\", b"\t", b"%", b"[", b"]", b"/"]
    + [bytes([c]) for c in b"SIPVIaivtfl0123456789.-"]
    + [b"SIP/2.0", b"INVITE", b"Via", b"Content-Length", b"CSeq", b"\xff", b"\x00"]
)

# What a peer puts where a number belongs to break a parser that trusts str.isdigit(), int() or
# str.strip() (issue 11: `a=ptime:\xb2` and `a=ptime:20\x1d` killed the phone): Unicode digits that
# isdigit() accepts and int() rejects (superscripts) or silently converts (Arabic-Indic, fullwidth,
# mathematical digits), control characters that strip()/split() remove, overlong UTF-8 spellings of ASCII
# digits, signs, and numbers far beyond any field's range.
HOSTILE_NUMBERS = st.sampled_from(
    [ch.encode() for ch in "\u00b2\u00b3\u00b9\u2070\u2074\u2079\u0660\u0663\u06f5\u0966\uff10\uff17"]
    + [ch.encode() for ch in "\U0001d7d8\u2460\u00bd"]
    + [bytes([c]) for c in (0x1C, 0x1D, 0x1E, 0x1F, 0x0B, 0x0C, 0x7F, 0x01)]
    + ["\x85".encode(), "\u00a0".encode(), "\u2028".encode(), "\u3000".encode()]
    + [b"\xc0\xb0", b"\xc0\xb7", b"\xe0\x80\xb2", b"\xf0\x80\x80\xb9"]
    + [b"-1", b"+5", b"0x10", b"1e3", b"1_000", b" 2", b"00000000000000000000000001"]
    + [b"70000000000000", b"4294967296", b"2147483648", b"65536", b"99999999999999999999999999999999"]
)


def _digit_positions(data):
    return [i for i, c in enumerate(data) if 0x30 <= c <= 0x39]


def _mutations(base):
    @st.composite
    def mutate(draw):
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 8))):
            action = draw(st.integers(0, 4))
            if action >= 3:
                # Aim at a number: put a hostile chunk right after a digit (action 3) or replace the
                # whole run of digits with it (action 4).
                digits = _digit_positions(data)
                if not digits:
                    continue
                pos = draw(st.sampled_from(digits))
                chunk = draw(HOSTILE_NUMBERS)
                if action == 3:
                    data[pos + 1 : pos + 1] = chunk
                else:
                    start = end = pos
                    while start > 0 and 0x30 <= data[start - 1] <= 0x39:
                        start -= 1
                    while end < len(data) and 0x30 <= data[end] <= 0x39:
                        end += 1
                    data[start:end] = chunk
                continue
            pos = draw(st.integers(0, len(data)))
            chunk = draw(SIP_ALPHABET)
            if action == 0:
                data[pos:pos] = chunk
            elif action == 1:
                del data[pos : pos + draw(st.integers(1, 20))]
            else:
                data[pos : pos + len(chunk)] = chunk
        return bytes(data)

    return mutate()


def _exercise_message(data):
    try:
        msg = parse_message(data)
    except RemoteProtocolError:
        return
    try:
        if isinstance(msg, Request):
            check_request(msg)
            make_response(msg, 400, to_tag="t").to_bytes()
        else:
            check_response(msg)
        assert isinstance(msg.vias, list)
        msg.to_bytes()
    except RemoteProtocolError:
        pass


@FUZZ
@given(st.binary(max_size=2000))
def test_parse_message_random_bytes(data):
    _exercise_message(data)


@FUZZ
@given(_mutations(INVITE))
def test_parse_message_mutated_invite(data):
    _exercise_message(data)


@FUZZ
@given(_mutations(INVITE))
def test_make_response_even_when_rules_break(data):
    try:
        msg = parse_message(data)
    except RemoteProtocolError:
        return
    if isinstance(msg, Request):
        resp = make_response(msg, 400, to_tag="abc")
        assert resp.status == 400
        resp.to_bytes()


@FUZZ
@given(st.text(max_size=200))
def test_parse_uri_and_name_addr_any_text(text):
    for parser in (parse_uri, parse_name_addr):
        try:
            value = parser(text)
        except RemoteProtocolError:
            continue
        str(value)


@FUZZ
@given(_mutations(b'"Bob \\"x\\"" <sip:bob:pw@[::1]:5060;transport=tcp?h=v>;tag=abc;q=0.5'))
def test_name_addr_mutations(data):
    try:
        text = data.decode()
    except UnicodeError:
        return
    try:
        na = parse_name_addr(text)
    except RemoteProtocolError:
        return
    str(na)


# An offer with every numeric field remote_media() reads: ports, payload types, rates, channels, ptime.
OFFER_WITH_PTIME = LINPHONE_OFFER.replace(b"a=sendrecv\r\n", b"a=sendrecv\r\na=ptime:20\r\na=maxptime:40\r\n")


@FUZZ
@given(st.one_of(_mutations(LINPHONE_OFFER), _mutations(OFFER_WITH_PTIME)))
def test_sdp_mutations(data):
    try:
        sdp = parse_sdp(data)
        sdp.to_bytes()
        remote_media(sdp)
        answer_offer(sdp, ["PCMU", "opus"], "127.0.0.1", 4000)
    except RemoteProtocolError:
        pass


@FUZZ
@given(st.binary(max_size=1000))
def test_sdp_random_bytes(data):
    try:
        remote_media(parse_sdp(data))
    except RemoteProtocolError:
        pass


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=10), _mutations(INVITE))
def test_stream_framer(chunks, message):
    framer = StreamFramer()
    try:
        for chunk in chunks + [message]:
            for item in framer.feed(chunk):
                if isinstance(item, bytes):
                    try:
                        parse_message(item, stream=True)
                    except RemoteProtocolError:
                        pass
    except RemoteProtocolError:
        pass


def _fresh_agent():
    from firmware.sip.useragent import UserAgent
    from tests.firmware.sip.netsim import counter_rng

    ua = UserAgent(("127.0.0.1", 5062), counter_rng("fuzz"))
    ua.invite("sip:peer@127.0.0.1:5099", b"", 0.0)
    return ua


RESPONSE = (
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKx;rport=5062\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n"
    b"Contact: <sip:c@127.0.0.1:5099>\r\nRecord-Route: <sip:127.0.0.1:5080;lr>\r\n"
    b'WWW-Authenticate: Digest realm="r", nonce="n", qop="auth"\r\nContent-Length: 0\r\n\r\n'
)


@FUZZ
@given(st.lists(st.one_of(_mutations(INVITE), _mutations(RESPONSE), st.binary(max_size=300)), max_size=6))
def test_user_agent_survives_any_datagrams(datagrams):
    ua = _fresh_agent()
    now = 0.0
    for data in datagrams:
        ua.receive_datagram(data, ("127.0.0.1", 5099), now)
        now += 0.3
        ua.handle_timer(now)
        ua.datagrams_to_send(now)
        while ua.next_event() is not None:
            pass


def _uac_scene():
    from firmware.sip.message import make_response
    from firmware.sip.useragent import UserAgent
    from tests.firmware.sip.netsim import counter_rng

    ua = UserAgent(
        ("127.0.0.1", 5062),
        counter_rng("scene"),
        aor="sip:alice@example.com",
        password="pw",
        outbound_proxy=("127.0.0.1", 5099),
    )
    ua.register(0.0)
    call = ua.invite("sip:bob@example.com", b"v=0\r\n", 0.0)
    sent = [parse_message(d) for d, _ in ua.datagrams_to_send(0.0)]
    responses = []
    for request in sent:
        for status in (100, 180, 200, 401, 407, 423, 487, 503):
            response = make_response(request, status, to_tag="t{}".format(status))
            response.headers.add("Contact", "<sip:bob@127.0.0.1:5099>;expires=60")
            response.headers.add("Record-Route", "<sip:127.0.0.1:5099;lr>")
            response.headers.add("WWW-Authenticate", 'Digest realm="r", nonce="n", qop="auth", algorithm=SHA-256')
            response.headers.add("Proxy-Authenticate", 'Digest realm="r", nonce="m", qop="auth"')
            response.headers.add("Min-Expires", "120")
            responses.append(response.to_bytes())
    return ua, call, responses


_SCENE_RESPONSES = _uac_scene()[2]


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, len(_SCENE_RESPONSES) - 1), st.booleans(), st.binary(max_size=3)),
        min_size=1,
        max_size=8,
    ),
    st.data(),
)
def test_user_agent_survives_mutated_responses_to_its_own_requests(plan, data):
    from firmware.errors import LocalProtocolError

    ua, call, responses = _uac_scene()
    now = 0.0
    for index, mutate, _ in plan:
        message = responses[index]
        if mutate:
            message = data.draw(_mutations(message))
        ua.receive_datagram(message, ("127.0.0.1", 5099), now)
        now += 0.7
        ua.handle_timer(now)
        ua.datagrams_to_send(now)
        while ua.next_event() is not None:
            pass
    for command in (ua.hangup, lambda c, n: ua.reinvite(c, b"v=0\r\n", n), lambda c, n: ua.refer(c, "sip:x@y", n)):
        try:
            command(call, now)
        except LocalProtocolError:
            pass
    ua.handle_timer(now + 100)
    ua.datagrams_to_send(now + 100)
