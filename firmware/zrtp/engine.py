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

Where the parts are (each module says why it stands alone):
    engine.py       this API, the §6 retransmission timers, the outgoing queue, the dispatch of each
                    received message, GoClear/SASrelay/Ping/Error handling;
    exchange.py     the message exchange, §4.1-§4.6, and its restart on a secure stream;
    negotiation.py  Preferences and the algorithm choice (§4.1.2, §5.1);
    chain.py        the hash chain and hvi checks (§9, §4.4.1.1);
    keys.py         retained-secret IDs and the key derivation (§4.3, §4.4.1.4, §4.5);
    continuity.py   the cache: retained secrets, V, the SAS verdict, contacts (§4.6.1, issue 11).

The SRTP keys in Secure are the only secrets that leave the engine; s0, the DH private key and the
other derived keys are dropped as soon as they are no longer needed, except the peer's MAC key, kept
while secure to authenticate GoClear and SASrelay. Nothing here logs.
"""

from firmware import crypto
from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.zrtp import chain, events, messages
from firmware.zrtp import kdf as _kdf
from firmware.zrtp.events import Alarm, CacheUpdated, Failed, ReceiveKeys, Secure  # noqa: F401 (re-exported)
from firmware.zrtp.exchange import (  # noqa: F401 (the states and timers, re-exported)
    DISCOVERY,
    FAILED,
    IDLE,
    INITIATOR_COMMIT_SENT,
    INITIATOR_WAIT_CONF2ACK,
    INITIATOR_WAIT_CONFIRM1,
    RESPONDER_WAIT_CONFIRM2,
    RESPONDER_WAIT_DHPART2,
    SECURE,
    T1_CAP,
    T1_INITIAL,
    T1_MAX_RETRANSMISSIONS,
    T2_CAP,
    T2_INITIAL,
    T2_MAX_RETRANSMISSIONS,
    Exchange,
)
from firmware.zrtp.messages import Bare, Commit, Confirm, DHPart, Error, GoClear, Hello, Ping, PingACK, SASrelay
from firmware.zrtp.negotiation import MANDATORY, SUPPORTED, UNSUPPORTED_ERROR, Preferences  # noqa: F401 (re-exported)

MAX_QUEUED_DATAGRAMS = 32
MAX_QUEUED_EVENTS = 32


class ZrtpEngine(Exchange):
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
        return "{} {}".format(messages.VERSION, chain.hello_hash(self._hello_raw))

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

    def _new_hello(self):
        # §9: a fresh hash chain H0 -> H3, SHA-256 (the implicit hash, §5.1.2.2), for every exchange: H0
        # is revealed to the peer in Confirm, so a chain is never used twice.
        self._h0, self._h1, self._h2, self._h3 = chain.new_chain(self._rng)
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
        actual = chain.hello_hash(self._peer_hello.raw)
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


def _int(data):
    value = 0
    for byte in data:
        value = (value << 8) | byte
    return value
