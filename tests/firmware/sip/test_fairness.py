"""Issue 11: one sender must not lock others out of the transaction table (RFC 3261 §17.2)."""

from firmware.sip import events
from firmware.sip.message import parse_message
from firmware.sip.useragent import (
    MAX_TRANSACTIONS,
    MAX_TRANSACTIONS_PER_SOURCE,
    SOURCE_BURST,
    SOURCE_RATE,
    UserAgent,
)
from tests.firmware.sip.netsim import counter_rng

# Not run under MicroPython: hundreds of live transactions exceed the unix port's default heap.

ME = ("127.0.0.1", 5062)


def _request(method, source, n, body=b""):
    host, port = source
    head = (
        "{m} sip:bob@127.0.0.1:5062 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP {h}:{p};branch=z9hG4bK-{h}-{n}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:peer@{h}>;tag=f{n}\r\n"
        "To: <sip:bob@127.0.0.1:5062>\r\n"
        "Call-ID: {h}-{n}\r\n"
        "CSeq: 1 {m}\r\n"
        "Contact: <sip:peer@{h}:{p}>\r\n"
    ).format(m=method, h=host, p=port, n=n)
    if body:
        head += "Content-Type: application/sdp\r\n"
    return (head + "Content-Length: {}\r\n\r\n".format(len(body))).encode() + body


SDP = b"v=0\r\no=x 1 1 IN IP4 10.0.0.7\r\ns=-\r\nc=IN IP4 10.0.0.7\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def _statuses(ua, now):
    return [parse_message(d).status for d, _ in ua.datagrams_to_send(now)]


def _flood(ua, source, count, now, first=0):
    for n in range(first, first + count):
        ua.receive_datagram(_request("OPTIONS", source, n), source, now)
    return _statuses(ua, now)


def _caller_gets_through(ua, now):
    caller = ("10.0.0.7", 5070)
    ua.receive_datagram(_request("INVITE", caller, 1, SDP), caller, now)
    statuses = _statuses(ua, now)
    incoming = []
    while True:
        event = ua.next_event()
        if event is None:
            break
        if isinstance(event, events.IncomingCall):
            incoming.append(event)
    return statuses, incoming


def test_a_flooding_source_gets_503_with_retry_after_and_a_caller_still_gets_in():
    ua = UserAgent(ME, counter_rng("fair"), source_rate=None)  # the table's bounds alone
    flooder = ("10.0.0.66", 5060)
    statuses = _flood(ua, flooder, 400, 0.0)
    assert statuses[:MAX_TRANSACTIONS_PER_SOURCE] == [200] * MAX_TRANSACTIONS_PER_SOURCE
    assert statuses[MAX_TRANSACTIONS_PER_SOURCE:] == [503] * (400 - MAX_TRANSACTIONS_PER_SOURCE)
    assert ua.busy_rejected == 400 - MAX_TRANSACTIONS_PER_SOURCE
    ua.receive_datagram(_request("OPTIONS", flooder, 999), flooder, 1.0)
    ((data, dest),) = ua.datagrams_to_send(1.0)
    busy = parse_message(data)
    assert busy.status == 503 and int(busy.headers.get("Retry-After")) > 0 and dest == flooder
    statuses, incoming = _caller_gets_through(ua, 2.0)
    assert 503 not in statuses and len(incoming) == 1, statuses


def test_finished_transactions_leave_after_timer_j_and_the_flooder_is_served_again():
    ua = UserAgent(ME, counter_rng("fair"))
    flooder = ("10.0.0.66", 5060)
    _flood(ua, flooder, MAX_TRANSACTIONS_PER_SOURCE + 1, 0.0)
    ua.handle_timer(31.0)
    assert _flood(ua, flooder, 1, 31.0, first=1000) == [503]
    ua.handle_timer(32.5)  # Timer J = 64*T1 = 32 s on UDP (§17.2.2)
    assert ua.get_timer() is None
    assert _flood(ua, flooder, 1, 32.5, first=2000) == [200]


def test_many_sources_fill_the_table_but_finished_transactions_make_room():
    ua = UserAgent(ME, counter_rng("fair"))
    for n in range(MAX_TRANSACTIONS + 50):
        source = ("10.1.{}.{}".format(n // 200, n % 200 + 1), 5060)
        ua.receive_datagram(_request("OPTIONS", source, n), source, 0.0)
    assert _statuses(ua, 0.0) == [200] * (MAX_TRANSACTIONS + 50)
    statuses, incoming = _caller_gets_through(ua, 1.0)
    assert 503 not in statuses and len(incoming) == 1, statuses


def test_a_non_invite_transaction_on_a_reliable_transport_leaves_at_once():
    ua = UserAgent(ME, counter_rng("fair"), transport="tcp", source_rate=None)
    peer = ("10.0.0.66", 40000)
    for n in range(3 * MAX_TRANSACTIONS):
        ua.receive_datagram(_request("OPTIONS", peer, n).replace(b"UDP", b"TCP"), peer, 0.0)
        assert _statuses(ua, 0.0) == [200]
        assert ua.get_timer() is None  # Timer J = 0: none stays to fill the table


def test_a_flood_beyond_the_source_rate_is_dropped_unparsed_and_others_are_served():
    ua = UserAgent(ME, counter_rng("fair"))
    flooder = ("10.0.0.66", 5060)
    flood = 3 * SOURCE_BURST
    statuses = _flood(ua, flooder, flood, 0.0)
    assert len(statuses) == SOURCE_BURST  # the rest never reached the parser
    assert statuses.count(200) == MAX_TRANSACTIONS_PER_SOURCE
    assert statuses.count(503) == SOURCE_BURST - MAX_TRANSACTIONS_PER_SOURCE
    assert ua.flood_dropped == flood - SOURCE_BURST
    statuses, incoming = _caller_gets_through(ua, 0.5)
    assert 503 not in statuses and len(incoming) == 1, statuses
    # The bucket refills at SOURCE_RATE a second.
    assert len(_flood(ua, flooder, flood, 1.0, first=10000)) == int(SOURCE_RATE)
