"""Issue 11 against the real `sotto` command: inputs that once killed it, and the RFC 3261 §18.3 /
RFC 4475 torture cases, sent from a raw socket on loopback."""

import subprocess

import pytest

from tests.interop import sotto
from tests.interop.sip.rawsip import SDP, RawPeer, request, wait_until_answering

pytestmark = pytest.mark.interop


def _start_answer(tmp_path, port):
    return sotto.start(
        [
            "answer",
            "--listen",
            "127.0.0.1:{}".format(port),
            "--timeout",
            "20",
            "--encryption",
            "none",
            "--cache",
            str(tmp_path / "cache"),
        ],
        tmp_path / "home",
    )


@pytest.mark.parametrize("ptime", ["\u00b2", "20\x1d", "\u0662\u0660", "99999999999999999999999"])
def test_an_invite_with_a_hostile_ptime_is_answered_and_the_call_works(tmp_path, ptime):
    """`a=ptime:²` / `a=ptime:20\\x1d` in an INVITE killed `sotto answer` with a ValueError traceback."""
    port = sotto.free_udp_port()
    process = _start_answer(tmp_path, port)
    peer = RawPeer(("127.0.0.1", port))
    try:
        wait_until_answering(peer.target)
        call_id = peer.next_id()
        body = SDP.format(rtp_port=sotto.free_udp_port(), ptime=ptime).encode()
        peer.send(request("INVITE", peer.target, peer.local, call_id, "inv" + call_id, body=body))
        ok = peer.wait_for(call_id, 10.0)
        assert ok is not None and ok.status == 200, (ok, process.poll())
        to_tag = ok.to_addr.tag
        peer.send(request("ACK", peer.target, peer.local, call_id, "ack" + call_id, to_tag=to_tag))
        peer.send(request("BYE", peer.target, peer.local, call_id, "bye" + call_id, cseq=2, to_tag=to_tag))
        bye_ok = peer.wait_for(call_id, 5.0)
        assert bye_ok is not None and bye_ok.status == 200 and bye_ok.cseq == (2, "BYE"), bye_ok
        code, summary, err = sotto.finish(process, 15)
        assert "Traceback" not in err, err[-3000:]
        assert code == 0 and summary["result"] == "completed", (code, summary, err[-2000:])
    finally:
        peer.close()
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_torture_requests_get_400_from_a_running_sotto(tmp_path):
    """RFC 3261 §18.3: Content-Length beyond the datagram -> 400 (it was dropped silently); a second
    Max-Forwards of 70000000000000 -> 400 (it got 200: only the first value was read); RFC 4475
    scalar02 / multi01 / mcl01 / ncl / badvers; then a well-formed OPTIONS still gets 200."""
    port = sotto.free_udp_port()
    process = _start_answer(tmp_path, port)
    peer = RawPeer(("127.0.0.1", port))
    try:
        wait_until_answering(peer.target)
        body = SDP.format(rtp_port=9, ptime="20").encode()
        cases = [
            ("content-length-beyond-datagram", dict(method="INVITE", body=body, content_length="9999"), 400),
            ("negative-content-length", dict(method="INVITE", body=body, content_length="-9"), 400),
            ("two-content-lengths", dict(method="OPTIONS", extra="l: 0\r\n"), 400),
            ("second-max-forwards-huge", dict(method="OPTIONS", extra="Max-Forwards: 70000000000000\r\n"), 400),
            ("max-forwards-300", dict(method="OPTIONS", max_forwards="300"), 400),
            ("max-forwards-fullwidth", dict(method="OPTIONS", max_forwards="\uff17\uff10"), 400),
            ("cseq-overlarge", dict(method="OPTIONS", cseq="36893488147419103232"), 400),
            ("expires-overlarge", dict(method="OPTIONS", extra="Expires: 10000000000000000000\r\n"), 400),
            ("call-id-twice", dict(method="OPTIONS", extra="Call-ID: another\r\n"), 400),
        ]
        for name, spec, expected in cases:
            call_id = peer.next_id()
            spec = dict(spec)
            method = spec.pop("method")
            peer.send(request(method, peer.target, peer.local, call_id, name + call_id, **spec))
            response = peer.wait_for(call_id, 3.0)
            assert response is not None, "no answer to " + name
            assert response.status == expected, (name, response.status, response.reason)
        # A request with an unknown SIP version (RFC 4475 badvers) gets 505.
        call_id = peer.next_id()
        data = request("OPTIONS", peer.target, peer.local, call_id, "v" + call_id)
        peer.send(data.replace(b" SIP/2.0\r\nVia", b" SIP/7.0\r\nVia", 1))
        response = peer.wait_for(call_id, 3.0)
        assert response is not None and response.status == 505, response
        response, _ = peer.options()
        assert response is not None and response.status == 200
        assert process.poll() is None, "sotto answer died"
    finally:
        peer.close()
        process.terminate()
        code, summary, err = sotto.finish(process, 15)
    assert "Traceback" not in err, err[-3000:]


FLOOD_SECONDS = 5.0  # of flood before the call is placed; it goes on during the call
# OPTIONS per second from the flooding address: 8/s used to lock every caller out. 100/s is within the
# per-source rate (so every one is parsed and answered: 200, then 503) and keeps the test meaningful on
# a loaded 2-core machine.
FLOOD_RATE = 100


def _flood(target, stop, tally):
    """OPTIONS from 127.0.0.2 at FLOOD_RATE until `stop` is set; tally the answers by status."""
    import threading  # noqa: F401  (documented: runs in its own thread)
    import time

    peer = RawPeer(target, host="127.0.0.2")
    try:
        peer.sock.setblocking(False)
        interval = 1.0 / FLOOD_RATE
        next_send = time.monotonic()
        n = 0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_send:
                n += 1
                call_id = "flood-{}".format(n)
                peer.send(request("OPTIONS", target, peer.local, call_id, call_id))
                tally["sent"] += 1
                next_send += interval
            try:
                data, _ = peer.sock.recvfrom(65536)
            except BlockingIOError:
                time.sleep(0.0005)
                continue
            head = data.split(b"\r\n", 1)[0]
            tally[head[8:11].decode()] = tally.get(head[8:11].decode(), 0) + 1
            if b"Retry-After:" in data:
                tally["retry_after"] += 1
    finally:
        peer.close()


def test_an_options_flood_from_one_address_does_not_lock_out_a_caller(tmp_path):
    """Issue 11: one table for all senders and Timer J kept finished OPTIONS 32 s, so ~8 OPTIONS/s
    from one address made every caller get 503. Now: the flooder (127.0.0.2) gets 503 + Retry-After,
    a prober (127.0.0.3) keeps getting 200 quickly, and a real `sotto call` from 127.0.0.1 completes."""
    import threading
    import time

    port = sotto.free_udp_port()
    process = sotto.start(
        [
            "answer",
            "--listen",
            "127.0.0.1:{}".format(port),
            "--timeout",
            "40",
            "--encryption",
            "none",
            "--cache",
            str(tmp_path / "bob.cache"),
        ],
        tmp_path / "bob-home",
    )
    target = ("127.0.0.1", port)
    stop = threading.Event()
    tally = {"sent": 0, "retry_after": 0}
    flooder = threading.Thread(target=_flood, args=(target, stop, tally), daemon=True)
    prober = RawPeer(target, host="127.0.0.3")
    latencies = []
    caller = None
    try:
        wait_until_answering(target)
        flooder.start()
        started = time.monotonic()
        # Probe through the flood, then place the call and keep probing until it is over (`sotto
        # answer` exits after its one call, so the probing ends with it).
        while True:
            response, took = prober.options(timeout=2.0)
            if response is None and caller is not None:
                # `sotto answer` ends with its one call: silence is fine once it is on its way out.
                try:
                    process.wait(10)
                    break
                except subprocess.TimeoutExpired:
                    pass
            assert response is not None and response.status == 200, (
                response and response.to_bytes(),
                time.monotonic() - started,
                tally,
            )
            latencies.append(took)
            if caller is None and time.monotonic() - started > FLOOD_SECONDS:
                caller = sotto.start(
                    [
                        "call",
                        "sip:sotto@127.0.0.1:{}".format(port),
                        "--listen",
                        "127.0.0.1:{}".format(sotto.free_udp_port()),
                        "--duration",
                        "2",
                        "--timeout",
                        "15",
                        "--encryption",
                        "none",
                        "--cache",
                        str(tmp_path / "alice.cache"),
                    ],
                    tmp_path / "alice-home",
                )
            if caller is not None and caller.poll() is not None:
                break
            assert time.monotonic() - started < FLOOD_SECONDS + 20, "the call did not end"
            # 4 probes a second stay within the prober's own per-source budget (64 per Timer J, 32 s).
            time.sleep(0.25)
        code, summary, err = sotto.finish(caller, 20)
    finally:
        stop.set()
        flooder.join(5)
        prober.close()
        if caller is not None and caller.poll() is None:
            caller.kill()
            caller.communicate()
    answer_code, answer_summary, answer_err = sotto.finish(process, 20)
    worst = max(latencies)
    print(
        "\nOPTIONS flood: {} sent from 127.0.0.2 at {}/s, answers {}; prober from 127.0.0.3: {} OPTIONS, "
        "worst latency {:.1f} ms, median {:.1f} ms".format(
            tally["sent"],
            FLOOD_RATE,
            {k: v for k, v in tally.items() if k != "sent"},
            len(latencies),
            worst * 1000,
            sorted(latencies)[len(latencies) // 2] * 1000,
        )
    )
    assert code == 0 and summary["result"] == "completed", (code, summary, err[-2000:])
    assert answer_code == 0 and answer_summary["result"] == "completed", answer_err[-2000:]
    assert tally.get("503", 0) > 0 and tally["retry_after"] == tally["503"], tally
    assert tally["sent"] > FLOOD_RATE * FLOOD_SECONDS * 0.8, tally  # the flood really ran
    # Every probe was answered 200 within its 2 s timeout (checked in the loop). Latency on a shared,
    # loaded machine varies (37 ms worst when quiet, ~0.7 s at load average 17), so it is reported above
    # rather than bounded tightly; before issue 11 the prober got 503 outright.
    assert worst < 2.0, worst
