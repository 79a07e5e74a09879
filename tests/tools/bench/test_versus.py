"""The relay of the side-by-side bench (tools/bench/versus.py): both directions meet the same seeded
fate, packets are delayed within the asked jitter and reorder. The calls themselves are `make bench`."""

import socket
import time

from tests.waiting import wait_until
from tools.bench.versus import ImpairedRelay


def _udp():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    return sock


def _received(sock):
    got = []
    while True:
        try:
            got.append(int(sock.recv(64)))
        except OSError:
            return got


def test_both_directions_lose_the_same_packets_and_jitter_reorders_them():
    linphone, sotto = _udp(), _udp()
    relay = ImpairedRelay(loss=0.2, burst=1.0, jitter_ms=30.0, base_ms=5.0, seed=3)
    relay.to_linphone, relay.to_sotto = linphone.getsockname(), sotto.getsockname()
    relay.start()
    try:
        started = time.monotonic()
        for index in range(100):  # one packet per 5 ms each way: jitter of 30 ms reorders them
            linphone.sendto(b"%d" % index, ("127.0.0.1", relay.a_port))
            sotto.sendto(b"%d" % index, ("127.0.0.1", relay.b_port))
            time.sleep(0.005)
        at_sotto, at_linphone = _received(sotto), _received(linphone)
    finally:
        relay.stop()
        linphone.close()
        sotto.close()
    assert time.monotonic() - started < 10
    assert sorted(at_sotto) == sorted(at_linphone)  # the same packets lost both ways
    assert 100 - len(at_sotto) == relay.counts["to_sotto"][1] == relay.counts["to_linphone"][1]
    assert 8 <= relay.counts["to_sotto"][1] <= 35  # about 20 % of 100
    assert at_sotto != sorted(at_sotto)  # reordered


def test_skewed_clock_runs_the_given_parts_per_million_fast_or_slow():
    from tools.bench.versus import skewed_clock

    now = [1000.0]
    fast, slow = skewed_clock(300.0, lambda: now[0]), skewed_clock(-300.0, lambda: now[0])
    start_fast, start_slow = fast(), slow()
    now[0] += 100.0
    assert abs((fast() - start_fast) - 100.03) < 1e-9
    assert abs((slow() - start_slow) - 99.97) < 1e-9


def _invite(sdp_port, request_port):
    body = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio {} RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\n".format(sdp_port)
    )
    head = (
        "INVITE sip:bob@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bK1\r\n"
        "To: <sip:bob@127.0.0.1:{port}>\r\nContent-Type: application/sdp\r\nContent-Length: {length}\r\n"
    ).format(port=request_port, length=len(body))
    return (head + "\r\n" + body).encode()


def test_forwarder_moves_each_sdp_audio_port_to_the_relay_and_fixes_the_length():
    from tools.bench.versus import SdpForwarder

    relay = ImpairedRelay(loss=0.0, burst=1.0, jitter_ms=0.0)
    forwarder = SdpForwarder(relay, callee_sip_port=5080)
    try:
        offer = forwarder.rewrite(_invite(9, forwarder.port), from_caller=True)
        head, body = offer.split(b"\r\n\r\n", 1)
        assert b"m=audio %d RTP/SAVP 0" % relay.a_port in body  # the callee sends to the relay
        assert relay.to_sotto == ("127.0.0.1", 9)  # and the relay on to the caller's real port
        assert b"INVITE sip:bob@127.0.0.1:5080 " in head and b"To: <sip:bob@127.0.0.1:5080>" in head
        assert b"Content-Length: %d\r\n" % len(body) in head + b"\r\n"
        assert b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA" in body  # SDES keys pass untouched
        answer = b"SIP/2.0 200 OK\r\nContent-Length: 40\r\n\r\nv=0\r\nm=audio 40000 RTP/SAVP 0\r\na=sendrecv\r\n"
        head, body = forwarder.rewrite(answer, from_caller=False).split(b"\r\n\r\n", 1)
        assert body.startswith(b"v=0\r\nm=audio %d RTP/SAVP 0" % relay.b_port)
        assert relay.to_linphone == ("127.0.0.1", 40000)
        assert head.endswith(b"Content-Length: %d" % len(body))
        ack = b"ACK sip:bob@127.0.0.1:5080 SIP/2.0\r\nContent-Length: 0\r\n\r\n"
        assert forwarder.rewrite(ack, from_caller=False) == ack  # no SDP: as it came
    finally:
        forwarder.stop()
        relay.stop()


def test_forwarder_carries_the_callers_requests_to_the_callee_and_the_answers_back():
    from tools.bench.versus import SdpForwarder

    caller, callee = _udp(), _udp()
    relay = ImpairedRelay(loss=0.0, burst=1.0, jitter_ms=0.0)
    forwarder = SdpForwarder(relay, callee_sip_port=callee.getsockname()[1])
    forwarder.start()
    try:
        caller.sendto(_invite(9, forwarder.port), ("127.0.0.1", forwarder.port))
        request, source = callee.recvfrom(4096)
        assert request.startswith(b"INVITE sip:bob@127.0.0.1:%d " % callee.getsockname()[1])
        callee.sendto(b"SIP/2.0 180 Ringing\r\nContent-Length: 0\r\n\r\n", source)  # rport: back to the source
        assert caller.recv(4096) == b"SIP/2.0 180 Ringing\r\nContent-Length: 0\r\n\r\n"
        # the forwarder counts a message after its sendto() returns, so the caller may have it first
        wait_until(lambda: forwarder.forwarded == 2, 2.0, "the forwarder to count both messages", interval=0.01)
    finally:
        forwarder.stop()
        relay.stop()
        caller.close()
        callee.close()
