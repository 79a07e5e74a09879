"""Board files: load a boards/<name>.toml, validate it, and describe its wiring (host-only: tomllib).

A board is data (DESIGN.md): the pins of the keypad, buttons, hook switch, LEDs and buzzer, the display
and its I2C address, the audio devices. The format is documented in boards/README.md and in the header
of every board file. Every problem is one ConfigError(where, key, expected), printed by the CLI as one
line: "boards/x.toml: keypad.rows[2]: BCM 17 is already used by buttons.trust".

    board = load_board("pi4-oled")         # or a path to a .toml file
    rows = wiring(board)                   # [(part, signal, bcm or None, header pin), ...]
"""

import pathlib
import tomllib

from firmware.errors import ConfigError

BOARDS_DIR = pathlib.Path(__file__).resolve().parent

DISPLAY_TYPES = ("ssd1306", "sh1106", "hd44780", "sim")
OLED_TYPES = ("ssd1306", "sh1106")
OLED_SIZES = ((128, 64),)  # the screens are laid out for 128x64
LCD_SIZES = ((16, 2), (20, 4), (16, 4), (20, 2))
GPIO_LIBRARIES = ("RPi.GPIO", "rpi-lgpio", "none")
NUMBERINGS = ("BCM", "BOARD")
KEYPAD_CHARS = "0123456789*#ABCD"
# Named keys a button or a keypad letter can be (the phone core's named keys, plus the trust button).
BUTTON_NAMES = ("trust", "hangup", "redial", "menu", "mute", "volume_up", "volume_down", "back")
PHONE_KEY_NAMES = ("hangup", "redial", "menu", "mute", "volume_up", "volume_down", "back")
DEFAULT_LETTERS = (("A", "menu"), ("B", "redial"), ("C", "mute"), ("D", "hangup"))
LED_NAMES = ("verified", "alarm", "power")
TOP_LEVEL = ("name", "model", "description", "gpio", "numbering", "display", "keypad", "buttons", "hook",
             "leds", "buzzer", "audio")
MAX_TEXT = 256  # name, model, description, audio device names: short, printable
I2C_ADDRESS_MIN = 0x08  # 0x00-0x07 and 0x78-0x7F are reserved by the I2C specification
I2C_ADDRESS_MAX = 0x77

# The 40-pin header of every Raspberry Pi since the B+: physical pin -> BCM GPIO number.
HEADER_TO_BCM = (
    (3, 2), (5, 3), (7, 4), (8, 14), (10, 15), (11, 17), (12, 18), (13, 27), (15, 22), (16, 23), (18, 24),
    (19, 10), (21, 9), (22, 25), (23, 11), (24, 8), (26, 7), (27, 0), (28, 1), (29, 5), (31, 6), (32, 12),
    (33, 13), (35, 19), (36, 16), (37, 26), (38, 20), (40, 21),
)
BCM_TO_HEADER = dict((bcm, header) for header, bcm in HEADER_TO_BCM)
RESERVED_BCM = ((0, "the HAT ID EEPROM (ID_SD)"), (1, "the HAT ID EEPROM (ID_SC)"))
I2C1_PINS = ((2, "SDA"), (3, "SCL"))
POWER_3V3 = 1
POWER_5V = 2
GROUND = 6
GROUND_PINS = (9, 14, 20, 25, 30, 34, 39)


class Display:
    """kind (one of DISPLAY_TYPES), i2c_bus, address, and width/height (OLED) or cols/rows (LCD)."""

    __slots__ = ("kind", "i2c_bus", "address", "width", "height", "cols", "rows")

    def __init__(self, kind, i2c_bus=None, address=None, width=None, height=None, cols=None, rows=None):
        self.kind = kind
        self.i2c_bus = i2c_bus
        self.address = address
        self.width = width
        self.height = height
        self.cols = cols
        self.rows = rows

    @property
    def is_text(self):
        return self.kind == "hd44780"


class Keypad:
    """rows / cols: BCM pins; keys: one list per row of what each key is (a character of 0-9 * # or a
    phone named key such as "menu" for the letters of a 4x4 keypad); debounce in seconds."""

    __slots__ = ("rows", "cols", "keys", "debounce")

    def __init__(self, rows, cols, keys, debounce):
        self.rows = rows
        self.cols = cols
        self.keys = keys
        self.debounce = debounce


class Board:
    """A validated board: everything the device shell needs to bind the hardware, pins in BCM."""

    __slots__ = ("name", "model", "description", "gpio", "path", "display", "keypad", "buttons", "hook_pin",
                 "hook_active_low", "leds", "buzzer_pin", "playback", "capture")

    def __init__(self):
        self.name = None
        self.model = None
        self.description = None
        self.gpio = "none"
        self.path = None
        self.display = None
        self.keypad = None
        self.buttons = []  # (name, BCM pin) pairs
        self.hook_pin = None
        self.hook_active_low = True
        self.leds = []  # (name, BCM pin) pairs
        self.buzzer_pin = None
        self.playback = "default"
        self.capture = "default"

    @property
    def is_simulated(self):
        return self.gpio == "none"

    def button_pin(self, name):
        for button, pin in self.buttons:
            if button == name:
                return pin
        return None


def board_names():
    """The names of the board files shipped in boards/."""
    return sorted(path.stem for path in BOARDS_DIR.glob("*.toml"))


def board_path(name_or_path):
    """The file of a board given by name ("pi4-oled") or path ("my/board.toml")."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text:
        return pathlib.Path(text)
    path = BOARDS_DIR / (text + ".toml")
    if not path.exists():
        raise ConfigError("board", text, "one of: " + ", ".join(board_names()) + ", or a path to a .toml file")
    return path


def load_board(name_or_path):
    """Load and validate a board (name or path); a Board, or ConfigError(where, key, expected)."""
    from firmware.config import read_toml  # host-only, like this module

    path = board_path(name_or_path)
    where = str(path)
    if not path.exists():
        raise ConfigError(where, "file", "an existing board file")
    data = read_toml(path, where, file_key="file", syntax_key="toml")
    board = parse_board(data, where)
    board.path = where
    return board


def load_board_text(text, where="<board>"):
    """Validate board TOML given as text (for tests and for the image tool's checks)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, "toml", "valid TOML ({})".format(exc)) from None
    except RecursionError:
        raise ConfigError(where, "toml", "TOML nested less deeply (arrays or tables nested too deep)") from None
    return parse_board(data, where)


class _Checker:
    """Validates one board file; remembers which part uses each BCM pin."""

    def __init__(self, where, numbering):
        self.where = where
        self.numbering = numbering
        self.used = {}  # BCM pin -> key that uses it

    def fail(self, key, expected):
        raise ConfigError(self.where, key, expected)

    def table(self, data, key):
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(key, "a table ([{}])".format(key))
        return value

    def known_keys(self, table, prefix, allowed):
        for key in table:
            if key not in allowed:
                self.fail(prefix + key, "one of: " + ", ".join(allowed))

    def string(self, table, key, prefix, choices=None, default=None):
        value = table.get(key, default)
        if value is None:
            self.fail(prefix + key, "a value (required)")
        if not isinstance(value, str):
            self.fail(prefix + key, "a string")
        if len(value) > MAX_TEXT or any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in value):
            self.fail(prefix + key, "a string of at most {} characters without control characters".format(MAX_TEXT))
        if choices is not None and value not in choices:
            self.fail(prefix + key, "one of: " + ", ".join(choices))
        return value

    def integer(self, table, key, prefix, low, high, default=None):
        value = table.get(key, default)
        if value is None:
            self.fail(prefix + key, "an integer (required)")
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(prefix + key, "an integer")
        if value < low or value > high:
            self.fail(prefix + key, "an integer from {} to {}".format(low, high))
        return value

    def pin(self, value, key):
        """A pin number from the file, checked and converted to BCM, and claimed for `key`."""
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(key, "a GPIO pin number ({} numbering)".format(self.numbering))
        if self.numbering == "BOARD":
            bcm = dict(HEADER_TO_BCM).get(value)
            if bcm is None:
                self.fail(key, "a GPIO header pin (BOARD numbering), not power or ground: {}".format(value))
        else:
            bcm = value
            if bcm < 0 or bcm > 27:
                self.fail(key, "a BCM GPIO number from 2 to 27, not {}".format(bcm))
        for reserved, why in RESERVED_BCM:
            if bcm == reserved:
                self.fail(key, "a free pin: BCM {} is reserved for {}".format(bcm, why))
        self.claim(bcm, key)
        return bcm

    def claim(self, bcm, key):
        if bcm in self.used:
            self.fail(key, "a free pin: BCM {} is already used by {}".format(bcm, self.used[bcm]))
        self.used[bcm] = key

    def pin_list(self, table, key, prefix, low, high):
        value = table.get(key)
        if not isinstance(value, list) or not low <= len(value) <= high:
            self.fail(prefix + key, "a list of {} to {} pin numbers".format(low, high))
        return [self.pin(v, "{}{}[{}]".format(prefix, key, i)) for i, v in enumerate(value)]


def parse_board(data, where):
    """Validate the parsed TOML of a board file and build a Board (pins in BCM)."""
    numbering = data.get("numbering", "BCM")
    check = _Checker(where, numbering if numbering in NUMBERINGS else "BCM")
    check.known_keys(data, "", TOP_LEVEL)
    board = Board()
    board.name = check.string(data, "name", "")
    board.model = check.string(data, "model", "", default="")
    board.description = check.string(data, "description", "", default="")
    board.gpio = check.string(data, "gpio", "", GPIO_LIBRARIES)
    check.string(data, "numbering", "", NUMBERINGS, default="BCM")

    display = check.table(data, "display")
    if display is None:
        check.fail("display", "a [display] table")
    board.display = _parse_display(check, display, board.gpio)

    if board.is_simulated:
        for section in ("keypad", "buttons", "hook", "leds", "buzzer"):
            if section in data:
                check.fail(section, "nothing: a board with gpio = \"none\" has no pins")
    else:
        keypad = check.table(data, "keypad")
        if keypad is None:
            check.fail("keypad", "a [keypad] table (hardware boards need a keypad)")
        board.keypad = _parse_keypad(check, keypad)
        buttons = check.table(data, "buttons") or {}
        check.known_keys(buttons, "buttons.", BUTTON_NAMES)
        for name in BUTTON_NAMES:
            if name in buttons:
                board.buttons.append((name, check.pin(buttons[name], "buttons." + name)))
        if board.button_pin("trust") is None:
            check.fail("buttons.trust", "a pin: every hardware board needs the trust button")
        hook = check.table(data, "hook")
        if hook is not None:
            check.known_keys(hook, "hook.", ("pin", "active"))
            if "pin" not in hook:
                check.fail("hook.pin", "a pin number (required in [hook])")
            board.hook_pin = check.pin(hook["pin"], "hook.pin")
            board.hook_active_low = check.string(hook, "active", "hook.", ("low", "high"), default="low") == "low"
        leds = check.table(data, "leds") or {}
        check.known_keys(leds, "leds.", LED_NAMES)
        for name in LED_NAMES:
            if name in leds:
                board.leds.append((name, check.pin(leds[name], "leds." + name)))
        buzzer = check.table(data, "buzzer")
        if buzzer is not None:
            check.known_keys(buzzer, "buzzer.", ("pin",))
            if "pin" not in buzzer:
                check.fail("buzzer.pin", "a pin number (required in [buzzer])")
            board.buzzer_pin = check.pin(buzzer["pin"], "buzzer.pin")

    audio = check.table(data, "audio") or {}
    check.known_keys(audio, "audio.", ("playback", "capture"))
    board.playback = check.string(audio, "playback", "audio.", default="default")
    board.capture = check.string(audio, "capture", "audio.", default="default")
    return board


def _parse_display(check, table, gpio):
    kind = check.string(table, "type", "display.", DISPLAY_TYPES)
    if kind == "sim" and gpio != "none":
        check.fail("display.type", "a real display (ssd1306, sh1106, hd44780) on a board with GPIO")
    if kind == "sim":
        check.known_keys(table, "display.", ("type", "width", "height"))
        width = check.integer(table, "width", "display.", 1, 4096, default=128)
        height = check.integer(table, "height", "display.", 1, 4096, default=64)
        if (width, height) != (128, 64):
            check.fail("display.width", "128 x 64 (the simulated display is a 128x64 OLED)")
        return Display("sim", width=width, height=height)
    if gpio == "none":
        check.fail("display.type", "\"sim\" on a board with gpio = \"none\"")
    if kind in OLED_TYPES:
        check.known_keys(table, "display.", ("type", "i2c_bus", "address", "width", "height"))
        width = check.integer(table, "width", "display.", 1, 4096, default=128)
        height = check.integer(table, "height", "display.", 1, 4096, default=64)
        if (width, height) not in OLED_SIZES:
            check.fail("display.height",
                       "an OLED of 128 x 64 (the size the screens are drawn for), not {} x {}".format(width, height))
        default_address = 0x3C
    else:
        check.known_keys(table, "display.", ("type", "i2c_bus", "address", "cols", "rows", "backpack"))
        check.string(table, "backpack", "display.", ("pcf8574",), default="pcf8574")
        cols = check.integer(table, "cols", "display.", 1, 40, default=16)
        rows = check.integer(table, "rows", "display.", 1, 4, default=2)
        if (cols, rows) not in LCD_SIZES:
            check.fail("display.cols", "an LCD of 16x2, 20x4, 16x4 or 20x2 characters, not {}x{}".format(cols, rows))
        default_address = 0x27
    bus = check.integer(table, "i2c_bus", "display.", 0, 22, default=1)
    address = table.get("address", default_address)
    if not isinstance(address, int) or isinstance(address, bool):
        check.fail("display.address", "a 7-bit I2C address such as 0x3C")
    if address < I2C_ADDRESS_MIN or address > I2C_ADDRESS_MAX:
        check.fail("display.address", "a 7-bit I2C address from 0x08 to 0x77, not 0x{:02X}".format(address))
    if bus == 1:
        # I2C bus 1 is on BCM 2 (SDA) and BCM 3 (SCL): nothing else may use them.
        for bcm, signal in I2C1_PINS:
            check.claim(bcm, "display ({} of I2C bus 1)".format(signal))
    if kind in OLED_TYPES:
        return Display(kind, bus, address, width=width, height=height)
    return Display(kind, bus, address, cols=cols, rows=rows)


def _parse_keypad(check, table):
    check.known_keys(table, "keypad.", ("rows", "cols", "keys", "debounce_ms", "letters"))
    rows = check.pin_list(table, "rows", "keypad.", 1, 8)
    cols = check.pin_list(table, "cols", "keypad.", 1, 8)
    keys = table.get("keys")
    if not isinstance(keys, list) or len(keys) != len(rows):
        check.fail("keypad.keys", "a list of {} strings, one per row".format(len(rows)))
    letters = dict(DEFAULT_LETTERS)
    letter_table = table.get("letters", {})
    if not isinstance(letter_table, dict):
        check.fail("keypad.letters", "a table of letter = \"key name\"")
    for letter, name in letter_table.items():
        if letter not in "ABCD" or len(letter) != 1:
            check.fail("keypad.letters." + letter, "one of the letters A, B, C, D")
        if name not in PHONE_KEY_NAMES:
            check.fail("keypad.letters." + letter, "one of: " + ", ".join(PHONE_KEY_NAMES))
        letters[letter] = name
    layout = []
    seen = []
    for i, row in enumerate(keys):
        key = "keypad.keys[{}]".format(i)
        if not isinstance(row, str) or len(row) != len(cols):
            check.fail(key, "a string of {} keys (one per column)".format(len(cols)))
        names = []
        for char in row:
            if char not in KEYPAD_CHARS:
                check.fail(key, "keys from \"{}\", not {!r}".format(KEYPAD_CHARS, char))
            if char in seen:
                check.fail(key, "each key once: {!r} appears twice".format(char))
            seen.append(char)
            names.append(letters[char] if char in letters else char)
        layout.append(names)
    debounce_ms = check.integer(table, "debounce_ms", "keypad.", 1, 500, default=20)
    return Keypad(rows, cols, layout, debounce_ms / 1000.0)


def wiring(board):
    """The wiring of a board as rows (part, signal, BCM pin or None, header pin), in a stable order.

    Power and ground rows have BCM None. The image engineer turns these into the README's wiring table.
    """
    rows = []
    display = board.display
    if display is not None and display.kind != "sim":
        label = "display ({} at 0x{:02X})".format(display.kind, display.address)
        power = POWER_5V if display.kind == "hd44780" else POWER_3V3
        rows.append((label, "VCC ({})".format("5V" if power == POWER_5V else "3.3V"), None, power))
        rows.append((label, "GND", None, GROUND))
        if display.i2c_bus == 1:
            for bcm, signal in I2C1_PINS:
                rows.append((label, signal, bcm, BCM_TO_HEADER[bcm]))
        else:
            rows.append((label, "SDA/SCL of I2C bus {}".format(display.i2c_bus), None, None))
    if board.keypad is not None:
        for i, bcm in enumerate(board.keypad.rows):
            rows.append(("keypad", "row {}".format(i + 1), bcm, BCM_TO_HEADER[bcm]))
        for i, bcm in enumerate(board.keypad.cols):
            rows.append(("keypad", "column {}".format(i + 1), bcm, BCM_TO_HEADER[bcm]))
    grounds = list(GROUND_PINS)
    for name, bcm in board.buttons:
        part = "{} button".format(name.replace("_", " "))
        rows.append((part, "signal (to GND when pressed)", bcm, BCM_TO_HEADER[bcm]))
        rows.append((part, "GND", None, grounds[0]))
    if board.hook_pin is not None:
        rows.append(("hook switch", "signal ({} when off hook)".format("GND" if board.hook_active_low else "3.3V"),
                     board.hook_pin, BCM_TO_HEADER[board.hook_pin]))
    for name, bcm in board.leds:
        rows.append(("{} LED".format(name), "anode (through 330 ohm)", bcm, BCM_TO_HEADER[bcm]))
        rows.append(("{} LED".format(name), "cathode (GND)", None, grounds[1]))
    if board.buzzer_pin is not None:
        rows.append(("buzzer", "+", board.buzzer_pin, BCM_TO_HEADER[board.buzzer_pin]))
        rows.append(("buzzer", "- (GND)", None, grounds[2]))
    return rows
