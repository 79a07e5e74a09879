"""Two real `sotto` processes call each other on loopback: SIP, ZRTP, SRTP, audio files and summaries."""

import subprocess
import time
import wave

import pytest

from tests.conftest import require_tool
from tests.interop import sotto
from tests.waiting import wait_tcp_listening, wait_until

pytestmark = pytest.mark.interop


def _tone_wav(path, rate=8000, seconds=1.0, freq=440):
    import math

    frames = bytearray()
    for n in range(int(rate * seconds)):
        value = int(8000 * math.sin(2 * math.pi * freq * n / rate))
        frames += value.to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))


def _start_bob(tmp_path, bob_port, *extra):
    """`sotto answer` as Bob on 127.0.0.1:`bob_port` (20 s to be called), his cache and home in tmp_path."""
    return sotto.start(
        ["answer", "--listen", "127.0.0.1:{}".format(bob_port), "--timeout", "20"]
        + ["--cache", str(tmp_path / "bob.cache"), *extra],
        tmp_path / "bob-home",
    )


def _pair(tmp_path, caller_args, answer_args, name="a"):
    bob_port, alice_port = sotto.free_udp_port(), sotto.free_udp_port()
    bob = _start_bob(tmp_path, bob_port, *answer_args)
    sotto.wait_listening(bob_port, bob)
    alice = sotto.start(
        [
            "call",
            "sip:bob@127.0.0.1:{}".format(bob_port),
            "--listen",
            "127.0.0.1:{}".format(alice_port),
            "--timeout",
            "20",
            "--cache",
            str(tmp_path / "alice.cache"),
            *caller_args,
        ],
        tmp_path / "alice-home",
    )
    a = sotto.finish(alice, 30)
    b = sotto.finish(bob, 30)
    return a, b


def test_zrtp_call_then_verified_on_the_next_call(tmp_path):
    (rc_a, alice, err_a), (rc_b, bob, err_b) = _pair(tmp_path, ["--duration", "1", "--confirm-sas"], ["--confirm-sas"])
    assert rc_a == 0 and rc_b == 0, err_a + err_b
    for summary in (alice, bob):
        assert summary["result"] == "completed"
        assert summary["encryption"] == "zrtp" and summary["secure"] is True
        assert summary["zrtp"]["verified"] is False  # first call: nothing confirmed yet
        assert summary["rtp"]["sent"] > 20 and summary["rtp"]["received"] > 20
        assert summary["rtp"]["auth_failures"] == 0
        assert summary["rtp"]["ignored"] == 0  # Sotto sends nothing that is neither ZRTP nor media
    assert alice["sas"] == bob["sas"] and len(alice["sas"]) == 4
    assert alice["zrtp"]["peer_zid"] != bob["zrtp"]["peer_zid"]
    (rc_a, alice2, _), (rc_b, bob2, _) = _pair(tmp_path, ["--duration", "1"], [])
    assert rc_a == 0 and rc_b == 0
    assert alice2["zrtp"]["verified"] is True and bob2["zrtp"]["verified"] is True
    assert alice2["zrtp"]["cache_mismatch"] is False
    assert alice2["zrtp"]["peer_zid"] == alice["zrtp"]["peer_zid"]


def test_every_zrtp_preference_is_honoured(tmp_path):
    prefs = [
        "--zrtp-key-agreements",
        "X448",
        "--zrtp-ciphers",
        "AES3",
        "--zrtp-hashes",
        "S384",
        "--zrtp-auth-tags",
        "HS32",
        "--zrtp-sas",
        "B256",
    ]
    (rc_a, alice, err_a), (rc_b, bob, _) = _pair(tmp_path, ["--duration", "0.5", *prefs], prefs)
    assert rc_a == 0 and rc_b == 0, err_a
    assert alice["zrtp"]["key_agreement"] == "X448"
    assert (alice["zrtp"]["cipher"], alice["zrtp"]["hash"], alice["zrtp"]["auth_tag"]) == ("AES3", "S384", "HS32")
    assert alice["sas_type"] == "B256" and len(alice["sas"].split(" ")) == 2
    assert alice["sas"] == bob["sas"]


@pytest.mark.parametrize("encryption", ["none", "sdes"])
def test_plain_and_sdes_calls_carry_the_audio(tmp_path, encryption):
    source = tmp_path / "tone.wav"
    _tone_wav(source)
    recording = tmp_path / "heard.wav"
    (rc_a, alice, err_a), (rc_b, bob, err_b) = _pair(
        tmp_path,
        ["--duration", "1.5", "--encryption", encryption, "--play", str(source), "--codecs", "PCMA"],
        ["--encryption", encryption, "--record", str(recording)],
    )
    assert rc_a == 0 and rc_b == 0, err_a + err_b
    assert alice["codec"] == bob["codec"] == "PCMA"
    assert alice["secure"] is (encryption == "sdes") and alice["sas"] is None
    with wave.open(str(recording)) as w:
        frames = w.readframes(w.getnframes())
    samples = [int.from_bytes(frames[i : i + 2], "little", signed=True) for i in range(0, len(frames), 2)]
    assert len(samples) > 8000  # more than a second of audio arrived
    assert max(abs(s) for s in samples) > 4000  # and it is the tone, not silence


def test_secure_only_refuses_a_peer_without_zrtp(tmp_path):
    (rc_a, alice, _), (rc_b, bob, _) = _pair(tmp_path, ["--duration", "1", "--secure-only"], ["--encryption", "sdes"])
    # An SDES-only answerer cannot take a ZRTP offer without a=crypto: the call fails, never in clear.
    assert rc_a == 1
    assert alice["result"] in ("failed", "rejected")
    assert alice["secure"] is False


def _alive(process):
    if process.poll() is not None:
        raise AssertionError("sotto exited: {}".format(process.communicate()))


def test_sip_over_tcp_from_the_configuration(tmp_path):
    config = tmp_path / "tcp.toml"
    config.write_text('[account]\ntransport = "tcp"\n')
    bob_port, alice_port = sotto.free_udp_port(), sotto.free_udp_port()
    bob = _start_bob(tmp_path, bob_port, "--config", str(config))
    wait_tcp_listening(bob_port, 15, "sotto answer on TCP", lambda: _alive(bob))
    rc_a, alice, err_a = sotto.run(
        [
            "call",
            "sip:bob@127.0.0.1:{};transport=tcp".format(bob_port),
            "--config",
            str(config),
            "--listen",
            "127.0.0.1:{}".format(alice_port),
            "--duration",
            "0.5",
            "--timeout",
            "20",
            "--cache",
            str(tmp_path / "alice.cache"),
        ],
        tmp_path / "alice-home",
        30,
    )
    rc_b, bob_summary, _ = sotto.finish(bob, 30)
    assert rc_a == 0 and rc_b == 0, err_a
    assert alice["secure"] and alice["sas"] == bob_summary["sas"]


def test_sigterm_hangs_up_politely_and_exits_0(tmp_path):
    import signal

    bob_port, alice_port = sotto.free_udp_port(), sotto.free_udp_port()
    bob = _start_bob(tmp_path, bob_port)
    sotto.wait_listening(bob_port, bob)
    alice = sotto.start(
        [
            "call",
            "sip:bob@127.0.0.1:{}".format(bob_port),
            "--listen",
            "127.0.0.1:{}".format(alice_port),
            "--timeout",
            "20",
            "--cache",
            str(tmp_path / "alice.cache"),
            "--log-level",
            "info",
        ],
        tmp_path / "alice-home",
    )
    deadline = time.monotonic() + 15
    seen = ""
    while "call secure" not in seen and time.monotonic() < deadline:
        seen += alice.stderr.readline()
    assert "call secure" in seen
    alice.send_signal(signal.SIGTERM)
    rc_a, summary_a, _ = sotto.finish(alice, 15)
    rc_b, summary_b, _ = sotto.finish(bob, 15)
    assert rc_a == 0
    assert summary_a["reason"] == "stopped by signal" and summary_a["secure"] is True
    assert rc_b == 0 and summary_b["reason"] == "remote hangup"
    assert (tmp_path / "alice.cache").stat().st_size > 0  # the cache was flushed


def _sipp_scenario(tmp_path, name, port):
    """Run sipp's scenario tests/interop/scenarios/NAME once against 127.0.0.1:PORT, bounded (15 s in sipp,
    30 s in all); the completed process."""
    return subprocess.run(
        [
            require_tool("sipp", "sip-tester"),
            "-sf",
            str(sotto.ROOT / "tests" / "interop" / "scenarios" / name),
            "127.0.0.1:{}".format(port),
            "-i",
            "127.0.0.1",
            "-p",
            str(sotto.free_udp_port()),
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "15",
            "-timeout_error",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )


def test_a_reinvite_that_drops_zrtp_is_a_downgrade_alarm(tmp_path):

    port = sotto.free_udp_port()
    answer = sotto.start(
        ["answer", "--listen", "127.0.0.1:{}".format(port), "--timeout", "20", "--cache", str(tmp_path / "bob.cache")],
        tmp_path / "home",
    )
    sotto.wait_listening(port, answer)
    sipp = _sipp_scenario(tmp_path, "uac_zrtp_downgrade.xml", port)
    rc, summary, err = sotto.finish(answer, 30)
    assert sipp.returncode == 0, sipp.stdout[-2000:] + sipp.stderr[-2000:]
    assert summary["result"] == "completed" and summary["secure"] is False
    assert "downgrade: re-INVITE without ZRTP" in summary["alarms"]
    assert "SECURITY ALARM" in err


def test_tcp_call_to_nobody_fails_fast_with_503(tmp_path):
    config = tmp_path / "tcp.toml"
    config.write_text('[account]\ntransport = "tcp"\n')
    nobody = sotto.free_udp_port()  # nothing listens on this TCP port either
    started = time.monotonic()
    rc, summary, err = sotto.run(
        [
            "call",
            "sip:bob@127.0.0.1:{};transport=tcp".format(nobody),
            "--config",
            str(config),
            "--listen",
            "127.0.0.1:{}".format(sotto.free_udp_port()),
            "--timeout",
            "20",
            "--cache",
            str(tmp_path / "c"),
        ],
        tmp_path / "home",
        30,
    )
    assert rc == 1
    assert summary["result"] == "failed" and summary["sip_status"] == 503
    assert time.monotonic() - started < 10  # not Timer B's 32 s


def test_sdes_reinvite_answers_keep_the_keys_and_dropping_srtp_is_an_alarm(tmp_path):

    port = sotto.free_udp_port()
    answer = sotto.start(
        [
            "answer",
            "--encryption",
            "sdes",
            "--listen",
            "127.0.0.1:{}".format(port),
            "--timeout",
            "20",
            "--cache",
            str(tmp_path / "bob.cache"),
        ],
        tmp_path / "home",
    )
    sotto.wait_listening(port, answer)
    # sipp checks that the answers to the first INVITE and to the hold re-INVITE carry our a=crypto line.
    sipp = _sipp_scenario(tmp_path, "uac_sdes_reinvites.xml", port)
    rc, summary, err = sotto.finish(answer, 30)
    assert sipp.returncode == 0, sipp.stdout[-2000:] + sipp.stderr[-2000:]
    assert summary["result"] == "completed" and summary["secure"] is True
    assert summary["alarms"] == ["downgrade: re-INVITE without SRTP keys"]
    assert "SECURITY ALARM" in err


def test_in_call_actions_from_the_command_line(tmp_path):
    """--at (issue 12): confirm the SAS, hold and resume (a re-INVITE keeping a=zrtp-hash: no downgrade alarm on
    the far side), RFC 4733 DTMF, then hang up; every action's outcome is in the summary."""
    actions = [
        "--at",
        "0.8:hold",
        "--at",
        "1.8:resume",
        "--at",
        "2.2:dtmf 12#",
        "--at",
        "3:confirm-sas",
        "--at",
        "4:hangup",
    ]
    (rc_a, alice, err_a), (rc_b, bob, err_b) = _pair(tmp_path, actions, ["--confirm-sas"])
    assert rc_a == 0 and rc_b == 0, err_a + err_b
    assert [(a["action"], a["result"]) for a in alice["actions"]] == [
        ("hold", "ok"),
        ("resume", "ok"),
        ("dtmf 12#", "sent"),
        ("confirm-sas", "ok"),
        ("hangup", "ok"),
    ]
    assert alice["reason"] == "hung up (--at)" and bob["reason"] == "remote hangup"
    assert alice["secure"] and bob["secure"] and "alarms" not in bob and "alarms" not in alice
    assert bob["rtp"]["dtmf_received"] == "12#"
    assert alice["rtp"]["auth_failures"] == 0 and bob["rtp"]["auth_failures"] == 0


def test_a_zrtp_phone_and_a_phone_without_zrtp_talk_in_the_clear_loudly(tmp_path):
    """Issue 12: the call to a phone without ZRTP was mute (media withheld for good). Now it starts in the clear
    at once and says so; the answerer, set to no encryption, plays what arrives."""
    (rc_a, alice, err_a), (rc_b, bob, err_b) = _pair(tmp_path, ["--duration", "2"], ["--encryption", "none"])
    assert rc_a == 0 and rc_b == 0, err_a + err_b
    assert alice["encryption"] == "none" and alice["secure"] is False
    assert alice["alarms"] == ["not secure: peer has no ZRTP"]
    assert alice["rtp"]["sent"] >= 90 and alice["rtp"]["received"] >= 90  # from the first moment, both ways
    assert bob["rtp"]["received"] >= 90
    (rc_a, alice, err_a), (rc_b, bob, err_b) = _pair(
        tmp_path, ["--duration", "1", "--secure-only"], ["--encryption", "none"]
    )
    assert rc_a == 1 and alice["result"] == "failed" and alice["reason"].startswith("not secure")
    assert alice["rtp"]["sent"] == 0  # secure_only: never a word in the clear


def test_an_sdes_caller_gets_sdes_from_a_zrtp_phone(tmp_path):
    """A peer without ZRTP that offers a=crypto: the ZRTP phone answers with SDES, encrypted but only to the
    server, and says so. (The other way round, a ZRTP offer refused with 488 by an SDES-only phone is offered
    again with SDES: tests/interop/carrier has it against baresip, since `sotto answer` takes one call only.)"""
    (rc_a, alice, err_a), (rc_b, bob, err_b) = _pair(tmp_path, ["--duration", "1", "--encryption", "sdes"], [])
    assert rc_a == 0 and rc_b == 0, err_a + err_b
    assert bob["encryption"] == "sdes" and alice["encryption"] == "sdes"
    assert bob["secure"] is False and bob["alarms"][0].startswith("not secure: encrypted to the server only")
    assert alice["secure"] is True  # it asked for SDES and got it
    assert bob["rtp"]["received"] > 30 and alice["rtp"]["received"] > 30 and bob["rtp"]["auth_failures"] == 0


def test_a_dead_peer_ends_the_call_with_media_timeout(tmp_path):
    """Issue 11: the peer is killed mid-call; the call ends after media.inactivity_timeout with a BYE, result
    failed, reason "media timeout", the silent tail counted as lost (it used to run to --duration)."""
    config = tmp_path / "short.toml"
    config.write_text("[media]\ninactivity_timeout = 2\n")
    bob_port, alice_port = sotto.free_udp_port(), sotto.free_udp_port()
    bob_log = tmp_path / "bob.log"
    with open(bob_log, "w") as log:
        bob = subprocess.Popen(
            sotto.sotto_command(
                "answer",
                "--listen",
                "127.0.0.1:{}".format(bob_port),
                "--timeout",
                "30",
                "--log-level",
                "info",
                "--cache",
                str(tmp_path / "bob.cache"),
            ),
            cwd=sotto.ROOT,
            env=sotto.environment(tmp_path / "bob-home"),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    sotto.wait_listening(bob_port, bob)
    started = time.monotonic()
    alice = sotto.start(
        [
            "call",
            "sip:bob@127.0.0.1:{}".format(bob_port),
            "--listen",
            "127.0.0.1:{}".format(alice_port),
            "--timeout",
            "40",
            "--duration",
            "30",
            "--config",
            str(config),
            "--cache",
            str(tmp_path / "alice.cache"),
        ],
        tmp_path / "alice-home",
    )
    # The call is up and keyed: then the peer vanishes.
    wait_until(lambda: "call secure:" in bob_log.read_text(), 20, "a secure call", lambda: _alive(alice))
    time.sleep(0.5)  # not a wait: half a second of secure media before the peer vanishes
    bob.kill()  # no BYE, no RTCP BYE
    bob.wait(10)
    killed = time.monotonic()
    rc, summary, err = sotto.finish(alice, 30)
    ended = time.monotonic()
    assert rc == 1, err
    assert summary["result"] == "failed" and summary["reason"] == "media timeout", summary
    assert summary["secure"] is True
    # 2 s of silence, then the BYE nobody answers (HANGUP_GRACE, 3 s), then the process exits
    assert 2.0 <= ended - killed < 12.0, (ended - killed, ended - started)
    assert summary["rtp"]["lost"] >= 90  # 2 s of silence at 50 packets a second
    print("dead peer: call ended {:.1f} s after the kill (timeout 2 s)".format(ended - killed))
