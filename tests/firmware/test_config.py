import stat

import pytest

from firmware import config
from firmware.errors import ConfigError


def test_embedded_default_matches_the_contract():
    cfg = config.load(None)
    assert cfg.board.name == "sim"
    assert cfg.account.uri == ""  # no registrar
    assert cfg.sip.listen == "127.0.0.1:5060"
    assert cfg.media.encryption == "zrtp"
    assert cfg.sip.reliable_provisional == "required"  # RFC 3262 §3's MAY left off, as desk phones ship
    assert cfg.zrtp.secure_only is False
    assert cfg.data_dir.endswith("sotto")


def test_the_commented_template_is_the_default(tmp_path):
    path = tmp_path / "phone.toml"
    path.write_text(config.DEFAULT_TEMPLATE)
    assert vars(config.load(str(path)).media) == vars(config.load(None).media)
    # uncommenting every line must still validate (the template documents real keys)
    lines = []
    for line in config.DEFAULT_TEMPLATE.splitlines():
        body = line[2:] if line.startswith("# ") and "=" in line or line.startswith("# [") else line
        lines.append(body.split("   #")[0].rstrip() if "=" in body else body)
    path.write_text("\n".join(lines))
    cfg = config.load(str(path))
    assert cfg.dial.speed_dial == {"1": "sip:bob@example.org"}
    assert cfg.account.proxy == "sip.example.org:5060"


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ('[media]\ncodecs = ["PCMU", "GSM"]\n', "media.codecs", "a list of codecs"),
        ("[media]\nrtp_port = 70000\n", "media.rtp_port", "a UDP port number"),
        ("[media]\nrtp_port = true\n", "media.rtp_port", "a UDP port number"),
        ('[sip]\nlisten = "localhost"\n', "sip.listen", "HOST:PORT"),
        ('[sip]\nreliable_provisional = "always"\n', "sip.reliable_provisional", "one of required, supported"),
        ('[zrtp]\nkey_agreements = ["RSA"]\n', "zrtp.key_agreements", "a list from"),
        ("[zrtp]\nsecure_only = 1\n", "zrtp.secure_only", "true or false"),
        ('[account]\nuri = "alice"\n', "account.uri", "address of record"),
        ('[account]\npassword = "x"\n', "account.uri", "address of record"),
        ('[acount]\nuri = "sip:a@b"\n', "acount", "a known section"),
        ('[media]\ncodec = ["PCMU"]\n', "media.codec", "a known key"),
        ('[dial]\nspeed_dial = { 1 = "" }\n', "dial.speed_dial", "key ="),
        ("media = 3\n", "media", "a [media] table"),
        ("[media\n", "<syntax>", "valid TOML"),
    ],
)
def test_bad_files_name_file_key_and_expectation(tmp_path, text, key, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    message = str(info.value)
    assert message.startswith(str(path) + ": " + key + ": ")
    assert expected in message
    assert "\n" not in message


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="an existing, readable TOML file"):
        config.load(str(tmp_path / "nope.toml"))


def test_host_port_parsing():
    assert config.host_port("127.0.0.1:5060") == ("127.0.0.1", 5060)
    assert config.host_port("[::1]:5070") == ("::1", 5070)
    for bad in ("127.0.0.1", ":5060", "h:0", "h:99999", "[::1]5060", "h:x"):
        with pytest.raises(ValueError):
            config.host_port(bad)


def test_data_dir_default_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert config.load(None).data_dir == str(tmp_path / "sotto")
    assert stat.S_ISDIR((tmp_path).stat().st_mode)


# --- hostile files (issue 11 item 6): one clear line, exit 2, bounded values ------------------------


def _sotto_with_config(tmp_path, path):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "firmware", "call", "sip:bob@127.0.0.1:9", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=str(tmp_path),
        env=dict(__import__("os").environ, PYTHONPATH=str(__import__("pathlib").Path(__file__).resolve().parents[2])),
    )


@pytest.mark.parametrize("nesting", ["a = " + "[" * 5000 + "]" * 5000, "a = " + "{b = " * 3000 + "1" + "}" * 3000])
def test_a_deeply_nested_file_is_one_line_exit_2(tmp_path, nesting):
    path = tmp_path / "deep.toml"
    path.write_text(nesting + "\n")
    with pytest.raises(ConfigError, match="nested"):
        config.load(str(path))
    result = _sotto_with_config(tmp_path, path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr[-500:]
    assert result.stderr.startswith("sotto: configuration error: ")


@pytest.mark.parametrize(
    "text, key",
    [
        ('[account]\ndisplay_name = "{}"\n'.format("x" * 100_000), "account.display_name"),
        ('[account]\ndisplay_name = "Alice\\r\\nX-Injected: 1"\n', "account.display_name"),
        ('[account]\npassword = "{}"\n'.format("p" * 1000), "account.password"),
        ('[account]\nuri = "sip:alice@{}.org"\n'.format("a" * 1000), "account.uri"),
        ('[account]\nuri = "sip:alice@example.org\\n"\n', "account.uri"),
        ('[media]\ncapture_device = "{}"\n'.format("hw" * 1000), "media.capture_device"),
        ('[media]\nplayback_device = ""\n', "media.playback_device"),
        ('[zrtp]\ncache = "{}"\n'.format("/x" * 3000), "zrtp.cache"),
        ('[data]\ndir = "/tmp/a\\u0000b"\n', "data.dir"),
        ('[dial]\ndomain = "{}.org"\n'.format("d" * 300), "dial.domain"),
        ('[dial]\nspeed_dial = { abc = "sip:bob@example.org" }\n', "dial.speed_dial"),
        ('[dial]\nspeed_dial = { "1#" = "sip:bob@example.org" }\n', "dial.speed_dial"),
        ('[dial]\nspeed_dial = { "" = "sip:bob@example.org" }\n', "dial.speed_dial"),
        ('[dial]\nspeed_dial = {{ 1 = "{}" }}\n'.format("sip:b@" + "x" * 400), "dial.speed_dial"),
        ('[dial]\nspeed_dial = { 1 = "bob" }\n', "dial.speed_dial"),
        (
            "[dial.speed_dial]\n" + "".join('{} = "sip:u{}@example.org"\n'.format(n, n) for n in range(101)),
            "dial.speed_dial",
        ),
        ('[board]\nname = "{}"\n'.format("b" * 5000), "board.name"),
    ],
)
def test_free_text_values_are_bounded(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    message = str(info.value)
    assert message.startswith(str(path) + ": " + key + ": "), message[:300]
    assert "\n" not in message and len(message) < 600  # the bad value is shown cut short


def test_the_bounds_accept_ordinary_values(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(
        '[account]\nuri = "sip:alice@example.org"\ndisplay_name = "Alice Müller, 3rd floor"\n'
        'password = "correct horse battery staple"\n[dial.speed_dial]\n1 = "sip:bob@example.org"\n'
        '"*7" = "sip:carol@example.org"\n"0123456789" = "sip:dan@example.org"\n'
    )
    cfg = config.load(str(path))
    assert cfg.account.display_name == "Alice Müller, 3rd floor"
    assert set(cfg.dial.speed_dial) == {"1", "*7", "0123456789"}


def test_a_huge_or_special_file_is_refused_before_parsing(tmp_path):
    import os

    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "x" * (config.MAX_FILE_BYTES + 10) + "\n")
    with pytest.raises(ConfigError, match="at most"):
        config.load(str(huge))
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # opening a FIFO for reading would block forever without O_NONBLOCK
    with pytest.raises(ConfigError, match="regular file"):
        config.load(str(fifo))
    with pytest.raises(ConfigError, match="not a directory"):
        config.load(str(tmp_path))
