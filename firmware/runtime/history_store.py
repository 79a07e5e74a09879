"""The phone's call history on the data directory, as JSON. Host-only (files).

Apart from device.py because it is storage, not a device: what survives a restart, and what a damaged
or hand-edited file may not feed the phone.
"""

import json
import logging
import os

from firmware import phone as P
from firmware.runtime import storage

log = logging.getLogger("sotto.device")

HISTORY_FILE = "history.json"
HISTORY_MAX_BYTES = 256 * 1024
HISTORY_KEYS = (
    ("dir", str),
    ("remote", str),
    ("duration", int),
    ("secure", bool),
    ("verified", bool),
    ("peer_zid", str),
    ("reason", str),
    ("alarm", str),
    ("untrusted", bool),
    ("at", int),
    ("mark", str),
)


class HistoryStore:
    """The phone's call history (newest first, at most 50) as JSON in the data directory, written with
    storage.atomic_write so that a power cut leaves the old or the new file, never half of one."""

    def __init__(self, data_dir):
        self.path = os.path.join(data_dir, HISTORY_FILE)
        self.data_dir = data_dir

    def load(self):
        """The saved entries; [] when there are none or the file is damaged (logged, never fatal)."""
        raw = storage.read_bytes(self.path)
        if raw is None:
            return []
        try:
            if len(raw) > HISTORY_MAX_BYTES:
                raise ValueError("larger than {} bytes".format(HISTORY_MAX_BYTES))
            entries = json.loads(raw.decode("utf-8"))
            if not isinstance(entries, list):
                raise ValueError("not a list")
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("call history %s unreadable (%s): starting empty", self.path, exc)
            return []
        return [clean_history_entry(e) for e in entries if isinstance(e, dict)][: P.HISTORY_LIMIT]

    def save(self, entries):
        storage.ensure_private_dir(self.data_dir)
        data = json.dumps([clean_history_entry(e) for e in entries[: P.HISTORY_LIMIT]], indent=0)
        storage.atomic_write(self.path, data.encode("utf-8"))


def clean_history_entry(entry):
    """Only the known keys, with the expected types (a hand-edited file cannot feed the phone junk)."""
    clean = {}
    for key, kind in HISTORY_KEYS:
        value = entry.get(key)
        if isinstance(value, kind) and (kind is not int or not isinstance(value, bool)):
            clean[key] = value
    return clean
