"""First boot on the phone's own display, before the venv exists: standard library only.

The display drivers the phone uses (boards/drivers, over smbus2) live in the venv that first boot unpacks, so while it
works, and when it fails, this module writes to the OLED itself: firmware.screens renders the screen
(the same pure-Python renderer the phone uses), and the frame goes to /dev/i2c-N with the kernel's
I2C_SLAVE ioctl and plain writes (SSD1306: horizontal addressing; SH1106: page by page, 2-column
offset). Character LCDs (HD44780 behind a PCF8574) are not driven here: they stay blank until the phone
starts. Whatever goes wrong here is only logged: the display must never make first boot fail.
"""

import fcntl
import os

I2C_SLAVE = 0x0703  # linux/i2c-dev.h
CONTROL_COMMAND = 0x00
CONTROL_DATA = 0x40
CHUNK = 32  # bytes of pixel data per I2C write (SMBus-sized, what small adapters take)
# SSD1306 datasheet section 10 / the usual 128x64 power-up: display off, clock, multiplex 63, offset 0,
# start line 0, charge pump on, horizontal addressing, segment remap, COM scan reversed, COM pins,
# contrast, precharge, VCOMH, resume from RAM, normal (not inverted), display on.
SSD1306_INIT = bytes(
    [
        0xAE,
        0xD5,
        0x80,
        0xA8,
        0x3F,
        0xD3,
        0x00,
        0x40,
        0x8D,
        0x14,
        0x20,
        0x00,
        0xA1,
        0xC8,
        0xDA,
        0x12,
        0x81,
        0xCF,
        0xD9,
        0xF1,
        0xDB,
        0x40,
        0xA4,
        0xA6,
        0xAF,
    ]
)
SH1106_INIT = bytes(
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
        0x8B,
        0xA1,
        0xC8,
        0xDA,
        0x12,
        0x81,
        0xCF,
        0xD9,
        0x22,
        0xDB,
        0x40,
        0xA4,
        0xA6,
        0xAF,
    ]
)


class I2cDevice:
    """One 7-bit address on /dev/i2c-BUS: write(bytes) is one I2C write transaction."""

    def __init__(self, bus, address):
        self.fd = os.open("/dev/i2c-{}".format(bus), os.O_RDWR)
        fcntl.ioctl(self.fd, I2C_SLAVE, address)

    def write(self, data):
        os.write(self.fd, bytes(data))

    def close(self):
        os.close(self.fd)


def frame_writes(kind, framebuffer):
    """The I2C writes (each a bytes object, control byte first) that put a 128x64 page-ordered frame on
    an SSD1306 or SH1106."""
    writes = []
    if kind == "ssd1306":
        writes.append(bytes([CONTROL_COMMAND]) + SSD1306_INIT)
        writes.append(bytes([CONTROL_COMMAND, 0x21, 0x00, 0x7F, 0x22, 0x00, 0x07]))  # columns 0-127, pages 0-7
        for start in range(0, len(framebuffer), CHUNK):
            writes.append(bytes([CONTROL_DATA]) + bytes(framebuffer[start : start + CHUNK]))
    elif kind == "sh1106":
        writes.append(bytes([CONTROL_COMMAND]) + SH1106_INIT)
        for page in range(8):
            # SH1106 RAM is 132 columns wide; a 128-pixel panel starts at column 2.
            writes.append(bytes([CONTROL_COMMAND, 0xB0 + page, 0x02, 0x10]))
            row = framebuffer[page * 128 : (page + 1) * 128]
            for start in range(0, 128, CHUNK):
                writes.append(bytes([CONTROL_DATA]) + bytes(row[start : start + CHUNK]))
    else:
        raise ValueError("no first-boot display driver for {!r}".format(kind))
    return writes


def wrap(text, width):
    words = text.split()
    lines = [""]
    for word in words:
        while len(word) > width:
            if lines[-1]:
                lines.append("")
            lines[-1], word = word[:width], word[width:]
            lines.append("")
        candidate = (lines[-1] + " " + word).strip()
        if len(candidate) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return [line for line in lines if line]


def show(title, text, config_path, open_device=I2cDevice, alert=False):
    """Put `title` and `text` (wrapped) on the board's OLED named in the phone's configuration.
    Returns what it did, for the journal; never raises."""
    try:
        from boards.schema import load_board
        from firmware import screens
        from firmware.config import load

        board = load_board(load(config_path).board.name)
        display = getattr(board, "display", None)
        kind = getattr(display, "kind", None)
        if kind not in ("ssd1306", "sh1106"):
            return "display: {} is not drawn before the phone starts".format(kind or "none")
        lines = wrap(text, 21)[:4]
        framebuffer = screens.render_oled(screens.Screen(title, lines, alert=alert))
        device = open_device(display.i2c_bus, display.address)
        try:
            for data in frame_writes(kind, framebuffer):
                device.write(data)
        finally:
            device.close()
        return "display: {} at 0x{:02x} on i2c-{}: {}".format(kind, display.address, display.i2c_bus, title)
    except Exception as exc:  # the display is a courtesy here; first boot goes on without it
        return "display: not shown ({}: {})".format(type(exc).__name__, exc)
