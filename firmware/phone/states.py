"""The phone's vocabulary: state names, keys, limits and timings, alarm reasons, tones and error kinds
(sans-I/O, MicroPython-clean). The state names are a contract: automation waits on them."""

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
# Two calls (issue 15). Each is shown over the call it concerns, whose own state (in-call, secure, verified,
# alarm) is kept underneath and comes back when it ends.
CALL_WAITING = "call-waiting"  # in a call, a second call rings: soft tone in the earpiece, its caller shown
HELD = "held"  # our only call is on hold: a key resumes it
CONFERENCE = "conference"  # both calls mixed locally; each leg keeps its own ZRTP session and SAS

STATES = (
    IDLE,
    DIALING,
    CALLING,
    RINGING,
    IN_CALL,
    SECURE,
    VERIFIED,
    ALARM,
    ENDED,
    MENU,
    ERROR,
    CALL_WAITING,
    HELD,
    CONFERENCE,
)
CALL_STATES = (IN_CALL, SECURE, VERIFIED, ALARM)
OVERLAY_STATES = (CALL_WAITING, HELD, CONFERENCE)  # shown over a call whose own state is kept underneath

DIAL_KEYS = "0123456789*#"
KEY_REDIAL = "redial"
KEY_VOLUME_UP = "volume_up"
KEY_VOLUME_DOWN = "volume_down"
KEY_MUTE = "mute"
KEY_HANGUP = "hangup"
KEY_MENU = "menu"
KEY_BACK = "back"
KEY_HOLD = "hold"  # hold / resume; on a waiting call: answer it, holding the first; with two calls: swap
KEY_CONFERENCE = "conference"  # with two calls: join them in a local three-way conference (again: split)
KEY_TRANSFER = "transfer"  # with two calls: attended transfer, the held call's far end to the front call's
KEY_VOICEMAIL = "voicemail"  # dials the voicemail ([phone] voicemail, or the MWI Message-Account)
NAMED_KEYS = (
    KEY_REDIAL,
    KEY_VOLUME_UP,
    KEY_VOLUME_DOWN,
    KEY_MUTE,
    KEY_HANGUP,
    KEY_MENU,
    KEY_BACK,
    KEY_HOLD,
    KEY_CONFERENCE,
    KEY_VOICEMAIL,
    KEY_TRANSFER,
)

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

# Alarm reasons (CallAlarm.reason); firmware.phone.views says what the alarm screen shows for each.
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
# CallNotSecure kinds that are a loud alarm (an "sdes-only" call is shown, not alarmed).
NOT_SECURE_ALARMS = (
    ("no-zrtp", ALARM_NO_ZRTP),
    ("zrtp-failed", ALARM_ZRTP_FAILED),
    ("encryption-off", ALARM_NOT_SECURE),
)

# Tones (PlayTone.name): the media engineer's tone generators play them.
TONE_RING = "ring"
TONE_RINGBACK = "ringback"
TONE_ALARM = "alarm"
TONE_WAITING = "call-waiting"  # soft beeps mixed into the earpiece over the call, not the ringer

# Error conditions (shown when no call is up).
ERROR_REGISTRATION = "registration"
ERROR_NETWORK = "network"
ERROR_AUDIO = "audio"
ERROR_TRUST_CACHE = "trust-cache"
ERROR_PROVISIONING = "provisioning"


def lookup(pairs, key, default=None):
    """The value paired with `key` in a tuple of (key, value) pairs (small tables, no dict needed)."""
    for k, v in pairs:
        if k == key:
            return v
    return default
