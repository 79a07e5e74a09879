"""Push buttons and the hook switch through the RPi.GPIO API (host-only).

Button: a short press is reported when the button is released before `long_press` seconds (2 s, the
trust button's "SAS did NOT match"); a long press is reported as soon as it has been held that long (no
need to wait for the release, which is then ignored). Levels are debounced: a change counts once it has
been stable for `debounce` seconds.
"""

SHORT = "short"
LONG = "long"
LONG_PRESS = 2.0


class _Debounced:
    def __init__(self, gpio, pin, active_low, debounce):
        self.gpio = gpio
        self.pin = pin
        self.active_low = active_low
        self.debounce = debounce
        self.active = False  # the debounced state
        self._raw = False
        self._since = None

    def setup(self):
        gpio = self.gpio
        gpio.setup(self.pin, gpio.IN, pull_up_down=gpio.PUD_UP if self.active_low else gpio.PUD_DOWN)

    def read(self):
        level = self.gpio.input(self.pin)
        return (level == self.gpio.LOW) if self.active_low else (level == self.gpio.HIGH)

    def update(self, now):
        """Read the pin; True when the debounced state changed."""
        raw = self.read()
        if raw != self._raw or self._since is None:
            self._raw = raw
            self._since = now
        if raw != self.active and now - self._since >= self.debounce:
            self.active = raw
            return True
        return False


class Button:
    """gpio: the RPi.GPIO module; pin; active_low: wired to GND with the internal pull-up (default)."""

    def __init__(self, gpio, pin, long_press=LONG_PRESS, debounce=0.02, active_low=True):
        self._line = _Debounced(gpio, pin, active_low, debounce)
        self.long_press = long_press
        self._pressed_at = None
        self._long_sent = False

    @property
    def pin(self):
        return self._line.pin

    def setup(self):
        self._line.setup()

    def poll(self, now):
        """SHORT, LONG or None."""
        if self._line.update(now):
            if self._line.active:
                self._pressed_at = now
                self._long_sent = False
                return None
            pressed_at, long_sent = self._pressed_at, self._long_sent
            self._pressed_at = None
            if pressed_at is not None and not long_sent:
                return SHORT
            return None
        if self._line.active and self._pressed_at is not None and not self._long_sent:
            if now - self._pressed_at >= self.long_press:
                self._long_sent = True
                return LONG
        return None


class HookSwitch:
    """The handset's hook switch; active (reading low by default) means off hook (handset lifted)."""

    def __init__(self, gpio, pin, active_low=True, debounce=0.05):
        self._line = _Debounced(gpio, pin, active_low, debounce)
        self._first = True

    def setup(self):
        self._line.setup()

    @property
    def off_hook(self):
        return self._line.active

    def poll(self, now):
        """True when the handset was just lifted, False when just put down, None otherwise."""
        changed = self._line.update(now)
        if changed:
            return self._line.active
        return None
