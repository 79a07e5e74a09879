"""Issue 11: a registrar restart must not leave Sotto unreachable until its refresh (3,540 s later).

kamailio (usrloc db_mode 0: the location table lives in memory) is restarted under a running
`sotto answer --register`; Sotto's probe (an OPTIONS to its own address of record through the
registrar, answered 404 once the binding is gone) or its keep-alive (ICMP unreachable while kamailio is
down) makes it register again at once, and a real `sotto call` to its address of record through
kamailio completes.
"""

import time

import pytest

from tests.interop import sotto
from tests.interop.sip.driver import Kamailio
from tests.interop.sip.rawsip import RawPeer
from tests.waiting import wait_until

pytestmark = pytest.mark.interop

PORT = 15090
AOR = "sip:alice@127.0.0.1"
REACHABLE_WITHIN = 30.0  # seconds after the restart (the bound)


def _reachable(peer):
    """Does kamailio route an OPTIONS for alice's AOR to a live Sotto (200), or has it no binding (404)?"""
    response, _ = peer.options(timeout=1.0, uri=AOR)
    return response is not None and response.status == 200


def test_sotto_is_reachable_again_soon_after_the_registrar_restarts(tmp_path):
    users = [("alice", "alicepw"), ("bob", "bobpw")]
    (tmp_path / "k1").mkdir()
    (tmp_path / "k2").mkdir()
    server = Kamailio(tmp_path / "k1", PORT, users)
    alice_port = sotto.free_udp_port()
    alice = sotto.start(
        [
            "answer",
            "--listen",
            "127.0.0.1:{}".format(alice_port),
            "--register",
            AOR,
            "--password",
            "alicepw",
            "--proxy",
            "127.0.0.1:{}".format(PORT),
            "--encryption",
            "none",
            "--timeout",
            "90",
            "--cache",
            str(tmp_path / "alice.cache"),
        ],
        tmp_path / "alice-home",
    )
    prober = RawPeer(("127.0.0.1", PORT))
    bob = None
    try:

        def alive():
            assert alice.poll() is None, alice.communicate()[1][-2000:]

        wait_until(lambda: _reachable(prober), 10, "sotto to be reachable through kamailio", alive, interval=0.2)
        time.sleep(3.0)  # registered for a while: the restart falls between keep-alives and probes
        server.stop()  # the registrar goes away and forgets every binding (usrloc in memory)
        server = Kamailio(tmp_path / "k2", PORT, users)
        restarted = time.monotonic()
        assert not _reachable(prober), "the new kamailio already knew alice: the test proves nothing"
        wait_until(
            lambda: _reachable(prober), REACHABLE_WITHIN, "sotto reachable after the registrar restart", alive, 0.2
        )
        took = time.monotonic() - restarted
        print("\nsotto reachable again {:.1f} s after the registrar restart".format(took))
        bob = sotto.start(
            [
                "call",
                AOR,
                "--listen",
                "127.0.0.1:{}".format(sotto.free_udp_port()),
                "--register",
                "sip:bob@127.0.0.1",
                "--password",
                "bobpw",
                "--proxy",
                "127.0.0.1:{}".format(PORT),
                "--encryption",
                "none",
                "--duration",
                "1",
                "--timeout",
                "20",
                "--cache",
                str(tmp_path / "bob.cache"),
            ],
            tmp_path / "bob-home",
        )
        code, summary, err = sotto.finish(bob, 30)
        assert code == 0 and summary["result"] == "completed", (code, summary, err[-2000:])
        code, summary, err = sotto.finish(alice, 30)
        assert code == 0 and summary["result"] == "completed", (code, summary, err[-2000:])
        assert took < REACHABLE_WITHIN
    finally:
        prober.close()
        for process in (alice, bob):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
        server.stop()
