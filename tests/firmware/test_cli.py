"""The `sotto` command's contract (issue 2): subcommands, option validation, one-line errors, exit 2."""

import os
import pathlib
import subprocess
import sys

import pytest

from tests.interop.sotto import free_udp_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOTTO = [sys.executable, "-m", "firmware"]


def run(*args, timeout=30, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([*SOTTO, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


def test_help_lists_the_three_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("call", "answer", "run"):
        assert command in result.stdout


def test_every_contract_option_is_accepted_by_call():
    result = run("call", "--help")
    for option in (
        "--config",
        "--listen",
        "--rtp-port",
        "--play",
        "--record",
        "--duration",
        "--timeout",
        "--encryption",
        "--secure-only",
        "--confirm-sas",
        "--codecs",
        "--zrtp-key-agreements",
        "--zrtp-ciphers",
        "--zrtp-hashes",
        "--zrtp-auth-tags",
        "--zrtp-sas",
        "--cache",
        "--register",
        "--password",
        "--proxy",
    ):
        assert option in result.stdout, option


def test_run_has_the_sim_device_options():
    result = run("run", "--help")
    for option in ("--board", "--script", "--display-log", "--display-png", "--dial-domain"):
        assert option in result.stdout, option


@pytest.mark.parametrize(
    "args, expected",
    [
        (["call", "not a uri"], "not a SIP URI"),
        (["call", "sip:bob@127.0.0.1", "--codecs", "PCMU,GSM"], "unknown codec 'GSM'"),
        (["call", "sip:bob@127.0.0.1", "--encryption", "rot13"], "invalid choice"),
        (["call", "sip:bob@127.0.0.1", "--listen", "nowhere"], "expected HOST:PORT"),
        (["call", "sip:bob@127.0.0.1", "--rtp-port", "99999"], "expected a UDP port"),
        (["call", "sip:bob@127.0.0.1", "--duration", "-1"], "positive number"),
        (["call", "sip:bob@127.0.0.1", "--timeout", "soon"], "number of seconds"),
        (["call", "sip:bob@127.0.0.1", "--zrtp-key-agreements", "RSA1"], "unknown ZRTP key agreement"),
        (["call", "sip:bob@127.0.0.1", "--zrtp-ciphers", "AES1,AES1"], "listed twice"),
        (["call", "sip:bob@127.0.0.1", "--play", "/nonexistent.wav"], "no such WAV file"),
        (["call", "sip:bob@127.0.0.1", "--password", "x"], "--password needs --register"),
        (["call", "sip:bob@127.0.0.1", "--register", "alice"], "--register"),
        (["call", "sip:bob@127.0.0.1", "--config", "/nonexistent.toml"], "/nonexistent.toml: <file>"),
        (["call", "sip:bob@127.0.0.1", "--secure-only", "--encryption", "none"], "--secure-only"),
        (["answer", "--bogus"], "unrecognized arguments"),
        (["frobnicate"], "invalid choice"),
        (["run", "--board", "nosuchboard"], "nosuchboard"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(args, expected):
    result = run(*args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_unusable_wav_is_a_usage_error(tmp_path):
    import wave

    not_wav = tmp_path / "noise.wav"
    not_wav.write_bytes(b"RIFF....WAVEjunk")
    eight_channels = tmp_path / "surround.wav"
    with wave.open(str(eight_channels), "wb") as w:
        w.setnchannels(8)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(16 * 80))
    for path in (not_wav, eight_channels):
        result = run("call", "sip:bob@127.0.0.1", "--play", str(path))
        assert result.returncode == 2
        assert "unusable WAV file" in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def _wav_bytes(rate=8000, channels=1, width=2, pcm=b"\0" * 1600, data_size=None):
    """A WAV file written by hand, so its header can say what the wave module would never write."""
    import struct

    data_size = len(pcm) if data_size is None else data_size
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * channels * width) & 0xFFFFFFFF, channels * width, width * 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data_size) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    "header, why",
    [
        (dict(rate=0), "sample rate 0 Hz"),
        (dict(rate=4_000_000_000), "sample rate 4000000000 Hz"),
        (dict(rate=1), "sample rate 1 Hz"),
        (dict(rate=44101), "filter"),  # legal-looking, but 8000 phases against 8 kHz: refused, not 14 s of CPU
        (dict(channels=0), "channels"),
        (dict(channels=1000), "channels"),
        (dict(data_size=0xFFFFFFF0), "bytes of audio"),
        (dict(pcm=b"", data_size=0), "no audio"),
    ],
)
def test_impossible_wav_headers_are_refused_by_play_validation(tmp_path, header, why):
    import time

    path = tmp_path / "hostile.wav"
    path.write_bytes(_wav_bytes(**header))
    started = time.monotonic()
    result = run("call", "sip:bob@127.0.0.1", "--play", str(path), "--timeout", "1")
    assert time.monotonic() - started < 10
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unusable WAV file" in lines[0], lines
    assert why in lines[0] or (why == "channels" and "bad # of channels" in lines[0]), lines[0]


def test_the_resampler_refuses_impossible_rates_clearly():
    from audio.resample import Resampler, check_rates

    for source in (0, -8000, 4_000_000_000, 8000.5, None):
        with pytest.raises(ValueError, match="sample rate"):
            Resampler(source, 8000)
    with pytest.raises(ValueError, match="filter"):
        Resampler(44101, 8000)
    assert check_rates(44100, 8000) == 7680 and check_rates(48000, 48000) == 0


def test_bad_config_file_names_file_and_key(tmp_path):
    bad = tmp_path / "phone.toml"
    bad.write_text('[media]\ncodecs = ["PCMU", "speex"]\n')
    result = run("answer", "--config", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "sotto: configuration error: {}: media.codecs: expected a list of codecs from PCMU, PCMA, G722, opus, "
        "got ['PCMU', 'speex']".format(bad)
    )


def test_answer_times_out_with_a_summary(tmp_path):
    result = run(
        "answer", "--listen", "127.0.0.1:{}".format(free_udp_port()), "--timeout", "0.5", "--cache", str(tmp_path / "c")
    )
    assert result.returncode == 1
    import json

    summary = json.loads(result.stdout)
    assert summary["result"] == "timeout"
    assert summary["secure"] is False and summary["sas"] is None


def test_busy_sip_port_is_one_clear_line(tmp_path):
    import socket

    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 0))
    port = blocker.getsockname()[1]
    try:
        result = run(
            "answer", "--listen", "127.0.0.1:{}".format(port), "--timeout", "1", "--cache", str(tmp_path / "c")
        )
    finally:
        blocker.close()
    assert result.returncode == 1
    assert result.stderr.strip().startswith("sotto: error: cannot bind SIP (udp) to 127.0.0.1:{}".format(port))


def test_at_actions_are_checked_like_every_other_option(capsys):
    from firmware.cli import build_parser, main

    args = build_parser().parse_args(
        [
            "call",
            "sip:bob@127.0.0.1:5072",
            "--at",
            "1.5:hold",
            "--at",
            "2:dtmf 12#",
            "--at",
            "3:transfer sip:carol@127.0.0.1:5080",
            "--at",
            "0:confirm-sas",
        ]
    )
    assert [(a.at, a.name, a.argument) for a in args.at] == [
        (1.5, "hold", None),
        (2.0, "dtmf", "12#"),
        (3.0, "transfer", "sip:carol@127.0.0.1:5080"),
        (0.0, "confirm-sas", None),
    ]
    for bad in (
        "hold",
        "x:hold",
        "-1:hold",
        "nan:hold",
        "1e9:hold",
        "1:hold now",
        "1:dtmf",
        "1:dtmf 1²",
        "1:dtmf " + "1" * 33,
        "1:dtmf 1\x1d",
        "1:transfer",
        "1:transfer not-a-uri",
        "1:dance",
    ):
        assert main(["call", "sip:bob@127.0.0.1:5072", "--at", bad]) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("sotto: error:") and err.count("\n") == 1, err  # one line, no traceback
    assert main(["run", "--at", "1:hold"]) == 2  # the phone has its keys for that


@pytest.mark.parametrize(
    "args, key",
    [
        (["--register", "sip:alice@example.org", "--password", "p" * 1000], "account.password"),
        (["--register", "sip:alice@example.org", "--password", "pass\r\nX-Injected: 1"], "account.password"),
        (["--register", "sip:alice@" + "a" * 400 + ".org"], "--register"),
        (["--cache", "/tmp/" + "c" * 5000], "zrtp.cache"),
    ],
)
def test_command_line_values_get_the_bounds_a_file_gets(args, key):
    result = run("call", "sip:bob@127.0.0.1:9", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in result.stderr, result.stderr[-500:]
    assert len(lines[0]) < 700


def test_dial_domain_and_public_address_are_bounded():
    for flag in ("--dial-domain", "--public-address"):
        for value in ("x" * 300 + ".org", "example.org\n", "exa mple.org"):
            command = ["run"] if flag == "--dial-domain" else ["call", "sip:bob@127.0.0.1:9"]
            result = run(*command, flag, value)
            assert result.returncode == 2, (flag, value, result.stderr[-300:])
            assert flag in result.stderr and "Traceback" not in result.stderr
