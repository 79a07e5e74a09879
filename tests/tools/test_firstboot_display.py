"""What first boot puts on the OLED before the phone (and its venv) exists: tools/firstboot_display.py.

The I2C device is replaced by a recorder here (no I2C bus on the test machine; the virtual Pi's kernel has
no i2c-stub either, see tests/pi): the test decodes the recorded SSD1306/SH1106 writes back into a frame
and compares it with the phone's own renderer.
"""

from firmware import screens
from tools import firstboot_display


class Recorder:
    opened = []

    def __init__(self, bus, address):
        self.bus, self.address, self.writes, self.closed = bus, address, [], False
        Recorder.opened.append(self)

    def write(self, data):
        self.writes.append(bytes(data))

    def close(self):
        self.closed = True


def _ssd1306_frame(writes):
    data = b"".join(w[1:] for w in writes if w[0] == firstboot_display.CONTROL_DATA)
    assert len(data) == 1024
    return bytearray(data)


def test_failure_line_reaches_an_ssd1306_oled(tmp_path):
    config = tmp_path / "sotto.toml"
    config.write_text('[board]\nname = "pi4-oled"\n')
    Recorder.opened = []
    result = firstboot_display.show(
        "First boot failed", "venv-aarch64.tar is damaged (checksum)", str(config), open_device=Recorder, alert=True
    )
    assert result == "display: ssd1306 at 0x3c on i2c-1: First boot failed"
    (device,) = Recorder.opened
    assert (device.bus, device.address, device.closed) == (1, 0x3C, True)
    assert device.writes[0][0] == firstboot_display.CONTROL_COMMAND and device.writes[0][-1] == 0xAF  # display on
    expected = screens.render_oled(
        screens.Screen(
            "First boot failed", firstboot_display.wrap("venv-aarch64.tar is damaged (checksum)", 21), alert=True
        )
    )
    assert _ssd1306_frame(device.writes) == expected
    assert all(len(w) <= 1 + firstboot_display.CHUNK or w[0] == 0 for w in device.writes)


def test_sh1106_is_written_page_by_page_with_its_column_offset():
    frame = screens.render_oled(screens.Screen("Sotto", ["first boot"]))
    writes = firstboot_display.frame_writes("sh1106", frame)
    pages = [w for w in writes if w[0] == 0 and len(w) == 4]
    assert [p[1] for p in pages] == [0xB0 + n for n in range(8)] and all(p[2] == 0x02 for p in pages)
    data = b"".join(w[1:] for w in writes if w[0] == firstboot_display.CONTROL_DATA)
    assert data == bytes(frame)


def test_other_displays_and_errors_never_raise(tmp_path):
    lcd = tmp_path / "lcd.toml"
    lcd.write_text('[board]\nname = "pi3-lcd"\n')
    assert "hd44780 is not drawn" in firstboot_display.show("t", "x", str(lcd), open_device=Recorder)
    oled = tmp_path / "oled.toml"
    oled.write_text('[board]\nname = "pi4-oled"\n')

    def no_bus(bus, address):
        raise FileNotFoundError(2, "No such file or directory", "/dev/i2c-1")

    assert firstboot_display.show("t", "x", str(oled), open_device=no_bus).startswith("display: not shown (")
    assert firstboot_display.show("t", "x", str(tmp_path / "missing.toml")).startswith("display: not shown (")


def test_wrap_keeps_words_and_cuts_long_ones():
    assert firstboot_display.wrap("the image's environment is for armv7l", 21) == [
        "the image's",
        "environment is for",
        "armv7l",
    ]
    assert firstboot_display.wrap("x" * 30, 21) == ["x" * 21, "x" * 9]
