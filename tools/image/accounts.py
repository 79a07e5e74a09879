"""The `sotto` system user in /etc/passwd, /etc/group, /etc/shadow and /etc/gshadow, as text.

Pure functions over the files' contents, so the image builder (files read with debugfs) and the
installer (files under --root) share them. The four files are edited together: the user's own group,
the supplementary groups (created when the base lacks them) and their shadow entries stay consistent.
Lines we do not touch are kept byte for byte; running the edit again changes nothing.

IDs: like systemd-sysusers, system IDs are taken from the top of the 100..999 range downward, and the
user gets the same number for its uid and its group's gid when that number is free in both files.
"""

FIRST_SYSTEM_ID = 100
LAST_SYSTEM_ID = 999


class AccountsError(Exception):
    """The account files are inconsistent in a way we will not paper over."""


def _lines(text):
    return text.splitlines() if text else []


def _join(lines):
    return "\n".join(lines) + "\n" if lines else ""


def _fields(line):
    return line.split(":")


def _is_entry(line):
    return bool(line.strip()) and not line.lstrip().startswith("#") and ":" in line


def _index(lines):
    found = {}
    for number, line in enumerate(lines):
        if _is_entry(line):
            found.setdefault(_fields(line)[0], number)
    return found


def _used_ids(lines, column):
    used = set()
    for line in lines:
        if _is_entry(line):
            fields = _fields(line)
            if len(fields) > column and fields[column].isdigit():
                used.add(int(fields[column]))
    return used


def _free_id(*used_sets):
    for candidate in range(LAST_SYSTEM_ID, FIRST_SYSTEM_ID - 1, -1):
        if all(candidate not in used for used in used_sets):
            return candidate
    raise AccountsError("no free system ID left between {} and {}".format(FIRST_SYSTEM_ID, LAST_SYSTEM_ID))


def _add_member(line, name, column):
    fields = _fields(line)
    while len(fields) <= column:
        fields.append("")
    members = [m for m in fields[column].split(",") if m]
    if name not in members:
        members.append(name)
    fields[column] = ",".join(members)
    return ":".join(fields)


def _remove_member(line, name, column):
    fields = _fields(line)
    if len(fields) <= column:
        return line
    fields[column] = ",".join(m for m in fields[column].split(",") if m and m != name)
    return ":".join(fields)


class Accounts:
    """The four account files' text (shadow/gshadow may be None when the system has none)."""

    __slots__ = ("passwd", "group", "shadow", "gshadow")

    def __init__(self, passwd, group, shadow=None, gshadow=None):
        self.passwd = passwd
        self.group = group
        self.shadow = shadow
        self.gshadow = gshadow


def ensure_system_user(accounts, name, home, groups, shell="/usr/sbin/nologin", gecos="Sotto desk phone"):
    """A new Accounts with `name` as a locked system user with its own group, member of `groups`.

    Returns (accounts, uid, gid). Existing IDs are kept; missing groups are created as system groups.
    """
    passwd = _lines(accounts.passwd)
    group = _lines(accounts.group)
    shadow = None if accounts.shadow is None else _lines(accounts.shadow)
    gshadow = None if accounts.gshadow is None else _lines(accounts.gshadow)
    users = _index(passwd)
    group_index = _index(group)

    if name in users:
        fields = _fields(passwd[users[name]])
        if len(fields) < 7 or not fields[2].isdigit() or not fields[3].isdigit():
            raise AccountsError("/etc/passwd: malformed entry for {}".format(name))
        uid = int(fields[2])
        gid = int(fields[3])
        if name not in group_index and gid in _used_ids(group, 2):
            raise AccountsError("/etc/passwd: {}'s primary gid {} belongs to another group".format(name, gid))
    else:
        uids = _used_ids(passwd, 2)
        gids = _used_ids(group, 2)
        if name in group_index:
            gid = int(_fields(group[group_index[name]])[2])
            uid = gid if gid not in uids else _free_id(uids)
        else:
            uid = _free_id(uids, gids)
            gid = uid
        passwd.append(":".join([name, "x" if shadow is not None else "*", str(uid), str(gid), gecos, home, shell]))
    if name not in group_index:
        group.append("{}:x:{}:".format(name, gid))
    else:
        gid_in_group = int(_fields(group[group_index[name]])[2])
        if gid_in_group != gid:
            raise AccountsError("/etc/group: group {} has gid {}, /etc/passwd says {}".format(name, gid_in_group, gid))

    for extra in groups:
        group_index = _index(group)
        if extra in group_index:
            group[group_index[extra]] = _add_member(group[group_index[extra]], name, 3)
        else:
            new_gid = _free_id(_used_ids(group, 2), {uid})
            group.append("{}:x:{}:{}".format(extra, new_gid, name))

    if shadow is not None and name not in _index(shadow):
        # Locked password, no aging: a service account nobody logs into.
        shadow.append(":".join([name, "!*", "", "", "", "", "", "", ""]))
    if gshadow is not None:
        for group_name in [name] + list(groups):
            index = _index(gshadow)
            if group_name not in index:
                members = "" if group_name == name else name
                gshadow.append("{}:!::{}".format(group_name, members))
            elif group_name != name:
                gshadow[index[group_name]] = _add_member(gshadow[index[group_name]], name, 3)

    result = Accounts(
        _join(passwd),
        _join(group),
        None if shadow is None else _join(shadow),
        None if gshadow is None else _join(gshadow),
    )
    return result, uid, gid


def remove_system_user(accounts, name):
    """A new Accounts without user `name`, its own group, and its memberships (for --purge)."""

    def drop(lines, member_column):
        kept = []
        for line in _lines(lines):
            if _is_entry(line) and _fields(line)[0] == name:
                continue
            kept.append(_remove_member(line, name, member_column) if _is_entry(line) and member_column else line)
        return _join(kept)

    return Accounts(
        drop(accounts.passwd, None),
        drop(accounts.group, 3),
        None if accounts.shadow is None else drop(accounts.shadow, None),
        None if accounts.gshadow is None else drop(accounts.gshadow, 3),
    )


def lookup(accounts, name):
    """(uid, gid) of user `name`, or None."""
    for line in _lines(accounts.passwd):
        if _is_entry(line):
            fields = _fields(line)
            if fields[0] == name and len(fields) > 3 and fields[2].isdigit() and fields[3].isdigit():
                return int(fields[2]), int(fields[3])
    return None


def group_id(accounts, name):
    for line in _lines(accounts.group):
        if _is_entry(line):
            fields = _fields(line)
            if fields[0] == name and len(fields) > 2 and fields[2].isdigit():
                return int(fields[2])
    return None
