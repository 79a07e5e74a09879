"""The simulated board's hardware (host-only): a terminal keypad and display, a display log as JSON lines,
and PNG frames. firmware/runtime/device.py assembles them into SimDevice.

Terminal keys (when stdin is a TTY):
    0-9 * #        keypad keys ('#' sends the number; Enter is '#' too)
    t / T          trust button: short press / long press (SAS did NOT match)
    h              hook switch: toggle off hook / on hook
    x              hang up          r   redial          m   menu          v   voicemail
    u              mute             +/- volume          Backspace   erase a digit
    o              hold: hold/resume; answer a waiting call (the first is held); swap two calls
    c              conference: join the held call and the one in front (again: split them)
    f              transfer: connect the held call's far end with the one in front (attended)
    Backspace      also refuses a waiting call (486 Busy Here)
    q              quit
"""

import json
import os

from firmware import font5x7, screens
from firmware import phone as P

QUIT = "quit"
HOOK_TOGGLE = "hook-toggle"

TERMINAL_KEYS = (
    ("t", "trust"),
    ("T", "trust-long"),
    ("h", HOOK_TOGGLE),
    ("x", P.KEY_HANGUP),
    ("r", P.KEY_REDIAL),
    ("m", P.KEY_MENU),
    ("v", P.KEY_VOICEMAIL),
    ("u", P.KEY_MUTE),
    ("o", P.KEY_HOLD),
    ("c", P.KEY_CONFERENCE),
    ("f", P.KEY_TRANSFER),
    ("+", P.KEY_VOLUME_UP),
    ("-", P.KEY_VOLUME_DOWN),
    ("\x7f", P.KEY_BACK),
    ("\x08", P.KEY_BACK),
    ("\r", "#"),
    ("\n", "#"),
    ("q", QUIT),
)
HELP = (
    "keys: 0-9*# (Enter=#)  t trust  T long trust  h hook  x hang up  r redial  m menu  v voicemail  u mute"
    "  +/- vol  o hold/answer waiting/swap  c conference  f transfer  q quit"
)


def terminal_input(char):
    """What a character typed on the terminal means: a phone input event, QUIT, HOOK_TOGGLE or None."""
    if len(char) == 1 and char in P.DIAL_KEYS:
        return P.KeyPressed(char)
    for typed, meaning in TERMINAL_KEYS:
        if typed == char:
            if meaning == "trust":
                return P.TrustPressed(False)
            if meaning == "trust-long":
                return P.TrustPressed(True)
            if meaning in (QUIT, HOOK_TOGGLE):
                return meaning
            return P.KeyPressed(meaning)
    return None


class DisplayLog:
    """One JSON object per frame: {"t": seconds since start, "state": name, "lines": [full text]}, and
    "leds": [names] while a simulated LED is lit (e.g. "message": voicemail waiting); no "leds" key when
    none is."""

    def __init__(self, path):
        self.path = path
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 (kept open for the whole run)

    def write(self, t, state, lines, leds=()):
        record = {"t": round(t, 3), "state": state, "lines": list(lines)}
        if leds:
            record["leds"] = list(leds)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self):
        self._file.close()


def framebuffer_to_image(framebuffer, width=screens.OLED_WIDTH, height=screens.OLED_HEIGHT):
    """A Pillow 1-bit image of a page-ordered framebuffer."""
    from PIL import Image  # only the simulator's PNGs need Pillow

    row_bytes = (width + 7) // 8
    data = bytearray(row_bytes * height)
    for y in range(height):
        page = (y >> 3) * width
        bit = 1 << (y & 7)
        for x in range(width):
            if framebuffer[page + x] & bit:
                data[y * row_bytes + (x >> 3)] |= 0x80 >> (x & 7)
    return Image.frombytes("1", (width, height), bytes(data))


class PngWriter:
    """Every frame as DIR/frame-00001.png, ... : real 128x64 1-bit PNG images (Pillow)."""

    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.count = 0

    def write(self, framebuffer):
        self.count += 1
        path = os.path.join(self.directory, "frame-{:05d}.png".format(self.count))
        framebuffer_to_image(framebuffer).save(path, format="PNG")
        return path


class TerminalUi:
    """The phone in a terminal: cbreak mode input, the screen redrawn in place with ANSI escapes.

    fd_in / stream_out: the TTY (stdin's fd and stdout). Call open() to enter cbreak mode, close() to
    restore the terminal.
    """

    def __init__(self, fd_in, stream_out):
        self.fd_in = fd_in
        self.out = stream_out
        self._saved = None

    def open(self):
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd_in)
        tty.setcbreak(self.fd_in)
        self.out.write("\x1b[2J")
        self.out.flush()

    def close(self):
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd_in, termios.TCSADRAIN, self._saved)
            self._saved = None
            self.out.write("\n")
            self.out.flush()

    def read_chars(self):
        """The characters typed since the last call (the fd is readable)."""
        try:
            data = os.read(self.fd_in, 64)
        except (BlockingIOError, InterruptedError):
            return ""
        if not data:
            return "q"  # EOF on the terminal: quit
        return data.decode("utf-8", "replace")

    def draw(self, state, screen, leds=()):
        # Home, each row then "clear to the end of the line", then clear what is below.
        self.out.write("\x1b[H" + "\x1b[K\n".join(render_terminal(state, screen, leds)) + "\x1b[K\x1b[J")
        self.out.flush()


def render_terminal(state, screen, leds=()):
    """The terminal picture of a screen: a 21-column box like the OLED, the SAS spaced out large."""
    width = screens.OLED_COLUMNS
    rows = []
    rows.append("+" + "-" * (width + 2) + "+")
    title = screen.title
    if screen.alert:
        title = "!! " + title + " !!"
    rows.append("| " + _pad(title, width) + " |")
    rows.append("+" + "-" * (width + 2) + "+")
    for part in screens.big_parts(screen.big):
        rows.append("| " + _pad(" ".join(part) if len(part) <= 10 else part, width, True) + " |")
    for line in screen.lines:
        rows.append("| " + _pad(line, width) + " |")
    rows.append("+" + "-" * (width + 2) + "+")
    for part in screens.big_parts(screen.big):
        rows.extend(big_text_rows(part))
    rows.append("state: " + state + ("  LED: " + " ".join(leds) if leds else ""))
    rows.append(HELP)
    return rows


def big_text_rows(text):
    """`text` drawn with the OLED's 5x7 font in block characters: the SAS, large, in the terminal."""
    rows = []
    for row_index in range(font5x7.GLYPH_HEIGHT):
        line = ""
        for char in text:
            mask = font5x7.glyph(char)[row_index]
            line += "".join("\u2588" if mask & (0x10 >> column) else " " for column in range(5)) + " "
        rows.append("  " + line.rstrip())
    return rows


def _pad(text, width, center=False):
    text = text[:width]
    if center:
        left = (width - len(text)) // 2
        text = " " * left + text
    return text + " " * (width - len(text))
