"""Displays over I2C: SSD1306 / SH1106 OLEDs (boards.drivers.ssd1306), an HD44780 character LCD behind a
PCF8574 backpack (boards.drivers.hd44780). Each takes an smbus2 bus (an open smbus2.SMBus, or a test
fake) and does no I/O until open(); a display that does not answer raises
boards.drivers.i2c.DeviceNotFoundError (an OSError).

The phone's screens are rendered by firmware.screens: a 1024-byte framebuffer in SSD1306 page order for
OLEDs, text rows for LCDs.
"""

from boards.drivers.hd44780 import Hd44780
from boards.drivers.ssd1306 import SH1106, SSD1306
from firmware import screens


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
        controller = SSD1306 if self.kind == "ssd1306" else SH1106
        device = controller(self.bus, self.address, self.width, self.height)
        device.init_display()
        self.device = device

    def show(self, screen):
        self.show_framebuffer(screens.render_oled(screen))

    def show_framebuffer(self, framebuffer):
        self.device.show(framebuffer)

    def close(self):
        if self.device is not None:
            self.device.poweroff()
            self.device = None


# Unchanged characters between two changed ones are rewritten when that is cheaper than a new cursor
# address: setting DDRAM costs one instruction, as much as one character.
REWRITE_GAP = 1


def changed_runs(old, new):
    """[(start, end)] column spans where `new` differs from `old` (rows of equal width), neighbouring spans
    joined across gaps of REWRITE_GAP characters or fewer."""
    runs = []
    for col in range(len(new)):
        if col < len(old) and old[col] == new[col]:
            continue
        if runs and col - runs[-1][1] <= REWRITE_GAP:
            runs[-1][1] = col + 1
        else:
            runs.append([col, col + 1])
    return [(start, end) for start, end in runs]


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
        device = Hd44780(self.bus, self.address, self.cols, self.rows, self.pulse_time)
        device.init_display()
        self.device = device

    def show(self, screen):
        self.show_rows(screens.render_lcd(screen, self.cols, self.rows))

    def show_rows(self, rows):
        """Write only the characters that changed: the PCF8574 moves 4 bits per three I2C writes, so a full
        20x4 screen is about 500 writes (some 100 ms at 100 kHz, on the phone's main loop), while a call
        timer's tick is one or two characters."""
        shown, self._shown = self._shown, list(rows)
        if shown is None or len(shown) != len(rows):
            self.device.show_rows(rows)
            return
        for row, (old, new) in enumerate(zip(shown, rows)):
            for start, end in changed_runs(old, new):
                self.device.write_at(row, start, new[start:end])

    def close(self):
        self.device = None
