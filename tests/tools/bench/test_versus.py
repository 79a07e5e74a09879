"""The relay of the side-by-side bench (tools/bench/versus.py): both directions meet the same seeded
fate, packets are delayed within the asked jitter and reorder. The calls themselves are `make bench`."""

import socket
import time

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
