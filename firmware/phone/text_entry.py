"""Multi-tap text entry on a 4x3 keypad (sans-I/O, MicroPython-clean): how a Yealink, Snom or Cisco desk
phone lets you type a contact's name with only the digits.

Each digit key cycles through its letters (2: a b c, 3: d e f ... 9: w x y z, 0: space, 1: punctuation),
the digit itself, then the other case. Pressing the same key again within MULTITAP_TIMEOUT seconds of the
last press picks the next one; the timeout or another key commits the letter. The first letter of the text
and of each word starts in upper case (names are capitalised; the other case is in the same cycle).

The text is Unicode: a name imported from a file ("Zoë", "Ŝtefan") is edited as it is, and erasing takes
away one whole character as a person sees it (a base letter with the combining marks, variation selectors
and emoji modifiers after it, and the parts of a zero-width-joiner sequence), never half of one.
"""

MULTITAP_TIMEOUT = 1.0

# The lower-case cycle of each key; letters add their upper case after the digit (see letters()).
_CYCLES = (
    ("1", ".,-'@&/1"),
    ("2", "abc2"),
    ("3", "def3"),
    ("4", "ghi4"),
    ("5", "jkl5"),
    ("6", "mno6"),
    ("7", "pqrs7"),
    ("8", "tuv8"),
    ("9", "wxyz9"),
    ("0", " 0"),
)
_ZERO_WIDTH_JOINER = 0x200D
# Code points that belong to the character before them: combining marks (U+0300-036F, 1AB0-1AFF,
# 1DC0-1DFF, 20D0-20FF, FE20-FE2F), variation selectors (FE00-FE0F) and emoji skin-tone modifiers.
_ATTACHED = (
    (0x0300, 0x036F),
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),
    (0xFE00, 0xFE0F),
    (0xFE20, 0xFE2F),
    (0x1F3FB, 0x1F3FF),
    (0xE0100, 0xE01EF),
)


def letters(key, capital):
    """What `key` cycles through: its letters in the starting case, the digit, then the other case; None
    for a key that types nothing."""
    for k, cycle in _CYCLES:
        if k == key:
            if cycle[0].isalpha():
                upper = cycle[:-1].upper()
                lower = cycle[:-1]
                return upper + key + lower if capital else lower + key + upper
            return cycle
    return None


def _attached(ch):
    code = ord(ch)
    if code == _ZERO_WIDTH_JOINER:
        return True
    for low, high in _ATTACHED:
        if low <= code <= high:
            return True
    return False


def without_last_character(text):
    """`text` without its last user-perceived character (see the module docstring)."""
    end = len(text)
    while True:
        while end > 0 and _attached(text[end - 1]):
            end -= 1
        if end > 0:
            end -= 1  # the base character
        if end > 0 and ord(text[end - 1]) == _ZERO_WIDTH_JOINER:
            end -= 1  # a ZWJ sequence: the character before the joiner goes too
            continue
        return text[:end]


class TextEntry:
    """The text being typed: `text` (committed), and the pending letter (`pending_key`, `pending_index`)
    until MULTITAP_TIMEOUT after its key's last press. At most `limit` characters (code points)."""

    __slots__ = ("text", "limit", "pending_key", "pending_index", "pending_cycle", "deadline")

    def __init__(self, text="", limit=32):
        self.text = text[:limit]
        self.limit = limit
        self.pending_key = None
        self.pending_index = 0
        self.pending_cycle = None
        self.deadline = None

    def pending(self):
        """The letter shown but not committed yet, or None."""
        if self.pending_key is None:
            return None
        return self.pending_cycle[self.pending_index]

    def shown(self):
        """The text as the display shows it: with the pending letter."""
        return self.text + (self.pending() or "")

    def _capital(self):
        return self.text == "" or self.text[-1] == " "

    def key(self, key, now):
        """A digit key at `now`: the next letter of the pending key, or a new letter. False when the key
        types nothing or the text is full."""
        if key == self.pending_key and self.deadline is not None and now < self.deadline:
            self.pending_index = (self.pending_index + 1) % len(self.pending_cycle)
            self.deadline = now + MULTITAP_TIMEOUT
            return True
        self.commit()
        cycle = letters(key, self._capital())
        if cycle is None or len(self.text) >= self.limit:
            return False
        self.pending_key = key
        self.pending_index = 0
        self.pending_cycle = cycle
        self.deadline = now + MULTITAP_TIMEOUT
        return True

    def commit(self):
        """The pending letter becomes part of the text."""
        letter = self.pending()
        if letter is not None:
            self.text += letter
        self.pending_key = None
        self.pending_cycle = None
        self.deadline = None

    def erase(self):
        """Take back the pending letter, or else the last character. False when there was nothing."""
        if self.pending_key is not None:
            self.pending_key = None
            self.pending_cycle = None
            self.deadline = None
            return True
        if not self.text:
            return False
        self.text = without_last_character(self.text)
        return True

    def get_timer(self):
        return self.deadline

    def handle_timer(self, now):
        if self.deadline is not None and now >= self.deadline:
            self.commit()

    def value(self):
        """The committed text (the pending letter included), without spaces at either end."""
        self.commit()
        return self.text.strip()
