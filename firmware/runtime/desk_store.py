"""The desk features' files in the data directory (host-only): the desk settings (do not disturb, call
forward) and the address book, each JSON written with storage.atomic_write (a power cut leaves the old or
the new file, never half of one, like the ZRTP cache); and the import of a contacts file from the boot
partition.

Contacts file (`[phone] contacts_file`, default /boot/firmware/sotto-contacts.csv): UTF-8 text, one
contact a line, `NAME,URI` (e.g. `Alice Martin,sip:alice@example.org`); blank lines and lines starting
with '#' are ignored. A bad line gets one log line ("FILE:LINE: why") and the other lines are imported.
The file is imported at start when its content changed since the last import (its SHA-256 is kept in the
data directory), so a contact deleted from the menu does not come back at the next boot.
"""

import hashlib
import json
import logging
import os

from firmware.phone import contacts as book
from firmware.phone.desk import DeskSettings
from firmware.runtime import storage

log = logging.getLogger("sotto.desk")

SETTINGS_FILE = "desk.json"
CONTACTS_FILE = "contacts.json"
IMPORTED_FILE = "contacts-imported.sha256"
MAX_FILE_BYTES = 256 * 1024


def _load_json(path, what):
    try:
        raw = storage.read_bytes(path, limit=MAX_FILE_BYTES)
        if raw is None:
            return None
        return json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        log.warning("%s %s unreadable (%s): starting from the defaults", what, path, exc)
        return None


class DeskStore:
    """desk.json and contacts.json in the data directory."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.settings_path = os.path.join(data_dir, SETTINGS_FILE)
        self.contacts_path = os.path.join(data_dir, CONTACTS_FILE)

    def load_settings(self):
        """The saved settings as a dict for Phone(desk=...); a damaged value is logged and left at its default."""
        data = _load_json(self.settings_path, "desk settings")
        if data is None:
            return None
        settings, problems = DeskSettings.from_dict(data)
        for key in problems:
            log.warning("desk settings %s: ignoring a bad %s", self.settings_path, key)
        return settings.to_dict()

    def save_settings(self, settings):
        storage.ensure_private_dir(self.data_dir)
        storage.atomic_write(self.settings_path, json.dumps(settings, sort_keys=True).encode("utf-8"))

    def load_contacts(self):
        data = _load_json(self.contacts_path, "contacts")
        if not isinstance(data, list):
            return []
        return book.load_contacts(data)

    def save_contacts(self, entries):
        storage.ensure_private_dir(self.data_dir)
        data = [{"name": e["name"], "uri": e["uri"]} for e in entries][: book.CONTACTS_LIMIT]
        storage.atomic_write(self.contacts_path, json.dumps(data, indent=0).encode("utf-8"))

    def import_contacts(self, path, contacts):
        """Merge the contacts file at `path` into `contacts` (a list, changed in place) when the file changed
        since the last import. Returns the number of contacts imported (0 when nothing was done)."""
        if not path:
            return 0
        try:
            raw = storage.read_bytes(path, limit=MAX_FILE_BYTES)
        except (OSError, ValueError) as exc:
            log.warning("contacts file %s not imported: %s", path, exc)
            return 0
        if raw is None:
            return 0
        digest = hashlib.sha256(raw).hexdigest()
        marker = os.path.join(self.data_dir, IMPORTED_FILE)
        if storage.read_bytes(marker) == digest.encode():
            return 0
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("contacts file %s: not UTF-8 text, not imported", path)
            return 0
        imported = 0
        for number, (name, uri, problem) in enumerate(parse_contacts_csv(text), 1):
            if problem is not None:
                log.warning("contacts file %s:%d: %s", path, number, problem)
                continue
            if name is None:
                continue
            if book.add_contact(contacts, name, uri) is None:
                log.warning("contacts file %s:%d: the address book is full (%d)", path, number, book.CONTACTS_LIMIT)
                continue
            imported += 1
        self.save_contacts(contacts)
        storage.atomic_write(marker, digest.encode())
        log.info("imported %d contacts from %s", imported, path)
        return imported


def parse_contacts_csv(text):
    """(name, uri, problem) per line of a contacts file: problem is None for a good line; name is None for a
    line that says nothing (blank, comment)."""
    rows = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            rows.append((None, None, None))
            continue
        name, comma, uri = line.rpartition(",")
        name, uri = name.strip(), uri.strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1].strip()
        if not comma:
            rows.append((None, None, "expected NAME,URI (e.g. Alice,sip:alice@example.org)"))
        elif not book.is_name(name):
            rows.append((None, None, "a name of 1 to {} printable characters".format(book.MAX_NAME)))
        elif not book.is_uri(uri):
            why = "a sip: or sips: URI of at most {} characters, not {!r}".format(book.MAX_URI, uri[:40])
            rows.append((None, None, why))
        else:
            rows.append((name, uri, None))
    return rows
