"""Displays over I2C (host-only): SSD1306 / SH1106 OLEDs through luma.oled, an HD44780 character LCD
behind a PCF8574 backpack through luma.lcd. Each takes an smbus2 bus (an open smbus2.SMBus, or a test
fake) and does no I/O until open().

The phone's screens are rendered by firmware.screens: a 1024-byte framebuffer in SSD1306 page order for
OLEDs, text rows for LCDs.
"""

from firmware import screens


def framebuffer_to_image(framebuffer, width=screens.OLED_WIDTH, height=screens.OLED_HEIGHT):
    """A Pillow 1-bit image of a page-ordered framebuffer."""
    from PIL import Image

    row_bytes = (width + 7) // 8
    data = bytearray(row_bytes * height)
    for y in range(height):
        page = (y >> 3) * width
        bit = 1 << (y & 7)
        for x in range(width):
            if framebuffer[page + x] & bit:
                data[y * row_bytes + (x >> 3)] |= 0x80 >> (x & 7)
    return Image.frombytes("1", (width, height), bytes(data))


class OledDisplay:
    """kind: "ssd1306" or "sh1106"; bus: an smbus2 bus; address: 7-bit I2C address."""

    def __init__(self, bus, kind="ssd1306", address=0x3C, width=128, height=64):
        if kind not in ("ssd1306", "sh1106"):
            raise ValueError("unknown OLED controller {!r}".format(kind))
        self.bus = bus
        self.kind = kind
        self.address = address
        self.width = width
        self.height = height
        self.device = None

    def open(self):
        from luma.core.interface.serial import i2c
        from luma.oled import device

        serial = i2c(bus=self.bus, address=self.address)
        factory = device.ssd1306 if self.kind == "ssd1306" else device.sh1106
        self.device = factory(serial, width=self.width, height=self.height)

    def show(self, screen):
        self.show_framebuffer(screens.render_oled(screen))

    def show_framebuffer(self, framebuffer):
        self.device.display(framebuffer_to_image(framebuffer, self.width, self.height))

    def close(self):
        if self.device is not None:
            self.device.hide()
            self.device = None


class CharacterLcd:
    """An HD44780 LCD (cols x rows) behind a PCF8574 I2C backpack at `address`."""

    def __init__(self, bus, address=0x27, cols=16, rows=2, pulse_time=50e-6):
        self.bus = bus
        self.address = address
        self.cols = cols
        self.rows = rows
        self.pulse_time = pulse_time
        self.device = None
        self._shown = None

    def open(self):
        from luma.core.interface.serial import pcf8574
        from luma.lcd.device import hd44780

        serial = pcf8574(bus=self.bus, address=self.address, pulse_time=self.pulse_time)
        self.device = hd44780(serial, width=self.cols, height=self.rows)

    def show(self, screen):
        self.show_rows(screens.render_lcd(screen, self.cols, self.rows))

    def show_rows(self, rows):
        if rows == self._shown:
            return  # the PCF8574 moves 4 bits per three I2C writes: do not redraw what is there
        self._shown = list(rows)
        self.device.text = "\n".join(rows)

    def close(self):
        self.device = None
