"""An HD44780 character LCD behind a PCF8574 I2C backpack, in 4-bit mode (MicroPython-portable).

The backpack's PCF8574 drives the LCD's pins from one byte: P0 RS, P1 RW, P2 E, P3 the backlight, P4-P7
D4-D7 (the common wiring). Every 4-bit nibble is three byte writes: set up, E high, E low (the LCD
latches on E's falling edge). Timings are those of the Hitachi HD44780U datasheet (figure 24,
"4-bit interface" initialisation, and table 6's execution times).
"""

from boards.drivers.i2c import I2cDevice

RS = 0x01  # register select: 1 = data (DDRAM), 0 = instruction
ENABLE = 0x04
BACKLIGHT = 0x08

CLEAR = 0x01  # 1.52 ms
ENTRY_LEFT = 0x06  # the cursor moves right, the display does not shift
DISPLAY_ON = 0x0C  # display on, cursor off, blink off
DISPLAY_OFF = 0x08
FUNCTION_4BIT_2LINE = 0x28  # 4-bit bus, 2 lines (4-line panels are two long lines), 5x8 dots
SET_DDRAM = 0x80
CLEAR_TIME = 2e-3

# Figure 24: after power-on, three 0x3 nibbles (8-bit mode, whatever state the LCD was in) with the waits
# given, then 0x2 (4-bit mode); from then on every instruction is two nibbles. Each with the wait it
# needs beyond the 37 us that the I2C writes of the next one take anyway (table 6: clear takes 1.52 ms).
INIT_NIBBLES = ((0x3, 4.1e-3), (0x3, 100e-6), (0x3, 100e-6), (0x2, 100e-6))
INIT_INSTRUCTIONS = ((FUNCTION_4BIT_2LINE, 0), (DISPLAY_OFF, 0), (CLEAR, CLEAR_TIME), (ENTRY_LEFT, 0), (DISPLAY_ON, 0))


def row_address(row, cols):
    """DDRAM address of a row's first character: rows 2 and 3 of 4-line panels continue rows 0 and 1."""
    return (0x40 if row % 2 else 0x00) + (cols if row >= 2 else 0)


def lcd_code(char):
    """The character ROM code (A00 ROM: ASCII from 0x20 to 0x7D); anything else shows as '?'."""
    code = ord(char)
    return code if 0x20 <= code <= 0x7D else 0x3F


class Hd44780:
    """cols x rows LCD at `address` on `bus`. `sleep(seconds)` waits (time.sleep unless given)."""

    def __init__(self, bus, address=0x27, cols=16, rows=2, pulse_time=50e-6, sleep=None):
        if sleep is None:
            import time

            sleep = time.sleep
        self.device = I2cDevice(bus, address)
        self.cols = cols
        self.rows = rows
        self.pulse_time = pulse_time
        self.sleep = sleep

    def init_display(self):
        for nibble, wait in INIT_NIBBLES:
            self._nibble(nibble, 0)
            self.sleep(wait)
        for instruction, wait in INIT_INSTRUCTIONS:
            self.instruction(instruction)
            if wait:
                self.sleep(wait)

    def instruction(self, value):
        self._nibble(value >> 4, 0)
        self._nibble(value & 0x0F, 0)

    def write_text(self, text):
        for char in text:
            code = lcd_code(char)
            self._nibble(code >> 4, RS)
            self._nibble(code & 0x0F, RS)

    def show_rows(self, rows):
        """Write each row (exactly `cols` characters) at the start of its line."""
        for row, text in enumerate(rows[: self.rows]):
            self.write_at(row, 0, text[: self.cols])

    def write_at(self, row, col, text):
        """Write `text` from column `col` of `row` (the caller keeps it inside the row)."""
        self.instruction(SET_DDRAM | (row_address(row, self.cols) + col))
        self.write_text(text)

    def _nibble(self, nibble, flags):
        value = (nibble << 4) | flags | BACKLIGHT
        self.device.write_byte(value)
        self.device.write_byte(value | ENABLE)
        if self.pulse_time:
            self.sleep(self.pulse_time)  # E high at least 450 ns, a cycle at least 1 us
        self.device.write_byte(value)
