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
    - peer_uri: stored in the cache with the peer's retained secret.
    - wall_time: seconds since the epoch at call start, recorded as the cache's "last use".

Commands and I/O:
    hello_hash() -> "1.10 <hex>" for our own a=zrtp-hash.
    start(now): begin sending Hello.
    receive_datagram(data, now): one raw ZRTP packet from the RTP port (never raises on peer input).
    datagrams_to_send(now) -> list of bytes to send to the peer's RTP address.
    get_timer() -> absolute deadline or None; handle_timer(now).
    next_event() -> Secure / Alarm / Failed / CacheUpdated, or None.
    confirm_sas(now): the trust button (short press): set V, apply a deferred cache update.
    reject_sas(now): long press, "SAS did not match": clear V, drop any deferred update.
    set_peer_hello_hash(value): the SDP answer arrived after start().

Events:
    Secure(key_agreement, cipher, hash, auth_tag, sas, sas_type, verified, cache_mismatch, peer_zid,
           role, send_profile, send_key, send_salt, receive_profile, receive_key, receive_salt)
        send_* are our SRTP sending keys (the initiator's for the initiator, §4.5.3), receive_* the
        peer's. verified is True only when our V and the peer's V were both set and rs matched.
    Alarm(reason, code): a security event that does not end the call by itself (GoClear received,
        a=zrtp-hash mismatch, SASrelay from a MiTM we never enrolled, cache mismatch).
    Failed(reason, code): ZRTP gave up; the call is not secure.
    CacheUpdated(): the cache changed; the shell should persist it.

    Order: Secure comes before the CacheUpdated of the same handshake (key SRTP first, write the file
    after); a cache mismatch adds an Alarm. confirm_sas()/reject_sas() queue a CacheUpdated when they
    change the cache. Hand-shake state is in `state` (Idle, Discovery, CommitSent, WaitConfirm1,
    WaitConf2ACK, WaitDHPart2, WaitConfirm2, Secure, Failed).

The SRTP keys in Secure are the only secrets that leave the engine; s0, the DH private key and the
other derived keys are dropped as soon as they are no longer needed, except the peer's MAC key, kept
while secure to authenticate GoClear and SASrelay. Nothing here logs.
"""

import binascii

from firmware import crypto
from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.zrtp import kdf as _kdf
from firmware.zrtp import keyagreement, messages, sas
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
MANDATORY = {
    "hash": ("S256",),
    "cipher": ("AES1",),
    "auth_tag": ("HS32", "HS80"),
    "key_agreement": ("DH3k",),
    "sas": ("B32",),
}
SUPPORTED = {
    "hash": tuple(_kdf.HASHES),
    "cipher": tuple(_kdf.CIPHER_KEY_LENGTHS),
    "auth_tag": _kdf.AUTH_TAGS,
    "key_agreement": keyagreement.KEY_AGREEMENTS,
    "sas": sas.SAS_TYPES,
}
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
    """Algorithm preferences: lists of ZRTP names, most preferred first (at most 7 of each)."""

    __slots__ = ("hashes", "ciphers", "auth_tags", "key_agreements", "sas_types")

    def __init__(self, hashes=None, ciphers=None, auth_tags=None, key_agreements=None, sas_types=None):
        self.hashes = _check_names("hash", hashes or ["S256", "S384"])
        self.ciphers = _check_names("cipher", ciphers or ["AES1", "AES3"])
        self.auth_tags = _check_names("auth_tag", auth_tags or ["HS80", "HS32"])
        self.key_agreements = _check_names(
            "key_agreement", key_agreements or ["DH3k", "X255", "X448", "EC25", "EC38", "DH2k"])
        self.sas_types = _check_names("sas", sas_types or ["B32", "B256"])

    def of(self, kind):
        return {"hash": self.hashes, "cipher": self.ciphers, "auth_tag": self.auth_tags,
                "key_agreement": self.key_agreements, "sas": self.sas_types}[kind]


def _check_names(kind, names):
    out = []
    for name in names:
        if kind == "key_agreement":
            name = keyagreement.canonical(name)
        if name not in SUPPORTED[kind]:
            raise LocalProtocolError("unsupported ZRTP {} {!r}".format(kind.replace("_", " "), name))
        if name not in out:
            out.append(name)
    if not out or len(out) > messages.MAX_ALGORITHMS:
        raise LocalProtocolError("between 1 and 7 ZRTP {} names".format(kind.replace("_", " ")))
    return out


class Secure:
    __slots__ = ("key_agreement", "cipher", "hash", "auth_tag", "sas", "sas_type", "verified", "cache_mismatch",
                 "peer_zid", "role", "send_profile", "send_key", "send_salt", "receive_profile", "receive_key",
                 "receive_salt")

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields[name])

    def __repr__(self):  # never shows the keys
        return "Secure({} {} {} {} sas={} verified={} cache_mismatch={})".format(
            self.key_agreement, self.cipher, self.hash, self.auth_tag, self.sas, self.verified,
            self.cache_mismatch)


class Alarm:
    __slots__ = ("reason", "code")

    def __init__(self, reason, code=None):
        self.reason = reason
        self.code = code

    def __repr__(self):
        return "Alarm({!r})".format(self.reason)


class Failed:
    __slots__ = ("reason", "code")

    def __init__(self, reason, code=None):
        self.reason = reason
        self.code = code

    def __repr__(self):
        return "Failed({!r})".format(self.reason)


class CacheUpdated:
    __slots__ = ()


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
        "zid", "cache", "preferences", "_rng", "ssrc", "client_id", "peer_uri", "wall_time", "state",
        "_h0", "_h1", "_h2", "_h3", "_hello", "_hello_raw", "_peer_hello", "_peer_hello_hash", "_hello_acked",
        "_sequence", "_outgoing", "_events", "_timer", "_timer_interval", "_timer_count", "_timer_kind",
        "_retransmit", "_commit", "_peer_commit", "_dhpart1", "_dhpart2", "_keypair", "_role", "_algorithms",
        "_keys", "_confirm1", "_confirm2", "_secure_event", "_pending_rs1", "_cache_mismatch", "_peer_v", "_rs_before",
        "_last_error_code", "_failed", "_peer_spelling", "_alarmed_hash", "_peer_mackey",
    )

    def __init__(self, zid, cache, preferences, rng, ssrc=0, client_id="Sotto", peer_hello_hash=None,
                 peer_uri=None, wall_time=0):
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
        # §9: the hash chain H0 -> H3, SHA-256 (the implicit hash, §5.1.2.2).
        self._h0 = bytes(rng(32))
        self._h1 = _kdf.implicit_hash(self._h0)
        self._h2 = _kdf.implicit_hash(self._h1)
        self._h3 = _kdf.implicit_hash(self._h2)
        prefs = self.preferences
        self._hello = Hello(messages.VERSION, client_id, self._h3, zid, prefs.hashes, prefs.ciphers,
                            prefs.auth_tags, prefs.key_agreements, prefs.sas_types)
        self._hello_raw = self._hello.encode(self._h2)
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
        if peer_hello_hash is not None:
            self.set_peer_hello_hash(peer_hello_hash)

    # ---- public API -------------------------------------------------------------------------------

    def hello_hash(self):
        return "{} {}".format(messages.VERSION, _hex(_kdf.implicit_hash(self._hello_raw)))

    def set_peer_hello_hash(self, value):
        """The peer's a=zrtp-hash ("1.10 <64 hex digits>"); checked against its Hello (§8.1.1)."""
        if value is None:
            return
        parts = value.strip().split()
        if len(parts) != 2 or len(parts[1]) != 64:
            self._alarm("malformed a=zrtp-hash from the peer's SDP")
            return
        self._peer_hello_hash = parts[1].lower()
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
                self._fail("no ZRTP answer from the peer (Hello retransmitted {} times)".format(limit),
                           messages.ERROR_PROTOCOL_TIMEOUT, False, now)
            else:
                self._fail("ZRTP protocol timeout waiting in {}".format(self.state), messages.ERROR_PROTOCOL_TIMEOUT,
                           True, now)
            return
        self._timer_count += 1
        self._timer_interval = min(self._timer_interval * 2, cap)
        self._timer = now + self._timer_interval
        self._send(self._retransmit)

    def confirm_sas(self, now):
        """The user read the SAS aloud and it matched (§4.6.1.1: only now the deferred update applies)."""
        peer = self._peer_zid()
        if self.cache is None or peer is None or self._secure_event is None:
            return
        if self._pending_rs1 is not None:
            self.cache.update_retained(peer, self._pending_rs1, self.wall_time, self.peer_uri)
            self._pending_rs1 = None
        self._rs_before = None
        self.cache.set_verified(peer, True, self.wall_time)
        self._queue_event(CacheUpdated())

    def reject_sas(self, now):
        """The SAS did not match (a MiTM, or a misread): the peer is not trusted.

        The deferred update is dropped, an update already applied by this call is undone (the secret
        agreed in this call may be shared with an attacker and must not make the next call look
        continuous), and V is cleared.
        """
        peer = self._peer_zid()
        self._pending_rs1 = None
        if self.cache is None or peer is None or self._secure_event is None:
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
                self._fail("malformed ZRTP message: {}".format(exc), messages.ERROR_MALFORMED, True, now)

    # ---- internals ----------------------------------------------------------------------------------

    def _peer_zid(self):
        return self._peer_hello.zid if self._peer_hello is not None else None

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

    def _alarm(self, reason, code=None):
        self._queue_event(Alarm(reason, code))

    def _fail(self, reason, code, send_error, now):
        if self._failed:
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
        self._queue_event(Failed(reason, code))

    def _error(self, code, now, reason=None):
        name = messages.ERROR_NAMES.get(code, "error")
        self._fail(reason or name, code, True, now)

    def _erase(self):
        if self._keypair is not None:
            self._keypair.erase()
            self._keypair = None
        self._keys = None

    def _authentic(self, mac, data):
        if self._peer_mackey is None:
            return False
        expected = _kdf.zrtp_mac(self._algorithms["hash"], self._peer_mackey, data)[:8]
        return crypto.constant_time_equal(expected, mac)

    def _check_peer_hello_hash(self):
        if self._peer_hello_hash is None or self._alarmed_hash:
            return
        actual = _hex(_kdf.implicit_hash(self._peer_hello.raw))
        if actual != self._peer_hello_hash:
            self._alarmed_hash = True
            self._alarm("the peer's Hello does not match its SDP a=zrtp-hash (possible MiTM)")

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
            if not self._failed:
                name = messages.ERROR_NAMES.get(message.code, "unknown error")
                self._fail("peer sent Error 0x{:x}: {}".format(message.code, name), message.code, False, now)
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
                self._alarm("peer sent GoClear; staying secure (never obeyed)", messages.ERROR_GOCLEAR_NOT_ALLOWED)
                self._send(Error(messages.ERROR_GOCLEAR_NOT_ALLOWED).encode())
            return
        if isinstance(message, SASrelay):
            # §7.3: we never enrolled with a trusted MiTM (we never accept the E flag), so an authentic
            # SASrelay (MAC over its encrypted part, §5.13) is refused with Error 0x63 and an alarm.
            if self._authentic(message.mac, message.encrypted):
                self._alarm("SASrelay from a MiTM we never enrolled", messages.ERROR_UNTRUSTED_MITM)
                self._send(Error(messages.ERROR_UNTRUSTED_MITM).encode())
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
        theirs = {"hash": peer.hashes, "cipher": peer.ciphers, "auth_tag": peer.auth_tags,
                  "key_agreement": [keyagreement.canonical(n) for n in peer.key_agreements],
                  "sas": peer.sas_types}[kind]
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
            faster = keyagreement.COST.get(their_first, 99) < keyagreement.COST.get(our_first, 99)
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
        commit = Commit(self._h2, self.zid, chosen["hash"], chosen["cipher"], chosen["auth_tag"], ka_name,
                        chosen["sas"], hvi=hvi)
        commit.raw = commit.encode(self._h1)
        self._commit = commit
        self.state = INITIATOR_COMMIT_SENT
        self._send(commit.raw)
        self._arm("commit", now, commit.raw, T2_INITIAL)

    def _make_dhpart(self, part):
        hash_name = self._algorithms["hash"]
        label = b"Responder" if part == 1 else b"Initiator"
        record = self.cache.get(self._peer_hello.zid) if self.cache is not None else None
        ids = []
        for secret in ((record.rs1 if record else None), (record.rs2 if record else None)):
            ids.append(_kdf.secret_id(hash_name, secret, label) if secret else bytes(self._rng(8)))
        # No auxiliary or PBX secrets: random IDs (§4.3.1).
        return DHPart(part, self._h1, ids[0], ids[1], bytes(self._rng(8)), bytes(self._rng(8)),
                      self._keypair.public)

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
            self._error(messages.ERROR_NO_SHARED_SECRET, now, "peer asked for {} mode; only DH mode".format(
                commit.key_agreement))
            return
        if self.state == INITIATOR_COMMIT_SENT:
            # §4.2: both sent Commit; the one with the larger hvi stays initiator.
            if self._commit.hvi > commit.hvi:
                return
        self._become_responder(commit, now)

    def _become_responder(self, commit, now):
        algorithms = {"hash": commit.hash, "cipher": commit.cipher, "auth_tag": commit.auth_tag,
                      "key_agreement": keyagreement.canonical(commit.key_agreement), "sas": commit.sas}
        for kind in ("hash", "cipher", "auth_tag", "key_agreement", "sas"):
            offered = _effective(self.preferences.of(kind), kind)
            if algorithms[kind] not in offered:
                self._error(UNSUPPORTED_ERROR[kind], now, "peer chose {} {} which we did not offer".format(
                    kind, algorithms[kind]))
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
        if len(dhpart1.pv) != keyagreement.PV_LENGTHS[self._algorithms["key_agreement"]]:
            self._error(messages.ERROR_MALFORMED, now, "DHPart1 public value has the wrong length")
            return
        try:
            dh_result = self._keypair.agree(dhpart1.pv)
        except RemoteProtocolError as exc:
            self._error(messages.ERROR_BAD_PV, now, "bad DH public value from the responder: {}".format(exc))
            return
        self._dhpart1 = dhpart1
        self._derive(dh_result, dhpart1, self._peer_hello.raw, self._commit.raw, dhpart1.raw, self._dhpart2.raw,
                     self.zid, self._peer_hello.zid)
        self.state = INITIATOR_WAIT_CONFIRM1
        self._send(self._dhpart2.raw)
        self._arm("dhpart2", now, self._dhpart2.raw, T2_INITIAL)

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
        if len(dhpart2.pv) != keyagreement.PV_LENGTHS[self._algorithms["key_agreement"]]:
            self._error(messages.ERROR_MALFORMED, now, "DHPart2 public value has the wrong length")
            return
        try:
            dh_result = self._keypair.agree(dhpart2.pv)
        except RemoteProtocolError as exc:
            self._error(messages.ERROR_BAD_PV, now, "bad DH public value from the initiator: {}".format(exc))
            return
        self._dhpart2 = dhpart2
        self._derive(dh_result, dhpart2, self._hello_raw, commit.raw, self._dhpart1.raw, dhpart2.raw,
                     self._peer_hello.zid, self.zid)
        confirm1 = messages.seal_confirm(1, self._confirm_body(), self._algorithms["hash"], self._keys["zrtpkeyr"],
                                         self._keys["mackeyr"], bytes(self._rng(16)))
        self._confirm1 = confirm1.encode()
        self.state = RESPONDER_WAIT_CONFIRM2
        self._send(self._confirm1)

    def _match_secrets(self, peer_dhpart):
        """§4.3.2: compare the peer's rs1/rs2 IDs with ours; return (s1 or None, mismatch flag)."""
        record = self.cache.get(self._peer_hello.zid) if self.cache is not None else None
        if record is None or record.rs1 is None:
            return None, False
        hash_name = self._algorithms["hash"]
        label = b"Responder" if self._role == "initiator" else b"Initiator"
        for their_id in (peer_dhpart.rs1_id, peer_dhpart.rs2_id):
            for secret in (record.rs1, record.rs2):
                if secret and _kdf.secret_id(hash_name, secret, label) == their_id:
                    return secret, False
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
        return bool(record and record.verified and self._keys["s1_matched"])

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
            self._fail("peer's H0 does not match its hash chain or DHPart MAC", messages.ERROR_BAD_CONFIRM_MAC,
                       True, now)
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
        confirm2 = messages.seal_confirm(2, self._confirm_body(), self._algorithms["hash"], self._keys["zrtpkeyi"],
                                         self._keys["mackeyi"], bytes(self._rng(16)))
        self._confirm2 = confirm2.encode()
        self._retain_policy(body)
        self.state = INITIATOR_WAIT_CONF2ACK
        self._send(self._confirm2)
        self._arm("confirm2", now, self._confirm2, T2_INITIAL)

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
        our_v = self._our_v()
        verified = our_v and self._peer_v and not self._cache_mismatch
        profile = _kdf.srtp_profile(alg["cipher"], alg["auth_tag"])
        if self._role == "initiator":
            send = (keys["srtpkeyi"], keys["srtpsalti"])
            receive = (keys["srtpkeyr"], keys["srtpsaltr"])
        else:
            send = (keys["srtpkeyr"], keys["srtpsaltr"])
            receive = (keys["srtpkeyi"], keys["srtpsalti"])
        event = Secure(key_agreement=self._peer_spelling.get(alg["key_agreement"], alg["key_agreement"]),
                       cipher=alg["cipher"], hash=alg["hash"], auth_tag=alg["auth_tag"],
                       sas=sas.render(alg["sas"], keys["sas"]), sas_type=alg["sas"], verified=verified,
                       cache_mismatch=self._cache_mismatch, peer_zid=_hex(peer_zid), role=self._role,
                       send_profile=profile, send_key=send[0], send_salt=send[1], receive_profile=profile,
                       receive_key=receive[0], receive_salt=receive[1])
        self._secure_event = event
        self.state = SECURE
        # Secure first, so the shell keys SRTP before it spends time writing the cache file.
        self._queue_event(event)
        # §4.6.1: rs2 = rs1, rs1 = new; on a cache mismatch the update waits for the SAS (§4.6.1.1).
        if self.cache is not None and keys.get("retain", True):
            if self._cache_mismatch:
                self._pending_rs1 = keys["rs1"]
                self._alarm("ZRTP cache mismatch: the peer's retained secret differs; compare the SAS")
            else:
                record = self.cache.get(peer_zid)
                self._rs_before = (record is not None, record.rs1 if record else None, record.rs2 if record else None)
                self.cache.update_retained(peer_zid, keys["rs1"], self.wall_time, self.peer_uri)
                self._queue_event(CacheUpdated())
        # Keep only the peer's MAC key (GoClear/SASrelay) and the raw Confirm bytes; drop the rest.
        self._peer_mackey = keys["mackeyi"] if self._role == "responder" else keys["mackeyr"]
        self._keys = None


def _int(data):
    value = 0
    for byte in data:
        value = (value << 8) | byte
    return value
