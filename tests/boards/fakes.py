"""Strict recording fakes of the RPi.GPIO module and an smbus2 bus (test doubles, never used at run time).

They enforce the real APIs the way the real libraries do: RPi.GPIO's constants (BOARD=10, BCM=11, OUT=0,
IN=1, PUD_OFF=20, PUD_DOWN=21, PUD_UP=22), setmode before setup, setup before input/output, no pull-up on
outputs, no initial value on inputs, valid channel numbers for the mode, one PWM object per channel; and
for I2C: 7-bit addresses, a device present at the address, SMBus block writes of at most 32 bytes of
byte values. Each call is recorded in `calls` so tests can assert the exact sequence.

They also model the wiring electrically: `press_key(row_pin, col_pin)` connects a keypad row to a column
(a column input reads low while its connected row is driven low), `hold_low(pin)` grounds a pin (a
button or hook switch), and pull-ups make an unconnected input read high.
"""

import errno

BOARD_VALID = (
    3,
    5,
    7,
    8,
    10,
    11,
    12,
    13,
    15,
    16,
    18,
    19,
    21,
    22,
    23,
    24,
    26,
    27,
    28,
    29,
    31,
    32,
    33,
    35,
    36,
    37,
    38,
    40,
)


class FakePWM:
    def __init__(self, gpio, channel, frequency):
        self.gpio = gpio
        self.channel = channel
        self.frequency = frequency
        self.duty = None
        self.running = False

    def _record(self, *call):
        self.gpio.calls.append(("PWM." + call[0], self.channel) + call[1:])

    def start(self, dutycycle):
        if not 0.0 <= dutycycle <= 100.0:
            raise ValueError("dutycycle must have a value from 0.0 to 100.0")
        self.duty = dutycycle
        self.running = True
        self._record("start", dutycycle)

    def ChangeDutyCycle(self, dutycycle):  # noqa: N802 (the real API's name)
        if not 0.0 <= dutycycle <= 100.0:
            raise ValueError("dutycycle must have a value from 0.0 to 100.0")
        self.duty = dutycycle
        self._record("ChangeDutyCycle", dutycycle)

    def ChangeFrequency(self, frequency):  # noqa: N802
        if frequency <= 0.0:
            raise ValueError("frequency must be greater than 0.0")
        self.frequency = frequency
        self._record("ChangeFrequency", frequency)

    def stop(self):
        self.running = False
        self._record("stop")


class FakeGPIO:
    """The RPi.GPIO module, strictly."""

    BOARD = 10
    BCM = 11
    OUT = 0
    IN = 1
    LOW = 0
    HIGH = 1
    PUD_OFF = 20
    PUD_DOWN = 21
    PUD_UP = 22

    def __init__(self):
        self.calls = []
        self.mode = None
        self.directions = {}  # channel -> OUT / IN
        self.pulls = {}  # channel -> PUD_*
        self.levels = {}  # output channel -> level driven
        self.grounded = set()  # input channels tied to ground (button pressed)
        self.keys = set()  # (row channel, column channel) pairs connected by a pressed key
        self.pwms = {}
        self.warnings = True

    # -- the API ----------------------------------------------------------------------------------

    def setwarnings(self, flag):
        self.calls.append(("setwarnings", flag))
        self.warnings = bool(flag)

    def setmode(self, mode):
        if mode not in (self.BOARD, self.BCM):
            raise ValueError("An invalid mode was passed to setmode()")
        if self.mode is not None and self.mode != mode:
            raise ValueError("A different mode has already been set!")
        self.mode = mode
        self.calls.append(("setmode", mode))

    def getmode(self):
        return self.mode

    def _check_channel(self, channel):
        if self.mode is None:
            raise RuntimeError("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)")
        if not isinstance(channel, int) or isinstance(channel, bool):
            raise ValueError("Channel must be an integer or list/tuple of integers")
        valid = BOARD_VALID if self.mode == self.BOARD else range(0, 28)
        if channel not in valid:
            raise ValueError("The channel sent is invalid on a Raspberry Pi")

    def setup(self, channel, direction, pull_up_down=PUD_OFF, initial=-1):
        if isinstance(channel, (list, tuple)):
            for one in channel:
                self.setup(one, direction, pull_up_down, initial)
            return
        self._check_channel(channel)
        if direction not in (self.IN, self.OUT):
            raise ValueError("An invalid direction was passed to setup()")
        if pull_up_down not in (self.PUD_OFF, self.PUD_DOWN, self.PUD_UP):
            raise ValueError("Invalid value for pull_up_down - should be either PUD_OFF, PUD_UP or PUD_DOWN")
        if direction == self.OUT and pull_up_down != self.PUD_OFF:
            raise ValueError("pull_up_down parameter is not valid for outputs")
        if direction == self.IN and initial != -1:
            raise ValueError("initial parameter is not valid for inputs")
        if initial not in (-1, self.LOW, self.HIGH):
            raise ValueError("initial must be HIGH or LOW")
        self.calls.append(("setup", channel, direction, pull_up_down, initial))
        self.directions[channel] = direction
        self.pulls[channel] = pull_up_down
        if direction == self.OUT:
            self.levels[channel] = self.LOW if initial == -1 else initial

    def output(self, channel, value):
        self._check_channel(channel)
        if self.directions.get(channel) != self.OUT:
            raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
        if value not in (0, 1, True, False):
            raise ValueError("Invalid output state")
        self.calls.append(("output", channel, int(value)))
        self.levels[channel] = int(value)

    def input(self, channel):
        self._check_channel(channel)
        if channel not in self.directions:
            raise RuntimeError("You must setup() the GPIO channel first")
        level = self._level(channel)
        self.calls.append(("input", channel, level))
        return level

    def PWM(self, channel, frequency):  # noqa: N802 (the real API's name)
        self._check_channel(channel)
        if self.directions.get(channel) != self.OUT:
            raise RuntimeError("You must setup() the GPIO channel as an output first")
        if frequency <= 0.0:
            raise ValueError("frequency must be greater than 0.0")
        if channel in self.pwms:
            raise RuntimeError("A PWM object already exists for this GPIO channel")
        pwm = FakePWM(self, channel, frequency)
        self.pwms[channel] = pwm
        self.calls.append(("PWM", channel, frequency))
        return pwm

    def cleanup(self, channel=None):
        self.calls.append(("cleanup", channel))
        if channel is None:
            self.directions.clear()
            self.levels.clear()
            self.pwms.clear()
            self.mode = None
        else:
            self.directions.pop(channel, None)
            self.levels.pop(channel, None)

    # -- the electrical model -------------------------------------------------------------------------

    def _level(self, channel):
        if self.directions[channel] == self.OUT:
            return self.levels[channel]
        if channel in self.grounded:
            return self.LOW
        for row, col in self.keys:
            if col == channel and self.directions.get(row) == self.OUT and self.levels.get(row) == self.LOW:
                return self.LOW
        pull = self.pulls.get(channel)
        if pull == self.PUD_UP:
            return self.HIGH
        if pull == self.PUD_DOWN:
            return self.LOW
        raise RuntimeError("test wiring: input {} floats (no pull-up/down, nothing connected)".format(channel))

    def press_key(self, row, col):
        self.keys.add((row, col))

    def release_key(self, row, col):
        self.keys.discard((row, col))

    def hold_low(self, channel):
        self.grounded.add(channel)

    def release(self, channel):
        self.grounded.discard(channel)

    def outputs(self, channel):
        """The values written to an output channel, in order."""
        return [call[2] for call in self.calls if call[0] == "output" and call[1] == channel]


class FakeSMBus:
    """An smbus2.SMBus, strictly: only the methods our display drivers use, checked like the kernel."""

    def __init__(self, devices=(0x3C,)):
        self.devices = tuple(devices)
        self.calls = []
        self.closed = False

    def _check(self, address):
        if self.closed:
            raise OSError(errno.EBADF, "bus closed")
        if not isinstance(address, int) or not 0x08 <= address <= 0x77:
            raise ValueError("not a 7-bit I2C address: {!r}".format(address))
        if address not in self.devices:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")

    def write_i2c_block_data(self, i2c_addr, register, data, force=None):
        self._check(i2c_addr)
        data = list(data)
        if len(data) > 32:
            raise ValueError("Data length cannot exceed 32 bytes")
        if not 0 <= register <= 255 or not all(isinstance(b, int) and 0 <= b <= 255 for b in data):
            raise ValueError("bytes must be in range(0, 256)")
        self.calls.append(("write_i2c_block_data", i2c_addr, register, data))

    def write_byte(self, i2c_addr, value, force=None):
        self._check(i2c_addr)
        if not isinstance(value, int) or not 0 <= value <= 255:
            raise ValueError("byte must be in range(0, 256)")
        self.calls.append(("write_byte", i2c_addr, value))

    def close(self):
        self.closed = True
        self.calls.append(("close",))

    def commands(self, address, control=0x00):
        """The bytes written as commands (SSD1306 control byte 0x00), flattened."""
        out = []
        for call in self.calls:
            if call[0] == "write_i2c_block_data" and call[1] == address and call[2] == control:
                out.extend(call[3])
        return out
