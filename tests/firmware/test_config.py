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
