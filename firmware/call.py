"""The call layer: one call's media-security policy, stated once (sans-I/O, MicroPython-clean).

Every front end (`sotto call`, `sotto answer`, the phone, the echo line) asks this one object what a call's
media may do. It is fed what the peer's SDP said, when the media starts, what the ZRTP engine reported, the
media counters and re-INVITEs, each with the monotonic time; it answers with events and one deadline, in
the shape of aioquic's connection: `get_timer()`, `handle_timer(now)`, `next_event()`.

The policy (DESIGN.md "a call that is not secure is never silent, and never mute either"):

- ZRTP configured, the peer's SDP carries a=zrtp-hash (RFC 6189 §8.1): the media is withheld until the
  keys exist, at most ZRTP_FALLBACK seconds; then, if ZRTP has not completed, the call goes on in the
  clear with a loud alarm. The exchange keeps running: a late SecureState still secures the call.
- ZRTP configured, no a=zrtp-hash and the peer offered SDES (a=crypto, RFC 4568): SDES at once, shown as
  "encrypted to the server" (its keys travel in the signalling, so every proxy on the path can read them).
- ZRTP configured, neither: the media starts in the clear at once, "NOT SECURE (peer has no ZRTP)". A late
  Hello is still answered (linphone sends Hello without a=zrtp-hash): the call goes secure if it completes.
- secure_only: the call is never sent in the clear or with SDES keys. It waits for ZRTP (SECURE_ONLY_WAIT
  when the peer did not even advertise it) and ends the call when ZRTP does not come.
- Once secure: the peer may restart ZRTP (a new Hello after hold/retrieve, as GNU ZRTP does); the engine
  re-keys and the media takes the new keys (an event, not an alarm). A re-INVITE that drops the call's
  keying is a downgrade alarm. Sustained SRTP authentication failures with no authentic packet for
  STOPPED_ENCRYPTING_WINDOW seconds mean the peer stopped encrypting: an alarm, and `secure` is false from
  then on. More than AUTH_FAILURE_ALARM failures during a secure call are always an alarm.
- Liveness: no authentic RTP or RTCP from the peer for `media_timeout` seconds while the call is not on
  hold ends the call ("media timeout"); the missing tail counts as lost packets.

Events (immutable, __slots__):
    MediaUp(encryption, tx, rx, rekey)   the media may flow now with these SRTP parameters (both None:
                                         RTP in the clear). Again on every change of keys; with `rekey`
                                         the replaced receive keys stay usable for a moment.
    ReceiveKeys(rx)                      new receive keys ahead of the send keys (a re-keying initiator).
    Secure(info, rekey)                  ZRTP reached SecureState; `info` is the engine's Secure event.
    NotSecure(kind, reason)              the call goes on without end-to-end keys (NO_ZRTP, ZRTP_FAILED,
                                         SDES_ONLY): loud, but not ended.
    Alarm(kind, reason)                  a security event (the ZRTP engine's kinds pass through).
    Ended(result, reason, lost_tail)     the call must be ended now (hang up with BYE).
"""

from firmware.events import Event

ZRTP = "zrtp"
SDES = "sdes"
CLEAR = "none"

# NotSecure kinds
NO_ZRTP = "no-zrtp"
ZRTP_FAILED = "zrtp-failed"
SDES_ONLY = "sdes-only"
ENCRYPTION_OFF = "encryption-off"

# Alarm kinds. The phone shows each one (firmware.phone ALARM_*, the same names); the ZRTP engine's alarms
# are mapped onto these by the shell.
CACHE_MISMATCH = "cache-mismatch"
NEW_KEY_FOR_CONTACT = "new-key-for-contact"
ZRTP_HASH_MISMATCH = "zrtp-hash-mismatch"
GOCLEAR = "goclear"
DOWNGRADE = "downgrade"
PEER_STOPPED_ENCRYPTING = "peer-stopped-encrypting"
AUTH_FAILURES = "auth-failures"
NOT_SECURE = "not-secure"
UNTRUSTED_MITM = "untrusted-mitm"
REKEY_FAILED = "rekey-failed"
# Alarms the person resolves by comparing the SAS, and a failed re-key (the call stays under its keys).
# Every other alarm ends a secure_only call.
KEEPS_SECURE_ONLY_CALL = (CACHE_MISMATCH, NEW_KEY_FOR_CONTACT, REKEY_FAILED)

# At most this much withheld audio when the peer advertised ZRTP but the exchange does not complete: a DH3k
# exchange on a Pi with one lost packet fits (RFC 6189 §6: T1 starts at 50 ms).
ZRTP_FALLBACK = 3.0
# secure_only and no a=zrtp-hash: how long to wait for a Hello before the call is ended.
SECURE_ONLY_WAIT = 10.0
# Media liveness (issue 11): the default inactivity timeout.
MEDIA_TIMEOUT = 30.0
# "Peer stopped encrypting": this long with only failed SRTP checks, and at least this many failures. The
# shell samples the counters every MEDIA_SAMPLE seconds, so the alarm comes within 1 s.
STOPPED_ENCRYPTING_WINDOW = 0.5
STOPPED_ENCRYPTING_FAILURES = 10
MEDIA_SAMPLE = 0.25
# More SRTP authentication failures than this during a secure call are always an alarm.
AUTH_FAILURE_ALARM = 50
# A ZRTP restart gets this long to complete before failures count against the peer again.
REKEY_GRACE = 5.0
PACKET_INTERVAL = 0.020  # our ptime; the missing tail of a dead call is counted in these

ON_HOLD_DIRECTIONS = ("sendonly", "inactive")
MAX_EVENTS = 32


class MediaUp(Event):
    __slots__ = ("encryption", "tx", "rx", "rekey")
    _hidden = ("tx", "rx")  # never the keys

    def __init__(self, encryption, tx=None, rx=None, rekey=False):
        self._set("encryption", encryption)
        self._set("tx", tx)
        self._set("rx", rx)
        self._set("rekey", rekey)


class ReceiveKeys(Event):
    __slots__ = ("rx",)
    _hidden = ("rx",)

    def __init__(self, rx):
        self._set("rx", rx)


class Secure(Event):
    __slots__ = ("info", "rekey")
    _hidden = ("info",)  # the engine's Secure event holds the SRTP keys

    def __init__(self, info, rekey=False):
        self._set("info", info)
        self._set("rekey", rekey)


class NotSecure(Event):
    __slots__ = ("kind", "reason")

    def __init__(self, kind, reason):
        self._set("kind", kind)
        self._set("reason", reason)


class Alarm(Event):
    __slots__ = ("kind", "reason")

    def __init__(self, kind, reason):
        self._set("kind", kind)
        self._set("reason", reason)


class Ended(Event):
    __slots__ = ("result", "reason", "lost_tail")

    def __init__(self, result, reason, lost_tail=0):
        self._set("result", result)
        self._set("reason", reason)
        self._set("lost_tail", lost_tail)


def _keys_of(secure_info):
    return (
        (secure_info.send_profile, secure_info.send_key, secure_info.send_salt),
        (secure_info.receive_profile, secure_info.receive_key, secure_info.receive_salt),
    )


class CallPolicy:
    """The security and liveness policy of one call. See the module docstring."""

    def __init__(self, encryption, secure_only=False, media_timeout=MEDIA_TIMEOUT):
        if encryption not in (ZRTP, SDES, CLEAR):
            raise ValueError("encryption must be zrtp, sdes or none")
        self.configured = encryption
        self.secure_only = bool(secure_only)
        self.media_timeout = media_timeout
        self.encryption = CLEAR  # what the media actually uses (the summary's "encryption")
        self.secure = False
        self.peer_zrtp_hash = False
        self.sdes_keys = None
        self.media_started = False
        self.media_released = False
        self.ended = False
        self.zrtp_seen = False
        self.secured_once = False
        self.peer_on_hold = False
        self.we_on_hold = False
        self._events = []
        self._fallback_at = None
        self._media_started_at = None
        self._rekey_until = None
        # liveness and SRTP health, from media_progress()
        self._valid = 0
        self._last_valid_at = None
        self._failures = 0
        self._failures_at_secure = 0
        self._failing_since = None
        self._failures_when_failing_began = 0
        self._auth_alarm_raised = False

    # -- inputs -------------------------------------------------------------------------------------
    def remote_description(self, zrtp_hash, sdes_keys=None):
        """The peer's offer or answer: did it carry a=zrtp-hash; the SDES (tx, rx) parameters agreed from
        its a=crypto line, if any."""
        self.peer_zrtp_hash = bool(zrtp_hash)
        if sdes_keys is not None:
            self.sdes_keys = sdes_keys

    def start_media(self, now):
        """The call is up (200 OK sent or received). Decides what the media may do at once."""
        if self.media_started:
            return
        self.media_started = True
        self._media_started_at = now
        self._last_valid_at = now
        if self.configured == CLEAR:
            self._release(CLEAR, None, None)
            self._queue(NotSecure(ENCRYPTION_OFF, "encryption is off"))
        elif self.configured == SDES:
            self._release(SDES, self.sdes_keys[0], self.sdes_keys[1])
            self.secure = True
        elif self.secure_only:
            # Never a word in the clear or under keys a server saw: wait for ZRTP, or end the call.
            self._fallback_at = now + (ZRTP_FALLBACK if self.peer_zrtp_hash else SECURE_ONLY_WAIT)
        elif self.peer_zrtp_hash:
            # RFC 6189 §8.1: the peer said it speaks ZRTP. With SDES keys agreed as well the media flows under
            # them at once and ZRTP takes over when it completes; otherwise it is withheld while ZRTP keys.
            if self.sdes_keys is not None:
                self._release(SDES, self.sdes_keys[0], self.sdes_keys[1])
            self._fallback_at = now + ZRTP_FALLBACK
        elif self.sdes_keys is not None:
            self._release(SDES, self.sdes_keys[0], self.sdes_keys[1])
            self._queue(NotSecure(SDES_ONLY, "encrypted to the server only (SDES keys travel in the signalling)"))
        else:
            self._release(CLEAR, None, None)
            self._queue(NotSecure(NO_ZRTP, "peer has no ZRTP"))

    def result_of_hangup(self, reason):
        """(result, reason) for a call the peer ended: a secure_only call that never became secure failed."""
        if self.secure_only and not self.secured_once and self.configured != CLEAR:
            return "failed", "not secure: " + reason
        return "completed", reason

    def zrtp_packet(self, now, hello=False):
        """A ZRTP packet arrived from the peer (`hello`: it is a Hello)."""
        self.zrtp_seen = True
        if hello and self.secure and self._rekey_until is None:
            # A new exchange on a secure stream (RFC 6189 §4.6 allows a peer to start over, GNU ZRTP does
            # after hold/retrieve): while it runs, failed SRTP checks are the key change, not the peer.
            self._rekey_until = now + REKEY_GRACE
        if self.secure_only and not self.media_released and self._fallback_at is not None:
            # A secure_only call withholds its audio until ZRTP completes anyway, so it waits for an exchange
            # that is still moving (a slow peer computing its DH, RFC 6189 §4.4.1) rather than end a call that
            # was about to go secure: ZRTP_FALLBACK from the peer's latest packet, never past SECURE_ONLY_WAIT
            # from the start. This also shortens the wait without a=zrtp-hash: a late Hello says the peer does
            # speak ZRTP after all, and a silent one gets no more than the normal wait.
            self._fallback_at = min(now + ZRTP_FALLBACK, self._media_started_at + SECURE_ONLY_WAIT)

    def zrtp_secure(self, info, now):
        """The engine's Secure event (first keys, or a re-key after a restart)."""
        if self.ended:
            return
        rekey = self.secured_once
        self.secured_once = True
        self.secure = True
        self._fallback_at = None
        self._rekey_until = None
        self._failing_since = None
        self._failures_at_secure = self._failures
        self._auth_alarm_raised = False
        tx, rx = _keys_of(info)
        self._release(ZRTP, tx, rx, rekey=rekey or self.media_released)
        self._queue(Secure(info, rekey=rekey))

    def zrtp_receive_keys(self, rx, now):
        """A re-keying initiator's new receive keys (the engine's ReceiveKeys), ahead of its Secure."""
        if self.media_released and self.encryption != CLEAR and not self.ended:
            self._queue(ReceiveKeys(rx))

    def zrtp_failed(self, kind, reason, now):
        """The ZRTP exchange failed for good (the engine's Failed: no answer, an Error, a bad MAC...)."""
        if self.ended or self.secure:
            return
        if self.media_started and not self.media_released:
            self._give_up("ZRTP failed: " + str(reason), kind=NO_ZRTP if kind == NO_ZRTP else ZRTP_FAILED)

    def zrtp_alarm(self, kind, reason, now):
        """A security alarm from the ZRTP engine (cache mismatch, zrtp-hash mismatch, GoClear...)."""
        self._alarm(kind, reason, now)

    def reinvite(self, zrtp_hash, has_crypto, direction, now):
        """A re-INVITE's offer. Dropping the call's keying mid-call is a downgrade alarm, never silent."""
        if self.configured == ZRTP and self.peer_zrtp_hash and not zrtp_hash:
            self._alarm(DOWNGRADE, "downgrade: re-INVITE without ZRTP", now)
        elif self.encryption == SDES and not has_crypto:
            self._alarm(DOWNGRADE, "downgrade: re-INVITE without SRTP keys", now)
        self.peer_on_hold = direction in ON_HOLD_DIRECTIONS
        if not self.on_hold:
            self._last_valid_at = now  # the peer resumes: give it a whole timeout to send again

    def hold(self, on_hold, now):
        """We put the call on hold (or take it off)."""
        self.we_on_hold = bool(on_hold)
        if not self.on_hold:
            self._last_valid_at = now

    @property
    def on_hold(self):
        return self.peer_on_hold or self.we_on_hold

    def media_progress(self, valid, auth_failures, now):
        """The media counters (cumulative): authentic RTP+RTCP packets from the peer, SRTP check failures."""
        if self.ended:
            return
        if valid > self._valid:
            self._valid = valid
            self._last_valid_at = now
            self._failing_since = None
        new_failures = auth_failures > self._failures
        self._failures = auth_failures
        if self.secure and self.encryption == ZRTP:
            self._check_srtp_health(new_failures, now)
        self.handle_timer(now)

    def _check_srtp_health(self, new_failures, now):
        if self._rekey_until is not None:
            if now < self._rekey_until:
                return
            self._rekey_until = None
        if new_failures and self._failing_since is None:
            self._failing_since = now
            self._failures_when_failing_began = self._failures
        if (
            self._failing_since is not None
            and now - self._failing_since >= STOPPED_ENCRYPTING_WINDOW
            and self._failures - self._failures_when_failing_began >= STOPPED_ENCRYPTING_FAILURES
        ):
            self.secure = False
            failed = self._failures - self._failures_when_failing_began
            window = now - self._failing_since
            self._failing_since = None
            self._alarm(
                PEER_STOPPED_ENCRYPTING,
                "peer stopped encrypting: {} packets failed SRTP authentication in {:.1f} s, none passed".format(
                    failed, window
                ),
                now,
            )
            return
        if not self._auth_alarm_raised and self._failures - self._failures_at_secure > AUTH_FAILURE_ALARM:
            self._auth_alarm_raised = True
            self._alarm(
                AUTH_FAILURES,
                "{} SRTP packets failed authentication during the secure call".format(
                    self._failures - self._failures_at_secure
                ),
                now,
            )

    # -- timers -------------------------------------------------------------------------------------
    def get_timer(self):
        if self.ended or not self.media_started:
            return None
        candidates = [self._fallback_at]
        if self.media_timeout and not self.on_hold and self._last_valid_at is not None:
            candidates.append(self._last_valid_at + self.media_timeout)
        best = None
        for when in candidates:
            if when is not None and (best is None or when < best):
                best = when
        return best

    def handle_timer(self, now):
        if self.ended or not self.media_started:
            return
        if self._fallback_at is not None and now >= self._fallback_at:
            self._fallback_at = None
            if not self.secure:
                if self.peer_zrtp_hash or self.zrtp_seen:
                    self._give_up("ZRTP did not complete within {:g} s".format(ZRTP_FALLBACK))
                else:
                    self._give_up("peer has no ZRTP", kind=NO_ZRTP)
        if (
            self.media_timeout
            and not self.on_hold
            and self._last_valid_at is not None
            and now >= self._last_valid_at + self.media_timeout
        ):
            silent = now - self._last_valid_at
            self._end("failed", "media timeout", now, lost_tail=int(silent / PACKET_INTERVAL))

    # -- outputs ------------------------------------------------------------------------------------
    def next_event(self):
        if not self._events:
            return None
        return self._events.pop(0)

    # -- internals ----------------------------------------------------------------------------------
    def _queue(self, event):
        if len(self._events) < MAX_EVENTS:
            self._events.append(event)

    def _release(self, encryption, tx, rx, rekey=False):
        self.encryption = encryption
        self.media_released = True
        self._queue(MediaUp(encryption, tx, rx, rekey))

    def _alarm(self, kind, reason, now):
        self._queue(Alarm(kind, reason))
        if self.secure_only and kind not in KEEPS_SECURE_ONLY_CALL:
            self._end("failed", "not secure: " + reason, now)

    def _give_up(self, why, kind=ZRTP_FAILED):
        self._fallback_at = None
        if self.secure_only:
            self._end("failed", "not secure: " + why, None)
            return
        if self.encryption == SDES:
            self._queue(NotSecure(SDES_ONLY, why + "; encrypted to the server only (SDES)"))
            return
        self._release(CLEAR, None, None)
        self._queue(NotSecure(kind, why))

    def _end(self, result, reason, now, lost_tail=0):
        if self.ended:
            return
        self.ended = True
        self._fallback_at = None
        self._queue(Ended(result, reason, lost_tail))
