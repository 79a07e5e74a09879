"""The device shell around the phone core (host-only): the simulated board, scripts, and real boards.

A device turns the outside world into the phone's input events and shows the phone's screens:

    device = open_device(board, script=PATH, display_log=PATH, display_png=DIR)   # or SimDevice(...)
    driver = PhoneDriver(phone, device, dispatch)   # dispatch(command, now): the session's side
    driver.start(now)
    ... on device.get_timer() / driver.get_timer() and when device.fileno() is readable:
    driver.tick(now)            # device input and the phone's timers
    ... for every call event the session maps from SIP / media / ZRTP:
    driver.feed(event, now)     # e.g. phone.CallSecure(...)
    ... until device.finished: then exit with device.exit_code

The script language is in firmware/runtime/script.py; the call history file in history_store.py.
"""

import logging
import os
import sys

from boards.drivers import sim
from firmware import phone as P
from firmware import screens
from firmware.errors import ConfigError
from firmware.runtime.script import MAX_SCRIPT_LINES, ScriptRunner, load_script

log = logging.getLogger("sotto.device")

POLL_INTERVAL = 0.01  # real boards: how often the keypad and buttons are scanned


# --- the simulated device ---------------------------------------------------------------------------


class SimDevice:
    """The simulated board: scripted input, a terminal keypad and display on a TTY, a display log
    (JSON lines) and PNG frames (128x64).

    script: a script path, or a list of Step, or None; display_log: a path or None; display_png: a
    directory or None; terminal: a boards.drivers.sim.TerminalUi or None (open_device makes one when
    stdin is a TTY and no script is given); err: where script failures are reported (stderr).
    """

    def __init__(self, script=None, display_log=None, display_png=None, terminal=None, err=None):
        if isinstance(script, (str, os.PathLike)):
            script = load_script(script)
        self.runner = ScriptRunner(script) if script is not None else None
        self.display_log = sim.DisplayLog(display_log) if display_log else None
        self.png = sim.PngWriter(display_png) if display_png else None
        self.terminal = terminal
        self.err = err if err is not None else sys.stderr
        self.t0 = None
        self.state = None
        self.screen = None
        self.frames = 0
        self.off_hook = False
        self.finished = False
        self.exit_code = None
        self.message = None
        self.leds = []  # the simulated LEDs lit now (names from boards.schema.LED_NAMES)
        self._events = []
        if self.terminal is not None:
            self.terminal.open()

    def start(self, now):
        if self.t0 is None:
            self.t0 = now

    def fileno(self):
        """The terminal's fd to watch for input, or None."""
        return self.terminal.fd_in if self.terminal is not None else None

    def get_timer(self):
        if self.runner is None or self.finished:
            return None
        return self.runner.get_timer()

    def handle_timer(self, now):
        self._advance(now)

    def on_readable(self, now):
        """The terminal has input: turn the typed keys into events (returned by the next poll)."""
        for char in self.terminal.read_chars():
            meaning = sim.terminal_input(char)
            if meaning == sim.QUIT:
                self._finish(0, None)
            elif meaning == sim.HOOK_TOGGLE:
                self.off_hook = not self.off_hook
                self._events.append(P.Hook(self.off_hook))
            elif meaning is not None:
                self._events.append(meaning)

    def poll(self, now):
        """The input events due at `now` (script steps, keys typed)."""
        self.start(now)
        self._advance(now)
        events, self._events = self._events, []
        return events

    def _advance(self, now):
        if self.runner is None or self.finished:
            return
        for event in self.runner.advance(now):
            if isinstance(event, P.Hook):
                self.off_hook = event.off
            self._events.append(event)
        if self.runner.finished:
            self._finish(self.runner.exit_code, self.runner.message)

    def _finish(self, code, message):
        if self.finished:
            return
        self.finished = True
        self.exit_code = code
        self.message = message
        if message:
            self.err.write("sotto: " + message + "\n")
            self.err.flush()

    def show(self, state, screen, now):
        """Show the phone's screen; frames are written when what is shown changes."""
        self.start(now)
        if self.runner is not None:
            self.runner.note_state(state)
        if state == self.state and screen == self.screen:
            return
        self.state = state
        self.screen = screen
        self.frames += 1
        if self.display_log is not None:
            self.display_log.write(now - self.t0, state, screens.text_lines(screen), self.leds)
        if self.png is not None:
            self.png.write(screens.render_oled(screen))
        if self.terminal is not None:
            self.terminal.draw(state, screen, self.leds)

    def on_command(self, command, now):
        """Every phone command passes here first: the simulated board has no buzzer; its message LED is
        shown in the display log ("leds") and on the terminal."""
        if isinstance(command, P.MessageLight):
            lit = [name for name in self.leds if name != "message"] + (["message"] if command.on else [])
            if lit != self.leds:
                self.leds = lit
                self.screen = None  # a new frame, even when the screen itself did not change

    def close(self):
        if self.display_log is not None:
            self.display_log.close()
            self.display_log = None
        if self.terminal is not None:
            self.terminal.close()
            self.terminal = None


# --- a real board -----------------------------------------------------------------------------------


class HardwareDevice:
    """A real board from its board file: keypad, buttons, hook switch, LEDs, buzzer and display.

    gpio: the RPi.GPIO module (boards.drivers.gpio.import_gpio(board.gpio)); bus: an open smbus2.SMBus
    for the display's I2C bus. Both are arguments so that tests pass strict fakes. setup() touches the
    hardware; construction does not.
    """

    def __init__(self, board, gpio, bus):
        from boards.drivers.buttons import Button, HookSwitch
        from boards.drivers.buzzer import Buzzer
        from boards.drivers.displays import CharacterLcd, OledDisplay
        from boards.drivers.keypad import MatrixKeypad
        from boards.drivers.leds import Led

        self.board = board
        self.gpio = gpio
        keypad = board.keypad
        self.keypad = MatrixKeypad(gpio, keypad.rows, keypad.cols, keypad.keys, keypad.debounce)
        self.buttons = [(name, Button(gpio, pin)) for name, pin in board.buttons]
        self.hook = HookSwitch(gpio, board.hook_pin, board.hook_active_low) if board.hook_pin is not None else None
        self.leds = [(name, Led(gpio, pin)) for name, pin in board.leds]
        self.buzzer = Buzzer(gpio, board.buzzer_pin) if board.buzzer_pin is not None else None
        display = board.display
        if display.is_text:
            self.display = CharacterLcd(bus, display.address, display.cols, display.rows)
        else:
            self.display = OledDisplay(bus, display.kind, display.address, display.width, display.height)
        self.state = None
        self.screen = None
        self.finished = False
        self.exit_code = None
        self._next_scan = None

    def setup(self):
        from boards.drivers import gpio as gpio_setup

        gpio_setup.prepare(self.gpio)
        self.keypad.setup()
        for _, button in self.buttons:
            button.setup()
        if self.hook is not None:
            self.hook.setup()
        for _, led in self.leds:
            led.setup()
        if self.buzzer is not None:
            self.buzzer.setup()
        try:
            self.display.open()
        except OSError as exc:  # boards.drivers.i2c.DeviceNotFoundError when nothing answers
            display = self.board.display
            raise ConfigError(
                self.board.path or self.board.name,
                "display.address",
                "a {} answering at 0x{:02X} on I2C bus {} ({})".format(
                    display.kind, display.address, display.i2c_bus, exc
                ),
            ) from None

    def start(self, now):
        self._next_scan = now

    def fileno(self):
        return None

    def get_timer(self):
        return self._next_scan

    def handle_timer(self, now):
        pass

    def poll(self, now):
        events = [P.KeyPressed(key) for key in self.keypad.poll(now)]
        for name, button in self.buttons:
            press = button.poll(now)
            if press is None:
                continue
            if name == "trust":
                events.append(P.TrustPressed(press == "long"))
            elif press == "short":
                events.append(P.KeyPressed(name))
        if self.hook is not None:
            change = self.hook.poll(now)
            if change is not None:
                events.append(P.Hook(change))
        for _, led in self.leds:
            led.update(now)
        if self.buzzer is not None:
            self.buzzer.update(now)
        self._next_scan = now + POLL_INTERVAL
        return events

    def show(self, state, screen, now):
        from boards.drivers.leds import BLINK, OFF, ON, verified_led_mode

        if state != self.state:
            for name, led in self.leds:
                if name == "verified":
                    led.set(verified_led_mode(state), now)
                elif name == "alarm":
                    led.set(BLINK if state == P.ALARM else OFF, now)
                elif name == "power":
                    led.set(ON, now)
        if state == self.state and screen == self.screen:
            return
        self.state = state
        self.screen = screen
        self.display.show(screen)

    def on_command(self, command, now):
        if isinstance(command, P.MessageLight):
            from boards.drivers.leds import OFF, ON

            for name, led in self.leds:
                if name == "message":
                    led.set(ON if command.on else OFF, now)
            return
        if self.buzzer is None:
            return
        if isinstance(command, P.PlayTone):
            if command.name == P.TONE_WAITING:
                self.buzzer.stop()  # the call-waiting tone is in the earpiece, never the ringer
            else:
                self.buzzer.play(command.name, now)
        elif isinstance(command, P.StopTone):
            self.buzzer.stop()

    def close(self):
        if self.buzzer is not None:
            self.buzzer.close()
        self.display.close()
        self.gpio.cleanup()


def open_device(board, script=None, display_log=None, display_png=None, stdin=None, stdout=None, gpio=None, bus=None):
    """The device for a loaded board (boards.schema.load_board). For the simulated board: the script,
    display log and PNG directory of the command line, and a terminal UI when stdin is a TTY and no
    script drives the phone. For a real board: its drivers over `gpio` (default: the board's GPIO
    library) and `bus` (default: smbus2 on the display's I2C bus), set up."""
    if board.is_simulated:
        stdin = stdin if stdin is not None else sys.stdin
        stdout = stdout if stdout is not None else sys.stdout
        terminal = None
        if script is None and stdin.isatty() and stdout.isatty():
            terminal = sim.TerminalUi(stdin.fileno(), stdout)
        return SimDevice(script, display_log, display_png, terminal)
    if script is not None or display_log is not None or display_png is not None:
        raise ConfigError("--board", board.name, "the sim board for --script, --display-log, --display-png")
    if gpio is None:
        from boards.drivers.gpio import import_gpio

        gpio = import_gpio(board.gpio)
    if bus is None:
        try:
            import smbus2

            bus = smbus2.SMBus(board.display.i2c_bus)
        except OSError as exc:
            raise ConfigError(
                board.path or board.name, "display.i2c_bus", "an I2C bus that exists ({})".format(exc.strerror)
            ) from None
    device = HardwareDevice(board, gpio, bus)
    device.setup()
    return device


def phone_from_config(
    config,
    dial_domain=None,
    history=None,
    extra_speed_dial=None,
    our_zid=None,
    wall_offset=None,
    desk=None,
    contacts=None,
):
    """A Phone set up from the configuration (firmware.config.Config): the dial domain (the command
    line's --dial-domain first, then [dial] domain, then the host of the account's URI), speed dial
    (the configured entries win over `extra_speed_dial`, e.g. the echo test line), secure_only, our
    identity (the account, or the SIP address we listen on), our ZID (hex) and the saved history."""
    domain = dial_domain or config.dial.domain or None
    uri = config.account.uri or None
    if domain is None and uri:
        # sip:alice@example.org -> example.org: dialled digits go to our registrar's domain.
        domain = uri.split("@", 1)[1] if "@" in uri else None
        if domain is not None:
            domain = domain.split(";", 1)[0] or None
    speed_dial = dict(extra_speed_dial or {})
    speed_dial.update(config.dial.speed_dial)
    return P.Phone(
        dial_domain=domain,
        speed_dial=speed_dial,
        secure_only=config.zrtp.secure_only,
        history=history,
        identity=uri or "sip:{}".format(config.sip.listen),
        our_zid=our_zid,
        wall_offset=wall_offset,
        call_waiting=config.phone.call_waiting,
        desk=desk,
        contacts=contacts,
        voicemail=config.phone.voicemail or None,
    )


# --- the phone and its device, pumped together ------------------------------------------------------


class PhoneDriver:
    """Pumps a Phone with a device: input events in, screens out, commands to `dispatch(command, now)`.

    Every state the phone passes through is shown (so a script's `wait` sees short-lived states); every
    command goes to the device first (buzzer, LEDs) and then to dispatch (the session).
    """

    def __init__(self, phone, device, dispatch):
        self.phone = phone
        self.device = device
        self.dispatch = dispatch
        self._pumping = False

    def start(self, now):
        self.device.start(now)
        self._show(now)
        self._pump_device(now)

    def get_timer(self):
        best = None
        for when in (self.phone.get_timer(), self.device.get_timer()):
            if when is not None and (best is None or when < best):
                best = when
        return best

    def feed(self, event, now):
        """One event for the phone (an input or a call event from the session). The device reacts to
        what the phone now shows at the next tick (get_timer() says when: at once if a script's wait
        was satisfied), never from inside feed(): the session may be in the middle of its own work."""
        self.phone.handle(event, now)
        self._after(now)

    def tick(self, now):
        """Due timers (the phone's and the device's) and device input."""
        timer = self.phone.get_timer()
        if timer is not None and now >= timer:
            self.phone.handle_timer(now)
            self._after(now)
        self._pump_device(now)

    def handle_timer(self, now):
        """The same as tick(): lets the session's EngineTimer(loop, driver, ...) keep the timer armed."""
        self.tick(now)

    def on_readable(self, now):
        """The device's fileno() is readable (the terminal): read the keys and act on them."""
        self.device.on_readable(now)
        self._pump_device(now)

    def _pump_device(self, now):
        # The device's input may depend on what the phone just showed (a script's `wait`), so poll
        # until it has nothing more to say at this instant. Bounded: a script line yields one batch.
        if self._pumping:
            return
        self._pumping = True
        try:
            for _ in range(MAX_SCRIPT_LINES):
                events = self.device.poll(now)
                if not events:
                    break
                for event in events:
                    self.phone.handle(event, now)
                    self._after(now)
        finally:
            self._pumping = False

    def _after(self, now):
        while True:
            command = self.phone.next_command()
            if command is None:
                break
            self.device.on_command(command, now)
            self.dispatch(command, now)
        self._show(now)

    def _show(self, now):
        self.device.show(self.phone.state, self.phone.screen(now), now)
