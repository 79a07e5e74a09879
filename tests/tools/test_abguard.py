"""The A/B update wired to the phone: the spool request answered by the real `tools/abupdate.py
apply-spool` (what sotto-update.service runs as root), and the start guard (`tools/abguard.py`, what
sotto-firstboot.service and sotto.service run around each start) putting the old slot back when a new one
never sends READY. Real subprocesses on a temporary root; systemd itself is the virtual Pi's part."""

import os
import subprocess
import sys

import pytest

from firmware.runtime import update
from tests.firmware.runtime.test_update import booted, tree, write_tarball
from tests.fixtures.provisioning import REPO, keygen, provision

GUARD = os.path.join(REPO, "tools", "abguard.py")


@pytest.fixture
def office(tmp_path):
    """Two signed releases, a phone configuration pinning the key, an A/B root on version 1, a spool."""
    private, public = keygen(tmp_path)
    releases = tmp_path / "releases"
    releases.mkdir()
    for version in ("1", "2"):
        write_tarball(releases / "sotto-{}.tar".format(version), tree(version))
    provision("sign", releases, "--key", private)
    config = tmp_path / "sotto.toml"
    config.write_text('[provisioning]\npublic_key = "{}"\n[data]\ndir = "{}"\n'.format(public, tmp_path / "data"))
    root = tmp_path / "ab"
    spool = tmp_path / "data" / "update"
    spool.mkdir(parents=True)
    first = run_script("abupdate.py", "install", releases / "sotto-1.tar", "--key", public, "--root", root)
    assert first.returncode == 0, first.stderr
    guard("ready", root)  # version 1 is the image's: no trial
    return {"releases": releases, "private": private, "public": public, "config": config, "root": root, "spool": spool}


def run_script(name, *args):
    """A tools/ script run by path, as the units run it (not `python -m`)."""
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", name), *map(str, args)],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )


def guard(command, root, spool=None):
    args = [command, "--root", root] + (["--spool", spool] if spool is not None else [])
    done = run_script("abguard.py", *args)
    assert done.returncode == 0, done.stderr  # the guard never fails a start
    return done


def ask(office, version, name=None):
    """What the phone does: the verified tarball and its signature in the spool, then the request."""
    name = name or "sotto-{}.tar".format(version)
    for suffix in ("", ".sig"):
        source = office["releases"] / ("sotto-{}.tar".format(version) + suffix)
        (office["spool"] / (name + suffix)).write_bytes(source.read_bytes())
    update.write_request(str(office["spool"]), name, version)


def apply_spool(office):
    return run_script(
        "abupdate.py",
        "apply-spool",
        "--spool",
        office["spool"],
        "--config",
        office["config"],
        "--root",
        office["root"],
        "--no-restart",
    )


def test_a_request_is_installed_into_the_other_slot_and_put_on_trial(office):
    ask(office, "2")
    done = apply_spool(office)
    assert done.returncode == 0, done.stderr
    root, spool = office["root"], office["spool"]
    assert booted(root) == "2" and update.current_slot(str(root)) == "b"
    assert update.read_result(str(spool)) == {"status": "installed", "version": "2", "message": "installed in slot b"}
    # The request is gone (the path unit must not fire again) and so is the tarball (a small data partition).
    assert sorted(os.listdir(spool)) == ["result"]
    trial = (root / "trial").read_text()
    assert "trial=b\n" in trial and "previous=a\n" in trial and "version=2\n" in trial and "starts=0\n" in trial
    # sotto.service starts and sends READY: the guard counts the start, then keeps the slot.
    assert "start 1 of" in guard("start", root, spool).stderr
    assert "kept" in guard("ready", root).stderr
    assert not (root / "trial").exists() and booted(root) == "2"
    assert guard("start", root, spool).stderr == ""  # no trial: nothing to count


def test_a_slot_that_never_gets_ready_is_rolled_back_and_not_taken_again(office):
    ask(office, "2")
    assert apply_spool(office).returncode == 0
    root, spool = office["root"], office["spool"]
    for attempt in range(1, 5):  # the starts that never reach READY (a crash, a start timeout)
        assert "start {} of 4".format(attempt) in guard("start", root, spool).stderr
        assert booted(root) == "2"
    fifth = guard("start", root, spool)
    assert "rolled back to slot a" in fifth.stderr
    assert booted(root) == "1" and update.current_slot(str(root)) == "a" and not (root / "trial").exists()
    result = update.read_result(str(spool))
    assert result["status"] == "rolled-back" and result["version"] == "2"
    assert "did not start" in result["message"] and "back to 1" in result["message"]
    assert guard("start", root, spool).stderr == ""  # the old slot runs unguarded


def test_a_power_cut_between_arming_and_the_switch_leaves_a_stale_trial(office):
    root = office["root"]
    ask(office, "2")
    killed = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tools", "abupdate.py"),
            "apply-spool",
            "--spool",
            str(office["spool"]),
            "--config",
            str(office["config"]),
            "--root",
            str(root),
            "--no-restart",
        ],
        env=dict(os.environ, SOTTO_UPDATE_KILL_AT="trial-armed"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -9
    assert booted(root) == "1" and (root / "trial").exists()
    assert "stale" in guard("start", root, office["spool"]).stderr
    assert not (root / "trial").exists() and booted(root) == "1"


@pytest.mark.parametrize("attack", ["tampered", "symlink", "path", "no-file"])
def test_a_bad_request_is_refused_and_the_running_slot_kept(office, attack):
    spool, root = office["spool"], office["root"]
    if attack == "tampered":
        ask(office, "2")
        data = bytearray((spool / "sotto-2.tar").read_bytes())
        data[700] ^= 1
        (spool / "sotto-2.tar").write_bytes(bytes(data))
        why = "bad signature"
    elif attack == "symlink":
        # The phone's side is the service's: a symlink to a file it cannot read is never followed by root.
        ask(office, "2")
        os.unlink(spool / "sotto-2.tar")
        os.symlink(office["releases"] / "sotto-2.tar", spool / "sotto-2.tar")
        why = "symbolic links"  # ELOOP from O_NOFOLLOW
    elif attack == "path":
        (spool / "request").write_text("file=../../etc/shadow\nversion=2\n")
        why = "no plain file"
    else:
        update.write_request(str(spool), "sotto-7.tar", "7")
        why = "no such file"
    done = apply_spool(office)
    assert done.returncode == 1, done.stderr
    assert "refused" in done.stderr and why in done.stderr
    result = update.read_result(str(spool))
    assert result["status"] == "refused" and why in result["message"]
    assert not (spool / "request").exists()
    assert booted(root) == "1" and sorted(os.listdir(root / "slots")) == ["a"] and not (root / "trial").exists()


def test_the_guard_never_blocks_a_start(tmp_path):
    root = tmp_path / "ab"
    (root / "slots").mkdir(parents=True)
    (root / "trial").write_bytes(os.urandom(8000))  # damaged beyond reading
    done = guard("start", root)
    assert "error" in done.stderr
    assert guard("start", tmp_path / "missing").stderr == ""


def test_a_spent_trial_without_a_previous_slot_keeps_counting(office):
    """The first install into an empty root has nothing to go back to: counted, never switched away."""
    root = office["root"]
    (root / "trial").write_text("trial=a\nprevious=\nversion=1\nstarts=9\n")
    done = guard("start", root, office["spool"])
    assert "no complete slot to go back to" in done.stderr and booted(root) == "1"


def test_a_spool_replaced_by_a_symlink_is_not_written_through(office, tmp_path):
    """The data directory is the phone's: its update/ may be a link to a root-owned directory. Root then
    neither reads the request there nor writes its result there, and the guard's roll-back note neither."""
    target = tmp_path / "etc-like"
    target.mkdir()
    spool = office["spool"]
    ask(office, "2")
    for name in os.listdir(spool):
        os.rename(spool / name, target / name)
    spool.rmdir()
    spool.symlink_to(target)
    done = apply_spool(office)
    assert done.returncode == 1 and "not a directory of its own" in done.stderr
    assert sorted(os.listdir(target)) == ["request", "sotto-2.tar", "sotto-2.tar.sig"]  # nothing added, nothing read
    assert booted(office["root"]) == "1"
    (office["root"] / "trial").write_text("trial=a\nprevious=b\nversion=1\nstarts=0\n")
    os.makedirs(office["root"] / "slots/b")
    (office["root"] / "slots/b/SOTTO_VERSION").write_text("0\n")
    for _ in range(5):
        guard("start", office["root"], spool)
    assert update.current_slot(str(office["root"])) == "b"  # rolled back all the same
    assert "result" not in os.listdir(target)
