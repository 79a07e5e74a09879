"""The sim board's script language (`sotto run --board sim --script FILE`): parsing and running it.

Apart from device.py because the script language is a contract relied on by outside automation
(issue 13: extended, never broken): its grammar and its timing rules stand in one place. Host-only
(a script is a file).

Script language (`sotto run --board sim --script FILE`), one command per line, blank lines and lines
starting with "//" or "# " ignored:
    press KEYS            each of 0-9 * # is one key press ('#' sends the number)
    key NAME              a named key: hangup, redial, menu, mute, volume_up, volume_down, back, hold,
                          conference, voicemail, transfer
    trust | trust-long    the trust button: short press / long press (>= 2 s)
    hook off | hook on    the hook switch
    hangup                the hang-up key
    sleep SECONDS
    wait STATE [TIMEOUT]  until the phone is in STATE, or was since the wait began (default 30 s);
                          fails the script (exit code 1) on timeout
    quit                  exit 0 (the end of the script is a quit too)
"""

from firmware import phone as P
from firmware.errors import ConfigError

DEFAULT_WAIT = 30.0
MAX_SCRIPT_LINES = 10000


class Step:
    """One script command: `op` with its arguments, from line `line` of `where`."""

    __slots__ = ("op", "args", "line", "where")

    def __init__(self, op, args, line, where):
        self.op = op
        self.args = args
        self.line = line
        self.where = where

    def __repr__(self):
        return "Step({!r}, {!r}, line {})".format(self.op, self.args, self.line)


def _number(text, where, op):
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(where, op, "a number of seconds, not {!r}".format(text)) from None
    if value < 0 or value != value or value > 86400:
        raise ConfigError(where, op, "a number of seconds from 0 to 86400, not {!r}".format(text))
    return value


def parse_script(text, name="script"):
    """The steps of a script; ConfigError("FILE:LINE", command, expected) for the first bad line."""
    steps = []
    lines = text.split("\n")
    if len(lines) > MAX_SCRIPT_LINES:
        raise ConfigError(name, "script", "at most {} lines".format(MAX_SCRIPT_LINES))
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("//") or line.startswith("# ") or line == "#":
            continue
        where = "{}:{}".format(name, number)
        words = line.split()
        op, args = words[0], words[1:]
        if op == "press":
            if len(args) != 1 or not args[0] or any(k not in P.DIAL_KEYS for k in args[0]):
                raise ConfigError(where, "press", "keys from 0-9 * # (e.g. press 123#)")
            steps.append(Step(op, (args[0],), number, where))
        elif op == "key":
            if len(args) != 1 or args[0] not in P.NAMED_KEYS:
                raise ConfigError(where, "key", "one of: " + ", ".join(P.NAMED_KEYS))
            steps.append(Step(op, (args[0],), number, where))
        elif op in ("trust", "trust-long", "hangup", "quit"):
            if args:
                raise ConfigError(where, op, "no arguments")
            steps.append(Step(op, (), number, where))
        elif op == "hook":
            if len(args) != 1 or args[0] not in ("off", "on"):
                raise ConfigError(where, "hook", "off or on")
            steps.append(Step(op, (args[0] == "off",), number, where))
        elif op == "sleep":
            if len(args) != 1:
                raise ConfigError(where, "sleep", "one number of seconds")
            steps.append(Step(op, (_number(args[0], where, op),), number, where))
        elif op == "wait":
            if not 1 <= len(args) <= 2 or args[0] not in P.STATES:
                raise ConfigError(where, "wait", "a state (" + ", ".join(P.STATES) + ") and an optional timeout")
            timeout = _number(args[1], where, op) if len(args) == 2 else DEFAULT_WAIT
            steps.append(Step(op, (args[0], timeout), number, where))
        else:
            raise ConfigError(where, op, "a command: press, key, trust, trust-long, hook, hangup, sleep, wait, quit")
    return steps


def load_script(path):
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(str(path), "script", "a readable file ({})".format(exc.strerror)) from None
    return parse_script(text, str(path))


class ScriptRunner:
    """Runs script steps at the right times. advance(now) returns the input events due; note_state()
    must see every state the phone passes through (the device does this in show())."""

    def __init__(self, steps):
        self.steps = list(steps)
        self.index = 0
        self.finished = False
        self.exit_code = None
        self.message = None
        self._resume_at = None  # sleep: when to go on
        self._wait_started = None  # wait: when it began
        self._seen = []  # states seen since the current wait began
        self._ready_at = None  # the next step is due now (events just went out, or a wait is over)
        self.state = None

    def note_state(self, state):
        self.state = state
        if self._wait_started is not None and state not in self._seen:
            self._seen.append(state)
            if state == self.steps[self.index].args[0]:
                self._ready_at = self._wait_started  # the wait is over: go on at the next tick

    def get_timer(self):
        if self.finished:
            return None
        if self._ready_at is not None:
            return self._ready_at
        if self._resume_at is not None:
            return self._resume_at
        if self._wait_started is not None:
            return self._wait_started + self.steps[self.index].args[1]
        return None

    def advance(self, now):
        self._ready_at = None
        events = []
        while not self.finished:
            if self.index >= len(self.steps):
                self._finish(0, None)
                break
            step = self.steps[self.index]
            if step.op == "sleep":
                if self._resume_at is None:
                    self._resume_at = now + step.args[0]
                if now < self._resume_at:
                    break
                self._resume_at = None
            elif step.op == "wait":
                state, timeout = step.args
                if self._wait_started is None:
                    self._wait_started = now
                    self._seen = [self.state] if self.state is not None else []
                if state not in self._seen:
                    if now >= self._wait_started + timeout:
                        self._finish(
                            1,
                            "{}: wait {}: timed out after {:g} s (the phone is in {})".format(
                                step.where, state, timeout, self.state
                            ),
                        )
                    break
                self._wait_started = None
                self._seen = []
            elif step.op == "quit":
                self._finish(0, None)
                break
            elif step.op == "press":
                for key in step.args[0]:
                    events.append(P.KeyPressed(key))
            elif step.op == "key":
                events.append(P.KeyPressed(step.args[0]))
            elif step.op == "hangup":
                events.append(P.KeyPressed(P.KEY_HANGUP))
            elif step.op == "trust":
                events.append(P.TrustPressed(False))
            elif step.op == "trust-long":
                events.append(P.TrustPressed(True))
            elif step.op == "hook":
                events.append(P.Hook(step.args[0]))
            self.index += 1
            if events:
                # Let the phone see these before the next step (a wait must observe their effect); the
                # next step is due at once.
                self._ready_at = now
                break
        return events

    def _finish(self, code, message):
        self.finished = True
        self.exit_code = code
        self.message = message
