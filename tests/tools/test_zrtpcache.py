"""tools/zrtpcache.py: list peers, show our ZID fingerprint, reset one peer."""

import io
import subprocess
import sys

import pytest

from firmware.zrtp.cache import ZrtpCache
from tools import zrtpcache


@pytest.fixture
def cache_file(tmp_path):
    cache = ZrtpCache(bytes(range(12)))
    cache.update_retained(b"A" * 12, b"1" * 32, 1700000000, "sip:alice@127.0.0.1")
    cache.update_retained(b"A" * 12, b"2" * 32, 1700000100)
    cache.set_verified(b"A" * 12, True)
    cache.update_retained(b"B" * 12, b"3" * 32, 1600000000)
    cache.bind_contact("sip:alice@127.0.0.1", b"A" * 12, 1700000100)
    path = tmp_path / "zrtp-cache"
    path.write_bytes(cache.serialize())
    return path


def _run(*argv):
    out = io.StringIO()
    code = zrtpcache.main(list(argv), out)
    return code, out.getvalue()


def test_zid_and_fingerprint(cache_file):
    code, out = _run("--cache", str(cache_file), "zid")
    assert code == 0
    assert "000102030405060708090a0b" in out
    assert zrtpcache.fingerprint(bytes(range(12))) in out


def test_list(cache_file):
    code, out = _run("--cache", str(cache_file), "list")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[1].startswith("414141414141414141414141") and " yes " in lines[1] and "rs1+rs2" in lines[1]
    assert "sip:alice@127.0.0.1" in lines[1] and "2023-11-14" in lines[1]
    assert lines[2].startswith("424242424242424242424242") and " no " in lines[2]
    assert "31313131" not in out  # secrets are never printed


def test_contacts_and_forget_contact(cache_file):
    code, out = _run("--cache", str(cache_file), "contacts")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[1].startswith("sip:alice@127.0.0.1") and "414141414141414141414141" in lines[1]
    assert "2023-11-14" in lines[1]
    code, out = _run("--cache", str(cache_file), "forget-contact", "sip:alice@127.0.0.1:5060")
    assert code == 0 and "forgot contact" in out
    assert ZrtpCache.parse(cache_file.read_bytes()).contacts() == []
    assert _run("--cache", str(cache_file), "forget-contact", "sip:alice@127.0.0.1")[0] == 1


def test_reset_one_peer(cache_file):
    code, out = _run("--cache", str(cache_file), "reset", "414141414141414141414141")
    assert code == 0 and "forgot" in out
    cache = ZrtpCache.parse(cache_file.read_bytes())
    assert cache.get(b"A" * 12) is None and cache.get(b"B" * 12) is not None
    assert (cache_file.stat().st_mode & 0o777) == 0o600
    assert _run("--cache", str(cache_file), "reset", "414141414141414141414141")[0] == 1
    assert _run("--cache", str(cache_file), "reset", "zz")[0] == 2


def test_corrupt_or_missing_cache_exits_2(tmp_path, cache_file):
    data = cache_file.read_bytes()
    cache_file.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(SystemExit) as exc:
        _run("--cache", str(cache_file), "list")
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        _run("--cache", str(tmp_path / "nope"), "list")


def test_runs_as_module(cache_file):
    result = subprocess.run(
        [sys.executable, "-m", "tools.zrtpcache", "--cache", str(cache_file), "zid"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "fingerprint" in result.stdout


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_directory_or_fifo_is_one_line_and_never_hangs(tmp_path, kind):
    import os

    path = tmp_path / "not-a-cache"
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)  # open() for reading blocks until a writer comes: it must not be opened blocking
    result = subprocess.run(
        [sys.executable, "-m", "tools.zrtpcache", "--cache", str(path), "list"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "zrtpcache: {}: not a cache file (a directory, FIFO or device)".format(path)
    ]
