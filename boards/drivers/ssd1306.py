"""SSD1306 and SH1106 128x64 OLED controllers over I2C, micropython-lib style (MicroPython-portable).

The framebuffer is the controllers' own layout (firmware.screens.render_oled): one byte per column of
each 8-pixel page, byte = page * width + x, bit 0 the top pixel. The init sequences are data; a frame is
written as pages of display RAM over the injected smbus2-like bus (boards.drivers.i2c). No Pillow, no luma.

SSD1306 (Solomon Systech datasheet rev 1.1, section 10 "Command descriptions") has a horizontal addressing
mode: one window command, then the whole frame as one data stream. SH1106 (Sino Wealth datasheet v2.3)
has page addressing only, and 132 columns of RAM of which a 128-pixel panel shows columns 2 to 129, so
every page is addressed with that column offset.
"""

from boards.drivers.i2c import I2cDevice

CONTROL_COMMAND = 0x00  # control byte: Co = 0, D/C# = 0: the bytes that follow are commands
CONTROL_DATA = 0x40  # control byte: Co = 0, D/C# = 1: the bytes that follow go to display RAM

DISPLAY_OFF = 0xAE
DISPLAY_ON = 0xAF
SET_COLUMN_ADDRESS = 0x21  # SSD1306: start, end column of the window
SET_PAGE_ADDRESS = 0x22  # SSD1306: start, end page of the window
SET_PAGE = 0xB0  # page addressing mode: 0xB0 | page
SET_LOW_COLUMN = 0x00  # page addressing mode: 0x00 | low nibble of the column
SET_HIGH_COLUMN = 0x10  # page addressing mode: 0x10 | high nibble of the column
SH1106_COLUMN_OFFSET = 2  # a 128-pixel panel on SH1106's 132-column RAM


def ssd1306_init(width, height, external_vcc=False):
    """SSD1306's power-on sequence (datasheet application note, "software initialisation"): one tuple per
    command, the command byte then its arguments."""
    return (
        (DISPLAY_OFF,),  # off while configuring
        (0x20, 0x00),  # memory addressing mode: horizontal
        (0x40,),  # display start line 0
        (0xA1,),  # segment remap: column 127 is SEG0 (the panel is mounted mirrored)
        (0xA8, height - 1),  # multiplex ratio: one COM line per pixel row
        (0xC8,),  # COM scan direction remapped (top to bottom)
        (0xD3, 0x00),  # display offset 0
        (0xDA, 0x12 if height == 64 else 0x02),  # COM pins: alternative for 64 rows, sequential for 32
        (0xD5, 0x80),  # clock divide ratio and oscillator frequency: the reset value
        (0xD9, 0x22 if external_vcc else 0xF1),  # pre-charge period
        (0xDB, 0x30),  # VCOMH deselect level: 0.83 x Vcc
        (0x81, 0xCF),  # contrast
        (0xA4,),  # show display RAM (not all pixels on)
        (0xA6,),  # normal, not inverted
        (0x8D, 0x10 if external_vcc else 0x14),  # charge pump: on unless the panel has its own Vcc
        (DISPLAY_ON,),
    )


def sh1106_init(width, height, external_vcc=False):
    """SH1106's power-on sequence (datasheet, "commands"), like SSD1306's but with its DC-DC converter
    instead of a charge pump and no addressing-mode command (SH1106 has page addressing only)."""
    return (
        (DISPLAY_OFF,),
        (0xD5, 0x80),  # clock divide ratio and oscillator frequency
        (0xA8, height - 1),  # multiplex ratio
        (0xD3, 0x00),  # display offset 0
        (0x40,),  # display start line 0
        (0xAD, 0x8A if external_vcc else 0x8B),  # DC-DC converter: on unless the panel has its own Vcc
        (0xA1,),  # segment remap
        (0xC8,),  # COM scan direction remapped
        (0xDA, 0x12),  # COM pins: alternative
        (0x81, 0x80),  # contrast
        (0xD9, 0x22),  # pre-charge period
        (0xDB, 0x35),  # VCOM deselect level
        (0xA4,),  # show display RAM
        (0xA6,),  # normal, not inverted
        (DISPLAY_ON,),
    )


class SSD1306:
    """An SSD1306 OLED at `address` on `bus`; init_display() configures it, show(framebuffer) draws."""

    init_sequence = staticmethod(ssd1306_init)

    def __init__(self, bus, address=0x3C, width=128, height=64, external_vcc=False):
        if width != 128 or height not in (32, 64):
            raise ValueError("unsupported OLED size {}x{}".format(width, height))
        self.device = I2cDevice(bus, address)
        self.width = width
        self.height = height
        self.pages = height // 8
        self.external_vcc = external_vcc

    def init_display(self):
        stream = bytearray()
        for command in self.init_sequence(self.width, self.height, self.external_vcc):
            stream.extend(bytes(command))
        self.command(stream)

    def command(self, commands):
        self.device.write(CONTROL_COMMAND, commands)

    def poweroff(self):
        self.command(bytes((DISPLAY_OFF,)))

    def poweron(self):
        self.command(bytes((DISPLAY_ON,)))

    def contrast(self, level):
        self.command(bytes((0x81, level)))

    def show(self, framebuffer):
        """Draw a whole frame: width * height / 8 bytes in page order."""
        if len(framebuffer) != self.width * self.pages:
            raise ValueError(
                "a {}x{} frame is {} bytes, not {}".format(
                    self.width, self.height, self.width * self.pages, len(framebuffer)
                )
            )
        self._write_frame(memoryview(framebuffer))

    def _write_frame(self, frame):
        # Horizontal addressing: the window is the whole panel, the column pointer wraps into the next page.
        self.command(bytes((SET_COLUMN_ADDRESS, 0, self.width - 1, SET_PAGE_ADDRESS, 0, self.pages - 1)))
        self.device.write(CONTROL_DATA, frame)


class SH1106(SSD1306):
    """An SH1106 OLED: the same interface; pages are written one at a time at SH1106_COLUMN_OFFSET."""

    init_sequence = staticmethod(sh1106_init)
    column_offset = SH1106_COLUMN_OFFSET

    def _write_frame(self, frame):
        column = self.column_offset
        for page in range(self.pages):
            self.command(bytes((SET_PAGE | page, SET_LOW_COLUMN | (column & 0x0F), SET_HIGH_COLUMN | (column >> 4))))
            self.device.write(CONTROL_DATA, frame[page * self.width : (page + 1) * self.width])
