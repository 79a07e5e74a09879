"""Key continuity for the ZRTP engine (RFC 6189 §4.3, §4.6.1, §4.6.1.1, §4.9; issue 11): the retained
secrets and the verified flag in the cache, the user's SAS verdict, and the contact-to-ZID binding.

Apart from the message exchange because it is the ssh-known-hosts half of ZRTP: what a completed
exchange means for the next call, decided once the keys exist, and undone when the user says the SAS
did not match. A mixin of ZrtpEngine (firmware/zrtp/engine.py), whose state it reads and writes; it
queues events and alarms through the engine's _queue_event/_alarm.
"""

import binascii

from firmware.zrtp import events, keys
from firmware.zrtp.events import CacheUpdated


class Continuity:
    __slots__ = ()

    def confirm_sas(self, now):
        """The user read the SAS aloud and it matched (§4.6.1.1: only now the deferred update applies).

        It also binds the contact (peer_uri) to this peer's ZID: this is how the user accepts a new key
        for a verified contact after a NEW_KEY_FOR_CONTACT alarm (issue 11).
        """
        peer = self._secure_peer_zid()
        if self.cache is None or peer is None:
            return
        if self._pending_rs1 is not None:
            self.cache.update_retained(peer, self._pending_rs1, self.wall_time, self.peer_uri)
            self._pending_rs1 = None
        self._rs_before = None
        self.cache.set_verified(peer, True, self.wall_time)
        if self.peer_uri:
            self.cache.bind_contact(self.peer_uri, peer, self.wall_time)
        self._queue_event(CacheUpdated())

    def accept_new_key(self, now):
        """The trust menu's "accept the new key" after NEW_KEY_FOR_CONTACT: the same as confirm_sas()."""
        self.confirm_sas(now)

    def reject_sas(self, now):
        """The SAS did not match (a MiTM, or a misread): the peer is not trusted.

        The deferred update is dropped, an update already applied by this call is undone (the secret
        agreed in this call may be shared with an attacker and must not make the next call look
        continuous), and V is cleared.
        """
        peer = self._secure_peer_zid()
        self._pending_rs1 = None
        if self.cache is None or peer is None:
            return
        if self._rs_before is not None:
            existed, rs1, rs2 = self._rs_before
            self._rs_before = None
            if not existed:
                self.cache.reset(peer)
                self._queue_event(CacheUpdated())
                return
            record = self.cache.get(peer)
            if record is not None:
                record.rs1, record.rs2 = rs1, rs2
        if self.cache.get(peer) is not None:
            self.cache.set_verified(peer, False, self.wall_time)
            self._queue_event(CacheUpdated())

    def _secure_peer_zid(self):
        """The ZID of the peer of the last completed exchange (the one the SAS on display belongs to)."""
        if self._secure_event is None:
            return None
        return binascii.unhexlify(self._secure_event.peer_zid)

    def _our_secrets(self):
        """Our (rs1, rs2) for this exchange (§4.3.1). In a re-key after a cache mismatch that the user
        has not resolved yet, the secret agreed earlier in this call (held back, §4.6.1.1) stands in for
        rs1 and the cache's rs1 for rs2: a peer that stored it matches it, one that did not matches
        nothing, as in the first exchange."""
        record = self.cache.get(self._peer_hello.zid) if self.cache is not None else None
        rs1 = record.rs1 if record else None
        rs2 = record.rs2 if record else None
        if self._pending_rs1 is not None and self._secure_peer_zid() == self._peer_hello.zid:
            return self._pending_rs1, rs1
        return rs1, rs2

    def _match_secrets(self, peer_dhpart):
        """§4.3.2: compare the peer's rs1/rs2 IDs with ours; return (s1 or None, mismatch flag)."""
        ours = self._our_secrets()
        if ours[0] is None:
            return None, False
        label = keys.RESPONDER_LABEL if self._role == "initiator" else keys.INITIATOR_LABEL
        s1 = keys.match_secret(self._algorithms["hash"], ours, peer_dhpart, label)
        if s1 is None:
            return None, True
        # Matching the held-back secret continues this call; the cache mismatch stays open.
        return s1, s1 is self._pending_rs1

    def _our_v(self):
        record = self.cache.get(self._peer_hello.zid) if self.cache is not None else None
        return bool(record and record.verified and self._keys["s1_matched"] and not self._cache_mismatch)

    def _remember(self, peer_zid, rs1, retain, verified):
        """After Secure: the cache update of §4.6.1 (or its deferral), then the contact binding."""
        changed = False
        # §4.6.1: rs2 = rs1, rs1 = new; on a cache mismatch the update waits for the SAS (§4.6.1.1). The
        # alarm is raised once per call: a re-key that finds the same unresolved mismatch is no news.
        if self.cache is not None and retain:
            if self._cache_mismatch:
                self._pending_rs1 = rs1
                self._alarm(
                    events.CACHE_MISMATCH,
                    "ZRTP cache mismatch: the peer's retained secret differs; compare the SAS",
                    once=True,
                )
            else:
                if self._rs_before is None:  # what reject_sas() restores: the state before this call
                    record = self.cache.get(peer_zid)
                    self._rs_before = (
                        record is not None,
                        record.rs1 if record else None,
                        record.rs2 if record else None,
                    )
                self.cache.update_retained(peer_zid, rs1, self.wall_time, self.peer_uri)
                changed = True
        changed = self._check_contact(peer_zid, verified) or changed
        if changed:
            self._queue_event(CacheUpdated())

    def _forget_other_peer(self, peer_zid):
        previous_peer = self._secure_peer_zid()
        if previous_peer is not None and previous_peer != peer_zid:
            # A restart by a different ZID: what this call held back or may undo belongs to the other one.
            self._pending_rs1 = None
            self._rs_before = None

    def _check_contact(self, peer_zid, verified):
        """Address-book continuity (issue 11): a verified contact that shows up with a different ZID is
        a loud alarm of its own; a verified call by a contact we have no binding for creates one.
        Returns True when the cache changed."""
        if self.cache is None or not self.peer_uri:
            return False
        bound = self.cache.contact_zid(self.peer_uri)
        if bound is not None and bound != peer_zid:
            self._alarm(
                events.NEW_KEY_FOR_CONTACT,
                "new key for a verified contact: {} used ZID {}, now ZID {}; compare the SAS".format(
                    self.peer_uri, _hex(bound), _hex(peer_zid)
                ),
                once=True,
            )
            return False
        if bound is None and verified:
            return self.cache.bind_contact(self.peer_uri, peer_zid, self.wall_time)
        return False


def _hex(data):
    return binascii.hexlify(data).decode()
