"""A/B firmware updates (issue 15): a signed tarball installed into the slot not in use, then one atomic
pointer switch, so that a power cut at any moment boots a complete firmware: the old one until the
switch, the new one after it.

Layout under ROOT (tools/abupdate.py; the image installs its tree as slot a, tools/image/payload.py):

    ROOT/slots/a/            one complete firmware tree (firmware/, audio/, boards/, tools/...)
    ROOT/slots/b/            the other
    ROOT/current -> slots/a  the pointer: a relative symlink, replaced with rename(2), which is atomic

Each slot holds the tarball's SOTTO_VERSION file (one line: the version), which a tarball must carry.

Install, in order (each step named: tests kill the installer at every one, SOTTO_UPDATE_KILL_AT):
  verified       the tarball's Ed25519 signature (over its file name and bytes, firmware/provisioning/
                 document.signed_message) checks with the pinned key; nothing on disk has changed
  extracting     members are written to ROOT/slots/<other>.new (a leftover from a killed run is removed
                 first); only regular files and directories with plain relative names, bounded in number
                 and size; each file fsync'd
  extracted      the new tree is complete in <other>.new
  slot-replaced  the old <other> slot is gone and <other>.new renamed to <other>
  trial-armed    before_switch(<other>) has run: tools/abupdate.py writes ROOT/trial there, so that
                 tools/abguard.py counts the new slot's starts and puts the old one back if it never
                 gets going (a trial naming a slot that `current` does not point to is dropped as stale)
  pointer-written  ROOT/current.new -> slots/<other> exists, fsync'd
  switched       current.new renamed over current (the atomic step) and the directory fsync'd
"""

import os
import shutil
import signal
import tarfile

from firmware.provisioning import document as doc
from firmware.runtime import storage

MAX_FIRMWARE_BYTES = 64 * 1024 * 1024  # the source tree is a few MB; the venv is not in a slot
MAX_MEMBERS = 20000
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
VERSION_FILE = "SOTTO_VERSION"
SLOTS = ("a", "b")
STEPS = ("verified", "extracting", "extracted", "slot-replaced", "trial-armed", "pointer-written", "switched")
# The spool: the data directory's update/ (the sandboxed service may write only there). The phone leaves
# a verified tarball and its .sig, then REQUEST_FILE; sotto-update.path starts the root installer, which
# answers with RESULT_FILE (tools/abguard.py writes it too, after a roll-back).
REQUEST_FILE = "request"
RESULT_FILE = "result"
MAX_SPOOL_FILE_BYTES = 4096


class UpdateRefused(Exception):
    """The tarball is not installed (bad signature, unsafe member, too large): nothing changed."""


def _step(name):
    """Where tests simulate a power cut: SIGKILL ourselves at the named step (nothing is cleaned up)."""
    if os.environ.get("SOTTO_UPDATE_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_slot(root):
    """'a' or 'b' (where ROOT/current points), or None before the first install."""
    try:
        target = os.readlink(os.path.join(root, "current"))
    except (FileNotFoundError, OSError):
        return None
    name = os.path.basename(target.rstrip("/"))
    return name if name in SLOTS else None


def installed_version(root):
    """The version the current slot holds (its SOTTO_VERSION file), or None."""
    slot = current_slot(root)
    if slot is None:
        return None
    raw = storage.read_bytes(os.path.join(root, "slots", slot, VERSION_FILE), limit=256)
    return raw.decode("utf-8", "replace").strip() if raw is not None else None


def installed_version_of(root, slot):
    """The version slot `slot` holds, or None."""
    raw = storage.read_bytes(os.path.join(root, "slots", slot, VERSION_FILE), limit=256)
    return raw.decode("utf-8", "replace").strip() if raw is not None else None


def running_version(tree=None):
    """The version of the firmware running: the SOTTO_VERSION file at the top of its tree (a slot holds
    one), else the installed package's version, else None."""
    tree = tree or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        raw = storage.read_bytes(os.path.join(tree, VERSION_FILE), limit=256)
    except (OSError, ValueError):
        raw = None
    if raw is not None:
        return raw.decode("utf-8", "replace").strip() or None
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:
        return None
    try:
        return version("sotto")
    except PackageNotFoundError:
        return None


def verify_tarball(path, verify):
    """The tarball's bytes once its signature (PATH.sig) checks; UpdateRefused otherwise."""
    name = os.path.basename(path)
    try:
        # Never through a symlink: as root, the installer reads a directory the service can write.
        body = storage.read_bytes(path, limit=MAX_FIRMWARE_BYTES, follow=False)
        signature = storage.read_bytes(path + ".sig", limit=doc.SIGNATURE_BYTES, follow=False)
    except (OSError, ValueError) as exc:
        raise UpdateRefused("{}: {}".format(name, exc)) from None
    if body is None:
        raise UpdateRefused("{}: no such file".format(path))
    if signature is None:
        raise UpdateRefused("{}: unsigned (no {}.sig)".format(name, name))
    if len(signature) != doc.SIGNATURE_BYTES or not verify(doc.signed_message(name, body), signature):
        raise UpdateRefused("{}: bad signature (not signed with the pinned key)".format(name))
    return body


def _safe_members(archive):
    members = archive.getmembers()
    if len(members) > MAX_MEMBERS:
        raise UpdateRefused("more than {} files in the tarball".format(MAX_MEMBERS))
    total = 0
    for member in members:
        parts = member.name.split("/")
        if member.name.startswith("/") or ".." in parts or not member.name or "\0" in member.name:
            raise UpdateRefused("unsafe path in the tarball: {!r}".format(member.name[:80]))
        if not (member.isfile() or member.isdir()):
            raise UpdateRefused("not a file or directory in the tarball: {!r}".format(member.name[:80]))
        total += member.size
        if total > MAX_UNPACKED_BYTES:
            raise UpdateRefused("the tarball unpacks to more than {} bytes".format(MAX_UNPACKED_BYTES))
    if not any(m.name == VERSION_FILE for m in members):
        raise UpdateRefused("the tarball has no {} file".format(VERSION_FILE))
    return members


def _open_archive(body):
    import io

    try:
        return tarfile.open(fileobj=io.BytesIO(body), mode="r:*")
    except tarfile.TarError as exc:
        raise UpdateRefused("not a tarball: {}".format(exc)) from None


def check_tarball(body):
    """The version a firmware tarball holds once its members pass the installer's checks (plain files and
    directories, relative names, bounded, a SOTTO_VERSION); UpdateRefused otherwise. The phone runs it on
    a download before asking for the install, so a bad one is refused where the user sees it."""
    try:
        with _open_archive(body) as archive:
            members = _safe_members(archive)
            member = next(m for m in members if m.name == VERSION_FILE)
            if not member.isfile() or member.size > 256:
                raise UpdateRefused("{} is not a one-line file".format(VERSION_FILE))
            version = archive.extractfile(member).read().decode("utf-8", "replace").strip()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UpdateRefused("damaged tarball: {}".format(exc)) from None
    if not version:
        raise UpdateRefused("{} is empty".format(VERSION_FILE))
    return version


def _extract(body, target):
    with _open_archive(body) as archive:
        members = _safe_members(archive)
        os.makedirs(target, mode=0o755)
        halfway = len(members) // 2
        for index, member in enumerate(members):
            if index == halfway:
                _step("extracting")
            path = os.path.join(target, member.name)
            if member.isdir():
                os.makedirs(path, mode=0o755, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            source = archive.extractfile(member)
            mode = 0o755 if member.mode & 0o111 else 0o644
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            try:
                while True:
                    chunk = source.read(1 << 16)
                    if not chunk:
                        break
                    os.write(fd, chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
        for dirpath, _dirs, _files in os.walk(target):
            _fsync_dir(dirpath)


def install(root, tarball, verify, before_switch=None):
    """Install the signed `tarball` into the slot not in use and switch to it. Returns the new slot.
    UpdateRefused (nothing changed) when the signature or the contents are not acceptable.
    before_switch(new_slot, old_slot): called once the new slot is complete, before the pointer moves."""
    body = verify_tarball(tarball, verify)
    _step("verified")
    slots = os.path.join(root, "slots")
    os.makedirs(slots, mode=0o755, exist_ok=True)
    active = current_slot(root)
    other = "b" if active == "a" else "a"
    fresh = os.path.join(slots, other + ".new")
    shutil.rmtree(fresh, ignore_errors=True)  # a killed run's leftover
    try:
        _extract(body, fresh)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    _step("extracted")
    final = os.path.join(slots, other)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(fresh, final)
    _fsync_dir(slots)
    _step("slot-replaced")
    if before_switch is not None:
        before_switch(other, active)
    _step("trial-armed")
    pointer_new = os.path.join(root, "current.new")
    try:
        os.unlink(pointer_new)
    except FileNotFoundError:
        pass
    os.symlink(os.path.join("slots", other), pointer_new)
    _fsync_dir(root)
    _step("pointer-written")
    os.replace(pointer_new, os.path.join(root, "current"))
    _fsync_dir(root)
    _step("switched")
    return other


# -- the spool between the phone and the installer --------------------------------------------------
def _fields(raw):
    fields = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            fields[key.strip()] = value.strip()
    return fields


def safe_file_name(name):
    """A tarball name from the spool or a provisioned file: one plain file name, nothing else."""
    allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-"
    return bool(name) and len(name) <= 128 and name[0] != "." and all(c in allowed for c in name)


def write_request(spool, file_name, version):
    """Ask the root installer (sotto-update.path) to install spool/file_name."""
    text = "file={}\nversion={}\n".format(file_name, version)
    storage.atomic_write(os.path.join(spool, REQUEST_FILE), text.encode("utf-8"), mode=0o644)


def read_request(spool):
    """(file name, version) from the spool's request; UpdateRefused when it is not one."""
    try:
        raw = storage.read_bytes(os.path.join(spool, REQUEST_FILE), limit=MAX_SPOOL_FILE_BYTES, follow=False)
    except (OSError, ValueError) as exc:
        raise UpdateRefused("unreadable request: {}".format(exc)) from None
    if raw is None:
        return None
    fields = _fields(raw)
    name = fields.get("file", "")
    if not safe_file_name(name):
        raise UpdateRefused("the request names no plain file: {!r}".format(name[:80]))
    return name, fields.get("version", "")


def read_result(spool):
    """The installer's last answer: {"status": installed|refused|rolled-back, "version", "message"}, or None."""
    try:
        raw = storage.read_bytes(os.path.join(spool, RESULT_FILE), limit=MAX_SPOOL_FILE_BYTES, follow=False)
    except (OSError, ValueError):
        return None
    if raw is None:
        return None
    fields = _fields(raw)
    if fields.get("status") not in ("installed", "refused", "rolled-back"):
        return None
    return {"status": fields["status"], "version": fields.get("version", ""), "message": fields.get("message", "")}
