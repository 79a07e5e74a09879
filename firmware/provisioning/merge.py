"""How provisioned settings combine with the local file (sans-I/O, MicroPython-clean).

Precedence, lowest first: the local file (the SD card's sotto.toml), then common.toml (the office-wide
settings), then `<mac>.toml` (this phone's account). The more specific file wins, as on Yealink, Snom and
Polycom phones: an office sets the codecs once, each phone its own account. The command line (a
technician at the console) still wins over all of them.

Merging is key by key inside a section; a value that is itself a table (dial.speed_dial) is replaced
whole, so a server can remove a speed-dial entry.
"""


def merge(local, *documents):
    """A new dict: `local` (a parsed configuration, {section: {key: value}}) with each document's
    settings laid over it in order. The inputs are not changed."""
    merged = {}
    for section, values in local.items():
        merged[section] = dict(values) if isinstance(values, dict) else values
    for document in documents:
        if document is None:
            continue
        for section, values in document.settings.items():
            target = merged.get(section)
            if not isinstance(target, dict):
                target = {}
                merged[section] = target
            for key, value in values.items():
                target[key] = value
    return merged


def account_of(data):
    """What registering depends on: a change here means registering again (a new UserAgent)."""
    account = data.get("account", {}) if isinstance(data, dict) else {}
    return tuple(sorted((k, repr(v)) for k, v in account.items())) if isinstance(account, dict) else ()
