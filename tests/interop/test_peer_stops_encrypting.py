"""A peer that falls back to clear RTP on a secure stream is an alarm, and the call is no longer secure
(issue 12: Twinkle did this after hold/retrieve and Sotto's summary still said "secure": true).

The far end is the harness of test_zrtp_restart (a SIP UserAgent, a ZRTP engine and SRTP on real loopback
sockets), called by the real `sotto call`; two seconds into the secure call it stops protecting its
packets and sends plain RTP, as a peer that dropped its ZRTP session does.
"""

import pytest

from firmware.rtp.packet import build_rtp
from tests.interop.test_zrtp_restart import SSRC, ZrtpPeer, call_the_harness

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

    def stop_encrypting(now):
        peer.clear = True

    _rc, summary, err, cleared_at = call_the_harness(tmp_path, peer, 5, CLEAR_AFTER, stop_encrypting)
    assert summary is not None, err[-3000:]
    assert cleared_at is not None, "the harness never went secure: {}".format(err[-2000:])
    assert summary["encryption"] == "zrtp" and summary["sas"]  # it was secure...
    assert summary["secure"] is False, summary  # ...and is not any more
    alarms = summary.get("alarms", [])
    assert any(a.startswith("peer stopped encrypting") for a in alarms), alarms
    # ~2.5 s of clear packets after the switch were refused by SRTP and counted
    assert summary["rtp"]["auth_failures"] > 50, summary["rtp"]
