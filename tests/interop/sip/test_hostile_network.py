"""Issue 11 against the real `sotto` command: inputs that once killed it, and the RFC 3261 §18.3 /
RFC 4475 torture cases, sent from a raw socket on loopback."""

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
