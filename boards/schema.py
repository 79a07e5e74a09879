"""Board files: load a boards/<name>.toml, validate it, and describe its wiring (host-only: tomllib).

A board is data (DESIGN.md): the pins of the keypad, buttons, hook switch, LEDs and buzzer, the display
and its I2C address, the audio devices. The format is documented in boards/README.md and in the header
of every board file. Every problem is one ConfigError(where, key, expected), printed by the CLI as one
line: "boards/x.toml: keypad.rows[2]: BCM 17 is already used by buttons.trust".

    board = load_board("pi4-oled")         # or a path to a .toml file
    rows = wiring(board)                   # [(part, signal, bcm or None, header pin), ...]
"""

import pathlib

from firmware.errors import ConfigError
from firmware.validation import (
    REQUIRED,
    Field,
    check_key,
    check_table,
    fail,
    in_range,
    one_of,
    parse_toml,
    printable,
    read_toml,
)

BOARDS_DIR = pathlib.Path(__file__).resolve().parent

DISPLAY_TYPES = ("ssd1306", "sh1106", "hd44780", "sim")
OLED_TYPES = ("ssd1306", "sh1106")
OLED_SIZES = ((128, 64),)  # the screens are laid out for 128x64
LCD_SIZES = ((16, 2), (20, 4), (16, 4), (20, 2))
GPIO_LIBRARIES = ("RPi.GPIO", "rpi-lgpio", "none")
NUMBERINGS = ("BCM", "BOARD")
KEYPAD_CHARS = "0123456789*#ABCD"
# Named keys a button or a keypad letter can be (the phone core's named keys, plus the trust button).
PHONE_KEY_NAMES = (
    "hangup",
    "redial",
    "menu",
    "mute",
    "volume_up",
    "volume_down",
    "back",
    "voicemail",
    "hold",  # two calls (issue 15): hold/resume, answer a waiting call, swap
    "conference",  # two calls: the local three-way conference
    "transfer",  # two calls: attended transfer of the held call to the one in front
)
BUTTON_NAMES = ("trust",) + PHONE_KEY_NAMES
DEFAULT_LETTERS = (("A", "menu"), ("B", "redial"), ("C", "mute"), ("D", "hangup"))
LED_NAMES = ("verified", "alarm", "power", "message")  # message: voicemail waiting (RFC 3842)
MAX_TEXT = 256  # name, model, description, audio device names: short, printable
I2C_ADDRESS_MIN = 0x08  # 0x00-0x07 and 0x78-0x7F are reserved by the I2C specification
I2C_ADDRESS_MAX = 0x77

# The 40-pin header of every Raspberry Pi since the B+: physical pin -> BCM GPIO number.
HEADER_TO_BCM = (
    (3, 2),
    (5, 3),
    (7, 4),
    (8, 14),
    (10, 15),
    (11, 17),
    (12, 18),
    (13, 27),
    (15, 22),
    (16, 23),
    (18, 24),
    (19, 10),
    (21, 9),
    (22, 25),
    (23, 11),
    (24, 8),
    (26, 7),
    (27, 0),
    (28, 1),
    (29, 5),
    (31, 6),
    (32, 12),
    (33, 13),
    (35, 19),
    (36, 16),
    (37, 26),
    (38, 20),
    (40, 21),
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

    __slots__ = (
        "name",
        "model",
        "description",
        "gpio",
        "path",
        "display",
        "keypad",
        "buttons",
        "hook_pin",
        "hook_active_low",
        "leds",
        "buzzer_pin",
        "playback",
        "capture",
    )

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
    return parse_board(parse_toml(text, where, "toml"), where)


# The schema, as data (firmware.validation): every table refuses unknown keys and checks each value's type,
# bounds and choices. Pins are checked afterwards by _Pins, which knows the numbering and who uses each pin.
TEXT = "a string of at most {} characters without control characters".format(MAX_TEXT)


def _string(choices=None, default=REQUIRED):
    checks = [(printable(MAX_TEXT), TEXT)]
    if choices is not None:
        checks.append((one_of(choices), "one of: " + ", ".join(choices)))
    return Field(str, default, "a string", checks=checks)


def _integer(low, high, default=REQUIRED):
    in_bounds = (in_range(low, high), "an integer from {} to {}".format(low, high))
    return Field(int, default, "an integer", checks=[in_bounds], required="an integer (required)")


def _table(name):
    return Field(dict, None, "a table ([{}])".format(name))


def _address(default):
    return Field(
        int,
        default,
        "a 7-bit I2C address such as 0x3C",
        checks=[
            (in_range(I2C_ADDRESS_MIN, I2C_ADDRESS_MAX), "a 7-bit I2C address from 0x08 to 0x77, not 0x{:02X}".format)
        ],
    )


def _pin(table=None):
    """A pin of the file: any value here, checked and claimed by _Pins (its text names the numbering)."""
    if table is None:
        return Field(None, None)
    return Field(None, required="a pin number (required in [{}])".format(table))


_PIN_LIST = Field(
    list,
    REQUIRED,
    "a list of 1 to 8 pin numbers",
    lambda pins: 1 <= len(pins) <= 8,
    required="a list of 1 to 8 pin numbers",
)
BOARD_FIELDS = {
    "name": _string(),
    "model": _string(default=""),
    "description": _string(default=""),
    "gpio": _string(GPIO_LIBRARIES),
    "numbering": _string(NUMBERINGS, "BCM"),
    "display": _table("display"),
    "keypad": _table("keypad"),
    "buttons": _table("buttons"),
    "hook": _table("hook"),
    "leds": _table("leds"),
    "buzzer": _table("buzzer"),
    "audio": _table("audio"),
}
DISPLAY_TYPE = _string(DISPLAY_TYPES)
DISPLAY_FIELDS = {
    "sim": {"type": DISPLAY_TYPE, "width": _integer(1, 4096, 128), "height": _integer(1, 4096, 64)},
    "oled": {
        "type": DISPLAY_TYPE,
        "i2c_bus": _integer(0, 22, 1),
        "address": _address(0x3C),
        "width": _integer(1, 4096, 128),
        "height": _integer(1, 4096, 64),
    },
    "lcd": {
        "type": DISPLAY_TYPE,
        "i2c_bus": _integer(0, 22, 1),
        "address": _address(0x27),
        "cols": _integer(1, 40, 16),
        "rows": _integer(1, 4, 2),
        "backpack": _string(("pcf8574",), "pcf8574"),
    },
}
KEYPAD_FIELDS = {
    "rows": _PIN_LIST,
    "cols": _PIN_LIST,
    "keys": Field(None, None),
    "debounce_ms": _integer(1, 500, 20),
    "letters": Field(dict, {}, 'a table of letter = "key name"'),
}
BUTTON_FIELDS = dict((name, _pin()) for name in BUTTON_NAMES)
HOOK_FIELDS = {"pin": _pin("hook"), "active": _string(("low", "high"), "low")}
LED_FIELDS = dict((name, _pin()) for name in LED_NAMES)
BUZZER_FIELDS = {"pin": _pin("buzzer")}
AUDIO_FIELDS = {"playback": _string(default="default"), "capture": _string(default="default")}


class _Pins:
    """The cross-field pin rules: a pin is a GPIO of the numbering, not reserved, and used once."""

    def __init__(self, where, numbering):
        self.where = where
        self.numbering = numbering
        self.used = {}  # BCM pin -> key that uses it

    def pin(self, value, key):
        """A pin number from the file, checked and converted to BCM, and claimed for `key`."""
        if not isinstance(value, int) or isinstance(value, bool):
            fail(self.where, key, "a GPIO pin number ({} numbering)".format(self.numbering))
        if self.numbering == "BOARD":
            bcm = dict(HEADER_TO_BCM).get(value)
            if bcm is None:
                fail(self.where, key, "a GPIO header pin (BOARD numbering), not power or ground: {}".format(value))
        else:
            bcm = value
            if bcm < 0 or bcm > 27:
                fail(self.where, key, "a BCM GPIO number from 2 to 27, not {}".format(bcm))
        for reserved, why in RESERVED_BCM:
            if bcm == reserved:
                fail(self.where, key, "a free pin: BCM {} is reserved for {}".format(bcm, why))
        self.claim(bcm, key)
        return bcm

    def claim(self, bcm, key):
        if bcm in self.used:
            fail(self.where, key, "a free pin: BCM {} is already used by {}".format(bcm, self.used[bcm]))
        self.used[bcm] = key

    def named(self, table, names, prefix):
        """(name, BCM pin) for each of `names` given in `table`, in the order of `names`."""
        return [(name, self.pin(table[name], prefix + name)) for name in names if table[name] is not None]

    def pin_list(self, pins, key):
        return [self.pin(value, "{}[{}]".format(key, i)) for i, value in enumerate(pins)]


def _section(where, data, name, fields):
    """The nested table `name` checked against `fields`, or None when the file has no such table."""
    if data[name] is None:
        return None
    return check_table(where, data[name], fields, name + ".")


def parse_board(data, where):
    """Validate the parsed TOML of a board file and build a Board (pins in BCM)."""
    data = check_table(where, data, BOARD_FIELDS)
    board = Board()
    board.name, board.model, board.description, board.gpio = (
        data["name"],
        data["model"],
        data["description"],
        data["gpio"],
    )
    pins = _Pins(where, data["numbering"])
    if data["display"] is None:
        fail(where, "display", "a [display] table")
    board.display = _parse_display(where, pins, data["display"], board.gpio)

    if board.is_simulated:
        for section in ("keypad", "buttons", "hook", "leds", "buzzer"):
            if data[section] is not None:
                fail(where, section, 'nothing: a board with gpio = "none" has no pins')
    else:
        keypad = _section(where, data, "keypad", KEYPAD_FIELDS)
        if keypad is None:
            fail(where, "keypad", "a [keypad] table (hardware boards need a keypad)")
        board.keypad = _parse_keypad(where, pins, keypad)
        buttons = _section(where, data, "buttons", BUTTON_FIELDS) or dict.fromkeys(BUTTON_NAMES)
        board.buttons = pins.named(buttons, BUTTON_NAMES, "buttons.")
        if board.button_pin("trust") is None:
            fail(where, "buttons.trust", "a pin: every hardware board needs the trust button")
        hook = _section(where, data, "hook", HOOK_FIELDS)
        if hook is not None:
            board.hook_pin = pins.pin(hook["pin"], "hook.pin")
            board.hook_active_low = hook["active"] == "low"
        leds = _section(where, data, "leds", LED_FIELDS) or dict.fromkeys(LED_NAMES)
        board.leds = pins.named(leds, LED_NAMES, "leds.")
        buzzer = _section(where, data, "buzzer", BUZZER_FIELDS)
        if buzzer is not None:
            board.buzzer_pin = pins.pin(buzzer["pin"], "buzzer.pin")

    audio = check_table(where, data["audio"] or {}, AUDIO_FIELDS, "audio.")
    board.playback, board.capture = audio["playback"], audio["capture"]
    return board


def _parse_display(where, pins, table, gpio):
    kind = check_key(where, table, "type", DISPLAY_TYPE, "display.")
    if kind == "sim" and gpio != "none":
        fail(where, "display.type", "a real display (ssd1306, sh1106, hd44780) on a board with GPIO")
    if kind == "sim":
        values = check_table(where, table, DISPLAY_FIELDS["sim"], "display.")
        if (values["width"], values["height"]) != (128, 64):
            fail(where, "display.width", "128 x 64 (the simulated display is a 128x64 OLED)")
        return Display("sim", width=values["width"], height=values["height"])
    if gpio == "none":
        fail(where, "display.type", '"sim" on a board with gpio = "none"')
    if kind in OLED_TYPES:
        values = check_table(where, table, DISPLAY_FIELDS["oled"], "display.")
        size = (values["width"], values["height"])
        if size not in OLED_SIZES:
            fail(
                where,
                "display.height",
                "an OLED of 128 x 64 (the size the screens are drawn for), not {} x {}".format(*size),
            )
    else:
        values = check_table(where, table, DISPLAY_FIELDS["lcd"], "display.")
        size = (values["cols"], values["rows"])
        if size not in LCD_SIZES:
            fail(where, "display.cols", "an LCD of 16x2, 20x4, 16x4 or 20x2 characters, not {}x{}".format(*size))
    bus = values["i2c_bus"]
    if bus == 1:
        # I2C bus 1 is on BCM 2 (SDA) and BCM 3 (SCL): nothing else may use them.
        for bcm, signal in I2C1_PINS:
            pins.claim(bcm, "display ({} of I2C bus 1)".format(signal))
    if kind in OLED_TYPES:
        return Display(kind, bus, values["address"], width=size[0], height=size[1])
    return Display(kind, bus, values["address"], cols=size[0], rows=size[1])


def _parse_keypad(where, pins, table):
    rows = pins.pin_list(table["rows"], "keypad.rows")
    cols = pins.pin_list(table["cols"], "keypad.cols")
    keys = table["keys"]
    if not isinstance(keys, list) or len(keys) != len(rows):
        fail(where, "keypad.keys", "a list of {} strings, one per row".format(len(rows)))
    letters = dict(DEFAULT_LETTERS)
    for letter, name in table["letters"].items():
        if letter not in "ABCD" or len(letter) != 1:
            fail(where, "keypad.letters." + letter, "one of the letters A, B, C, D")
        if name not in PHONE_KEY_NAMES:
            fail(where, "keypad.letters." + letter, "one of: " + ", ".join(PHONE_KEY_NAMES))
        letters[letter] = name
    layout = []
    seen = []
    for i, row in enumerate(keys):
        key = "keypad.keys[{}]".format(i)
        if not isinstance(row, str) or len(row) != len(cols):
            fail(where, key, "a string of {} keys (one per column)".format(len(cols)))
        names = []
        for char in row:
            if char not in KEYPAD_CHARS:
                fail(where, key, 'keys from "{}", not {!r}'.format(KEYPAD_CHARS, char))
            if char in seen:
                fail(where, key, "each key once: {!r} appears twice".format(char))
            seen.append(char)
            names.append(letters[char] if char in letters else char)
        layout.append(names)
    return Keypad(rows, cols, layout, table["debounce_ms"] / 1000.0)


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
        rows.append(
            (
                "hook switch",
                "signal ({} when off hook)".format("GND" if board.hook_active_low else "3.3V"),
                board.hook_pin,
                BCM_TO_HEADER[board.hook_pin],
            )
        )
    for name, bcm in board.leds:
        rows.append(("{} LED".format(name), "anode (through 330 ohm)", bcm, BCM_TO_HEADER[bcm]))
        rows.append(("{} LED".format(name), "cathode (GND)", None, grounds[1]))
    if board.buzzer_pin is not None:
        rows.append(("buzzer", "+", board.buzzer_pin, BCM_TO_HEADER[board.buzzer_pin]))
        rows.append(("buzzer", "- (GND)", None, grounds[2]))
    return rows
