"""firmware.validation: the one declarative validator behind the configuration and the board files."""

import pytest

from firmware import validation as v
from firmware.errors import ConfigError

FIELDS = {
    "name": v.Field(str, v.REQUIRED, "a string", checks=[(v.printable(8), "a short printable name")]),
    "port": v.Field(int, 5060, "a port", v.in_range(1, 65535)),
    "codecs": v.Field(list, ["PCMU"], "a list of codecs", v.list_of(("PCMU", "PCMA"))),
    "mode": v.Field(str, "a", "one of: a, b", v.one_of(("a", "b"))),
    "on": v.Field(bool, False),
    "address": v.Field(int, 0x3C, "an address", checks=[(v.in_range(8, 0x77), "an address, not 0x{:02X}".format)]),
}


def check(table, say=v.plain):
    return v.check_table("f.toml", table, FIELDS, "s.", say=say)


def error(table, say=v.plain):
    with pytest.raises(ConfigError) as info:
        check(table, say)
    return info.value.key, info.value.expected


def test_defaults_are_filled_in_and_copied():
    values = check({"name": "x"})
    assert values == {"name": "x", "port": 5060, "codecs": ["PCMU"], "mode": "a", "on": False, "address": 0x3C}
    values["codecs"].append("PCMA")
    assert check({"name": "x"})["codecs"] == ["PCMU"]  # a caller's change never reaches the schema's default


def test_each_problem_is_one_error_naming_the_key():
    assert error({}) == ("s.name", "a value (required)")
    assert error({"name": "x", "typo": 1}) == ("s.typo", "one of: name, port, codecs, mode, on, address")
    assert error({"name": 3}) == ("s.name", "a string")
    assert error({"name": "x" * 9}) == ("s.name", "a short printable name")
    assert error({"name": "a\r\nb"}) == ("s.name", "a short printable name")  # CR/LF would inject lines
    assert error({"name": "x", "port": 0}) == ("s.port", "a port")
    assert error({"name": "x", "port": True}) == ("s.port", "a port")  # true is no integer here
    assert error({"name": "x", "on": 1}) == ("s.on", "true or false")
    assert error({"name": "x", "codecs": []}) == ("s.codecs", "a list of codecs")
    assert error({"name": "x", "codecs": ["PCMU", "PCMU"]}) == ("s.codecs", "a list of codecs")
    assert error({"name": "x", "mode": "c"}) == ("s.mode", "one of: a, b")
    assert error({"name": "x", "address": 0x78}) == ("s.address", "an address, not 0x78")


def test_the_configuration_style_shows_the_value_cut_short():
    key, expected = error({"name": "x", "port": 70000}, v.with_value)
    assert (key, expected) == ("s.port", "expected a port, got 70000")
    key, expected = error({"name": "y" * 5000}, v.with_value)
    assert expected.startswith("expected a short printable name, got 'yyy") and "(5000 characters)" in expected
    assert len(expected) < 120


def test_is_text_refuses_c0_del_and_c1_but_not_other_unicode():
    assert v.is_text("Zoë ☎", 5)
    for bad in ("\x00", "\x1f", "\x7f", "\x85", "\x9f"):
        assert not v.is_text("a" + bad, 5)
    assert not v.is_text("abcdef", 5)
    assert not v.is_text(b"abc", 5)


def test_toml_problems_are_one_error(tmp_path):
    with pytest.raises(ConfigError, match="valid TOML"):
        v.parse_toml("a = [", "t.toml")
    with pytest.raises(ConfigError, match="nested less deeply"):
        v.parse_toml("a = " + "[" * 5000 + "]" * 5000, "t.toml")
    big = tmp_path / "big.toml"
    big.write_text("a = 1\n" + "# padding\n" * 10)
    with pytest.raises(ConfigError, match="at most 20 bytes"):
        v.read_toml(big, limit=20)
    assert v.read_toml(big) == {"a": 1}
    with pytest.raises(ConfigError) as info:
        v.read_toml(tmp_path, file_key="file")
    assert (info.value.key, info.value.expected) == ("file", "a file, not a directory")
