"""The A/B start guard (issue 15): puts the previous firmware slot back when a newly installed one never
gets the phone going. Standard library only, one file: the image and tools/install.py copy it to
/opt/sotto/abguard.py, outside the slots, because the code that decides to abandon a slot must not come
from that slot.

    python3 /opt/sotto/abguard.py start [--root /opt/sotto-ab] [--spool /var/lib/sotto/update]
    python3 /opt/sotto/abguard.py ready [--root /opt/sotto-ab]

The state is ROOT/trial, which tools/abupdate.py writes just before it switches ROOT/current to the new
slot (firmware/runtime/update.py step "trial-armed"): the slot on trial, the slot to go back to, the
version on trial and the starts counted so far.

start   sotto-firstboot.service and sotto.service run it (as root, ExecStartPre=+-) before anything from
        the slot: each start of the trial slot is counted, and once MAX_STARTS starts have gone by
        without READY, ROOT/current is switched back to the previous slot (one rename, like the
        install) and the spool's `result` says so, for the phone to show. sotto.service has
        Restart=always, so a slot that crashes or never sends READY within TimeoutStartSec is started
        again and again until the count runs out; a boot where first boot itself fails counts once.
ready   sotto.service runs it (ExecStartPost=+), which systemd does only once the main process sent
        READY=1 (Type=notify): the new slot works, ROOT/trial is removed, the count ends.

A trial file naming another slot than ROOT/current (a power cut after arming, before the switch) is
stale and removed. The guard never stops the phone from starting: any error is one line and exit 0.
"""

import argparse
import os
import sys

DEFAULT_ROOT = "/opt/sotto-ab"
DEFAULT_SPOOL = "/var/lib/sotto/update"
TRIAL_FILE = "trial"
RESULT_FILE = "result"
VERSION_FILE = "SOTTO_VERSION"
SLOTS = ("a", "b")
# Starts of a new slot without READY before the old one is put back. sotto-firstboot.service and
# sotto.service both count at boot, so a good slot uses two; a broken one is abandoned after the boot's
# first boot run and three service starts (Restart=always, RestartSec=3), or after four boots when first
# boot itself fails.
MAX_STARTS = 4
MAX_STATE_BYTES = 4096


def log(message):
    print("sotto-abguard: " + message, file=sys.stderr, flush=True)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_fields(path):
    """A small key=value file as a dict; {} when missing. Never follows a symlink, bounded."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return {}
    try:
        raw = os.read(fd, MAX_STATE_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_STATE_BYTES:
        raise ValueError("{}: larger than {} bytes".format(path, MAX_STATE_BYTES))
    fields = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            fields[key.strip()] = value.strip()
    return fields


def write_fields(path, fields, owner_of=None):
    """Replace `path` with key=value lines, durably (temp file, fsync, rename, fsync of the directory).
    `owner_of`: give the file the owner of that directory (the spool belongs to the sotto user)."""
    directory = os.path.dirname(path)
    text = "".join("{}={}\n".format(k, str(v).replace("\n", " ")) for k, v in fields.items())
    tmp = path + ".tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
        if owner_of is not None:
            info = os.stat(owner_of)
            try:
                os.fchown(fd, info.st_uid, info.st_gid)
            except PermissionError:
                pass  # unprivileged tests
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(directory)


def current_slot(root):
    try:
        target = os.readlink(os.path.join(root, "current"))
    except OSError:
        return None
    name = os.path.basename(target.rstrip("/"))
    return name if name in SLOTS else None


def slot_version(root, slot):
    try:
        with open(os.path.join(root, "slots", slot, VERSION_FILE), encoding="utf-8", errors="replace") as f:
            return f.read(256).strip() or None
    except OSError:
        return None


def switch(root, slot):
    """ROOT/current -> slots/SLOT with one rename(2): a power cut leaves the old or the new link."""
    pointer_new = os.path.join(root, "current.new")
    try:
        os.unlink(pointer_new)
    except FileNotFoundError:
        pass
    os.symlink(os.path.join("slots", slot), pointer_new)
    _fsync_dir(root)
    os.replace(pointer_new, os.path.join(root, "current"))
    _fsync_dir(root)


def arm(root, trial, previous, version):
    """Called by the installer before it switches to `trial`: from now on, starts of `trial` count."""
    write_fields(
        os.path.join(root, TRIAL_FILE), {"trial": trial, "previous": previous or "", "version": version, "starts": 0}
    )


def open_spool(spool):
    """(fd, path) of the spool directory, opened without following a symlink: the spool sits in the data
    directory, which the phone's user owns, so it may have been replaced with a link to, say, /etc. The
    path (/proc/self/fd/N) names the directory opened, whatever happens to the name afterwards."""
    fd = os.open(spool, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    return fd, "/proc/self/fd/{}".format(fd)


def write_result(spool, status, version, message):
    """The spool's `result` (status installed|refused|rolled-back, the version, one line): what the phone
    shows and remembers (firmware/runtime/update.py read_result). Only when the spool is a directory;
    an error is logged, never raised (the install or the roll-back itself is done)."""
    if spool is None:
        return
    try:
        fd, where = open_spool(spool)
    except OSError as exc:
        log("no result written to {}: {}".format(spool, exc))
        return
    try:
        write_result_in(where, status, version, message)
    finally:
        os.close(fd)


def write_result_in(opened, status, version, message):
    """write_result into a spool already opened by open_spool (`opened` is its /proc/self/fd path)."""
    try:
        write_fields(
            os.path.join(opened, RESULT_FILE),
            {"status": status, "version": version, "message": message},
            owner_of=opened,
        )
    except OSError as exc:
        log("no result written to the spool: {}".format(exc))


def start(root, spool, max_starts=MAX_STARTS):
    """Count one start of the slot on trial; switch back when the count is spent. Returns what it did:
    None (no trial), 'stale', 'counted' or 'rolled-back'."""
    path = os.path.join(root, TRIAL_FILE)
    state = read_fields(path)
    if not state:
        return None
    current = current_slot(root)
    if state.get("trial") != current or state.get("trial") not in SLOTS:
        os.unlink(path)
        _fsync_dir(root)
        log("trial of slot {} is stale (current is {}): dropped".format(state.get("trial"), current))
        return "stale"
    try:
        starts = int(state.get("starts", "0"))
    except ValueError:
        starts = max_starts
    previous = state.get("previous")
    if starts < max_starts or previous not in SLOTS or previous == current or slot_version(root, previous) is None:
        if starts >= max_starts:
            log("slot {} failed {} starts but there is no complete slot to go back to".format(current, starts))
        state["starts"] = starts + 1
        write_fields(path, state)
        log(
            "slot {} (version {}) on trial: start {} of {}".format(
                current, state.get("version"), starts + 1, max_starts
            )
        )
        return "counted"
    switch(root, previous)
    os.unlink(path)
    _fsync_dir(root)
    message = "firmware {} did not start ({} tries); back to {}".format(
        state.get("version"), starts, slot_version(root, previous)
    )
    log("rolled back to slot {}: {}".format(previous, message))
    write_result(spool, "rolled-back", state.get("version", ""), message)
    return "rolled-back"


def ready(root):
    """The slot on trial reached READY: it stays. Returns True when a trial ended here."""
    path = os.path.join(root, TRIAL_FILE)
    state = read_fields(path)
    if not state:
        return False
    if state.get("trial") == current_slot(root):
        log("slot {} (version {}) started: kept".format(state.get("trial"), state.get("version")))
    os.unlink(path)
    _fsync_dir(root)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(prog="abguard.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("start", "ready"))
    parser.add_argument("--root", default=DEFAULT_ROOT)
    parser.add_argument("--spool", default=DEFAULT_SPOOL)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            start(args.root, args.spool)
        else:
            ready(args.root)
    except (OSError, ValueError) as exc:
        # Never keep the phone from starting: the worst case is one more start of the same slot.
        log("error: {}".format(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
