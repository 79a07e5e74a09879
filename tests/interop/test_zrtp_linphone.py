"""ZRTP interop with linphone-cli (bzrtp) on 127.0.0.1, through `sotto call` and `sotto answer`.

Both directions, Sotto with its default offer; linphone with its default suites (DH3k, Mult: DH3k is
chosen) and preferring X255, X448, AES3, S384, HS32 or B256. The SAS linphone prints on its console
must equal the one in Sotto's JSON summary, and the algorithms in linphone's log must equal Sotto's.
Continuity: after both sides confirm the SAS the next call is "verified" on both; with linphone's
retained secrets broken Sotto reports a cache mismatch, not "verified", and leaves its cache untouched
until the SAS is confirmed.

Ports (the ZRTP engineer's fixed range 17000-17999): linphone SIP 17060 / RTP 17070, Sotto SIP 17080 /
RTP 17090.
"""

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from firmware.zrtp.cache import ZrtpCache
from tests.interop import sotto
from tests.interop.linphone import Linphone

pytestmark = pytest.mark.interop

LINPHONE_SIP, LINPHONE_RTP = 17060, 17070
SOTTO_SIP, SOTTO_RTP = 17080, 17090
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Sotto runs with its default offer (firmware/zrtp/algorithms.py: everything implemented, X255 EC25 X448
# EC38 DH3k DH2k), so what is chosen against linphone's default and preferred suites is what ships.
SOTTO_ZRTP_ARGS = []

CASES = [
    ("default", {}, {"key_agreement": "DH3k", "cipher": "AES1", "hash": "S256", "sas_type": "B32"}),
    ("X255", {"zrtp_key_agreements": ["X255", "DH3k"]}, {"key_agreement": "X255"}),
    ("X448", {"zrtp_key_agreements": ["X448", "DH3k"]}, {"key_agreement": "X448"}),
    ("AES3", {"zrtp_ciphers": ["AES3", "AES1"]}, {"cipher": "AES3"}),
    ("S384", {"zrtp_hashes": ["S384", "S256"]}, {"hash": "S384"}),
    ("HS32", {"zrtp_auth_tags": ["HS32", "HS80"]}, {"auth_tag": "HS32"}),
    ("B256", {"zrtp_sas": ["B256", "B32"]}, {"sas_type": "B256"}),
]


def _sotto_command(mode, cache, extra):
    args = [sys.executable, "-m", "firmware", mode]
    if mode == "call":
        args.append("sip:bob@127.0.0.1:{}".format(LINPHONE_SIP))
    args += [
        "--listen",
        "127.0.0.1:{}".format(SOTTO_SIP),
        "--rtp-port",
        str(SOTTO_RTP),
        "--duration",
        "2",
        "--timeout",
        "20",
        "--cache",
        str(cache),
        "--codecs",
        "PCMU",
    ]
    return args + SOTTO_ZRTP_ARGS + list(extra)


def _summary(result):
    assert result.returncode == 0, "sotto failed: {}\n{}".format(result.stdout, result.stderr[-3000:])
    return json.loads(result.stdout)


def sotto_calls(linphone, cache, extra=()):
    result = subprocess.run(_sotto_command("call", cache, extra), capture_output=True, text=True, timeout=40, cwd=ROOT)
    return _summary(result)


def linphone_calls(linphone, cache, extra=()):
    process = subprocess.Popen(
        _sotto_command("answer", cache, extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        sotto.wait_listening(SOTTO_SIP, process)
        linphone.command("call sip:sotto@127.0.0.1:{}".format(SOTTO_SIP))
        stdout, stderr = process.communicate(timeout=40)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    return _summary(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))


DIRECTIONS = {"sotto_calls": sotto_calls, "linphone_calls": linphone_calls}


def _linphone(tmp_path, name="bob", **suites):
    return Linphone(tmp_path / name, LINPHONE_SIP, LINPHONE_RTP, user="bob", auto_answer=True, **suites)


def _check_against_linphone(summary, linphone, console_start, log_start=0):
    assert summary["secure"] is True and summary["encryption"] == "zrtp", summary
    token = linphone.auth_token(timeout=10, start=console_start)
    assert summary["sas"] == token.replace(":", " ")
    algorithms = linphone.algorithms(start=log_start)
    ours = summary["zrtp"]
    assert (ours["key_agreement"], ours["cipher"], ours["hash"], ours["auth_tag"], summary["sas_type"]) == (
        algorithms["key_agreement"],
        algorithms["cipher"],
        algorithms["hash"],
        algorithms["auth_tag"],
        algorithms["sas"],
    )
    return token


@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
@pytest.mark.parametrize("name,suites,expected", CASES, ids=[c[0] for c in CASES])
def test_sas_and_algorithms_match_linphone(tmp_path, direction, name, suites, expected):
    with _linphone(tmp_path, **suites) as linphone:
        summary = DIRECTIONS[direction](linphone, tmp_path / "sotto-cache")
        _check_against_linphone(summary, linphone, 0)
    got = dict(summary["zrtp"], sas_type=summary["sas_type"])
    for field, value in expected.items():
        assert got[field] == value, (field, summary)
    assert len(summary["sas"]) == 4 if summary["sas_type"] == "B32" else len(summary["sas"].split(" ")) == 2
    assert summary["zrtp"]["verified"] is False and summary["zrtp"]["cache_mismatch"] is False


def _confirm_on_linphone(linphone, console_start):
    linphone.auth_token(timeout=10, start=console_start)
    linphone.command("zrtp-set-verified")


def _log_length(linphone):
    return len(linphone.log())


@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
def test_continuity_both_confirm_then_verified(tmp_path, direction):
    cache = tmp_path / "sotto-cache"
    call = DIRECTIONS[direction]
    with _linphone(tmp_path) as linphone:
        # First call: Sotto presses the trust button (--confirm-sas), linphone's user confirms too,
        # while the call is up (the command crashes linphonec without an active call).
        console_start = len(linphone.console())
        confirmer = threading.Thread(target=_confirm_on_linphone, args=(linphone, console_start))
        confirmer.start()
        first = call(linphone, cache, ["--confirm-sas"])
        confirmer.join(15)
        _check_against_linphone(first, linphone, console_start)
        assert not first["zrtp"]["verified"]
        time.sleep(0.5)
        console_start, log_start = len(linphone.console()), _log_length(linphone)
        second = call(linphone, cache)
        _check_against_linphone(second, linphone, console_start, log_start)
        assert second["zrtp"]["verified"] is True and second["zrtp"]["cache_mismatch"] is False
        assert linphone.previously_verified(start=log_start) is True
        assert second["zrtp"]["peer_zid"] == first["zrtp"]["peer_zid"]


def _break_linphone_secrets(linphone):
    db = sqlite3.connect(linphone.zid_cache_path)
    try:
        rows = db.execute("UPDATE zrtp SET rs1 = ?, rs2 = ?", (os.urandom(32), os.urandom(32))).rowcount
        db.commit()
    finally:
        db.close()
    assert rows >= 1


def _peer_record(cache_path, peer_zid_hex):
    record = ZrtpCache.parse(open(cache_path, "rb").read()).get(bytes.fromhex(peer_zid_hex))
    return (record.rs1, record.rs2, record.verified) if record else None


@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
def test_broken_peer_secret_is_a_cache_mismatch_until_confirmed(tmp_path, direction):
    cache = tmp_path / "sotto-cache"
    call = DIRECTIONS[direction]
    linphone = _linphone(tmp_path)
    with linphone:
        first = call(linphone, cache)
        _check_against_linphone(first, linphone, 0)
        peer = first["zrtp"]["peer_zid"]
        time.sleep(0.5)
    before = _peer_record(cache, peer)
    assert before is not None and before[0] is not None
    _break_linphone_secrets(linphone)  # linphone is stopped; its cache is a sqlite file
    with linphone:
        log_start = _log_length(linphone)
        second = call(linphone, cache)
        _check_against_linphone(second, linphone, 0, log_start)
        assert second["zrtp"]["cache_mismatch"] is True and second["zrtp"]["verified"] is False
        assert _peer_record(cache, peer) == before  # unchanged: nobody confirmed the SAS
        time.sleep(0.5)
        # bzrtp defers its own update on a mismatch too, so the third call mismatches again; this time
        # both users compare the SAS and confirm it, which applies both deferred updates.
        console_start, log_start = len(linphone.console()), _log_length(linphone)
        confirmer = threading.Thread(target=_confirm_on_linphone, args=(linphone, console_start))
        confirmer.start()
        third = call(linphone, cache, ["--confirm-sas"])
        confirmer.join(15)
        _check_against_linphone(third, linphone, console_start, log_start)
        assert third["zrtp"]["cache_mismatch"] is True
        after = _peer_record(cache, peer)
        assert after[0] not in (before[0], before[1]) and after[1] == before[0] and after[2] is True
        time.sleep(0.5)
        console_start, log_start = len(linphone.console()), _log_length(linphone)
        fourth = call(linphone, cache)
        _check_against_linphone(fourth, linphone, console_start, log_start)
        assert fourth["zrtp"]["cache_mismatch"] is False and fourth["zrtp"]["verified"] is True


def _tone(path, seconds=3, rate=8000):
    import math
    import struct
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(seconds * rate)
            )
        )


def _play_when_secure(linphone, path):
    linphone.auth_token(timeout=10)
    linphone.command("play {}".format(path))


@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
@pytest.mark.parametrize(
    "suites",
    [{}, {"zrtp_key_agreements": ["X255"], "zrtp_ciphers": ["AES3"], "zrtp_auth_tags": ["HS32"]}],
    ids=["DH3k-AES1-HS80", "X255-AES3-HS32"],
)
def test_srtp_keys_from_zrtp_carry_audio_both_ways(tmp_path, direction, suites):
    """The SRTP keys and salts handed to the media (our send = initiator's or responder's per role,
    §4.5.3) are the ones linphone uses: its packets authenticate here and ours there."""
    tone = tmp_path / "tone.wav"
    _tone(tone)
    with _linphone(tmp_path, **suites) as linphone:
        player = threading.Thread(target=_play_when_secure, args=(linphone, tone))
        player.start()
        summary = DIRECTIONS[direction](linphone, tmp_path / "sotto-cache", ["--play", str(tone)])
        player.join(15)
        _check_against_linphone(summary, linphone, 0)
        rtp = summary["rtp"]
        assert rtp["received"] > 40 and rtp["auth_failures"] == 0, rtp
        # linphone's oRTP statistics at stream end: packets that passed its SRTP unprotect.
        received = linphone.wait_for(r"ortp-message-received\s+(\d+) packets", timeout=10, source="log")
        assert int(received.group(1)) > 40
