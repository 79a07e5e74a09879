"""The ZRTP message exchange (RFC 6189 §4.1-§4.6), and its restart on a secure stream (issue 12).

Discovery (Hello/HelloACK, §4.1), Commit and its contention (§4.2), the DH exchange (§4.4.1) and the
confirmation (§4.6), as handlers of each received message in each state, after the RFC's flow. Apart
from engine.py, which keeps the public API, the timers, the outgoing queue and the dispatch, so that
the protocol's steps read in the RFC's order with nothing else between them. The checks of the hash
chain are in chain.py, the algorithm choice in negotiation.py, the key arithmetic in keys.py, and what
a completed exchange means for the cache in continuity.py.

A mixin of ZrtpEngine: it relies on the engine's _send, _arm, _disarm, _queue_event, _alarm, _fail,
_error, _erase and _new_hello.
"""

import binascii

from firmware.errors import RemoteProtocolError
from firmware.zrtp import chain, events, keyagreement, keys, messages, negotiation, sas
from firmware.zrtp import kdf as _kdf
from firmware.zrtp.continuity import Continuity
from firmware.zrtp.events import ReceiveKeys, Secure
from firmware.zrtp.messages import Bare, Commit, ConfirmBody, DHPart, Error

# §6 retransmission timers.
T1_INITIAL = 0.050
T1_CAP = 0.200
T1_MAX_RETRANSMISSIONS = 20
T2_INITIAL = 0.150
T2_CAP = 1.200
T2_MAX_RETRANSMISSIONS = 10

# States, after the RFC's flow (§4, §6).
DISCOVERY = "Discovery"  # sending Hello, waiting for the peer's Hello and our HelloACK
INITIATOR_COMMIT_SENT = "CommitSent"
INITIATOR_WAIT_CONFIRM1 = "WaitConfirm1"
INITIATOR_WAIT_CONF2ACK = "WaitConf2ACK"
RESPONDER_WAIT_DHPART2 = "WaitDHPart2"
RESPONDER_WAIT_CONFIRM2 = "WaitConfirm2"
SECURE = "Secure"
FAILED = "Failed"
IDLE = "Idle"


class Exchange(Continuity):
    __slots__ = ()

    # -- restart on a secure stream (issue 12; §4.6 for when each side's new keys apply) --

    def _begin_restart(self, hello, now):
        """The peer started a new ZRTP exchange on our secure stream (a new Hello after Secure, as GNU
        ZRTP sends after hold/retrieve, when it builds a fresh ZRTP session). We run it from Discovery
        with a fresh hash chain; until it completes, the current keys stay in force, and if it fails the
        engine returns to Secure with them (Alarm REKEY_FAILED, never Failed: a spoofed Hello must not
        take a secure call down)."""
        self._rollback = (self._peer_hello, self._peer_spelling, self._algorithms, self._role)
        self._disarm()
        self._erase()
        self._commit = self._peer_commit = self._dhpart1 = self._dhpart2 = None
        self._confirm1 = self._confirm2 = None
        self._role = None
        self._algorithms = None
        self._peer_v = False
        self._hello_acked = False
        self._alarmed_hash = False
        if self._peer_hello_hash == chain.hello_hash(self._peer_hello.raw):
            self._peer_hello_hash = None  # that a=zrtp-hash was for the previous Hello (see set_peer_hello_hash)
        self._peer_hello = None
        self._peer_spelling = {}
        self._new_hello()
        self.state = DISCOVERY
        self._send(self._hello_raw)
        self._arm("hello", now, self._hello_raw, T1_INITIAL)
        self._on_hello(hello, now)

    def _restart_failed(self, reason, code, send_error, now):
        peer_hello, spelling, algorithms_, role = self._rollback
        self._rollback = None
        self._disarm()
        self._erase()
        self._peer_hello, self._peer_spelling, self._algorithms, self._role = peer_hello, spelling, algorithms_, role
        self._commit = self._peer_commit = self._dhpart1 = self._dhpart2 = None
        self._confirm1 = self._confirm2 = None
        self.state = SECURE
        if send_error and code is not None:
            self._send(Error(code).encode())
        self._alarm(
            events.REKEY_FAILED,
            "the peer's ZRTP restart failed ({}); the previous keys stay in force".format(reason),
            code,
        )

    # -- discovery (§4.1) --

    def _on_hello(self, hello, now):
        if self.state == SECURE:
            if hello.raw == self._peer_hello.raw or chain.hello_hash(hello.raw) in self._completed_hellos:
                return  # a late retransmission of a Hello we already completed an exchange with
            if hello.version[:3] != "1.1" or hello.zid == self.zid:
                return
            self._begin_restart(hello, now)
            return
        version = hello.version
        # §4.1.1: any 1.1x is ours; a higher version is ignored (the peer answers our 1.10 Hello).
        if version[:3] != "1.1" or not version[3:].isdigit():
            if version > messages.VERSION or self.state == IDLE:
                return
            self._error(messages.ERROR_VERSION, now)
            return
        if hello.zid == self.zid:
            if self.state == IDLE:
                return  # refused (Error 0x90) if it comes again after start()
            self._error(messages.ERROR_EQUAL_ZID, now, "peer uses our own ZID (equal ZIDs)")
            return
        if self._peer_hello is None:
            self._peer_hello = hello
            for name in hello.key_agreements:
                self._peer_spelling.setdefault(keyagreement.canonical(name), name)
            self._check_peer_hello_hash()
        elif hello.raw != self._peer_hello.raw:
            return  # a different Hello mid-session is ignored; the first one is the one we check
        if self.state == IDLE:
            return  # start() sends the HelloACK after our own Hello
        self._send(Bare(b"HelloACK").encode())
        self._maybe_commit(now)

    def _on_hello_ack(self, now):
        if self.state != DISCOVERY:
            return
        self._hello_acked = True
        if self._timer_kind == "hello":
            self._disarm()
        self._maybe_commit(now)

    def _maybe_commit(self, now):
        if self.state != DISCOVERY or self._peer_hello is None or not self._hello_acked:
            return
        # A passive peer (P flag) never commits, so we always may (§4.1); both sides committing is
        # resolved by contention (§4.2).
        self._commit_now(now)

    def _commit_now(self, now):
        chosen = {}
        for kind in ("hash", "cipher", "auth_tag", "key_agreement", "sas"):
            name = negotiation.choose(kind, self.preferences, self._peer_hello)
            if name is None:
                self._error(negotiation.UNSUPPORTED_ERROR[kind], now, "no {} in common with the peer".format(kind))
                return
            chosen[kind] = name
        self._algorithms = chosen
        self._keypair = keyagreement.generate(chosen["key_agreement"], self._rng)
        self._role = "initiator"
        self._dhpart2 = self._make_dhpart(2)
        dhpart2_raw = self._dhpart2.encode(self._h0)
        self._dhpart2.raw = dhpart2_raw
        hvi = chain.hvi(chosen["hash"], dhpart2_raw, self._peer_hello.raw)
        ka_name = self._peer_spelling.get(chosen["key_agreement"], chosen["key_agreement"])
        commit = Commit(
            self._h2, self.zid, chosen["hash"], chosen["cipher"], chosen["auth_tag"], ka_name, chosen["sas"], hvi=hvi
        )
        commit.raw = commit.encode(self._h1)
        self._commit = commit
        self.state = INITIATOR_COMMIT_SENT
        self._send(commit.raw)
        self._arm("commit", now, commit.raw, T2_INITIAL)

    def _make_dhpart(self, part):
        label = keys.RESPONDER_LABEL if part == 1 else keys.INITIATOR_LABEL
        ids = keys.secret_ids(self._algorithms["hash"], self._our_secrets(), label, self._rng)
        # No auxiliary or PBX secrets: random IDs (§4.3.1).
        return DHPart(part, self._h1, ids[0], ids[1], bytes(self._rng(8)), bytes(self._rng(8)), self._keypair.public)

    # -- commit and contention (§4.2) --

    def _on_commit(self, commit, now):
        if self._peer_hello is None:
            return  # we cannot check it without the Hello; the peer retransmits
        if self.state in (SECURE, INITIATOR_WAIT_CONFIRM1, INITIATOR_WAIT_CONF2ACK, RESPONDER_WAIT_CONFIRM2):
            return
        if self.state == RESPONDER_WAIT_DHPART2:
            if commit.raw == self._peer_commit.raw:
                self._send(self._dhpart1.raw)  # retransmitted Commit: our DHPart1 was lost
            return
        if not chain.commit_authentic(commit, self._peer_hello):
            return  # §9: a forged or damaged Commit is discarded
        if commit.zid != self._peer_hello.zid:
            self._error(messages.ERROR_HELLO_MISMATCH, now, "Commit ZID differs from the Hello's")
            return
        if commit.key_agreement in ("Mult", "Prsh"):
            if self.state == INITIATOR_COMMIT_SENT:
                return  # §4.2: a DH Commit beats a Multistream or Preshared one
            self._error(
                messages.ERROR_NO_SHARED_SECRET,
                now,
                "peer asked for {} mode; only DH mode".format(commit.key_agreement),
            )
            return
        if self.state == INITIATOR_COMMIT_SENT:
            # §4.2: both sent Commit; the one with the larger hvi stays initiator.
            if self._commit.hvi > commit.hvi:
                return
        self._become_responder(commit, now)

    def _become_responder(self, commit, now):
        chosen = {
            "hash": commit.hash,
            "cipher": commit.cipher,
            "auth_tag": commit.auth_tag,
            "key_agreement": keyagreement.canonical(commit.key_agreement),
            "sas": commit.sas,
        }
        kind = negotiation.not_offered(chosen, self.preferences)
        if kind is not None:
            self._error(
                negotiation.UNSUPPORTED_ERROR[kind],
                now,
                "peer chose {} {} which we did not offer".format(kind, chosen[kind]),
            )
            return
        self._disarm()
        if self._keypair is not None and self._keypair.name != chosen["key_agreement"]:
            self._keypair.erase()
            self._keypair = None
        self._algorithms = chosen
        if self._keypair is None:
            self._keypair = keyagreement.generate(chosen["key_agreement"], self._rng)
        self._role = "responder"
        self._commit = None
        self._dhpart2 = None
        self._peer_commit = commit
        dhpart1 = self._make_dhpart(1)
        dhpart1.raw = dhpart1.encode(self._h0)
        self._dhpart1 = dhpart1
        self.state = RESPONDER_WAIT_DHPART2
        self._send(dhpart1.raw)

    # -- DH exchange (§4.4.1) --

    def _on_dhpart1(self, dhpart1, now):
        if self.state == INITIATOR_WAIT_CONFIRM1 and self._dhpart1 is not None and dhpart1.raw == self._dhpart1.raw:
            self._send(self._dhpart2.raw)
            return
        if self.state != INITIATOR_COMMIT_SENT:
            return
        if not chain.dhpart1_authentic(dhpart1, self._peer_hello):
            return  # §9: chain or Hello MAC broken: discard
        dh_result = self._agree(dhpart1, now, "responder")
        if dh_result is None:
            return
        self._dhpart1 = dhpart1
        transcript = (self._peer_hello.raw, self._commit.raw, dhpart1.raw, self._dhpart2.raw)
        self._derive(dh_result, dhpart1, transcript, self.zid, self._peer_hello.zid)
        self.state = INITIATOR_WAIT_CONFIRM1
        self._send(self._dhpart2.raw)
        self._arm("dhpart2", now, self._dhpart2.raw, T2_INITIAL)

    def _agree(self, dhpart, now, sender):
        """The DH result with the peer's public value, or None once Error is sent: a public value of the
        wrong length is malformed (§5.9 0x10), one the key agreement refuses is a bad pv (§5.9 0x61, §4.4.1.1)."""
        if len(dhpart.pv) != keyagreement.PV_LENGTHS[self._algorithms["key_agreement"]]:
            self._error(messages.ERROR_MALFORMED, now, "DHPart{} public value has the wrong length".format(dhpart.part))
            return None
        try:
            return self._keypair.agree(dhpart.pv)
        except RemoteProtocolError as exc:
            self._error(messages.ERROR_BAD_PV, now, "bad DH public value from the {}: {}".format(sender, exc))
            return None

    def _on_dhpart2(self, dhpart2, now):
        if self.state == RESPONDER_WAIT_CONFIRM2 and dhpart2.raw == self._dhpart2.raw:
            self._send(self._confirm1)
            return
        if self.state != RESPONDER_WAIT_DHPART2:
            return
        commit = self._peer_commit
        if not chain.dhpart2_authentic(dhpart2, commit):
            return  # §9: discard
        if chain.hvi(self._algorithms["hash"], dhpart2.raw, self._hello_raw) != commit.hvi:
            self._error(messages.ERROR_BAD_HVI, now)
            return
        dh_result = self._agree(dhpart2, now, "initiator")
        if dh_result is None:
            return
        self._dhpart2 = dhpart2
        transcript = (self._hello_raw, commit.raw, self._dhpart1.raw, dhpart2.raw)
        self._derive(dh_result, dhpart2, transcript, self._peer_hello.zid, self.zid)
        confirm1 = messages.seal_confirm(
            1,
            self._confirm_body(),
            self._algorithms["hash"],
            self._keys["zrtpkeyr"],
            self._keys["mackeyr"],
            bytes(self._rng(16)),
        )
        self._confirm1 = confirm1.encode()
        self.state = RESPONDER_WAIT_CONFIRM2
        self._send(self._confirm1)

    def _derive(self, dh_result, peer_dhpart, transcript, zidi, zidr):
        """The keys of this exchange (keys.py); `transcript` as keys.derive takes it (§4.4.1.4)."""
        s1, self._cache_mismatch = self._match_secrets(peer_dhpart)
        self._keys = keys.derive(
            self._algorithms["hash"], self._algorithms["cipher"], dh_result, s1, transcript, zidi, zidr
        )
        # s0 and the DH result go out of scope here; the private key is no longer needed.
        self._keypair.erase()
        self._keypair = None

    def _confirm_body(self):
        return ConfirmBody(self._h0, self._our_v())

    # -- confirmation (§4.6) --

    def _open_peer_confirm(self, confirm, peer_dhpart, zrtpkey, mackey, now):
        try:
            body = messages.open_confirm(confirm, self._algorithms["hash"], self._keys[zrtpkey], self._keys[mackey])
        except RemoteProtocolError:
            self._error(messages.ERROR_BAD_CONFIRM_MAC, now)
            return None
        if not chain.h0_authentic(body.h0, peer_dhpart):
            self._fail(
                events.AUTHENTICATION,
                "peer's H0 does not match its hash chain or DHPart MAC",
                messages.ERROR_BAD_CONFIRM_MAC,
                True,
                now,
            )
            return None
        return body

    def _on_confirm1(self, confirm, now):
        if self.state == INITIATOR_WAIT_CONF2ACK:
            if self._confirm1 == confirm.raw:
                self._send(self._confirm2)
            return
        if self.state != INITIATOR_WAIT_CONFIRM1:
            return
        body = self._open_peer_confirm(confirm, self._dhpart1, "zrtpkeyr", "mackeyr", now)
        if body is None:
            return
        self._confirm1 = confirm.raw
        self._peer_v = body.verified
        confirm2 = messages.seal_confirm(
            2,
            self._confirm_body(),
            self._algorithms["hash"],
            self._keys["zrtpkeyi"],
            self._keys["mackeyi"],
            bytes(self._rng(16)),
        )
        self._confirm2 = confirm2.encode()
        self._retain_policy(body)
        self.state = INITIATOR_WAIT_CONF2ACK
        self._send(self._confirm2)
        self._arm("confirm2", now, self._confirm2, T2_INITIAL)
        # §4.6 (GNU ZRTP cites §5.8): having sent Confirm2, the initiator must be ready to receive SRTP,
        # because the responder switches both directions on as soon as Confirm2 arrives.
        self._queue_event(
            ReceiveKeys(
                _kdf.srtp_profile(self._algorithms["cipher"], self._algorithms["auth_tag"]),
                self._keys["srtpkeyr"],
                self._keys["srtpsaltr"],
                self._exchange > 0,
                self._exchange + 1,
            )
        )

    def _on_confirm2(self, confirm, now):
        if self.state == SECURE and self._role == "responder":
            if confirm.raw == self._confirm2:
                self._send(Bare(b"Conf2ACK").encode())
            return
        if self.state != RESPONDER_WAIT_CONFIRM2:
            return
        body = self._open_peer_confirm(confirm, self._dhpart2, "zrtpkeyi", "mackeyi", now)
        if body is None:
            return
        self._confirm2 = confirm.raw
        self._peer_v = body.verified
        self._retain_policy(body)
        self._send(Bare(b"Conf2ACK").encode())
        self._go_secure(now)

    def _on_conf2ack(self, now):
        if self.state != INITIATOR_WAIT_CONF2ACK:
            return
        self._disarm()
        self._go_secure(now)

    def _retain_policy(self, body):
        # §4.9: a cache expiration interval of 0 asks us not to keep the new retained secret.
        self._keys["retain"] = body.cache_expiry != 0

    def _go_secure(self, now):
        derived = self._keys
        alg = self._algorithms
        peer_zid = self._peer_hello.zid
        self._forget_other_peer(peer_zid)
        our_v = self._our_v()
        verified = our_v and self._peer_v and not self._cache_mismatch
        profile = _kdf.srtp_profile(alg["cipher"], alg["auth_tag"])
        send, receive = keys.srtp_directions(derived, self._role)
        self._exchange += 1
        event = Secure(
            key_agreement=self._peer_spelling.get(alg["key_agreement"], alg["key_agreement"]),
            cipher=alg["cipher"],
            hash=alg["hash"],
            auth_tag=alg["auth_tag"],
            sas=sas.render(alg["sas"], derived["sas"]),
            sas_type=alg["sas"],
            verified=verified,
            cache_mismatch=self._cache_mismatch,
            peer_zid=binascii.hexlify(peer_zid).decode(),
            role=self._role,
            send_profile=profile,
            send_key=send[0],
            send_salt=send[1],
            receive_profile=profile,
            receive_key=receive[0],
            receive_salt=receive[1],
            rekey=self._exchange > 1,
            exchange=self._exchange,
        )
        self._secure_event = event
        self.state = SECURE
        self._rollback = None
        self._completed_hellos = (self._completed_hellos + [chain.hello_hash(self._peer_hello.raw)])[-8:]
        # Secure first, so the shell keys SRTP before it spends time writing the cache file.
        self._queue_event(event)
        self._remember(peer_zid, derived["rs1"], derived.get("retain", True), verified)
        # Keep only the peer's MAC key (GoClear/SASrelay) and the raw Confirm bytes; drop the rest.
        self._peer_mackey = derived["mackeyi"] if self._role == "responder" else derived["mackeyr"]
        self._mac_hash = alg["hash"]
        self._keys = None
