"""Board files: every shipped board validates, every schema error is one clear ConfigError."""

import pytest

from boards import schema
from firmware.errors import ConfigError

BASE = """
name = "test"
model = "Raspberry Pi 4 Model B"
gpio = "RPi.GPIO"
numbering = "BCM"

[display]
type = "ssd1306"
address = 0x3C

[keypad]
rows = [5, 6, 13, 19]
cols = [12, 16, 20]
keys = ["123", "456", "789", "*0#"]

[buttons]
trust = 17

[leds]
verified = 22
"""


def load(text):
    return schema.load_board_text(text, where="test.toml")


def test_every_shipped_board_validates():
    names = schema.board_names()
    assert names == ["pi3-lcd", "pi4-oled", "pi5", "pizero2", "sim"]
    for name in names:
        board = schema.load_board(name)
        assert board.name == name
        assert board.path.endswith(name + ".toml")
        if name != "sim":
            assert board.button_pin("trust") is not None
            assert board.keypad is not None
            assert board.display.kind in ("ssd1306", "sh1106", "hd44780")


def test_shipped_boards_have_the_documented_hardware():
    pi4 = schema.load_board("pi4-oled")
    assert (pi4.display.kind, pi4.display.address, pi4.display.width, pi4.display.height) == ("ssd1306", 0x3C, 128, 64)
    assert pi4.keypad.keys == [["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"], ["*", "0", "#"]]
    assert pi4.leds == [("verified", 22)]
    pi3 = schema.load_board("pi3-lcd")
    assert (pi3.display.kind, pi3.display.address, pi3.display.cols, pi3.display.rows) == ("hd44780", 0x27, 16, 2)
    assert pi3.display.is_text
    assert schema.load_board("pi5").gpio == "rpi-lgpio"
    sim = schema.load_board("sim")
    assert sim.is_simulated and sim.display.kind == "sim"


def test_board_numbering_is_converted_to_bcm():
    zero = schema.load_board("pizero2")
    assert zero.keypad.rows == [5, 6, 13, 19]
    assert zero.keypad.cols == [12, 16, 20, 21]
    assert zero.button_pin("trust") == 17
    assert zero.keypad.keys[0][3] == "menu" and zero.keypad.keys[3][3] == "hangup"


def test_every_shipped_board_file_documents_the_format():
    for name in schema.board_names():
        text = (schema.BOARDS_DIR / (name + ".toml")).read_text()
        assert text.startswith("# Sotto board file (format: boards/README.md)")
        for word in ("[display]", "[keypad]", "[buttons]", "[hook]", "[leds]", "[buzzer]", "[audio]"):
            assert word in text.split("\n\n")[0]


def test_a_board_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(BASE)
    board = schema.load_board(str(path))
    assert board.name == "test" and board.path == str(path)


def test_the_base_board_is_valid():
    board = load(BASE)
    assert board.keypad.debounce == 0.02
    assert board.hook_pin is None and board.buzzer_pin is None


ERRORS = [
    # (what to change in BASE, the key reported, a fragment of what was expected)
    (("trust = 17", "trust = 5"), "buttons.trust", "BCM 5 is already used by keypad.rows[0]"),
    (("verified = 22", "verified = 17"), "leds.verified", "BCM 17 is already used by buttons.trust"),
    (("rows = [5, 6, 13, 19]", "rows = [5, 6, 13, 2]"), "keypad.rows[3]", "BCM 2 is already used by display (SDA"),
    (("rows = [5, 6, 13, 19]", "rows = [5, 6, 13, 0]"), "keypad.rows[3]", "reserved for the HAT ID EEPROM"),
    (("rows = [5, 6, 13, 19]", "rows = [5, 6, 13, 28]"), "keypad.rows[3]", "a BCM GPIO number from 2 to 27"),
    (("rows = [5, 6, 13, 19]", 'rows = [5, 6, 13, "x"]'), "keypad.rows[3]", "a GPIO pin number"),
    (('type = "ssd1306"', 'type = "st7735"'), "display.type", "one of: ssd1306, sh1106, hd44780, sim"),
    (("address = 0x3C", "address = 0x78"), "display.address", "from 0x08 to 0x77, not 0x78"),
    (("address = 0x3C", "address = 0x03"), "display.address", "from 0x08 to 0x77, not 0x03"),
    (("address = 0x3C", 'address = "0x3C"'), "display.address", "a 7-bit I2C address"),
    (("address = 0x3C", "address = 0x3C\nwidth = 96"), "display.height", "an OLED of 128 x 64"),
    (('type = "ssd1306"', 'type = "hd44780"\ncols = 17'), "display.cols", "16x2, 20x4"),
    (('type = "ssd1306"', 'type = "sim"'), "display.type", "a real display"),
    (('gpio = "RPi.GPIO"', 'gpio = "none"'), "display.type", '"sim" on a board with gpio = "none"'),
    (('keys = ["123", "456", "789", "*0#"]', 'keys = ["123", "456", "789"]'), "keypad.keys", "4 strings"),
    (('keys = ["123", "456", "789", "*0#"]', 'keys = ["123", "456", "789", "*0"]'), "keypad.keys[3]", "3 keys"),
    (('keys = ["123", "456", "789", "*0#"]', 'keys = ["123", "456", "789", "*0X"]'), "keypad.keys[3]", "'X'"),
    (('keys = ["123", "456", "789", "*0#"]', 'keys = ["123", "456", "789", "*01"]'), "keypad.keys[3]", "twice"),
    (("trust = 17", "hangup = 17"), "buttons.trust", "every hardware board needs the trust button"),
    (("trust = 17", "trust = 17\nfire = 4"), "buttons.fire", "one of: trust, hangup"),
    (("[leds]", "[lasers]"), "lasers", "one of: name, model"),
    (('gpio = "RPi.GPIO"', 'gpio = "wiringpi"'), "gpio", "one of: RPi.GPIO, rpi-lgpio, none"),
    (('numbering = "BCM"', 'numbering = "WPI"'), "numbering", "one of: BCM, BOARD"),
    (('numbering = "BCM"\n', 'numbering = "BOARD"\n[x]\n'), "x", "one of: name"),
    (("[leds]", '[hook]\nactive = "low"\n[leds]'), "hook.pin", "required"),
    (("[leds]", '[hook]\npin = 27\nactive = "sideways"\n[leds]'), "hook.active", "one of: low, high"),
    (("[leds]", "[leds"), "toml", "valid TOML"),
    (('name = "test"\n', ""), "name", "required"),
]


@pytest.mark.parametrize("change,key,expected", [e for e in ERRORS if e[1] is not None])
def test_each_schema_error_is_one_clear_line(change, key, expected):
    old, new = change
    assert old in BASE
    with pytest.raises(ConfigError) as info:
        load(BASE.replace(old, new, 1))
    error = info.value
    assert error.where == "test.toml"
    assert error.key == key
    assert expected in error.expected
    assert "\n" not in str(error)
    assert str(error).startswith("test.toml: " + key + ": ")


def test_board_numbering_rejects_power_and_ground_pins():
    text = BASE.replace('numbering = "BCM"', 'numbering = "BOARD"').replace("[5, 6, 13, 19]", "[4, 29, 31, 33]")
    with pytest.raises(ConfigError) as info:
        load(text)
    assert info.value.key == "keypad.rows[0]"
    assert "not power or ground: 4" in info.value.expected


def test_keypad_letters_can_be_remapped_but_only_to_phone_keys():
    text = BASE.replace('keys = ["123", "456", "789", "*0#"]', 'keys = ["123", "456", "789", "*0A"]')
    board = load(text.replace("[buttons]", '[keypad.letters]\nA = "redial"\n\n[buttons]'))
    assert board.keypad.keys[3][2] == "redial"
    with pytest.raises(ConfigError) as info:
        load(text.replace("[buttons]", '[keypad.letters]\nA = "selfdestruct"\n\n[buttons]'))
    assert info.value.key == "keypad.letters.A"


def test_a_simulated_board_has_no_pins():
    with pytest.raises(ConfigError) as info:
        load('name = "s"\ngpio = "none"\n[display]\ntype = "sim"\n[buttons]\ntrust = 17\n')
    assert info.value.key == "buttons"
    board = load('name = "s"\ngpio = "none"\n[display]\ntype = "sim"\n')
    assert schema.wiring(board) == []


def test_a_display_on_another_bus_frees_bcm_2_and_3():
    text = BASE.replace("address = 0x3C", "address = 0x3C\ni2c_bus = 3")
    board = load(text.replace("[5, 6, 13, 19]", "[2, 6, 13, 19]"))
    assert board.keypad.rows[0] == 2


def test_unknown_board_name_and_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        schema.load_board("pi9-hologram")
    assert info.value.key == "pi9-hologram"
    assert "pi4-oled" in info.value.expected
    with pytest.raises(ConfigError) as info:
        schema.load_board(str(tmp_path / "nope.toml"))
    assert info.value.key == "file"


def test_wiring_rows_list_every_pin_once_with_its_header_pin():
    board = schema.load_board("pi4-oled")
    rows = schema.wiring(board)
    assert ("display (ssd1306 at 0x3C)", "SDA", 2, 3) in rows
    assert ("display (ssd1306 at 0x3C)", "SCL", 3, 5) in rows
    assert ("keypad", "row 1", 5, 29) in rows
    assert ("trust button", "signal (to GND when pressed)", 17, 11) in rows
    assert ("buzzer", "+", 18, 12) in rows
    bcm_pins = [row[2] for row in rows if row[2] is not None]
    assert len(bcm_pins) == len(set(bcm_pins))
    for part, signal, bcm, header in rows:
        assert isinstance(part, str) and isinstance(signal, str)
        assert header is None or 1 <= header <= 40
        if bcm is not None:
            assert schema.BCM_TO_HEADER[bcm] == header
    lcd = schema.wiring(schema.load_board("pi3-lcd"))
    assert ("display (hd44780 at 0x27)", "VCC (5V)", None, 2) in lcd


def test_hostile_board_files_are_one_clear_error(tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text("name = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested"):
        schema.load_board(str(deep))
    with pytest.raises(ConfigError, match="nested"):
        schema.load_board_text("name = " + "[" * 5000 + "]" * 5000 + "\n")
    long_name = (schema.BOARDS_DIR / "sim.toml").read_text().replace('name = "sim"', 'name = "{}"'.format("s" * 5000))
    assert long_name != (schema.BOARDS_DIR / "sim.toml").read_text()
    with pytest.raises(ConfigError, match="at most 256 characters"):
        schema.load_board_text(long_name)
