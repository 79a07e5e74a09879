"""A peer that falls back to clear RTP on a secure stream is an alarm, and the call is no longer secure
(issue 12: Twinkle did this after hold/retrieve and Sotto's summary still said "secure": true).

The far end is the harness of test_zrtp_restart (a SIP UserAgent, a ZRTP engine and SRTP on real loopback
sockets) calling... being called by the real `sotto call`; two seconds into the secure call it stops
protecting its packets and sends plain RTP, as a peer that dropped its ZRTP session does.
"""

import time

import pytest

from firmware import sdp
from firmware.rtp.packet import build_rtp
from firmware.sip import events
from tests.interop import sotto
from tests.interop.sip.driver import Driver
from tests.interop.test_zrtp_restart import SSRC, ZrtpPeer

pytestmark = pytest.mark.interop

CLEAR_AFTER = 2.0


class ClearingPeer(ZrtpPeer):
    """Secure first; then every packet goes out in the clear."""

    clear = False

    def pump(self, now):
        if not self.clear:
            return ZrtpPeer.pump(self, now)
        tx, self.tx = self.tx, None  # the engine keeps answering; the media is clear from now on
        ZrtpPeer.pump(self, now)
        self.tx = tx
        if self.remote is not None and now >= self.next_send:
            self.sock.sendto(build_rtp(0, self.sequence, self.sequence * 160, SSRC, b"\xff" * 160), self.remote)
            self.sequence += 1
            self.next_send += 0.020


def test_a_peer_that_stops_encrypting_is_an_alarm_and_the_call_not_secure(tmp_path):
    peer = ClearingPeer()
    sip = Driver()

    def on_event(event):
        if isinstance(event, events.IncomingCall):
            offer = sdp.remote_media(event.sdp)
            peer.remote = (offer.address, offer.port)
            peer.engine.set_peer_hello_hash(offer.zrtp_hash)
            answer, _ = sdp.answer_offer(event.sdp, ["PCMU"], "127.0.0.1", peer.port,
                                         zrtp_hash=peer.engine.hello_hash())
            sip.ua.answer(event.call_id, answer.to_bytes(), sip.now())
            peer.engine.start(sip.now())

    sip.on_event = on_event
    process = sotto.start(["call", "sip:far@127.0.0.1:{}".format(sip.address[1]), "--listen",
                           "127.0.0.1:{}".format(sotto.free_udp_port()), "--timeout", "25", "--duration", "5",
                           "--codecs", "PCMU", "--cache", str(tmp_path / "sotto.cache")], tmp_path / "home")
    cleared_at = None
    try:
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            sip.pump_once(0.002)
            now = time.monotonic()
            peer.pump(now)
            if cleared_at is None and peer.secure_at is not None and now - peer.secure_at > CLEAR_AFTER:
                cleared_at = now
                peer.clear = True
        rc, summary, err = sotto.finish(process, 10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        sip.close()
        peer.sock.close()
    assert summary is not None, err[-3000:]
    assert cleared_at is not None, "the harness never went secure: {}".format(err[-2000:])
    assert summary["encryption"] == "zrtp" and summary["sas"]  # it was secure...
    assert summary["secure"] is False, summary  # ...and is not any more
    alarms = summary.get("alarms", [])
    assert any(a.startswith("peer stopped encrypting") for a in alarms), alarms
    # ~2.5 s of clear packets after the switch were refused by SRTP and counted
    assert summary["rtp"]["auth_failures"] > 50, summary["rtp"]
