"""OLED and LCD displays (boards.drivers.displays over ssd1306 and hd44780) against a strict smbus2 fake:
addresses, the SSD1306 command stream, our framebuffer reaching the controller byte for byte."""

import errno

import pytest

from boards.drivers.displays import CharacterLcd, OledDisplay
from boards.drivers.hd44780 import row_address
from firmware import screens
from tests.boards.fakes import FakeSMBus

SAS_SCREEN = screens.Screen("Compare SAS", ["read it aloud,", "press to confirm"], big="ab3d")


def test_construction_does_no_io():
    bus = FakeSMBus()
    OledDisplay(bus)
    CharacterLcd(bus)
    assert bus.calls == []


def test_ssd1306_initialisation_command_stream():
    bus = FakeSMBus((0x3C,))
    oled = OledDisplay(bus, "ssd1306", 0x3C)
    oled.open()
    commands = bus.commands(0x3C)
    assert commands[0] == 0xAE  # display off while configuring
    pairs = {commands[i]: commands[i + 1] for i in range(len(commands) - 1)}
    assert pairs[0xA8] == 0x3F  # multiplex ratio: 64 rows
    assert pairs[0x8D] == 0x14  # charge pump on
    assert pairs[0xDA] == 0x12  # COM pins for 128x64
    assert pairs[0x20] == 0x00  # horizontal addressing mode
    assert 0xAF in commands  # display on
    assert all(call[1] == 0x3C for call in bus.calls)


def test_ssd1306_receives_our_framebuffer_byte_for_byte():
    bus = FakeSMBus((0x3C,))
    oled = OledDisplay(bus, "ssd1306", 0x3C)
    oled.open()
    bus.calls.clear()
    oled.show(SAS_SCREEN)
    data = []
    for call in bus.calls:
        if call[0] == "write_i2c_block_data" and call[2] == 0x40:
            assert len(call[3]) <= 32
            data.extend(call[3])
    assert bytes(data) == bytes(screens.render_oled(SAS_SCREEN))
    # The window is the whole display: columns 0-127, pages 0-7.
    commands = bus.commands(0x3C)
    assert commands[:6] == [0x21, 0, 127, 0x22, 0, 7]


def test_sh1106_pages_are_addressed_one_at_a_time():
    bus = FakeSMBus((0x3C,))
    oled = OledDisplay(bus, "sh1106", 0x3C)
    oled.open()
    bus.calls.clear()
    oled.show(SAS_SCREEN)
    commands = bus.commands(0x3C)
    assert [c for c in commands if 0xB0 <= c <= 0xB7] == list(range(0xB0, 0xB8))
    data = [b for call in bus.calls if call[0] == "write_i2c_block_data" and call[2] == 0x40 for b in call[3]]
    assert bytes(data) == bytes(screens.render_oled(SAS_SCREEN))


def test_a_missing_display_is_an_error_not_a_hang():
    from boards.drivers.i2c import DeviceNotFoundError

    bus = FakeSMBus(devices=(0x3D,))
    with pytest.raises(DeviceNotFoundError):
        OledDisplay(bus, "ssd1306", 0x3C).open()
    assert FakeSMBus(devices=()).devices == ()
    with pytest.raises(OSError) as info:
        FakeSMBus(devices=()).write_byte(0x27, 0)
    assert info.value.errno == errno.EREMOTEIO


def test_unknown_oled_is_refused():
    with pytest.raises(ValueError):
        OledDisplay(FakeSMBus(), "st7735")


def test_hd44780_through_the_pcf8574_writes_nibbles_with_the_enable_strobe():
    bus = FakeSMBus((0x27,))
    lcd = CharacterLcd(bus, 0x27, 16, 2, pulse_time=0)
    lcd.open()
    assert all(call[0] == "write_byte" and call[1] == 0x27 for call in bus.calls)
    bus.calls.clear()
    lcd.show(SAS_SCREEN)
    values = [call[2] for call in bus.calls]
    assert values, "nothing written"
    # Every nibble is written three times: set up, enable (bit 2) high, enable low; backlight bit 3 on.
    assert len(values) % 3 == 0
    for i in range(0, len(values), 3):
        setup, strobe, done = values[i : i + 3]
        assert strobe == setup | 0x04 and done == setup
        assert setup & 0x08
    # Data nibbles (RS, bit 0, high) spell the screen's characters.
    data_nibbles = [v >> 4 for v in values[0::3] if v & 0x01]
    text = bytes((data_nibbles[i] << 4) | data_nibbles[i + 1] for i in range(0, len(data_nibbles), 2)).decode()
    rows = screens.render_lcd(SAS_SCREEN, 16, 2)
    assert text.replace(" ", "") == "".join(rows).replace(" ", "")
    bus.calls.clear()
    lcd.show(SAS_SCREEN)
    assert bus.calls == []  # unchanged rows are not redrawn


def _lcd_pairs(bus):
    """(byte, is_data) the PCF8574 stream carried: two nibbles of three writes each per byte."""
    values = [call[2] for call in bus.calls]
    nibbles = [(v >> 4, v & 0x01) for v in values[0::3]]
    return [((nibbles[i][0] << 4) | nibbles[i + 1][0], nibbles[i][1]) for i in range(0, len(nibbles), 2)]


def _apply(screen, pairs, cols):
    """What an HD44780 shows after `pairs`: DDRAM set-address instructions and characters (rows 2 and 3
    continue rows 0 and 1 on 4-line panels)."""
    starts = [row_address(row, cols) for row in range(len(screen))]
    address = 0
    for value, is_data in pairs:
        if not is_data:
            assert value & 0x80, "only cursor addresses after the set-up"
            address = value & 0x7F
            continue
        row = max(r for r in range(len(screen)) if starts[r] <= address and address - starts[r] < cols)
        col = address - starts[row]
        screen[row] = screen[row][:col] + chr(value) + screen[row][col + 1 :]
        address += 1
    return screen


def test_hd44780_rewrites_only_the_characters_that_changed():
    """A 20x4 screen is ~500 I2C writes on the main loop; a timer's tick must cost a few."""
    bus = FakeSMBus((0x27,))
    lcd = CharacterLcd(bus, 0x27, 20, 4, pulse_time=0)
    lcd.open()
    first = ["In call".ljust(20), "alice".ljust(20), "00:09".ljust(20), "SAS ab3d".ljust(20)]
    lcd.show_rows(first)
    bus.calls.clear()
    tick = ["In call".ljust(20), "alice".ljust(20), "00:10".ljust(20), "SAS ab3d".ljust(20)]
    lcd.show_rows(tick)
    # "09" -> "10": one cursor address (row 2 starts at DDRAM 0x14 on a 20x4 panel) and two characters.
    assert _lcd_pairs(bus) == [(0x80 | (0x14 + 3), False), (ord("1"), True), (ord("0"), True)]
    bus.calls.clear()
    ended = ["Call ended".ljust(20), "".ljust(20), "bob".ljust(20), "".ljust(20)]
    lcd.show_rows(ended)
    pairs = _lcd_pairs(bus)
    assert _apply(list(tick), pairs, 20) == ended
    assert len(pairs) < 4 * 21  # fewer than a full redraw
