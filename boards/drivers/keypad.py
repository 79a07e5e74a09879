"""Matrix keypad scanning through the RPi.GPIO API (host-only).

Rows are outputs held high; columns are inputs with pull-ups. A scan drives one row low at a time and
reads the columns: a column reading low has a pressed key in that row. A key is reported once, when it
has been seen alone and unchanged for `debounce` seconds. One key at a time: while two or more keys are
down nothing is reported, and after such a chord every key must be released before the next report.
"""

NONE = None
CHORD = "chord"


class MatrixKeypad:
    """gpio: the RPi.GPIO module (mode already set); rows, cols: pin lists; keys: one list per row of
    key names; debounce: seconds. Construction does no I/O; call setup() once, then poll(now) often."""

    def __init__(self, gpio, rows, cols, keys, debounce=0.02):
        if len(keys) != len(rows) or any(len(row) != len(cols) for row in keys):
            raise ValueError("keypad keys do not match its rows and columns")
        self.gpio = gpio
        self.rows = list(rows)
        self.cols = list(cols)
        self.keys = [list(row) for row in keys]
        self.debounce = debounce
        self._candidate = NONE
        self._since = None
        self._reported = NONE
        self._locked = False

    def setup(self):
        gpio = self.gpio
        for pin in self.rows:
            gpio.setup(pin, gpio.OUT, initial=gpio.HIGH)
        for pin in self.cols:
            gpio.setup(pin, gpio.IN, pull_up_down=gpio.PUD_UP)

    def scan(self):
        """The keys down right now, as (row index, column index) pairs."""
        gpio = self.gpio
        down = []
        for r, row_pin in enumerate(self.rows):
            gpio.output(row_pin, gpio.LOW)
            for c, col_pin in enumerate(self.cols):
                if gpio.input(col_pin) == gpio.LOW:
                    down.append((r, c))
            gpio.output(row_pin, gpio.HIGH)
        return down

    def poll(self, now):
        """Scan once; the list of keys newly pressed (at most one)."""
        down = self.scan()
        if not down:
            current = NONE
        elif len(down) == 1:
            current = down[0]
        else:
            current = CHORD
        if current != self._candidate or self._since is None:
            self._candidate = current
            self._since = now
            return []
        if now - self._since < self.debounce or current == self._reported:
            return []
        self._reported = current
        if current == CHORD:
            self._locked = True
            return []
        if current is NONE:
            self._locked = False
            return []
        if self._locked:
            return []
        r, c = current
        return [self.keys[r][c]]
