"""OLED and LCD displays (boards.drivers.displays over ssd1306 and hd44780) against a strict smbus2 fake:
addresses, the SSD1306 command stream, our framebuffer reaching the controller byte for byte."""

import errno

import pytest

from boards.drivers.displays import CharacterLcd, OledDisplay
from boards.drivers.sim import framebuffer_to_image
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


def test_framebuffer_to_image_is_a_real_128x64_bitmap():
    fb = screens.render_oled(SAS_SCREEN)
    image = framebuffer_to_image(fb)
    assert image.size == (128, 64) and image.mode == "1"
    for y in range(64):
        for x in range(0, 128, 7):
            assert bool(image.getpixel((x, y))) == screens.get_pixel(fb, x, y)
