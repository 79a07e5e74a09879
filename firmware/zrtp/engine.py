"""The ZRTP protocol engine (RFC 6189), sans I/O, in the shape of aioquic's QuicConnection.

One engine secures one media stream in DH mode, as initiator or responder (whoever's Commit wins,
§4.2). It never touches a socket, a clock or a random source: the shell passes `now` (monotonic
seconds) and `rng(n)`.

Construction:
    ZrtpEngine(zid, cache, preferences, rng, ssrc=0, client_id="Sotto", peer_hello_hash=None,
               peer_uri=None, wall_time=0)
    - zid: our 12-byte ZID (cache.zid when a cache is used).
    - cache: a firmware.zrtp.cache.ZrtpCache, or None for no key continuity.
    - preferences: a Preferences (None: the defaults), lists of 4-character names in preference order.
    - rng: callable, rng(n) -> n random bytes.
    - ssrc: our RTP SSRC, put in every ZRTP packet header.
    - peer_hello_hash: the peer's SDP a=zrtp-hash value ("1.10 <hex>"), if known (else call
      set_peer_hello_hash() later); a mismatch raises an Alarm (§8.1.1).
    - peer_uri: the peer's SIP URI (our call's target, or the From of an incoming call). Stored in the
      cache with the peer's retained secret, and the contact whose ZID binding is checked (issue 11).
    - wall_time: seconds since the epoch at call start, recorded as the cache's "last use".

Commands and I/O:
    hello_hash() -> "1.10 <hex>" for our own a=zrtp-hash (of the current exchange's Hello: after the
        peer restarts ZRTP, the new Hello has a new hash; put it in the next SDP we send).
    start(now): begin sending Hello.
    receive_datagram(data, now): one raw ZRTP packet from the RTP port (never raises on peer input).
    datagrams_to_send(now) -> list of bytes to send to the peer's RTP address.
    get_timer() -> absolute deadline or None; handle_timer(now).
    next_event() -> an event of firmware/zrtp/events.py, or None.
    confirm_sas(now): the trust button (short press): set V, apply a deferred cache update, and bind
        the contact (peer_uri) to this peer's ZID. accept_new_key(now) is the same, for the trust
        menu after a NEW_KEY_FOR_CONTACT alarm.
    reject_sas(now): long press, "SAS did not match": clear V, drop any deferred update.
    set_peer_hello_hash(value): the SDP answer arrived after start(), or a re-INVITE brought one.
    exchange: completed exchanges on this stream (0 before the first Secure).

Events (firmware/zrtp/events.py, re-exported here): Secure, ReceiveKeys, Alarm(kind, reason, code),
Failed(kind, reason, code), CacheUpdated. Every Alarm and Failed has a `kind` from events.ALARM_KINDS /
events.FAILED_KINDS.

    Order: Secure comes before the alarms and the CacheUpdated of the same handshake (key SRTP first,
    write the file after). confirm_sas()/reject_sas() queue a CacheUpdated when they change the cache.
    Hand-shake state is in `state` (Idle, Discovery, CommitSent, WaitConfirm1, WaitConf2ACK,
    WaitDHPart2, WaitConfirm2, Secure, Failed).

Re-keying (issue 12). A Hello from the peer after Secure that is not one we already completed an
exchange with starts a new exchange on the same stream (GNU ZRTP builds a fresh ZRTP session after
hold/retrieve). The engine runs it from Discovery with a fresh hash chain while the current SRTP keys
stay in force; the retained secret agreed earlier keeps the call continuous, so a verified peer stays
verified (a new SAS is shown, flagged verified). On completion it queues Secure(rekey=True, exchange=n)
with all-new keys; a failure (timeout, Error, bad MAC) is Alarm(REKEY_FAILED) and the engine goes back
to Secure with the previous keys, never Failed. When the new keys apply, per direction (RFC 6189 §4.6,
as GNU ZRTP does it):
    - responder: at Secure, which it queues on receiving Confirm2 (after sending Conf2ACK): it sends
      with the new keys from then on, and the initiator may still send under the old ones until its
      Conf2ACK arrives (one trip, more if Conf2ACK is lost and Confirm2 is resent);
    - initiator: receive keys at ReceiveKeys, queued when it sends Confirm2 (the responder may switch
      any time after); send keys at Secure, queued on Conf2ACK.
    So each side should keep its old receive context for a short overlap (try the new one first; a
    packet that authenticates only under the old one is still the peer's) and drop it once a packet
    authenticates under the new one, or after a couple of seconds. Install the keys of Secure and
    ReceiveKeys before sending the datagrams the same input produced: the Conf2ACK or Confirm2 among
    them lets the peer switch at once, and its next packet may beat a late key installation.

The SRTP keys in Secure are the only secrets that leave the engine; s0, the DH private key and the
other derived keys are dropped as soon as they are no longer needed, except the peer's MAC key, kept
while secure to authenticate GoClear and SASrelay. Nothing here logs.
"""

import binascii

from firmware import crypto
from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.zrtp import algorithms, events, keyagreement, messages, sas
from firmware.zrtp import kdf as _kdf
from firmware.zrtp.events import Alarm, CacheUpdated, Failed, ReceiveKeys, Secure  # noqa: F401 (re-exported)
from firmware.zrtp.messages import (
    Bare,
    Commit,
    Confirm,
    ConfirmBody,
    DHPart,
    Error,
    GoClear,
    Hello,
    Ping,
    PingACK,
    SASrelay,
)

# §6 retransmission timers.
T1_INITIAL = 0.050
T1_CAP = 0.200
T1_MAX_RETRANSMISSIONS = 20
T2_INITIAL = 0.150
T2_CAP = 1.200
T2_MAX_RETRANSMISSIONS = 10
MAX_QUEUED_DATAGRAMS = 32
MAX_QUEUED_EVENTS = 32

# §5.1: algorithms every endpoint supports even when its Hello does not list them.
MANDATORY = algorithms.MANDATORY
# What this platform can run (firmware/zrtp/algorithms.py; probed once at import).
SUPPORTED = algorithms.SUPPORTED
UNSUPPORTED_ERROR = {
    "hash": messages.ERROR_HASH_UNSUPPORTED,
    "cipher": messages.ERROR_CIPHER_UNSUPPORTED,
    "auth_tag": messages.ERROR_AUTH_TAG_UNSUPPORTED,
    "key_agreement": messages.ERROR_KEY_AGREEMENT_UNSUPPORTED,
    "sas": messages.ERROR_SAS_UNSUPPORTED,
}

# Weakest first, for the choice between two differing first choices (see ZrtpEngine._choose).
STRENGTH = {"hash": ("S256", "S384"), "cipher": ("AES1", "AES3")}

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


class Preferences:
    """Algorithm preferences: lists of ZRTP names, most preferred first (at most 7 of each).

    A list left out (or empty) takes firmware.zrtp.algorithms.DEFAULTS: everything this platform can
    run, in the documented order. A name the platform cannot run is API misuse (LocalProtocolError).
    """

    __slots__ = ("hashes", "ciphers", "auth_tags", "key_agreements", "sas_types")

    def __init__(self, hashes=None, ciphers=None, auth_tags=None, key_agreements=None, sas_types=None):
        defaults = algorithms.DEFAULTS
        self.hashes = _check_names("hash", hashes or defaults["hash"])
        self.ciphers = _check_names("cipher", ciphers or defaults["cipher"])
        self.auth_tags = _check_names("auth_tag", auth_tags or defaults["auth_tag"])
        self.key_agreements = _check_names("key_agreement", key_agreements or defaults["key_agreement"])
        self.sas_types = _check_names("sas", sas_types or defaults["sas"])

    def of(self, kind):
        return {
            "hash": self.hashes,
            "cipher": self.ciphers,
            "auth_tag": self.auth_tags,
            "key_agreement": self.key_agreements,
            "sas": self.sas_types,
        }[kind]


def _check_names(kind, names):
    out = []
    for name in names:
        if kind == "key_agreement":
            name = algorithms.canonical(name)
        if name not in SUPPORTED[kind]:
            raise LocalProtocolError(
                "ZRTP {} {!r} is not supported on this platform".format(kind.replace("_", " "), name)
            )
        if name not in out:
            out.append(name)
    if not out or len(out) > messages.MAX_ALGORITHMS:
        raise LocalProtocolError("between 1 and 7 ZRTP {} names".format(kind.replace("_", " ")))
    return out


def _hex(data):
    return binascii.hexlify(data).decode()


def _effective(names, kind):
    out = list(names)
    for name in MANDATORY[kind]:
        if name not in out:
            out.append(name)
    return out


class ZrtpEngine:
    __slots__ = (
        "zid",
        "cache",
        "preferences",
        "_rng",
        "ssrc",
        "client_id",
        "peer_uri",
        "wall_time",
        "state",
        "_h0",
        "_h1",
        "_h2",
        "_h3",
        "_hello",
        "_hello_raw",
        "_peer_hello",
        "_peer_hello_hash",
        "_hello_acked",
        "_sequence",
        "_outgoing",
        "_events",
        "_timer",
        "_timer_interval",
        "_timer_count",
        "_timer_kind",
        "_retransmit",
        "_commit",
        "_peer_commit",
        "_dhpart1",
        "_dhpart2",
        "_keypair",
        "_role",
        "_algorithms",
        "_keys",
        "_confirm1",
        "_confirm2",
        "_secure_event",
        "_pending_rs1",
        "_cache_mismatch",
        "_peer_v",
        "_rs_before",
        "_last_error_code",
        "_failed",
        "_peer_spelling",
        "_alarmed_hash",
        "_peer_mackey",
        "_mac_hash",
        "_exchange",
        "_rollback",
        "_completed_hellos",
        "_consumed_hashes",
        "_alarmed",
    )

    def __init__(
        self, zid, cache, preferences, rng, ssrc=0, client_id="Sotto", peer_hello_hash=None, peer_uri=None, wall_time=0
    ):
        if not isinstance(zid, bytes) or len(zid) != 12:
            raise LocalProtocolError("a ZID is 12 bytes")
        if cache is not None and cache.zid != zid:
            raise LocalProtocolError("the ZID must be the cache's ZID")
        self.zid = zid
        self.cache = cache
        self.preferences = preferences or Preferences()
        self._rng = rng
        self.ssrc = ssrc
        self.client_id = client_id
        self.peer_uri = peer_uri
        self.wall_time = wall_time
        self.state = IDLE
        self._new_hello()
        self._peer_hello = None
        self._peer_hello_hash = None
        self._alarmed_hash = False
        self._hello_acked = False
        self._sequence = _int(rng(2)) & 0x7FFF
        self._outgoing = []
        self._events = []
        self._timer = None
        self._timer_interval = 0
        self._timer_count = 0
        self._timer_kind = None
        self._retransmit = None
        self._commit = None
        self._peer_commit = None
        self._dhpart1 = None
        self._dhpart2 = None
        self._keypair = None
        self._role = None
        self._algorithms = None
        self._keys = None
        self._confirm1 = None
        self._confirm2 = None
        self._secure_event = None
        self._pending_rs1 = None
        self._rs_before = None  # (existed, rs1, rs2) before this call's update, for reject_sas()
        self._cache_mismatch = False
        self._peer_v = False
        self._last_error_code = None
        self._failed = False
        self._peer_spelling = {}
        self._peer_mackey = None  # kept while secure, to authenticate GoClear and SASrelay (§5.11, §5.13)
        self._mac_hash = None  # the hash of the exchange that produced _peer_mackey
        self._exchange = 0  # completed exchanges on this stream (the first Secure is exchange 1)
        self._rollback = None  # while the peer restarts ZRTP on a secure stream: the secure state to keep
        self._completed_hellos = []  # hashes of the peer Hellos of completed exchanges (never a restart)
        self._consumed_hashes = []  # a=zrtp-hash values that already matched a Hello of this call
        self._alarmed = []  # alarm kinds raised once per call (cache mismatch, new key for a contact)
        if peer_hello_hash is not None:
            self.set_peer_hello_hash(peer_hello_hash)

    # ---- public API -------------------------------------------------------------------------------

    @property
    def exchange(self):
        return self._exchange

    def hello_hash(self):
        return "{} {}".format(messages.VERSION, _hex(_kdf.implicit_hash(self._hello_raw)))

    def set_peer_hello_hash(self, value):
        """The peer's a=zrtp-hash ("1.10 <64 hex digits>"); checked against its Hello (§8.1.1).

        Call it again with the a=zrtp-hash of every re-INVITE or answer: a value that already matched
        a Hello of this call is ignored, a new one is checked against the current (or next) Hello.
        """
        if value is None:
            return
        parts = value.strip().split()
        if len(parts) != 2 or len(parts[1]) != 64:
            self._alarm(events.ZRTP_HASH_MISMATCH, "malformed a=zrtp-hash from the peer's SDP")
            return
        value = parts[1].lower()
        if value in self._consumed_hashes or value == self._peer_hello_hash:
            return
        self._peer_hello_hash = value
        self._alarmed_hash = False
        if self._peer_hello is not None:
            self._check_peer_hello_hash()

    def start(self, now):
        if self.state != IDLE:
            raise LocalProtocolError("ZRTP engine already started")
        self.state = DISCOVERY
        self._send(self._hello_raw)
        self._arm("hello", now, self._hello_raw, T1_INITIAL)
        if self._peer_hello is not None:
            self._send(Bare(b"HelloACK").encode())  # for the Hello that arrived before start()

    def datagrams_to_send(self, now):
        out = self._outgoing
        self._outgoing = []
        return out

    def get_timer(self):
        return self._timer

    def next_event(self):
        if self._events:
            return self._events.pop(0)
        return None

    def handle_timer(self, now):
        if self._timer is None or now < self._timer:
            return
        kind = self._timer_kind
        limit = T1_MAX_RETRANSMISSIONS if kind == "hello" else T2_MAX_RETRANSMISSIONS
        cap = T1_CAP if kind == "hello" else T2_CAP
        if self._timer_count >= limit:
            self._timer = None
            if kind == "error":
                return
            if kind == "hello":
                self._fail(
                    events.NO_ZRTP,
                    "no ZRTP answer from the peer (Hello retransmitted {} times)".format(limit),
                    messages.ERROR_PROTOCOL_TIMEOUT,
                    False,
                    now,
                )
            else:
                self._fail(
                    events.TIMEOUT,
                    "ZRTP protocol timeout waiting in {}".format(self.state),
                    messages.ERROR_PROTOCOL_TIMEOUT,
                    True,
                    now,
                )
            return
        self._timer_count += 1
        self._timer_interval = min(self._timer_interval * 2, cap)
        self._timer = now + self._timer_interval
        self._send(self._retransmit)

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

    def receive_datagram(self, data, now):
        try:
            _sequence, ssrc, raw = messages.decode_packet(data)
            message = messages.decode_message(raw)
        except RemoteProtocolError:
            return  # §5: a bad CRC or a malformed packet is dropped
        try:
            self._dispatch(message, ssrc, now)
        except RemoteProtocolError as exc:
            # Anything the peer sent that breaks a rule and has no specific handler below.
            if self.state not in (SECURE, FAILED):
                self._fail(
                    events.PROTOCOL, "malformed ZRTP message: {}".format(exc), messages.ERROR_MALFORMED, True, now
                )
        except LocalProtocolError as exc:
            # What the peer asked for could not be computed here (the algorithm lists are filtered by the
            # platform's capabilities, so this is not expected): report it, never raise it (issue 13).
            if self.state not in (SECURE, FAILED):
                self._fail(
                    events.LOCAL,
                    "ZRTP could not proceed on this platform: {}".format(exc),
                    messages.ERROR_SOFTWARE,
                    True,
                    now,
                )

    # ---- internals ----------------------------------------------------------------------------------

    def _peer_zid(self):
        return self._peer_hello.zid if self._peer_hello is not None else None

    def _secure_peer_zid(self):
        """The ZID of the peer of the last completed exchange (the one the SAS on display belongs to)."""
        if self._secure_event is None:
            return None
        return binascii.unhexlify(self._secure_event.peer_zid)

    def _new_hello(self):
        # §9: a fresh hash chain H0 -> H3, SHA-256 (the implicit hash, §5.1.2.2), for every exchange: H0
        # is revealed to the peer in Confirm, so a chain is never used twice.
        self._h0 = bytes(self._rng(32))
        self._h1 = _kdf.implicit_hash(self._h0)
        self._h2 = _kdf.implicit_hash(self._h1)
        self._h3 = _kdf.implicit_hash(self._h2)
        prefs = self.preferences
        self._hello = Hello(
            messages.VERSION,
            self.client_id,
            self._h3,
            self.zid,
            prefs.hashes,
            prefs.ciphers,
            prefs.auth_tags,
            prefs.key_agreements,
            prefs.sas_types,
        )
        self._hello_raw = self._hello.encode(self._h2)

    def _send(self, message_raw):
        if len(self._outgoing) >= MAX_QUEUED_DATAGRAMS:
            self._outgoing.pop(0)
        self._outgoing.append(messages.encode_packet(self._sequence, self.ssrc, message_raw))
        self._sequence = (self._sequence + 1) & 0xFFFF

    def _arm(self, kind, now, message_raw, initial):
        self._timer_kind = kind
        self._timer_interval = initial
        self._timer_count = 0
        self._timer = now + initial
        self._retransmit = message_raw

    def _disarm(self):
        self._timer = None
        self._timer_kind = None
        self._retransmit = None

    def _queue_event(self, event):
        if len(self._events) >= MAX_QUEUED_EVENTS:
            self._events.pop(0)
        self._events.append(event)

    def _alarm(self, kind, reason, code=None, once=False):
        if once:
            if kind in self._alarmed:
                return
            self._alarmed.append(kind)
        self._queue_event(Alarm(kind, reason, code))

    def _refuse(self, kind, reason, code):
        """Refuse an authentic request we never obey (GoClear §4.7.2, SASrelay §7.3): alarm, answer Error
        `code`, and stay secure."""
        self._alarm(kind, reason, code)
        self._send(Error(code).encode())

    def _fail(self, kind, reason, code, send_error, now):
        if self._failed:
            return
        if self._rollback is not None:
            self._restart_failed(reason, code, send_error, now)
            return
        self._failed = True
        self.state = FAILED
        self._disarm()
        self._erase()
        if send_error and code is not None:
            # §5.9: the Error is retransmitted on T2 until the peer's ErrorACK.
            raw = Error(code).encode()
            self._last_error_code = code
            self._send(raw)
            self._arm("error", now, raw, T2_INITIAL)
        self._queue_event(Failed(kind, reason, code))

    def _error(self, code, now, reason=None):
        name = messages.ERROR_NAMES.get(code, "error")
        if code in UNSUPPORTED_ERROR.values():
            kind = events.NO_COMMON_ALGORITHM
        elif code in (messages.ERROR_BAD_PV, messages.ERROR_BAD_HVI, messages.ERROR_BAD_CONFIRM_MAC):
            kind = events.AUTHENTICATION
        else:
            kind = events.PROTOCOL
        self._fail(kind, reason or name, code, True, now)

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
        previous = _hex(_kdf.implicit_hash(self._peer_hello.raw))
        if self._peer_hello_hash == previous:
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

    def _erase(self):
        if self._keypair is not None:
            self._keypair.erase()
            self._keypair = None
        self._keys = None

    def _authentic(self, mac, data):
        if self._peer_mackey is None:
            return False
        expected = _kdf.zrtp_mac(self._mac_hash, self._peer_mackey, data)[:8]
        return crypto.constant_time_equal(expected, mac)

    def _check_peer_hello_hash(self):
        if self._peer_hello_hash is None or self._alarmed_hash:
            return
        actual = _hex(_kdf.implicit_hash(self._peer_hello.raw))
        if actual != self._peer_hello_hash:
            self._alarmed_hash = True
            self._alarm(
                events.ZRTP_HASH_MISMATCH, "the peer's Hello does not match its SDP a=zrtp-hash (possible MiTM)"
            )
        elif actual not in self._consumed_hashes:
            self._consumed_hashes = (self._consumed_hashes + [actual])[-4:]

    def _dispatch(self, message, ssrc, now):
        if self.state == IDLE:
            # linphone sends Hello right after its 200 OK, often before our side calls start(): keep it,
            # and answer it with HelloACK once we start (INTEROP.md). Nothing else before start().
            if isinstance(message, Hello):
                self._on_hello(message, now)
            return
        if isinstance(message, Ping):
            # §5.15: answer in any state.
            ack = PingACK(messages.VERSION, _kdf.implicit_hash(self.zid)[:8], message.endpoint_hash, ssrc)
            self._send(ack.encode())
            return
        if isinstance(message, PingACK):
            return
        if isinstance(message, Error):
            self._send(Bare(b"ErrorACK").encode())
            # In Secure an Error is unauthenticated noise: obeying it would let anyone on the path end a
            # secure call's keying (GNU ZRTP ignores it there for the same reason).
            if not self._failed and self.state != SECURE:
                name = messages.ERROR_NAMES.get(message.code, "unknown error")
                self._fail(
                    events.PEER_ERROR, "peer sent Error 0x{:x}: {}".format(message.code, name), message.code, False, now
                )
            return
        if isinstance(message, Bare) and message.TYPE == b"ErrorACK":
            if self._timer_kind == "error":
                self._disarm()
            return
        if self.state == FAILED:
            return
        if isinstance(message, GoClear):
            # §4.7.2: we never allow clear mode; an authentic GoClear is a downgrade attempt or a mistake:
            # alarm, refuse, stay secure. One whose clear_mac fails (§5.11) is forged noise and dropped.
            if self._authentic(message.clear_mac, GoClear.TYPE):
                self._refuse(
                    events.GOCLEAR,
                    "peer sent GoClear; staying secure (never obeyed)",
                    messages.ERROR_GOCLEAR_NOT_ALLOWED,
                )
            return
        if isinstance(message, SASrelay):
            # §7.3: we never enrolled with a trusted MiTM (we never accept the E flag), so an authentic
            # SASrelay (MAC over its encrypted part, §5.13) is refused with Error 0x63 and an alarm.
            if self._authentic(message.mac, message.encrypted):
                self._refuse(
                    events.UNTRUSTED_MITM, "SASrelay from a MiTM we never enrolled", messages.ERROR_UNTRUSTED_MITM
                )
            return
        if isinstance(message, Hello):
            self._on_hello(message, now)
        elif isinstance(message, Bare):
            if message.TYPE == b"HelloACK":
                self._on_hello_ack(now)
            elif message.TYPE == b"Conf2ACK":
                self._on_conf2ack(now)
        elif isinstance(message, Commit):
            self._on_commit(message, now)
        elif isinstance(message, DHPart):
            if message.part == 1:
                self._on_dhpart1(message, now)
            else:
                self._on_dhpart2(message, now)
        elif isinstance(message, Confirm):
            if message.part == 1:
                self._on_confirm1(message, now)
            else:
                self._on_confirm2(message, now)

    # -- discovery (§4.1) --

    def _on_hello(self, hello, now):
        if self.state == SECURE:
            if hello.raw == self._peer_hello.raw or _hex(_kdf.implicit_hash(hello.raw)) in self._completed_hellos:
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

    def _choose(self, kind):
        """The initiator's choice of one algorithm of `kind` (§4.1.2).

        Names both Hellos list explicitly come first; the implicit mandatory ones (§5.1) are only a
        fallback. When the two sides' first choices (within what both list) differ:
        - key agreement: the faster of the two (§4.1.2);
        - hash and cipher: the stronger of the two (S384 over S256, AES3 over AES1);
        - auth tag and SAS rendering: the responder's (the peer's) first choice.
        A peer that picks its own first choice when it commits (bzrtp does) then ends up with the same
        result whichever side wins the Commit contention.
        """
        peer = self._peer_hello
        ours = self.preferences.of(kind)
        theirs = {
            "hash": peer.hashes,
            "cipher": peer.ciphers,
            "auth_tag": peer.auth_tags,
            "key_agreement": [algorithms.canonical(n) for n in peer.key_agreements],
            "sas": peer.sas_types,
        }[kind]
        explicit_ours = [name for name in ours if name in theirs]
        if not explicit_ours:
            theirs_all = _effective(theirs, kind)
            fallback = [name for name in _effective(ours, kind) if name in theirs_all]
            return fallback[0] if fallback else None
        our_first = explicit_ours[0]
        their_first = [name for name in theirs if name in ours][0]
        if our_first == their_first:
            return our_first
        if kind == "key_agreement":
            faster = algorithms.COST.get(their_first, 99) < algorithms.COST.get(our_first, 99)
            return their_first if faster else our_first
        if kind in STRENGTH:
            return their_first if STRENGTH[kind].index(their_first) > STRENGTH[kind].index(our_first) else our_first
        return their_first

    def _maybe_commit(self, now):
        if self.state != DISCOVERY or self._peer_hello is None or not self._hello_acked:
            return
        # A passive peer (P flag) never commits, so we always may (§4.1); both sides committing is
        # resolved by contention (§4.2).
        self._commit_now(now)

    def _commit_now(self, now):
        chosen = {}
        for kind in ("hash", "cipher", "auth_tag", "key_agreement", "sas"):
            name = self._choose(kind)
            if name is None:
                self._error(UNSUPPORTED_ERROR[kind], now, "no {} in common with the peer".format(kind))
                return
            chosen[kind] = name
        self._algorithms = chosen
        self._keypair = keyagreement.generate(chosen["key_agreement"], self._rng)
        self._role = "initiator"
        self._dhpart2 = self._make_dhpart(2)
        dhpart2_raw = self._dhpart2.encode(self._h0)
        self._dhpart2.raw = dhpart2_raw
        # §4.4.1.1: hvi = hash(initiator's DHPart2 || responder's Hello), truncated to 256 bits.
        hvi = _kdf.zrtp_hash(chosen["hash"], dhpart2_raw + self._peer_hello.raw)[:32]
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
        hash_name = self._algorithms["hash"]
        label = b"Responder" if part == 1 else b"Initiator"
        ids = []
        for secret in self._our_secrets():
            ids.append(_kdf.secret_id(hash_name, secret, label) if secret else bytes(self._rng(8)))
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
        # §9: H2 must hash to the H3 of the Hello, and then the Hello's MAC (keyed with H2) must hold.
        if _kdf.implicit_hash(commit.h2) != self._peer_hello.h3 or not self._peer_hello.verify_mac(commit.h2):
            return  # a forged or damaged Commit is discarded
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
        algorithms = {
            "hash": commit.hash,
            "cipher": commit.cipher,
            "auth_tag": commit.auth_tag,
            "key_agreement": keyagreement.canonical(commit.key_agreement),
            "sas": commit.sas,
        }
        for kind in ("hash", "cipher", "auth_tag", "key_agreement", "sas"):
            offered = _effective(self.preferences.of(kind), kind)
            if algorithms[kind] not in offered:
                self._error(
                    UNSUPPORTED_ERROR[kind],
                    now,
                    "peer chose {} {} which we did not offer".format(kind, algorithms[kind]),
                )
                return
        self._disarm()
        if self._keypair is not None and self._keypair.name != algorithms["key_agreement"]:
            self._keypair.erase()
            self._keypair = None
        self._algorithms = algorithms
        if self._keypair is None:
            self._keypair = keyagreement.generate(algorithms["key_agreement"], self._rng)
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
        h2 = _kdf.implicit_hash(dhpart1.h1)
        if _kdf.implicit_hash(h2) != self._peer_hello.h3 or not self._peer_hello.verify_mac(h2):
            return  # §9: chain or Hello MAC broken: discard
        dh_result = self._agree(dhpart1, now, "responder")
        if dh_result is None:
            return
        self._dhpart1 = dhpart1
        self._derive(
            dh_result,
            dhpart1,
            self._peer_hello.raw,
            self._commit.raw,
            dhpart1.raw,
            self._dhpart2.raw,
            self.zid,
            self._peer_hello.zid,
        )
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
        if _kdf.implicit_hash(dhpart2.h1) != commit.h2 or not commit.verify_mac(dhpart2.h1):
            return  # §9: discard
        hvi = _kdf.zrtp_hash(self._algorithms["hash"], dhpart2.raw + self._hello_raw)[:32]
        if hvi != commit.hvi:
            self._error(messages.ERROR_BAD_HVI, now)
            return
        dh_result = self._agree(dhpart2, now, "initiator")
        if dh_result is None:
            return
        self._dhpart2 = dhpart2
        self._derive(
            dh_result,
            dhpart2,
            self._hello_raw,
            commit.raw,
            self._dhpart1.raw,
            dhpart2.raw,
            self._peer_hello.zid,
            self.zid,
        )
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
        hash_name = self._algorithms["hash"]
        label = b"Responder" if self._role == "initiator" else b"Initiator"
        for their_id in (peer_dhpart.rs1_id, peer_dhpart.rs2_id):
            for secret in ours:
                if secret and _kdf.secret_id(hash_name, secret, label) == their_id:
                    # Matching the held-back secret continues this call; the cache mismatch stays open.
                    return secret, secret is self._pending_rs1
        return None, True

    def _derive(self, dh_result, peer_dhpart, responder_hello, commit_raw, dhpart1_raw, dhpart2_raw, zidi, zidr):
        alg = self._algorithms
        hash_name = alg["hash"]
        s1, mismatch = self._match_secrets(peer_dhpart)
        self._cache_mismatch = mismatch
        # §4.4.1.4
        total_hash = _kdf.zrtp_hash(hash_name, responder_hello + commit_raw + dhpart1_raw + dhpart2_raw)
        context = zidi + zidr + total_hash
        s0 = _kdf.compute_s0(hash_name, dh_result, zidi, zidr, total_hash, s1, None, None)
        hash_len = _kdf.hash_length(hash_name)
        key_len = _kdf.CIPHER_KEY_LENGTHS[alg["cipher"]]

        def derive(label, length):
            return _kdf.kdf(hash_name, s0, label, context, length)

        self._keys = {
            "mackeyi": derive(b"Initiator HMAC key", hash_len),
            "mackeyr": derive(b"Responder HMAC key", hash_len),
            "zrtpkeyi": derive(b"Initiator ZRTP key", key_len),
            "zrtpkeyr": derive(b"Responder ZRTP key", key_len),
            "srtpkeyi": derive(b"Initiator SRTP master key", key_len),
            "srtpsalti": derive(b"Initiator SRTP master salt", _kdf.SRTP_SALT_LENGTH),
            "srtpkeyr": derive(b"Responder SRTP master key", key_len),
            "srtpsaltr": derive(b"Responder SRTP master salt", _kdf.SRTP_SALT_LENGTH),
            "rs1": derive(b"retained secret", 32),
            "sas": sas.sas_value(hash_name, s0, context),
            "s1_matched": s1 is not None,
        }
        # s0 and the DH result go out of scope here; the private key is no longer needed.
        self._keypair.erase()
        self._keypair = None

    def _our_v(self):
        record = self.cache.get(self._peer_hello.zid) if self.cache is not None else None
        return bool(record and record.verified and self._keys["s1_matched"] and not self._cache_mismatch)

    def _confirm_body(self):
        return ConfirmBody(self._h0, self._our_v())

    # -- confirmation (§4.6) --

    def _open_peer_confirm(self, confirm, peer_dhpart, zrtpkey, mackey, now):
        try:
            body = messages.open_confirm(confirm, self._algorithms["hash"], self._keys[zrtpkey], self._keys[mackey])
        except RemoteProtocolError:
            self._error(messages.ERROR_BAD_CONFIRM_MAC, now)
            return None
        if _kdf.implicit_hash(body.h0) != peer_dhpart.h1 or not peer_dhpart.verify_mac(body.h0):
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
        keys = self._keys
        self._queue_event(
            ReceiveKeys(
                _kdf.srtp_profile(self._algorithms["cipher"], self._algorithms["auth_tag"]),
                keys["srtpkeyr"],
                keys["srtpsaltr"],
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
        keys = self._keys
        alg = self._algorithms
        peer_zid = self._peer_hello.zid
        previous_peer = self._secure_peer_zid()
        if previous_peer is not None and previous_peer != peer_zid:
            # A restart by a different ZID: what this call held back or may undo belongs to the other one.
            self._pending_rs1 = None
            self._rs_before = None
        our_v = self._our_v()
        verified = our_v and self._peer_v and not self._cache_mismatch
        profile = _kdf.srtp_profile(alg["cipher"], alg["auth_tag"])
        if self._role == "initiator":
            send = (keys["srtpkeyi"], keys["srtpsalti"])
            receive = (keys["srtpkeyr"], keys["srtpsaltr"])
        else:
            send = (keys["srtpkeyr"], keys["srtpsaltr"])
            receive = (keys["srtpkeyi"], keys["srtpsalti"])
        self._exchange += 1
        event = Secure(
            key_agreement=self._peer_spelling.get(alg["key_agreement"], alg["key_agreement"]),
            cipher=alg["cipher"],
            hash=alg["hash"],
            auth_tag=alg["auth_tag"],
            sas=sas.render(alg["sas"], keys["sas"]),
            sas_type=alg["sas"],
            verified=verified,
            cache_mismatch=self._cache_mismatch,
            peer_zid=_hex(peer_zid),
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
        self._completed_hellos = (self._completed_hellos + [_hex(_kdf.implicit_hash(self._peer_hello.raw))])[-8:]
        # Secure first, so the shell keys SRTP before it spends time writing the cache file.
        self._queue_event(event)
        changed = False
        # §4.6.1: rs2 = rs1, rs1 = new; on a cache mismatch the update waits for the SAS (§4.6.1.1). The
        # alarm is raised once per call: a re-key that finds the same unresolved mismatch is no news.
        if self.cache is not None and keys.get("retain", True):
            if self._cache_mismatch:
                self._pending_rs1 = keys["rs1"]
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
                self.cache.update_retained(peer_zid, keys["rs1"], self.wall_time, self.peer_uri)
                changed = True
        changed = self._check_contact(peer_zid, verified) or changed
        if changed:
            self._queue_event(CacheUpdated())
        # Keep only the peer's MAC key (GoClear/SASrelay) and the raw Confirm bytes; drop the rest.
        self._peer_mackey = keys["mackeyi"] if self._role == "responder" else keys["mackeyr"]
        self._mac_hash = alg["hash"]
        self._keys = None

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


def _int(data):
    value = 0
    for byte in data:
        value = (value << 8) | byte
    return value
