"""LEDs through the RPi.GPIO API (host-only): on when the call is verified, blinking on an alarm."""

OFF = "off"
ON = "on"
BLINK = "blink"
BLINK_PERIOD = 0.5  # seconds for one on + off cycle


def verified_led_mode(state):
    """What the 'verified' LED does in a phone state."""
    if state == "verified":
        return ON
    if state == "alarm":
        return BLINK
    return OFF


class Led:
    """gpio: the RPi.GPIO module; pin; active_high: the LED lights when the pin is high (default)."""

    def __init__(self, gpio, pin, active_high=True):
        self.gpio = gpio
        self.pin = pin
        self.active_high = active_high
        self.mode = OFF
        self._mode_since = 0.0
        self._lit = None

    def setup(self):
        gpio = self.gpio
        gpio.setup(self.pin, gpio.OUT, initial=gpio.LOW if self.active_high else gpio.HIGH)
        self._lit = False

    def set(self, mode, now):
        if mode not in (OFF, ON, BLINK):
            raise ValueError("LED mode must be off, on or blink")
        if mode != self.mode:
            self.mode = mode
            self._mode_since = now
        self.update(now)

    def update(self, now):
        if self.mode == BLINK:
            phase = (now - self._mode_since) % BLINK_PERIOD
            lit = phase < BLINK_PERIOD / 2
        else:
            lit = self.mode == ON
        if lit != self._lit:
            self._lit = lit
            level = lit if self.active_high else not lit
            self.gpio.output(self.pin, self.gpio.HIGH if level else self.gpio.LOW)

    def next_change(self, now):
        """When update() must run next for blinking, or None."""
        if self.mode != BLINK:
            return None
        half = BLINK_PERIOD / 2
        elapsed = now - self._mode_since
        return self._mode_since + (int(elapsed / half) + 1) * half
