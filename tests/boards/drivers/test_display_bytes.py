"""The display drivers byte for byte on the bus: SSD1306 and SH1106 initialisation and a frame (with
SH1106's column offset), the HD44780's 4-bit nibbles through a PCF8574 (plain tests: also run under
MicroPython, where the drivers must work unchanged). Expected bytes are written out from the datasheets,
not taken from the drivers' tables."""

from boards.drivers.hd44780 import Hd44780
from boards.drivers.i2c import DeviceNotFoundError
from boards.drivers.ssd1306 import SH1106, SSD1306
from tests.boards.fakes import FakeSMBus
from tests.portable import raises

MICROPYTHON = True

# Every byte different from its neighbours, so that a page or block out of place shows.
FRAME = bytes((i * 7 + (i >> 7)) & 0xFF for i in range(1024))


def _blocks(bus):
    return [(call[2], call[3]) for call in bus.calls if call[0] == "write_i2c_block_data"]


def test_ssd1306_initialisation_bytes():
    bus = FakeSMBus((0x3C,))
    SSD1306(bus, 0x3C).init_display()
    assert bus.calls == [
        (
            "write_i2c_block_data",
            0x3C,
            0x00,
            [
                0xAE,  # display off
                0x20,
                0x00,  # horizontal addressing
                0x40,  # start line 0
                0xA1,
                0xA8,
                0x3F,
                0xC8,  # segment remap, 64 rows, COM scan remapped
                0xD3,
                0x00,
                0xDA,
                0x12,  # no offset, alternative COM pins
                0xD5,
                0x80,
                0xD9,
                0xF1,
                0xDB,
                0x30,
                0x81,
                0xCF,  # clock, pre-charge, VCOMH, contrast
                0xA4,
                0xA6,
                0x8D,
                0x14,  # RAM shown, not inverted, charge pump on
                0xAF,  # display on
            ],
        )
    ]


def test_ssd1306_frame_is_one_window_then_the_data_in_smbus_blocks():
    bus = FakeSMBus((0x3C,))
    oled = SSD1306(bus, 0x3C)
    oled.show(FRAME)
    blocks = _blocks(bus)
    assert blocks[0] == (0x00, [0x21, 0, 127, 0x22, 0, 7])
    assert len(blocks) == 1 + 32
    for n, (control, data) in enumerate(blocks[1:]):
        assert control == 0x40 and bytes(data) == FRAME[n * 32 : (n + 1) * 32]


def test_sh1106_initialisation_bytes():
    bus = FakeSMBus((0x3D,))
    SH1106(bus, 0x3D).init_display()
    assert bus.calls == [
        (
            "write_i2c_block_data",
            0x3D,
            0x00,
            [
                0xAE,
                0xD5,
                0x80,
                0xA8,
                0x3F,
                0xD3,
                0x00,
                0x40,
                0xAD,
                0x8B,  # DC-DC converter on (SH1106 has no charge pump command)
                0xA1,
                0xC8,
                0xDA,
                0x12,
                0x81,
                0x80,
                0xD9,
                0x22,
                0xDB,
                0x35,
                0xA4,
                0xA6,
                0xAF,
            ],
        )
    ]


def test_sh1106_frame_is_written_page_by_page_at_column_2():
    bus = FakeSMBus((0x3C,))
    SH1106(bus).show(FRAME)
    blocks = _blocks(bus)
    assert len(blocks) == 8 * (1 + 4)
    for page in range(8):
        command = blocks[page * 5]
        # Page address, then column 2 as low and high nibble: a 128-pixel panel on 132 columns of RAM.
        assert command == (0x00, [0xB0 + page, 0x02, 0x10])
        data = b"".join(bytes(block[1]) for block in blocks[page * 5 + 1 : page * 5 + 5])
        assert all(block[0] == 0x40 for block in blocks[page * 5 + 1 : page * 5 + 5])
        assert data == FRAME[page * 128 : (page + 1) * 128]


def test_a_frame_of_the_wrong_size_is_refused():
    bus = FakeSMBus((0x3C,))
    raises(ValueError, SSD1306(bus).show, bytes(1023))
    assert bus.calls == []


class _SilentBus:
    """Nothing at any address: the kernel's EREMOTEIO (121) on every write."""

    def write_i2c_block_data(self, address, register, data):
        raise OSError(121, "Remote I/O error")

    def write_byte(self, address, value):
        raise OSError(121, "Remote I/O error")


def test_a_display_that_does_not_answer_raises_device_not_found():
    error = raises(DeviceNotFoundError, SSD1306(_SilentBus(), 0x3C).init_display)
    assert isinstance(error, OSError) and "0x3C" in str(error)
    raises(DeviceNotFoundError, Hd44780(_SilentBus(), 0x27, sleep=lambda seconds: None).init_display)


def _nibbles(values, flags):
    """Each nibble as the three PCF8574 bytes: set up, E high, E low; backlight on."""
    out = []
    for value in values:
        setup = (value << 4) | flags | 0x08
        out += [setup, setup | 0x04, setup]
    return out


def test_hd44780_initialisation_nibbles_and_waits():
    bus = FakeSMBus((0x27,))
    waits = []
    Hd44780(bus, 0x27, 16, 2, pulse_time=0, sleep=waits.append).init_display()
    expected = _nibbles([0x3, 0x3, 0x3, 0x2], 0)  # 8-bit mode three times, then 4-bit mode
    expected += _nibbles([0x2, 0x8, 0x0, 0x8, 0x0, 0x1, 0x0, 0x6, 0x0, 0xC], 0)  # 0x28 0x08 0x01 0x06 0x0C
    assert bus.calls == [("write_byte", 0x27, value) for value in expected]
    assert waits == [4.1e-3, 100e-6, 100e-6, 100e-6, 2e-3]  # datasheet figure 24, then clear's 1.52 ms


def test_hd44780_rows_of_a_20x4_panel_start_at_their_ddram_addresses():
    bus = FakeSMBus((0x27,))
    lcd = Hd44780(bus, 0x27, 20, 4, pulse_time=0, sleep=lambda seconds: None)
    lcd.show_rows(["A", "b", "~", "\u00e9"])
    expected = []
    for address, char in ((0x80, 0x41), (0xC0, 0x62), (0x94, 0x3F), (0xD4, 0x3F)):
        expected += _nibbles([address >> 4, address & 0x0F], 0)  # set DDRAM address
        expected += _nibbles([char >> 4, char & 0x0F], 0x01)  # RS high: a character
    assert [call[2] for call in bus.calls] == expected
