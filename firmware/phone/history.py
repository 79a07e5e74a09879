"""The call history and the dial plan (sans-I/O, MicroPython-clean): the history is a list of dicts, newest
first, at most HISTORY_LIMIT, persisted by the session (SaveHistory); speed dial maps digits to URIs."""

from firmware.errors import LocalProtocolError
from firmware.phone.contacts import call_mark
from firmware.phone.states import HISTORY_LIMIT, SAS_ALARMS, lookup


def load_history(history):
    """The persisted history as the phone keeps it: only dict entries, at most HISTORY_LIMIT."""
    return [entry for entry in (history or []) if isinstance(entry, dict)][:HISTORY_LIMIT]


def last_dialed(history):
    """The newest outgoing call's URI (what redial calls), or None."""
    for entry in history:
        if entry.get("dir") == "out" and entry.get("remote"):
            return entry.get("remote")
    return None


def call_entry(phone, now, missed=False):
    """The history entry of the call a Phone has just finished, from its public attributes (end_reason and
    end_duration set); `missed`: an incoming call that was never answered."""
    direction = phone.direction
    if missed and direction == "in":
        direction = "missed"
    entry = {
        "dir": direction,
        "remote": phone.remote,
        "duration": phone.end_duration,
        "secure": phone.secure,
        "verified": phone.verified,
        "peer_zid": phone.peer_zid,
        "reason": phone.end_reason,
        # The trust mark as it was in this call (the history keeps it even when the trust changes later).
        "mark": call_mark(phone.verified, phone.alarm_reason, SAS_ALARMS, phone.known_key, phone.secure),
    }
    if phone.alarm_reason is not None:
        entry["alarm"] = phone.alarm_reason
    if phone.untrusted:
        entry["untrusted"] = True
    if phone.wall_offset is not None:
        entry["at"] = int(now + phone.wall_offset)
    return entry


def record_call(history, entry):
    """Add the entry of a call that just ended, dropping the oldest past HISTORY_LIMIT."""
    history.insert(0, entry)
    del history[HISTORY_LIMIT:]


def trusted_peers(history):
    """(peer_zid, remote) pairs from the history, newest first, each peer once."""
    peers = []
    seen = []
    for entry in history:
        zid = entry.get("peer_zid")
        if zid and zid not in seen:
            seen.append(zid)
            peers.append((zid, entry.get("remote")))
    return peers


def speed_dial_pairs(speed_dial):
    """Speed dial (None, a dict, or (digits, uri) pairs) as a list of (digits, uri) string pairs."""
    if speed_dial is None:
        return []
    if isinstance(speed_dial, dict):
        speed_dial = list(speed_dial.items())
    for digits, uri in speed_dial:
        if not isinstance(digits, str) or not isinstance(uri, str) or not digits:
            raise LocalProtocolError("speed_dial entries must be (digits, uri) strings")
    return list(speed_dial)


def dialed_uri(digits, speed_dial, dial_domain):
    """The URI the dialed digits call: a speed dial entry, else sip:<digits>@<dial_domain>; None when
    neither applies (no dial domain set)."""
    uri = lookup(speed_dial, digits)
    if uri is None and dial_domain:
        uri = "sip:{}@{}".format(digits, dial_domain)
    return uri
