"""What the phone shows: the screen model and its renderings (sans-I/O, MicroPython-clean).

The phone core (firmware/phone/views.py) describes every state as a Screen: a short title, an optional big
text (the SAS, drawn large), a few text lines and an alert flag (alarm and error screens). This module
turns a Screen into:

- text_lines(screen): the display-independent text (title, big text, lines); the simulated device
  writes it to the display log, so automation can read the full text even where a display truncates.
- oled_layout(screen) / render_oled(screen): the drawing operations for a 128x64 1-bit OLED and the
  framebuffer itself, 1024 bytes in SSD1306 page order (byte = page * 128 + x, bit 0 = top pixel of the
  page), which is what SSD1306 / SH1106 controllers take and what PNG frames are made from.
- render_lcd(screen, cols, rows): the rows of a character LCD (16x2, 20x4), each exactly `cols` wide.
"""

from firmware import font5x7

OLED_WIDTH = 128
OLED_HEIGHT = 64
CELL_WIDTH = font5x7.GLYPH_WIDTH + 1  # one column of spacing between characters
OLED_COLUMNS = OLED_WIDTH // CELL_WIDTH  # 21 characters of small text per row
TITLE_RULE_Y = 9  # a horizontal rule under the title (non-alert screens)
CONTENT_TOP = 11
LINE_PITCH = 9  # 7 pixel glyphs plus 2 pixels of leading
BIG_GAP = 3


class Screen:
    """One screen: `title` (str), `lines` (tuple of str), `big` (str or None: the SAS), `alert` (bool)."""

    __slots__ = ("title", "lines", "big", "alert")

    def __init__(self, title, lines=(), big=None, alert=False):
        self.title = title
        self.lines = tuple(lines)
        self.big = big
        self.alert = alert

    def __eq__(self, other):
        return (
            isinstance(other, Screen)
            and self.title == other.title
            and self.lines == other.lines
            and self.big == other.big
            and self.alert == other.alert
        )

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return "Screen({!r}, {!r}, big={!r}, alert={!r})".format(self.title, self.lines, self.big, self.alert)


def big_parts(big):
    """The big text as the lines it is drawn on: one B32 SAS, or two B256 words on two lines."""
    if not big:
        return []
    return big.split()


def text_lines(screen):
    """The full text of a screen, one string per row, nothing truncated: title, big parts, lines."""
    return [screen.title] + big_parts(screen.big) + list(screen.lines)


# --- character LCDs ---------------------------------------------------------------------------------


def _fit(text, cols):
    if len(text) > cols:
        return text[:cols]
    return text + " " * (cols - len(text))


def _center(text, cols):
    if len(text) >= cols:
        return text[:cols]
    left = (cols - len(text)) // 2
    return _fit(" " * left + text, cols)


def render_lcd(screen, cols, rows):
    """The rows of a `cols` x `rows` character LCD, each exactly `cols` characters.

    Title first (with '!' markers on alert screens), then the big text centred (on one row if it fits,
    else one word per row), then the lines, until the rows run out. On a 2-row display a big text that
    needs two rows takes the whole display, because the SAS matters more than the title.
    """
    title = screen.title
    if screen.alert:
        title = "!" + title + "!"
    big = []
    if screen.big:
        if len(screen.big) <= cols:
            big = [screen.big]
        else:
            big = big_parts(screen.big)
    if rows <= 2 and len(big) >= rows:
        wanted = [_center(part, cols) for part in big]
    else:
        wanted = [_center(title, cols) if screen.alert else _fit(title, cols)]
        wanted += [_center(part, cols) for part in big]
        wanted += [_fit(line, cols) for line in screen.lines]
    wanted = wanted[:rows]
    while len(wanted) < rows:
        wanted.append(" " * cols)
    return wanted


# --- the 128x64 OLED ---------------------------------------------------------------------------------


def text_width(text, scale=1):
    """Width in pixels of `text` in the 5x7 font at `scale` (no trailing spacing column)."""
    if not text:
        return 0
    return (len(text) * CELL_WIDTH - 1) * scale


def _big_scale(parts):
    if len(parts) == 1 and text_width(parts[0], 3) <= OLED_WIDTH:
        return 3
    for part in parts:
        if text_width(part, 2) > OLED_WIDTH:
            return 1
    return 2


def oled_layout(screen):
    """The drawing operations of a screen on the 128x64 OLED, as (x, y, scale, text, inverted) tuples.

    Row 0 holds the title (white on black with a rule under it; inverted across the whole row on alert
    screens). The big text is drawn at scale 3 when it fits (a B32 SAS), else 2 (B256 words, one per
    row), centred. The lines follow at a 9 pixel pitch, truncated to 21 characters, while they fit.
    """
    ops = [(1, 1 if screen.alert else 0, 1, screen.title[:OLED_COLUMNS], screen.alert)]
    y = CONTENT_TOP
    parts = big_parts(screen.big)
    if parts:
        scale = _big_scale(parts)
        for part in parts:
            text = part[: OLED_WIDTH // (CELL_WIDTH * scale)]
            x = (OLED_WIDTH - text_width(text, scale)) // 2
            ops.append((x, y, scale, text, False))
            y += font5x7.GLYPH_HEIGHT * scale + BIG_GAP
    for line in screen.lines:
        if y + font5x7.GLYPH_HEIGHT > OLED_HEIGHT:
            break
        ops.append((1, y, 1, line[:OLED_COLUMNS], False))
        y += LINE_PITCH
    return ops


def new_framebuffer():
    """A dark 128x64 framebuffer: 1024 bytes in SSD1306 page order."""
    return bytearray(OLED_WIDTH * OLED_HEIGHT // 8)


def set_pixel(framebuffer, x, y, lit):
    if x < 0 or y < 0 or x >= OLED_WIDTH or y >= OLED_HEIGHT:
        return
    index = (y >> 3) * OLED_WIDTH + x
    bit = 1 << (y & 7)
    if lit:
        framebuffer[index] |= bit
    else:
        framebuffer[index] &= 0xFF ^ bit


def get_pixel(framebuffer, x, y):
    """True when pixel (x, y) is lit."""
    return bool(framebuffer[(y >> 3) * OLED_WIDTH + x] & (1 << (y & 7)))


def fill_rect(framebuffer, x, y, width, height, lit):
    for yy in range(y, y + height):
        for xx in range(x, x + width):
            set_pixel(framebuffer, xx, yy, lit)


def draw_text(framebuffer, x, y, text, scale=1, inverted=False):
    """Draw `text` with its top-left corner at (x, y); `inverted` draws dark pixels on a lit field."""
    lit = not inverted
    for char in text:
        rows = font5x7.glyph(char)
        for row_index in range(font5x7.GLYPH_HEIGHT):
            mask = rows[row_index]
            for column in range(font5x7.GLYPH_WIDTH):
                if mask & (0x10 >> column):
                    fill_rect(framebuffer, x + column * scale, y + row_index * scale, scale, scale, lit)
        x += CELL_WIDTH * scale


def render_oled(screen):
    """The 128x64 framebuffer (bytearray, SSD1306 page order) of a screen."""
    framebuffer = new_framebuffer()
    if screen.alert:
        fill_rect(framebuffer, 0, 0, OLED_WIDTH, TITLE_RULE_Y, True)
    else:
        fill_rect(framebuffer, 0, TITLE_RULE_Y, OLED_WIDTH, 1, True)
    for x, y, scale, text, inverted in oled_layout(screen):
        draw_text(framebuffer, x, y, text, scale, inverted)
    if screen.alert:
        # A frame around the whole display: an alarm must not look like any other screen.
        fill_rect(framebuffer, 0, OLED_HEIGHT - 1, OLED_WIDTH, 1, True)
        fill_rect(framebuffer, 0, 0, 1, OLED_HEIGHT, True)
        fill_rect(framebuffer, OLED_WIDTH - 1, 0, 1, OLED_HEIGHT, True)
    return framebuffer


def framebuffer_rows(framebuffer, x, y, width, height):
    """A region of a framebuffer as strings of '#' (lit) and '.' (dark): for tests and debugging."""
    rows = []
    for yy in range(y, y + height):
        rows.append("".join("#" if get_pixel(framebuffer, xx, yy) else "." for xx in range(x, x + width)))
    return rows
