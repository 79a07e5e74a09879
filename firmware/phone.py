"""The phone: the application state machine a person holds (sans-I/O, MicroPython-clean).

Phone is fed input events from the board (keys, the trust button, the hook switch) and call events that
the session maps from SIP, media and ZRTP, each with the current monotonic time: `handle(event, now)`.
It asks for a wake-up with `get_timer()` (an absolute time or None) and `handle_timer(now)`. What it wants
done comes out as commands from `next_command()` (Dial, Answer, Hangup, ConfirmSas...). What it shows is
`screen()` (a firmware.screens.Screen) and its state name is `state`.

States (automation waits on these names):
  idle      nothing going on
  dialing   collecting digits; '#' sends, the trust button erases one digit (a long press clears),
            DIAL_TIMEOUT seconds without a key abandon the number
  calling   our INVITE is out (ringing shown once the far end rings)
  ringing   an incoming call: lift the handset (hook off) or press any key to answer
  in-call   media up, not (yet) secure
  secure    SRTP keys agreed by ZRTP, SAS shown large: read it aloud, press the trust button to confirm
  verified  the SAS was confirmed, now or on an earlier call (the ZRTP cache's V flag)
  alarm     a security event: cache mismatch (the peer's key changed), a=zrtp-hash mismatch, a downgrade
            during the call, GoClear, or a call that did not become secure. Loud screen and tone. A
            cache mismatch shows the SAS: a short press confirms it (the deferred cache update, RFC 6189
            section 4.6.1.1), a long press ends the call. The ZRTP engine keeps reporting the mismatch on
            every call until it is confirmed; the phone also remembers (bounded) peers with an unresolved
            alarm and raises it again on their next call that is not verified.
  ended     the call is over: reason and duration, back to idle after ENDED_HOLD seconds
  menu      our ZID fingerprint, call history, reset trust for a peer
  error     no call possible: registration failed, no network, no audio device

Trust button: short press = "the SAS matched" (ConfirmSas); long press (>= 2 s, timed by the driver) =
"the SAS did NOT match": RejectSas (the session marks the peer untrusted) and Hangup. With secure_only a
call that cannot become secure is ended (an alarm that is not about the SAS, or a CallNotSecure verdict
from the call layer, firmware.call, which alone decides when a call is not going to be secure).

Keys (KeyPressed.key): '0'-'9', '*', '#' and the named keys in NAMED_KEYS. In a call digits, '*' and
'#' are sent as DTMF. The keypad-only menu code is '**#'; speed dial entries are dialed like numbers
(the digits, then '#'); '#' on its own redials the last number.

After the phone issues Hangup / Reject / RejectSas it shows `ended` at once; a CallEnded for that call
arriving later is ignored (CallEnded only acts in calling, ringing and the call states).
"""

from firmware.errors import LocalProtocolError
from firmware.screens import Screen

IDLE = "idle"
DIALING = "dialing"
CALLING = "calling"
RINGING = "ringing"
IN_CALL = "in-call"
SECURE = "secure"
VERIFIED = "verified"
ALARM = "alarm"
ENDED = "ended"
MENU = "menu"
ERROR = "error"

STATES = (IDLE, DIALING, CALLING, RINGING, IN_CALL, SECURE, VERIFIED, ALARM, ENDED, MENU, ERROR)
CALL_STATES = (IN_CALL, SECURE, VERIFIED, ALARM)

DIAL_KEYS = "0123456789*#"
KEY_REDIAL = "redial"
KEY_VOLUME_UP = "volume_up"
KEY_VOLUME_DOWN = "volume_down"
KEY_MUTE = "mute"
KEY_HANGUP = "hangup"
KEY_MENU = "menu"
KEY_BACK = "back"
NAMED_KEYS = (KEY_REDIAL, KEY_VOLUME_UP, KEY_VOLUME_DOWN, KEY_MUTE, KEY_HANGUP, KEY_MENU, KEY_BACK)

MENU_CODE = "**"
MAX_DIGITS = 32
HISTORY_LIMIT = 50
UNRESOLVED_LIMIT = 50
COMMAND_QUEUE_LIMIT = 64
VOLUME_MAX = 10
DIAL_TIMEOUT = 10.0
ENDED_HOLD = 4.0
MENU_TIMEOUT = 30.0
NOTICE_HOLD = 2.0

# Alarm reasons (CallAlarm.reason) and what the alarm screen says about them.
ALARM_CACHE_MISMATCH = "cache-mismatch"
ALARM_ZRTP_HASH_MISMATCH = "zrtp-hash-mismatch"
ALARM_DOWNGRADE = "downgrade"
ALARM_GOCLEAR = "goclear"
ALARM_NOT_SECURE = "not-secure"
ALARM_NO_ZRTP = "no-zrtp"
ALARM_ZRTP_FAILED = "zrtp-failed"
ALARM_PEER_STOPPED_ENCRYPTING = "peer-stopped-encrypting"
ALARM_AUTH_FAILURES = "auth-failures"
ALARM_NEW_KEY_FOR_CONTACT = "new-key-for-contact"
ALARM_UNTRUSTED_MITM = "untrusted-mitm"
ALARM_REKEY_FAILED = "rekey-failed"
# Alarms that show the SAS: the person compares it, a short press accepts the new key (RFC 6189 §4.6.1.1).
SAS_ALARMS = (ALARM_CACHE_MISMATCH, ALARM_NEW_KEY_FOR_CONTACT)
ALARM_TITLE = (
    (ALARM_CACHE_MISMATCH, "KEY CHANGED"),
    (ALARM_NEW_KEY_FOR_CONTACT, "NEW KEY"),
    (ALARM_ZRTP_HASH_MISMATCH, "HASH MISMATCH"),
    (ALARM_DOWNGRADE, "DOWNGRADE"),
    (ALARM_GOCLEAR, "GOCLEAR"),
    (ALARM_NOT_SECURE, "NOT SECURE"),
    (ALARM_NO_ZRTP, "NOT SECURE"),
    (ALARM_ZRTP_FAILED, "NOT SECURE"),
    (ALARM_PEER_STOPPED_ENCRYPTING, "NOT SECURE"),
    (ALARM_AUTH_FAILURES, "TAMPERING?"),
    (ALARM_UNTRUSTED_MITM, "UNKNOWN PBX"),
    (ALARM_REKEY_FAILED, "REKEY FAILED"),
)
ALARM_TEXT = (
    (ALARM_CACHE_MISMATCH, "peer key changed"),
    (ALARM_ZRTP_HASH_MISMATCH, "zrtp-hash mismatch"),
    (ALARM_DOWNGRADE, "downgrade mid-call"),
    (ALARM_GOCLEAR, "peer sent GoClear"),
    (ALARM_NOT_SECURE, "not encrypted!"),
    (ALARM_NO_ZRTP, "peer has no ZRTP"),
    (ALARM_ZRTP_FAILED, "ZRTP failed"),
    (ALARM_PEER_STOPPED_ENCRYPTING, "peer stopped encrypt"),
    (ALARM_AUTH_FAILURES, "forged packets"),
    (ALARM_NEW_KEY_FOR_CONTACT, "contact's key is new"),
    (ALARM_UNTRUSTED_MITM, "SAS relay refused"),
    (ALARM_REKEY_FAILED, "old keys kept"),
)

# Tones (PlayTone.name): the media engineer's tone generators play them.
TONE_RING = "ring"
TONE_RINGBACK = "ringback"
TONE_ALARM = "alarm"

# Error conditions (shown when no call is up).
ERROR_REGISTRATION = "registration"
ERROR_NETWORK = "network"
ERROR_AUDIO = "audio"
ERROR_TRUST_CACHE = "trust-cache"


def _lookup(pairs, key, default=None):
    for k, v in pairs:
        if k == key:
            return v
    return default


def format_duration(seconds):
    seconds = int(seconds)
    if seconds < 0:
        seconds = 0
    if seconds >= 3600:
        return "{}:{:02d}:{:02d}".format(seconds // 3600, (seconds // 60) % 60, seconds % 60)
    return "{:02d}:{:02d}".format(seconds // 60, seconds % 60)


def zid_fingerprint(zid_hex):
    """A ZID (hex) as groups of four hex digits, at most three groups per row: a list of rows."""
    groups = [zid_hex[i : i + 4] for i in range(0, len(zid_hex), 4)]
    rows = []
    for i in range(0, len(groups), 3):
        rows.append(" ".join(groups[i : i + 3]))
    return rows


def display_uri(uri):
    """A URI as shown on a small display: without the 'sip:' scheme."""
    if uri is None:
        return "unknown"
    if uri.startswith("sip:"):
        return uri[4:]
    return uri


# --- input events: from the board -------------------------------------------------------------------


class KeyPressed:
    """A key: one of '0'-'9', '*', '#', or a named key (NAMED_KEYS)."""

    __slots__ = ("key",)

    def __init__(self, key):
        self.key = key

    def __repr__(self):
        return "KeyPressed({!r})".format(self.key)


class TrustPressed:
    """The trust button was released (short) or held for 2 s or more (long=True)."""

    __slots__ = ("long",)

    def __init__(self, long=False):
        self.long = long

    def __repr__(self):
        return "TrustPressed(long={!r})".format(self.long)


class Hook:
    """The hook switch: off=True when the handset is lifted."""

    __slots__ = ("off",)

    def __init__(self, off):
        self.off = off

    def __repr__(self):
        return "Hook(off={!r})".format(self.off)


# --- call events: from the session (SIP, media, ZRTP) -----------------------------------------------


class CallIncoming:
    """An INVITE for us. `remote`: the caller's URI; `display_name`: from the From header, or None."""

    __slots__ = ("remote", "display_name")

    def __init__(self, remote, display_name=None):
        self.remote = remote
        self.display_name = display_name


class CallRinging:
    """Our call rings at the far end (180/183)."""

    __slots__ = ()


class CallAnswered:
    """The media is up (200 OK / ACK exchanged, RTP flowing), not yet secure. Also called MediaUp."""

    __slots__ = ()


MediaUp = CallAnswered


class CallSecure:
    """ZRTP reached SecureState. `sas`: the rendered SAS (B32: 4 characters; B256: two words);
    `sas_type`: "B32" or "B256"; `verified`: the cache's V flag for this peer; `cache_mismatch`: the
    retained secrets did not match (RFC 6189 section 4.3.2); `algorithms`: e.g. "X255 AES1 S256 HS80";
    `peer_zid`: the peer's ZID as hex, or None."""

    __slots__ = ("sas", "sas_type", "verified", "cache_mismatch", "algorithms", "peer_zid")

    def __init__(self, sas, sas_type="B32", verified=False, cache_mismatch=False, algorithms=None,
                 peer_zid=None):
        self.sas = sas
        self.sas_type = sas_type
        self.verified = verified
        self.cache_mismatch = cache_mismatch
        self.algorithms = algorithms
        self.peer_zid = peer_zid


class CallAlarm:
    """A security event during the call; `reason` is one of the ALARM_* names."""

    __slots__ = ("reason",)

    def __init__(self, reason):
        self.reason = reason


class CallNotSecure:
    """The call goes on without end-to-end keys (the call layer's verdict, firmware.call.NotSecure): `kind` is
    "sdes-only" (encrypted, but to the server: shown, no alarm), "no-zrtp", "zrtp-failed" or
    "encryption-off" (each a loud NOT SECURE alarm)."""

    __slots__ = ("kind", "reason")

    def __init__(self, kind, reason=None):
        self.kind = kind
        self.reason = reason


_NOT_SECURE_ALARMS = (("no-zrtp", ALARM_NO_ZRTP), ("zrtp-failed", ALARM_ZRTP_FAILED),
                      ("encryption-off", ALARM_NOT_SECURE))


class CallEnded:
    """The call is over (BYE, CANCEL, an error response, a timeout). `reason`: short human text;
    `sip_status`: the final response code when there was one."""

    __slots__ = ("reason", "sip_status")

    def __init__(self, reason, sip_status=None):
        self.reason = reason
        self.sip_status = sip_status


class Registered:
    """Registration succeeded (clears a registration error)."""

    __slots__ = ()


class RegistrationFailed:
    __slots__ = ("reason",)

    def __init__(self, reason):
        self.reason = reason


class NetworkDown:
    __slots__ = ("reason",)

    def __init__(self, reason=None):
        self.reason = reason


class NetworkUp:
    __slots__ = ()


class AudioDeviceMissing:
    __slots__ = ("device",)

    def __init__(self, device):
        self.device = device


class AudioDeviceOk:
    __slots__ = ()


class TransferTo:
    """The far end transferred the call (SIP REFER, RFC 3515): the session has ended the current call;
    the phone records it as "transferred" and calls `uri`."""

    __slots__ = ("uri",)

    def __init__(self, uri):
        self.uri = uri


class TrustCacheLost:
    """The ZRTP cache was damaged and set aside at start-up: every peer's SAS must be compared again.
    Shown as an error until the next call becomes secure (a new cache then holds a secret again)."""

    __slots__ = ("detail",)

    def __init__(self, detail=None):
        self.detail = detail


class OurZid:
    """Our own ZID (hex), for the menu's fingerprint page; the session sends it once it knows it."""

    __slots__ = ("zid",)

    def __init__(self, zid):
        self.zid = zid


# --- commands: to the session -----------------------------------------------------------------------


class Dial:
    __slots__ = ("uri",)

    def __init__(self, uri):
        self.uri = uri

    def __repr__(self):
        return "Dial({!r})".format(self.uri)


class Answer:
    __slots__ = ()

    def __repr__(self):
        return "Answer()"


class Reject:
    """Decline the incoming call with this SIP status (603 Decline by default)."""

    __slots__ = ("status",)

    def __init__(self, status=603):
        self.status = status

    def __repr__(self):
        return "Reject({!r})".format(self.status)


class Hangup:
    __slots__ = ()

    def __repr__(self):
        return "Hangup()"


class ConfirmSas:
    """The user confirmed the SAS: set the cache's V flag and apply a deferred cache update."""

    __slots__ = ()

    def __repr__(self):
        return "ConfirmSas()"


class RejectSas:
    """The user said the SAS did NOT match: clear V and mark the peer untrusted."""

    __slots__ = ()

    def __repr__(self):
        return "RejectSas()"


class SendDtmf:
    __slots__ = ("digit",)

    def __init__(self, digit):
        self.digit = digit

    def __repr__(self):
        return "SendDtmf({!r})".format(self.digit)


class SetVolume:
    """Playback volume, 0 (silent) to VOLUME_MAX."""

    __slots__ = ("level",)

    def __init__(self, level):
        self.level = level

    def __repr__(self):
        return "SetVolume({!r})".format(self.level)


class SetMute:
    __slots__ = ("muted",)

    def __init__(self, muted):
        self.muted = muted

    def __repr__(self):
        return "SetMute({!r})".format(self.muted)


class ResetTrust:
    """Forget the cached secrets and V flag of this peer (ZID as hex)."""

    __slots__ = ("peer_zid",)

    def __init__(self, peer_zid):
        self.peer_zid = peer_zid

    def __repr__(self):
        return "ResetTrust({!r})".format(self.peer_zid)


class PlayTone:
    """Play a tone until StopTone: "ring", "ringback" or "alarm"."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "PlayTone({!r})".format(self.name)


class StopTone:
    __slots__ = ()

    def __repr__(self):
        return "StopTone()"


class SaveHistory:
    """The call history changed: persist `entries` (a list of dicts, newest first, at most 50)."""

    __slots__ = ("entries",)

    def __init__(self, entries):
        self.entries = entries

    def __repr__(self):
        return "SaveHistory({} entries)".format(len(self.entries))


# --- the state machine ------------------------------------------------------------------------------


class Phone:
    """The phone's application state machine.

    dial_domain: host[:port] that dialed digits are called at (sip:<digits>@<dial_domain>), or None.
    speed_dial: a dict or a list of (digits, uri) pairs; dialing those digits then '#' calls the uri.
    secure_only: end every call that cannot become secure.
    history: the persisted call history (list of dicts, newest first), or None.
    our_zid: our ZID as hex, or None until OurZid arrives.
    identity: what idle shows as our address (e.g. the AOR), or None.
    wall_offset: added to `now` to stamp history entries with wall-clock seconds, or None.
    """

    def __init__(self, dial_domain=None, speed_dial=None, secure_only=False, history=None, our_zid=None,
                 identity=None, wall_offset=None):
        self.dial_domain = dial_domain
        if speed_dial is None:
            speed_dial = []
        elif isinstance(speed_dial, dict):
            speed_dial = list(speed_dial.items())
        for digits, uri in speed_dial:
            if not isinstance(digits, str) or not isinstance(uri, str) or not digits:
                raise LocalProtocolError("speed_dial entries must be (digits, uri) strings")
        self.speed_dial = list(speed_dial)
        self.secure_only = bool(secure_only)
        self.history = [entry for entry in (history or []) if isinstance(entry, dict)][:HISTORY_LIMIT]
        self.our_zid = our_zid
        self.identity = identity
        self.wall_offset = wall_offset
        self.state = IDLE
        self.volume = 6
        self.muted = False
        self.off_hook = False
        self.digits = ""
        self.last_dialed = None
        for entry in self.history:
            if entry.get("dir") == "out" and entry.get("remote"):
                self.last_dialed = entry.get("remote")
                break
        self.errors = []  # (kind, title, detail) triples; shown as the error state when no call is up
        self.unresolved = []  # peer ZIDs (or URIs) whose alarm was never resolved, newest last
        self.notice = None  # a short message shown in idle/menu for NOTICE_HOLD seconds
        self._commands = []
        self._deadline = None
        self._tick = None
        self._tone = None
        self._reset_call()
        self._menu_page = "main"
        self._menu_index = 0

    # -- public API ---------------------------------------------------------------------------------

    def handle(self, event, now):
        """Feed one input or call event that happened at monotonic time `now` (seconds)."""
        if isinstance(event, KeyPressed):
            self._on_key(event.key, now)
        elif isinstance(event, TrustPressed):
            self._on_trust(bool(event.long), now)
        elif isinstance(event, Hook):
            self._on_hook(bool(event.off), now)
        elif isinstance(event, CallIncoming):
            self._on_incoming(event, now)
        elif isinstance(event, CallRinging):
            if self.state == CALLING:
                self.far_ringing = True
                self._play(TONE_RINGBACK)
        elif isinstance(event, CallAnswered):
            self._on_answered(now)
        elif isinstance(event, CallSecure):
            self._on_secure(event, now)
        elif isinstance(event, CallAlarm):
            self._on_alarm(event.reason, now)
        elif isinstance(event, CallNotSecure):
            self._on_not_secure(event.kind, now)
        elif isinstance(event, CallEnded):
            self._on_ended(event, now)
        elif isinstance(event, (Registered, RegistrationFailed, NetworkDown, NetworkUp, AudioDeviceMissing,
                                AudioDeviceOk, TrustCacheLost)):
            self._on_condition(event, now)
        elif isinstance(event, TransferTo):
            self._on_transfer(event.uri, now)
        elif isinstance(event, OurZid):
            self.our_zid = event.zid
        else:
            raise LocalProtocolError("Phone.handle: unknown event {!r}".format(event))

    def get_timer(self):
        """The next absolute time handle_timer() wants to run, or None."""
        best = None
        for when in (self._deadline, self._tick, self.notice[1] if self.notice is not None else None):
            if when is not None and (best is None or when < best):
                best = when
        return best

    def handle_timer(self, now):
        """Run the timers due at `now`: dial timeout, end of the ended screen, secure wait, menu timeout,
        notices, and the once-a-second tick that advances the call duration on the screen."""
        if self._tick is not None and now >= self._tick:
            self._tick = self._next_tick(now)
        if self.notice is not None and now >= self.notice[1]:
            self.notice = None
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        if self.state in (DIALING, ENDED, MENU):
            self._go_idle(now)

    def next_command(self):
        """The next command for the session, or None."""
        if not self._commands:
            return None
        return self._commands.pop(0)

    def screen(self, now=None):
        """What the display shows now (a firmware.screens.Screen)."""
        builder = _SCREENS.get(self.state)
        return builder(self, now)

    # -- internals: plumbing ------------------------------------------------------------------------

    def _emit(self, command):
        if len(self._commands) >= COMMAND_QUEUE_LIMIT:
            # The session stopped draining commands; keep the newest (hang-ups matter most).
            self._commands.pop(0)
        self._commands.append(command)

    def _play(self, name):
        if self._tone != name:
            self._tone = name
            self._emit(PlayTone(name))

    def _stop_tone(self):
        if self._tone is not None:
            self._tone = None
            self._emit(StopTone())

    def _set_state(self, state, now, deadline=None):
        self.state = state
        self._deadline = deadline
        if state in CALL_STATES:
            self._tick = self._next_tick(now)
        else:
            self._tick = None

    def _next_tick(self, now):
        if self.call_start is None:
            return None
        elapsed = now - self.call_start
        tick = self.call_start + int(elapsed) + 1
        if tick <= now:
            # Floating point: at a whole second, now - call_start can round just below it (0.3 + 2 - 0.3 is
            # 1.9999999999999998), which would give the same tick again and spin the timer forever.
            tick += 1
        return tick

    def _reset_call(self):
        self.remote = None
        self.remote_name = None
        self.direction = None
        self.call_setup = None
        self.call_start = None
        self.far_ringing = False
        self.sas = None
        self.sas_type = None
        self.verified = False
        self.secure = False
        self.confirmed_now = False
        self.algorithms = None
        self.peer_zid = None
        self.alarm_reason = None
        self.alarm_acknowledged = False
        self.end_reason = None
        self.end_duration = 0
        self.end_status = None
        self.untrusted = False
        self.to_server_only = False

    def _go_idle(self, now):
        self._stop_tone()
        self.digits = ""
        if self.errors:
            self._set_state(ERROR, now)
        else:
            self._set_state(IDLE, now)

    def _show_notice(self, text, now):
        self.notice = (text, now + NOTICE_HOLD)

    # -- internals: keys ----------------------------------------------------------------------------

    def _on_key(self, key, now):
        if key not in NAMED_KEYS and (len(key) != 1 or key not in DIAL_KEYS):
            raise LocalProtocolError("unknown key {!r}".format(key))
        state = self.state
        if state in (IDLE, ERROR, ENDED):
            self._key_when_idle(key, now)
        elif state == DIALING:
            self._key_when_dialing(key, now)
        elif state == CALLING:
            if key == KEY_HANGUP:
                self._hang_up(now, "cancelled")
        elif state == RINGING:
            if key == KEY_HANGUP:
                self._emit(Reject(603))
                self._stop_tone()
                self._finish_call(now, "declined", missed=True)
            elif key in (KEY_VOLUME_UP, KEY_VOLUME_DOWN):
                self._change_volume(key)
            else:
                self._answer(now)
        elif state in CALL_STATES:
            self._key_in_call(key, now)
        elif state == MENU:
            self._key_in_menu(key, now)

    def _key_when_idle(self, key, now):
        if key == KEY_MENU:
            self._open_menu(now)
        elif key == KEY_REDIAL:
            self._redial(now)
        elif key in (KEY_VOLUME_UP, KEY_VOLUME_DOWN):
            self._change_volume(key)
        elif key == KEY_MUTE or key == KEY_HANGUP or key == KEY_BACK:
            if self.state == ENDED:
                self._go_idle(now)
        elif key == "#":
            self._redial(now)
        else:
            self.digits = key
            self._set_state(DIALING, now, now + DIAL_TIMEOUT)

    def _key_when_dialing(self, key, now):
        if key == "#":
            self._send_digits(now)
        elif key == KEY_BACK:
            self._erase_digit(now)
        elif key == KEY_HANGUP:
            self.digits = ""
            self._go_idle(now)
        elif key == KEY_REDIAL:
            self._redial(now)
        elif key == KEY_MENU:
            self._open_menu(now)
        elif key in (KEY_VOLUME_UP, KEY_VOLUME_DOWN):
            self._change_volume(key)
        elif key == KEY_MUTE:
            pass
        else:
            if len(self.digits) < MAX_DIGITS:
                self.digits += key
            self._deadline = now + DIAL_TIMEOUT

    def _erase_digit(self, now):
        self.digits = self.digits[:-1]
        if self.digits or self.off_hook:
            self._deadline = now + DIAL_TIMEOUT
        else:
            self._go_idle(now)

    def _send_digits(self, now):
        digits = self.digits
        self.digits = ""
        if not digits:
            self._redial(now)
            return
        if digits == MENU_CODE:
            self._open_menu(now)
            return
        uri = _lookup(self.speed_dial, digits)
        if uri is None:
            if not self.dial_domain:
                self._reset_call()
                self.end_reason = "no dial domain set"
                self._set_state(ENDED, now, now + ENDED_HOLD)
                return
            uri = "sip:{}@{}".format(digits, self.dial_domain)
        self._dial(uri, now)

    def _redial(self, now):
        if self.last_dialed is None:
            self._show_notice("nothing to redial", now)
            if self.state == DIALING:
                self._go_idle(now)
            return
        self._dial(self.last_dialed, now)

    def _dial(self, uri, now):
        self._stop_tone()
        self._reset_call()
        self.remote = uri
        self.direction = "out"
        self.call_setup = now
        self.last_dialed = uri
        self._emit(Dial(uri))
        self._set_state(CALLING, now)

    def _change_volume(self, key):
        level = self.volume + (1 if key == KEY_VOLUME_UP else -1)
        if level < 0:
            level = 0
        if level > VOLUME_MAX:
            level = VOLUME_MAX
        if level != self.volume:
            self.volume = level
            self._emit(SetVolume(level))

    def _key_in_call(self, key, now):
        if key == KEY_HANGUP:
            self._hang_up(now, "hung up")
        elif key == KEY_MUTE:
            self.muted = not self.muted
            self._emit(SetMute(self.muted))
        elif key in (KEY_VOLUME_UP, KEY_VOLUME_DOWN):
            self._change_volume(key)
        elif len(key) == 1:
            self._emit(SendDtmf(key))

    # -- internals: trust button and hook -----------------------------------------------------------

    def _on_trust(self, long, now):
        state = self.state
        if state == DIALING:
            if long:
                self.digits = ""
                self._go_idle(now)
            else:
                self._erase_digit(now)
        elif state == RINGING:
            if long:
                self._emit(Reject(603))
                self._stop_tone()
                self._finish_call(now, "declined", missed=True)
            else:
                self._answer(now)
        elif state == ENDED:
            self._go_idle(now)
        elif state == MENU:
            self._key_in_menu("#" if not long else "*", now)
        elif state in CALL_STATES:
            if long:
                self._sas_did_not_match(now)
            elif state in (SECURE, VERIFIED) or (state == ALARM and self.sas is not None
                                                 and self.alarm_reason in SAS_ALARMS):
                if state != VERIFIED:
                    self._confirm_sas(now)
            elif state == ALARM:
                # Not about the SAS: the press acknowledges the alarm and silences the tone; the screen
                # stays on alarm for the rest of the call.
                self.alarm_acknowledged = True
                self._stop_tone()

    def _confirm_sas(self, now):
        self._emit(ConfirmSas())
        self._stop_tone()
        self.verified = True
        self.confirmed_now = True
        self._forget_unresolved(self._peer_key())
        self.alarm_reason = None
        self._set_state(VERIFIED, now)

    def _sas_did_not_match(self, now):
        if self.sas is not None:
            self._emit(RejectSas())
            self.untrusted = True
        self._hang_up(now, "SAS did not match" if self.sas is not None else "hung up")

    def _on_hook(self, off, now):
        self.off_hook = off
        state = self.state
        if off:
            if state == RINGING:
                self._answer(now)
            elif state in (IDLE, ERROR, ENDED):
                self.digits = ""
                self._set_state(DIALING, now, now + DIAL_TIMEOUT)
        else:
            if state == DIALING:
                self.digits = ""
                self._go_idle(now)
            elif state == CALLING:
                self._hang_up(now, "cancelled")
            elif state in CALL_STATES:
                self._hang_up(now, "hung up")
            elif state == ENDED:
                self._go_idle(now)

    # -- internals: calls ---------------------------------------------------------------------------

    def _on_incoming(self, event, now):
        if self.state not in (IDLE, ERROR, ENDED, MENU, DIALING):
            # Busy: the session answers a second INVITE with 486 itself (one call at a time).
            return
        self._reset_call()
        self.digits = ""
        self.remote = event.remote
        self.remote_name = event.display_name
        self.direction = "in"
        self.call_setup = now
        self._set_state(RINGING, now)
        self._play(TONE_RING)

    def _answer(self, now):
        self._emit(Answer())
        self._stop_tone()
        self._media_up(now)

    def _on_answered(self, now):
        if self.state == CALLING:
            self._stop_tone()
            self._media_up(now)

    def _media_up(self, now):
        # The call layer gives its verdict (CallSecure or CallNotSecure) in time; no second timer here.
        self.call_start = now
        self._set_state(IN_CALL, now)

    def _on_not_secure(self, kind, now):
        if kind == "sdes-only":
            self.to_server_only = True  # encrypted hop by hop: said on the screen, not an alarm
            return
        self._on_alarm(_lookup(_NOT_SECURE_ALARMS, kind, ALARM_NOT_SECURE), now)

    def _peer_key(self):
        return self.peer_zid or self.remote

    def _on_secure(self, event, now):
        if self.state not in (IN_CALL, CALLING, SECURE, VERIFIED, ALARM):
            return
        if self.call_start is None:
            self.call_start = now
        self._clear_error(ERROR_TRUST_CACHE)
        self.secure = True
        self.sas = event.sas
        self.sas_type = event.sas_type
        self.verified = bool(event.verified)
        self.algorithms = event.algorithms
        self.peer_zid = event.peer_zid
        if self.state == ALARM:
            # An alarm raised before SecureState (e.g. zrtp-hash mismatch) stays up; now with the SAS.
            return
        if event.cache_mismatch:
            self._raise_alarm(ALARM_CACHE_MISMATCH, now)
        elif not self.verified and self._peer_key() in self.unresolved:
            self._raise_alarm(ALARM_CACHE_MISMATCH, now)
        elif self.verified:
            self._set_state(VERIFIED, now)
        else:
            self._set_state(SECURE, now)

    def _on_alarm(self, reason, now):
        if self.state not in CALL_STATES and self.state != CALLING:
            return
        if reason in SAS_ALARMS and self.confirmed_now:
            # The user compared the SAS and confirmed it in this call: that resolved the mismatch. A
            # report of it arriving afterwards (queued behind the Secure event) is stale.
            return
        if self.secure_only and reason not in SAS_ALARMS:
            # Not secure (or no longer): secure_only ends the call instead of sounding the alarm.
            self.alarm_reason = reason
            self._hang_up(now, "not secure: " + reason)
            return
        self._raise_alarm(reason, now)

    def _raise_alarm(self, reason, now):
        if self.state == ALARM and self.alarm_reason == reason:
            return  # the same alarm reported twice (e.g. by the session and our own secure wait)
        if self.call_start is None:
            self.call_start = now
        self.alarm_reason = reason
        self.alarm_acknowledged = False
        self.verified = False
        key = self._peer_key()
        if key is not None and key not in self.unresolved:
            self.unresolved.append(key)
            if len(self.unresolved) > UNRESOLVED_LIMIT:
                self.unresolved.pop(0)
        self._set_state(ALARM, now)
        self._play(TONE_ALARM)

    def _forget_unresolved(self, key):
        self.unresolved = [k for k in self.unresolved if k != key and k != self.remote]

    def _hang_up(self, now, reason):
        self._emit(Hangup())
        self._stop_tone()
        self._finish_call(now, reason)

    def _on_ended(self, event, now):
        if self.state not in (CALLING, RINGING) and self.state not in CALL_STATES:
            return
        self._stop_tone()
        missed = self.state == RINGING
        reason = event.reason or "ended"
        self.end_status = event.sip_status
        self._finish_call(now, reason, missed=missed)

    def _on_transfer(self, uri, now):
        if self.state not in CALL_STATES:
            return
        self._stop_tone()
        self._finish_call(now, "transferred")
        self._dial(uri, now)

    def _finish_call(self, now, reason, missed=False):
        if self.call_start is not None:
            self.end_duration = int(now - self.call_start)
        else:
            self.end_duration = 0
        self.end_reason = reason
        direction = self.direction
        if missed and direction == "in":
            direction = "missed"
        entry = {
            "dir": direction,
            "remote": self.remote,
            "duration": self.end_duration,
            "secure": self.secure,
            "verified": self.verified,
            "peer_zid": self.peer_zid,
            "reason": reason,
        }
        if self.alarm_reason is not None:
            entry["alarm"] = self.alarm_reason
        if self.untrusted:
            entry["untrusted"] = True
        if self.wall_offset is not None:
            entry["at"] = int(now + self.wall_offset)
        self.history.insert(0, entry)
        del self.history[HISTORY_LIMIT:]
        self._emit(SaveHistory(list(self.history)))
        self._set_state(ENDED, now, now + ENDED_HOLD)

    # -- internals: error conditions ----------------------------------------------------------------

    def _on_condition(self, event, now):
        if isinstance(event, RegistrationFailed):
            self._set_error(ERROR_REGISTRATION, "Not registered", event.reason)
        elif isinstance(event, Registered):
            self._clear_error(ERROR_REGISTRATION)
        elif isinstance(event, NetworkDown):
            self._set_error(ERROR_NETWORK, "No network", event.reason)
        elif isinstance(event, NetworkUp):
            self._clear_error(ERROR_NETWORK)
        elif isinstance(event, AudioDeviceMissing):
            self._set_error(ERROR_AUDIO, "No audio device", event.device)
        elif isinstance(event, AudioDeviceOk):
            self._clear_error(ERROR_AUDIO)
        elif isinstance(event, TrustCacheLost):
            self._set_error(ERROR_TRUST_CACHE, "Trust cache lost", "compare every SAS again")
        if self.state == IDLE and self.errors:
            self._set_state(ERROR, now)
        elif self.state == ERROR and not self.errors:
            self._set_state(IDLE, now)

    def _set_error(self, kind, title, detail):
        self._clear_error(kind)
        self.errors.append((kind, title, str(detail) if detail else ""))

    def _clear_error(self, kind):
        self.errors = [e for e in self.errors if e[0] != kind]

    # -- internals: the menu ------------------------------------------------------------------------

    def _open_menu(self, now):
        self.digits = ""
        self._menu_page = "main"
        self._menu_index = 0
        self._set_state(MENU, now, now + MENU_TIMEOUT)

    def _trusted_peers(self):
        """(peer_zid, remote) pairs from the history, newest first, each peer once."""
        peers = []
        seen = []
        for entry in self.history:
            zid = entry.get("peer_zid")
            if zid and zid not in seen:
                seen.append(zid)
                peers.append((zid, entry.get("remote")))
        return peers

    def _key_in_menu(self, key, now):
        self._deadline = now + MENU_TIMEOUT
        page = self._menu_page
        if key in (KEY_HANGUP, KEY_MENU):
            self._go_idle(now)
            return
        if key == "*" or key == KEY_BACK:
            if page == "main":
                self._go_idle(now)
            elif page == "confirm-reset":
                self._menu_page = "reset"
            else:
                self._menu_page = "main"
            return
        if page == "main":
            if key == "1":
                self._menu_page = "zid"
            elif key == "2":
                self._menu_page = "history"
                self._menu_index = 0
            elif key == "3":
                self._menu_page = "reset"
                self._menu_index = 0
        elif page in ("history", "reset"):
            count = len(self.history) if page == "history" else len(self._trusted_peers())
            if key in ("2", "8") and count:
                step = -1 if key == "2" else 1
                self._menu_index = (self._menu_index + step) % count
            elif key == "#" and count:
                if page == "history":
                    remote = self.history[self._menu_index].get("remote")
                    if remote:
                        self._dial(remote, now)
                else:
                    self._menu_page = "confirm-reset"
        elif page == "confirm-reset":
            if key == "#":
                peers = self._trusted_peers()
                if self._menu_index < len(peers):
                    zid = peers[self._menu_index][0]
                    self._emit(ResetTrust(zid))
                    self._forget_unresolved(zid)
                    self._show_notice("trust reset", now)
                self._menu_page = "main"


# --- screens ----------------------------------------------------------------------------------------


def _remote_label(phone):
    if phone.remote_name:
        return phone.remote_name
    return display_uri(phone.remote)


def _duration_line(phone, now):
    if phone.call_start is None or now is None:
        return "00:00"
    return format_duration(now - phone.call_start)


def _call_flags(phone):
    flags = []
    if phone.muted:
        flags.append("MUTED")
    return flags


def _screen_idle(phone, now):
    lines = ["Ready"]
    if phone.identity:
        lines.append(display_uri(phone.identity))
    if phone.notice is not None and (now is None or now < phone.notice[1]):
        lines.append(phone.notice[0])
    else:
        lines.append("dial, # to call")
    return Screen("Sotto", lines)


def _screen_dialing(phone, now):
    return Screen("Dial", [phone.digits + "_", "# call  trust: del"])


def _screen_calling(phone, now):
    return Screen("Calling", [display_uri(phone.remote), "ringing..." if phone.far_ringing else "connecting..."])


def _screen_ringing(phone, now):
    return Screen("Incoming call", [_remote_label(phone), "lift or key: answer", "hangup: decline"])


def _screen_in_call(phone, now):
    status = "to server only" if phone.to_server_only else "not secure yet"
    return Screen("In call", [_remote_label(phone), _duration_line(phone, now), status] + _call_flags(phone))


def _screen_secure(phone, now):
    return Screen("Compare SAS", ["read it aloud,", "press to confirm"], big=phone.sas)


def _screen_verified(phone, now):
    lines = [_remote_label(phone), _duration_line(phone, now), "SAS " + (phone.sas or "")]
    return Screen("Verified", lines + _call_flags(phone))


def _screen_alarm(phone, now):
    reason = _lookup(ALARM_TEXT, phone.alarm_reason, phone.alarm_reason or "security alarm")
    title = _lookup(ALARM_TITLE, phone.alarm_reason, "ALARM")
    if phone.alarm_reason in SAS_ALARMS and phone.sas is not None:
        return Screen(title, [reason, "same SAS? press;", "hold 2s: hang up"], big=phone.sas, alert=True)
    lines = [reason, _remote_label(phone)]
    if phone.alarm_acknowledged:
        lines.append("acknowledged")
    else:
        lines.append("press: silence")
    return Screen(title, lines + _call_flags(phone), alert=True)


def _screen_ended(phone, now):
    return Screen("Call ended", [phone.end_reason or "ended", format_duration(phone.end_duration)])


def _screen_error(phone, now):
    if not phone.errors:
        return Screen("Error", ["no error"], alert=True)
    kind, title, detail = phone.errors[0]
    lines = [detail] if detail else []
    if kind == ERROR_REGISTRATION:
        lines.append("calls by IP only")
    elif kind != ERROR_TRUST_CACHE:  # a lost cache still lets you call; it only forgot who you trusted
        lines.append("calls impossible")
    return Screen(title, lines, alert=True)


def _history_line(entry):
    arrow = {"out": "->", "in": "<-", "missed": "!<"}.get(entry.get("dir"), "  ")
    return "{} {}".format(arrow, display_uri(entry.get("remote")))


def _history_detail(entry):
    parts = [format_duration(entry.get("duration", 0))]
    if entry.get("untrusted"):
        parts.append("UNTRUSTED")
    elif entry.get("verified"):
        parts.append("verified")
    elif entry.get("secure"):
        parts.append("secure")
    else:
        parts.append("clear")
    return " ".join(parts)


def _screen_menu(phone, now):
    page = phone._menu_page
    if page == "zid":
        if phone.our_zid:
            return Screen("Our ZID", zid_fingerprint(phone.our_zid) + ["* back"])
        return Screen("Our ZID", ["not known yet", "* back"])
    if page == "history":
        if not phone.history:
            return Screen("History", ["no calls yet", "* back"])
        entry = phone.history[phone._menu_index]
        title = "History {}/{}".format(phone._menu_index + 1, len(phone.history))
        return Screen(title, [_history_line(entry), _history_detail(entry), "2/8 move # call"])
    if page in ("reset", "confirm-reset"):
        peers = phone._trusted_peers()
        if not peers:
            return Screen("Reset trust", ["no known peers", "* back"])
        zid, remote = peers[phone._menu_index]
        if page == "confirm-reset":
            return Screen("Reset trust?", [display_uri(remote), zid[:12], "# yes  * no"])
        title = "Reset trust {}/{}".format(phone._menu_index + 1, len(peers))
        return Screen(title, [display_uri(remote), zid[:12], "2/8 move # pick"])
    lines = ["1 Our ZID", "2 History", "3 Reset trust"]
    if phone.notice is not None and (now is None or now < phone.notice[1]):
        lines.append(phone.notice[0])
    else:
        lines.append("* back")
    return Screen("Menu", lines)


_SCREENS = {
    IDLE: _screen_idle,
    DIALING: _screen_dialing,
    CALLING: _screen_calling,
    RINGING: _screen_ringing,
    IN_CALL: _screen_in_call,
    SECURE: _screen_secure,
    VERIFIED: _screen_verified,
    ALARM: _screen_alarm,
    ENDED: _screen_ended,
    MENU: _screen_menu,
    ERROR: _screen_error,
}
