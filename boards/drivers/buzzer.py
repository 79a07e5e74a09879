"""A passive piezo buzzer driven with PWM through the RPi.GPIO API (host-only).

play(name, now) starts a repeating pattern of (frequency in Hz or 0 for silence, seconds) steps;
update(now) moves through it; stop() silences. The phone's PlayTone/StopTone commands drive it on boards
with a buzzer (the headset plays the same tones through the media engineer's generators).
"""

PATTERNS = (
    ("ring", ((1000, 0.4), (0, 0.2), (1000, 0.4), (0, 2.0))),
    ("ringback", ((440, 1.0), (0, 3.0))),
    ("alarm", ((2500, 0.15), (1500, 0.15))),
)
DUTY = 50.0


def pattern(name):
    for pattern_name, steps in PATTERNS:
        if pattern_name == name:
            return steps
    raise ValueError("unknown buzzer pattern {!r}".format(name))


class Buzzer:
    def __init__(self, gpio, pin):
        self.gpio = gpio
        self.pin = pin
        self._pwm = None
        self._steps = None
        self._start = None
        self._frequency = None  # what the PWM plays now, 0 when silent
        self.playing = None

    def setup(self):
        self.gpio.setup(self.pin, self.gpio.OUT, initial=self.gpio.LOW)

    def play(self, name, now):
        self._steps = pattern(name)
        self._start = now
        self.playing = name
        self.update(now)

    def stop(self):
        self._steps = None
        self.playing = None
        self._set(0)

    def _set(self, frequency):
        if frequency == self._frequency:
            return
        if self._pwm is None:
            if frequency == 0:
                return
            self._pwm = self.gpio.PWM(self.pin, frequency)
            self._pwm.start(DUTY)
        elif frequency == 0:
            self._pwm.ChangeDutyCycle(0.0)
        else:
            if self._frequency == 0:
                self._pwm.ChangeDutyCycle(DUTY)
            self._pwm.ChangeFrequency(frequency)
        self._frequency = frequency

    def _position(self, now):
        period = 0.0
        for _, seconds in self._steps:
            period += seconds
        offset = (now - self._start) % period
        for frequency, seconds in self._steps:
            if offset < seconds:
                return frequency
            offset -= seconds
        return self._steps[-1][0]

    def update(self, now):
        if self._steps is None:
            return
        self._set(self._position(now))

    def close(self):
        if self._pwm is not None:
            self._pwm.stop()
            self._pwm = None
