"""A peer restarts ZRTP in the middle of a secure call with the real `sotto call` (issue 12).

No packaged peer restarts ZRTP: GNU ZRTP (which does, after hold/retrieve: it builds a fresh ZRTP
session with a new Hello) is not in Debian, and linphone's bzrtp keeps its session across hold/resume
(checked: one negotiation in its log). So the far end here is a harness on real loopback sockets: a SIP
UserAgent that answers, and a ZRTP engine plus SRTP on its own RTP socket, sending 20 ms PCMU packets.
Two seconds into the secure call it throws its ZRTP session away and starts a fresh one on the same
stream, as GNU ZRTP does, then switches its SRTP to the new keys the moment its own engine says Secure.

What must hold for the real sotto process: the restart runs to completion with the same SAS on both
ends, the call stays secure with no alarm (a re-key is an event, not an alarm), sotto's packets after
the re-key authenticate only under the new keys (it switched its sending keys), and ours still play:
at most the packets in flight at the switch fail authentication. The retained secret from the first
exchange matches, so the second exchange is not a cache mismatch.
"""

import os
import socket
import time

import pytest

from firmware import sdp
from firmware.errors import RemoteProtocolError
from firmware.rtp import demux
from firmware.rtp.packet import build_rtp
from firmware.sip import events
from firmware.srtp.context import context_from_params
from firmware.zrtp.cache import ZrtpCache
from firmware.zrtp.engine import Alarm, Failed, Preferences, ReceiveKeys, Secure, ZrtpEngine
from tests.interop import sotto
from tests.interop.sip.driver import Driver

pytestmark = pytest.mark.interop

RESTART_AFTER = 2.0  # seconds of secure audio before the harness restarts ZRTP
SSRC = 0x5A5A0001


class ZrtpPeer:
    """The far end's media: one RTP socket, the current ZRTP engine, SRTP in and out."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.cache = ZrtpCache.create(os.urandom)
        self.remote = None
        self.engine = self._engine()
        self.secure = []  # our engine's Secure events, one per exchange
        self.problems = []  # Alarm/Failed from our engines
        self.tx = None
        self.rx = []  # receive contexts, newest first
        self.decrypted = {}  # exchange number -> packets from sotto that authenticated under its keys
        self.undecryptable = 0
        self.sequence = 1
        self.next_send = None
        self.secure_at = None

    def _engine(self):
        return ZrtpEngine(self.cache.zid, self.cache, Preferences(), os.urandom, ssrc=SSRC)

    def restart(self, now):
        """Throw the ZRTP session away and start a fresh one on the same stream (GNU ZRTP after
        hold/retrieve). The SRTP keys in force stay until the new engine says Secure."""
        self.engine = self._engine()
        self.engine.start(now)

    def pump(self, now):
        while True:
            try:
                data, _addr = self.sock.recvfrom(4096)
            except BlockingIOError:
                break
            kind = demux.classify(data)
            if kind == demux.ZRTP:
                self.engine.receive_datagram(data, now)
            elif kind == demux.RTP:
                self._receive_rtp(data)
        self.engine.handle_timer(now)
        for datagram in self.engine.datagrams_to_send(now):
            if self.remote is not None:
                self.sock.sendto(datagram, self.remote)
        while True:
            event = self.engine.next_event()
            if event is None:
                break
            if isinstance(event, Secure):
                self.secure.append(event)
                self.tx = context_from_params((event.send_profile, event.send_key, event.send_salt))
                if not self.rx or self.rx[0][0] != len(self.secure):  # not already taken at ReceiveKeys
                    self.rx.insert(
                        0,
                        (
                            len(self.secure),
                            context_from_params((event.receive_profile, event.receive_key, event.receive_salt)),
                        ),
                    )
                    del self.rx[2:]
                if self.next_send is None:
                    self.next_send = now
                    self.secure_at = now
            elif isinstance(event, ReceiveKeys):
                # RFC 6189 §4.6: once our Confirm2 is out the responder may switch; be ready for its packets.
                self.rx.insert(
                    0,
                    (
                        len(self.secure) + 1,
                        context_from_params((event.receive_profile, event.receive_key, event.receive_salt)),
                    ),
                )
                del self.rx[2:]
            elif isinstance(event, (Alarm, Failed)):
                self.problems.append(event)
        if self.tx is not None and self.remote is not None and now >= self.next_send:
            packet = build_rtp(0, self.sequence, self.sequence * 160, SSRC, b"\xff" * 160)
            self.sock.sendto(self.tx.protect(packet), self.remote)
            self.sequence += 1
            self.next_send += 0.020

    def _receive_rtp(self, data):
        for exchange, context in self.rx:
            try:
                context.unprotect(data)
            except RemoteProtocolError:
                continue
            self.decrypted[exchange] = self.decrypted.get(exchange, 0) + 1
            return
        self.undecryptable += 1


def call_the_harness(tmp_path, peer, duration, after_secure, act):
    """`sotto call` to the harness, which answers with `peer`'s media; `act(now)` runs once, `after_secure`
    seconds into the secure call. (exit code, summary, stderr, when it acted or None)."""
    sip = Driver()

    def on_event(event):
        if isinstance(event, events.IncomingCall):
            offer = sdp.remote_media(event.sdp)
            peer.remote = (offer.address, offer.port)
            peer.engine.set_peer_hello_hash(offer.zrtp_hash)
            answer, _ = sdp.answer_offer(
                event.sdp, ["PCMU"], "127.0.0.1", peer.port, zrtp_hash=peer.engine.hello_hash()
            )
            sip.ua.answer(event.call_id, answer.to_bytes(), sip.now())
            peer.engine.start(sip.now())

    sip.on_event = on_event
    process = sotto.start(
        [
            "call",
            "sip:far@127.0.0.1:{}".format(sip.address[1]),
            "--listen",
            "127.0.0.1:{}".format(sotto.free_udp_port()),
            "--timeout",
            "25",
            "--duration",
            str(duration),
            "--codecs",
            "PCMU",
            "--cache",
            str(tmp_path / "sotto.cache"),
        ],
        tmp_path / "home",
    )
    acted_at = None
    try:
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            sip.pump_once(0.002)
            now = time.monotonic()
            peer.pump(now)
            if acted_at is None and peer.secure_at is not None and now - peer.secure_at > after_secure:
                acted_at = now
                act(now)
        rc, summary, err = sotto.finish(process, 10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        sip.close()
        peer.sock.close()
    return rc, summary, err, acted_at


def test_a_peer_restarting_zrtp_mid_call_rekeys_sotto_without_an_alarm(tmp_path):
    peer = ZrtpPeer()
    rc, summary, err, restarted_at = call_the_harness(tmp_path, peer, 6, RESTART_AFTER, peer.restart)
    assert rc == 0 and summary is not None, err[-3000:]
    assert restarted_at is not None, "the harness never went secure: {}".format(err[-2000:])
    # Our side: two exchanges, the second with the retained secret of the first (no mismatch).
    assert len(peer.secure) == 2 and not peer.problems, (peer.secure, peer.problems)
    assert not peer.secure[1].cache_mismatch
    # sotto's side: still secure, no alarm, the SAS of the last exchange.
    assert summary["secure"] is True and summary["encryption"] == "zrtp", summary
    assert not summary.get("alarms"), summary.get("alarms")
    assert summary["sas"] == peer.secure[1].sas
    # sotto switched its sending keys: about 4 s of its packets authenticate under the new ones.
    assert peer.decrypted.get(2, 0) > 100, (peer.decrypted, peer.undecryptable)
    assert peer.decrypted.get(1, 0) > 50
    assert peer.undecryptable == 0, peer.decrypted
    # And ours kept playing through the switch.
    rtp = summary["rtp"]
    assert rtp["received"] > 250, rtp
    # At most the packets caught at the switch (one 20 ms period each way of the hand-over).
    assert rtp["auth_failures"] == 0, rtp  # new keys are installed before the Confirm2/Conf2ACK leaves
