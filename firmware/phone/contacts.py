"""The address book on the device (sans-I/O, MicroPython-clean): a list of {"name", "uri"} dicts, sorted by
name, at most CONTACTS_LIMIT, persisted by the session (SaveContacts) in the data directory.

Each contact shows a trust mark, the one the ZRTP cache gives its address (the session reports them with
TrustMarks): verified (the SAS was compared and the contact's ZID is bound, RFC 6189 §4.6.1 V flag),
known (a retained secret is cached, the SAS never confirmed), new (never called securely), or alarm (the
contact's key changed: the address-book continuity alarm is unresolved)."""

CONTACTS_LIMIT = 200
MAX_NAME = 32
MAX_URI = 256

MARK_VERIFIED = "verified"
MARK_KNOWN = "known"
MARK_NEW = "new"
MARK_ALARM = "alarm"
MARK_CLEAR = "clear"  # a history call that never became secure
MARKS = (MARK_VERIFIED, MARK_KNOWN, MARK_NEW, MARK_ALARM, MARK_CLEAR)
# What a list line shows before the name: one character, readable on a 16x2 LCD.
MARK_SIGN = ((MARK_VERIFIED, "V"), (MARK_KNOWN, "k"), (MARK_NEW, "?"), (MARK_ALARM, "!"), (MARK_CLEAR, "-"))


def is_name(name):
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        return False
    for ch in name:
        if ord(ch) < 32 or ord(ch) == 127:
            return False
    return True


def is_uri(uri):
    if not isinstance(uri, str) or not 4 < len(uri) <= MAX_URI:
        return False
    if not (uri.startswith("sip:") or uri.startswith("sips:")):
        return False
    for ch in uri:
        if ord(ch) <= 32 or ord(ch) == 127 or ch in '<>"':
            return False
    return True


def aor_key(uri):
    """The address a contact is matched by: scheme folded to sip:, no parameters, headers or port-less
    difference that matters to a person (a lighter firmware.zrtp.cache.normalize_aor for the core)."""
    if not isinstance(uri, str):
        return None
    if uri.startswith("sips:"):
        uri = "sip:" + uri[5:]
    for cut in (";", "?", ">"):
        uri = uri.split(cut, 1)[0]
    return uri.lower()


def load_contacts(entries):
    """The contacts the phone keeps from a saved or imported list: valid dicts only, each address once,
    sorted by name, at most CONTACTS_LIMIT."""
    book = []
    for entry in entries or []:
        if isinstance(entry, dict) and is_name(entry.get("name")) and is_uri(entry.get("uri")):
            add_contact(book, entry["name"], entry["uri"])
    return book


def find(book, uri):
    """The index of the contact with this address, or None."""
    key = aor_key(uri)
    for i, contact in enumerate(book):
        if aor_key(contact["uri"]) == key:
            return i
    return None


def name_of(book, uri):
    index = find(book, uri)
    return book[index]["name"] if index is not None else None


def add_contact(book, name, uri):
    """Add (or rename) the contact with this address; returns its index, or None when the book is full or
    the name or address is not valid."""
    if not is_name(name) or not is_uri(uri):
        return None
    index = find(book, uri)
    if index is not None:
        book[index] = {"name": name, "uri": book[index]["uri"]}
    else:
        if len(book) >= CONTACTS_LIMIT:
            return None
        book.append({"name": name, "uri": uri})
    book.sort(key=lambda c: c["name"].lower())
    return find(book, uri)


def set_uri(book, index, uri):
    """Change the address of contact `index`; False when it is not valid or another contact has it."""
    if not is_uri(uri) or not 0 <= index < len(book):
        return False
    other = find(book, uri)
    if other is not None and other != index:
        return False
    book[index] = {"name": book[index]["name"], "uri": uri}
    return True


def delete(book, index):
    if 0 <= index < len(book):
        del book[index]


def mark_sign(mark):
    for name, sign in MARK_SIGN:
        if name == mark:
            return sign
    return " "


def call_mark(verified, alarm_reason, sas_alarms, known, secure):
    """The trust mark of a call as it was then: verified (the V flag, or the SAS confirmed in the call), alarm
    (a key-continuity alarm left unresolved), known (a retained secret from an earlier call matched), new
    (secure, but a first meeting), clear (never secure)."""
    if verified:
        return MARK_VERIFIED
    if alarm_reason in sas_alarms:
        return MARK_ALARM
    if not secure:
        return MARK_CLEAR
    return MARK_KNOWN if known else MARK_NEW
