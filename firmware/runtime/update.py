"""A/B firmware updates (issue 15): a signed tarball installed into the slot not in use, then one atomic
pointer switch, so that a power cut at any moment boots a complete firmware: the old one until the
switch, the new one after it.

Layout under ROOT (tools/abupdate.py; README "Provisioned firmware updates" says how it sits beside the
image's /opt/sotto):

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
STEPS = ("verified", "extracting", "extracted", "slot-replaced", "pointer-written", "switched")


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
        body = storage.read_bytes(path, limit=MAX_FIRMWARE_BYTES)
        signature = storage.read_bytes(path + ".sig", limit=doc.SIGNATURE_BYTES)
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


def _extract(body, target):
    import io

    try:
        archive = tarfile.open(fileobj=io.BytesIO(body), mode="r:*")
    except tarfile.TarError as exc:
        raise UpdateRefused("not a tarball: {}".format(exc)) from None
    with archive:
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


def install(root, tarball, verify):
    """Install the signed `tarball` into the slot not in use and switch to it. Returns the new slot.
    UpdateRefused (nothing changed) when the signature or the contents are not acceptable."""
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
