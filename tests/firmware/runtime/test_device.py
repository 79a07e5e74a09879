"""The device shell: scripts, the simulated device with its display log and PNG frames, a real board on
strict fakes, and the phone driven end to end against a fake call backend (a TEST DOUBLE of the
session: it answers Dial with the call events a real SIP/ZRTP session would produce)."""

import io
import json

import pytest
from PIL import Image

from boards import schema
from firmware import phone as P
from firmware.errors import ConfigError
from firmware.runtime import device as D
from firmware.runtime import history_store as H
from firmware.runtime import script as S
from tests.boards.fakes import FakeGPIO, FakeSMBus

PEER_ZID = "00112233445566778899aabb"


class FakeCallBackend:
    """TEST DOUBLE standing in for the shell's PhoneCalls (firmware/runtime/phone_calls.py): on Dial it
    schedules CallRinging, CallAnswered and CallSecure like a peer with ZRTP; it keeps a tiny "cache"
    of verified peers so that a second call after ConfirmSas comes up verified; RejectSas unverifies."""

    def __init__(self, sas="ab3d", cache_mismatch=False):
        self.sas = sas
        self.cache_mismatch = cache_mismatch
        self.verified_peers = set()
        self.pending = []  # (when, event)
        self.commands = []

    def dispatch(self, command, now):
        self.commands.append(repr(command))
        if isinstance(command, P.Dial):
            verified = PEER_ZID in self.verified_peers
            self.pending = [
                (now + 0.05, P.CallRinging()),
                (now + 0.20, P.CallAnswered()),
                (
                    now + 0.35,
                    P.CallSecure(
                        self.sas,
                        "B32",
                        verified=verified,
                        cache_mismatch=self.cache_mismatch,
                        algorithms="X255 AES1 S256 HS80",
                        peer_zid=PEER_ZID,
                    ),
                ),
            ]
        elif isinstance(command, P.ConfirmSas):
            self.verified_peers.add(PEER_ZID)
            self.cache_mismatch = False
        elif isinstance(command, P.RejectSas):
            self.verified_peers.discard(PEER_ZID)
        elif isinstance(command, P.Hangup):
            self.pending = []

    def get_timer(self):
        return self.pending[0][0] if self.pending else None

    def due(self, now):
        out = []
        while self.pending and self.pending[0][0] <= now:
            out.append(self.pending.pop(0)[1])
        return out


def run_with_fake_clock(device, phone, backend, limit=600.0):
    """The loop the lead's runtime provides, with a fake clock: jump to the next deadline each turn."""
    driver = D.PhoneDriver(phone, device, backend.dispatch)
    now = 0.0
    driver.start(now)
    turns = 0
    while not device.finished and now < limit:
        turns += 1
        assert turns < 100000, "the loop does not progress"
        deadlines = [t for t in (driver.get_timer(), backend.get_timer()) if t is not None]
        if not deadlines:
            break
        now = max(now, min(deadlines))
        for event in backend.due(now):
            driver.feed(event, now)
        driver.tick(now)
    return now


def sim_device(tmp_path, script_text, **kwargs):
    path = tmp_path / "script.txt"
    path.write_text(script_text)
    return D.SimDevice(str(path), err=io.StringIO(), **kwargs)


# --- scripts ----------------------------------------------------------------------------------------


def test_parse_script_every_command():
    steps = S.parse_script(
        "press 12*#\n\n// a comment\n# another\nkey volume_up\ntrust\ntrust-long\nhook off\nhook on\nhangup\n"
        "sleep 0.5\nwait secure\nwait verified 3\nquit\n",
        "s.txt",
    )
    assert [(s.op, s.args, s.line) for s in steps] == [
        ("press", ("12*#",), 1),
        ("key", ("volume_up",), 5),
        ("trust", (), 6),
        ("trust-long", (), 7),
        ("hook", (True,), 8),
        ("hook", (False,), 9),
        ("hangup", (), 10),
        ("sleep", (0.5,), 11),
        ("wait", ("secure", S.DEFAULT_WAIT), 12),
        ("wait", ("verified", 3.0), 13),
        ("quit", (), 14),
    ]


@pytest.mark.parametrize(
    "line,key,expected",
    [
        ("press 12a", "press", "keys from 0-9 * #"),
        ("press", "press", "keys from 0-9 * #"),
        ("hook up", "hook", "off or on"),
        ("sleep soon", "sleep", "a number of seconds"),
        ("sleep -1", "sleep", "from 0 to 86400"),
        ("wait sleeping", "wait", "a state (idle, dialing"),
        ("wait secure 1 2", "wait", "a state"),
        ("wait secure nan", "wait", "from 0 to 86400"),
        ("trust now", "trust", "no arguments"),
        ("key selfdestruct", "key", "one of: redial"),
        ("dance", "dance", "a command: press"),
    ],
)
def test_script_errors_name_the_file_and_line(line, key, expected):
    with pytest.raises(ConfigError) as info:
        S.parse_script("wait idle\n" + line + "\n", "my.script")
    assert info.value.where == "my.script:2"
    assert info.value.key == key
    assert expected in info.value.expected


def test_a_missing_script_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        S.load_script(str(tmp_path / "nope"))
    assert info.value.key == "script"


def test_runner_sleeps_and_waits_on_states_seen_in_between():
    runner = S.ScriptRunner(S.parse_script("sleep 1\npress 1\nwait ringing 5\nquit\n"))
    runner.note_state("idle")
    assert runner.advance(0.0) == []
    assert runner.get_timer() == 1.0
    assert runner.advance(0.5) == []
    events = runner.advance(1.0)
    assert [repr(e) for e in events] == ["KeyPressed('1')"]
    assert runner.advance(1.0) == []  # waiting for ringing
    assert runner.get_timer() == 6.0
    runner.note_state("ringing")
    assert runner.get_timer() == 1.0  # the wait is over: due at once
    runner.note_state("in-call")  # gone again before the next advance: still counts
    runner.advance(2.0)
    assert runner.finished and runner.exit_code == 0


def test_runner_wait_timeout_fails_with_a_clear_message():
    runner = S.ScriptRunner(S.parse_script("wait secure 2\nquit\n", "x.script"))
    runner.note_state("calling")
    runner.advance(10.0)
    assert not runner.finished
    runner.advance(12.0)
    assert runner.finished and runner.exit_code == 1
    assert runner.message == "x.script:1: wait secure: timed out after 2 s (the phone is in calling)"


def test_the_end_of_a_script_is_a_quit():
    runner = S.ScriptRunner(S.parse_script("press 1\n"))
    runner.advance(0.0)
    runner.advance(0.0)
    assert runner.finished and runner.exit_code == 0


# --- the simulated device, end to end with the phone --------------------------------------------------

VERIFY_TWICE = """\
wait idle 1
press 123#
wait calling 1
wait secure 5
trust
wait verified 1
sleep 2
hangup
wait ended 1
wait idle 10
press 123#
wait verified 5
hangup
wait ended 1
quit
"""


def test_a_scripted_call_reaches_verified_and_the_next_call_is_verified_without_a_press(tmp_path):
    log = tmp_path / "display.jsonl"
    png = tmp_path / "frames"
    device = sim_device(tmp_path, VERIFY_TWICE, display_log=str(log), display_png=str(png))
    phone = P.Phone(dial_domain="127.0.0.1:5072")
    backend = FakeCallBackend()
    end = run_with_fake_clock(device, phone, backend)
    device.close()
    assert device.finished and device.exit_code == 0, device.err.getvalue()
    assert end < 30
    dials = [c for c in backend.commands if c.startswith("Dial")]
    assert dials == ["Dial('sip:123@127.0.0.1:5072')"] * 2
    assert backend.commands.count("ConfirmSas()") == 1
    frames = [json.loads(line) for line in log.read_text().splitlines()]
    states = [f["state"] for f in frames]
    # Every state of the flow appears, in order.
    flow = [
        "idle",
        "dialing",
        "calling",
        "in-call",
        "secure",
        "verified",
        "ended",
        "idle",
        "dialing",
        "calling",
        "in-call",
        "verified",
        "ended",
    ]
    position = 0
    for state in states:
        if position < len(flow) and state == flow[position]:
            position += 1
    assert position == len(flow), states
    secure = [f for f in frames if f["state"] == "secure"][0]
    assert secure["lines"] == ["Compare SAS", "ab3d", "read it aloud,", "press to confirm"]
    assert all(set(f) == {"t", "state", "lines"} for f in frames)
    times = [f["t"] for f in frames]
    assert times == sorted(times) and times[0] == 0.0
    second_call = states[states.index("ended") + 1 :]
    assert "secure" not in second_call
    # PNG frames: one per frame, real 128x64 images.
    pngs = sorted(png.iterdir())
    assert len(pngs) == len(frames)
    with Image.open(pngs[states.index("secure")]) as image:
        assert image.format == "PNG" and image.size == (128, 64)
        assert image.convert("1").getbbox() is not None  # something is drawn


def test_a_wait_that_times_out_fails_the_script(tmp_path):
    device = sim_device(tmp_path, "press 123#\nwait verified 3\nquit\n")
    phone = P.Phone(dial_domain="d")
    backend = FakeCallBackend()
    backend.dispatch = lambda command, now: None  # nobody answers
    run_with_fake_clock(device, phone, backend)
    assert device.finished and device.exit_code == 1
    assert "wait verified: timed out after 3 s (the phone is in calling)" in device.err.getvalue()


def test_long_trust_press_ends_the_call_and_untrusts_the_peer(tmp_path):
    script = "press 5#\nwait secure 5\ntrust-long\nwait ended 1\nwait idle 10\npress 5#\nwait secure 5\nquit\n"
    device = sim_device(tmp_path, script)
    backend = FakeCallBackend()
    phone = P.Phone(dial_domain="d")
    run_with_fake_clock(device, phone, backend)
    assert device.exit_code == 0, device.err.getvalue()
    assert "RejectSas()" in backend.commands
    assert phone.history[-1]["untrusted"] is True


def test_cache_mismatch_alarm_then_confirm(tmp_path):
    script = "press 5#\nwait alarm 5\ntrust\nwait verified 1\nquit\n"
    device = sim_device(tmp_path, script)
    backend = FakeCallBackend(cache_mismatch=True)
    run_with_fake_clock(device, P.Phone(dial_domain="d"), backend)
    assert device.exit_code == 0, device.err.getvalue()
    assert "PlayTone('alarm')" in backend.commands and "StopTone()" in backend.commands


def test_frames_are_written_only_when_the_display_changes(tmp_path):
    log = tmp_path / "log.jsonl"
    device = D.SimDevice(None, display_log=str(log), err=io.StringIO())
    phone = P.Phone()
    device.show(phone.state, phone.screen(0.0), 0.0)
    device.show(phone.state, phone.screen(0.5), 0.5)
    phone.handle(P.KeyPressed("7"), 1.0)
    device.show(phone.state, phone.screen(1.0), 1.0)
    device.close()
    frames = [json.loads(line) for line in log.read_text().splitlines()]
    assert frames == [
        {"t": 0.0, "state": "idle", "lines": ["Sotto", "Ready", "dial, # to call"]},
        {"t": 1.0, "state": "dialing", "lines": ["Dial", "7_", "# call  trust: del"]},
    ]


def test_a_device_without_a_script_never_finishes_by_itself():
    device = D.SimDevice(None, err=io.StringIO())
    assert device.poll(0.0) == [] and device.get_timer() is None and not device.finished


# --- the terminal ------------------------------------------------------------------------------------


class FakeTerminal:
    """Stands in for boards.drivers.sim.TerminalUi (no TTY in tests)."""

    def __init__(self, typed):
        self.fd_in = 99
        self.typed = typed
        self.drawn = []
        self.opened = self.closed = False

    def open(self):
        self.opened = True

    def close(self):
        self.closed = True

    def read_chars(self):
        typed, self.typed = self.typed, ""
        return typed

    def draw(self, state, screen):
        self.drawn.append(state)


def test_terminal_keys_become_phone_events():
    terminal = FakeTerminal("12#tThhx+-mu\x7fr\rz")
    device = D.SimDevice(None, terminal=terminal, err=io.StringIO())
    assert terminal.opened and device.fileno() == 99
    device.on_readable(0.0)
    events = [repr(e) for e in device.poll(0.0)]
    assert events == [
        "KeyPressed('1')",
        "KeyPressed('2')",
        "KeyPressed('#')",
        "TrustPressed(long=False)",
        "TrustPressed(long=True)",
        "Hook(off=True)",
        "Hook(off=False)",
        "KeyPressed('hangup')",
        "KeyPressed('volume_up')",
        "KeyPressed('volume_down')",
        "KeyPressed('menu')",
        "KeyPressed('mute')",
        "KeyPressed('back')",
        "KeyPressed('redial')",
        "KeyPressed('#')",
    ]
    terminal.typed = "q"
    device.on_readable(1.0)
    assert device.finished and device.exit_code == 0
    device.close()
    assert terminal.closed


def test_terminal_rendering_shows_the_sas_large_and_the_help():
    from boards.drivers import sim

    phone = P.Phone(dial_domain="d")
    for key in "1#":
        phone.handle(P.KeyPressed(key), 0.0)
    phone.handle(P.CallAnswered(), 0.1)
    phone.handle(P.CallSecure("ab3d"), 0.2)
    rows = sim.render_terminal(phone.state, phone.screen(0.2))
    assert "|        a b 3 d        |" in rows
    assert "state: secure" in rows
    block = "\u2588"
    # The first row of "ab3d" in the 5x7 font: a (blank), b (#....), 3 (#####), d (....#).
    assert "  " + " " * 6 + block + " " * 5 + block * 5 + " " + " " * 4 + block in rows
    assert rows[-1].startswith("keys: 0-9*#")


def test_open_device_for_the_sim_board(tmp_path):
    board = schema.load_board("sim")

    class NotATty(io.StringIO):
        def isatty(self):
            return False

    device = D.open_device(board, stdin=NotATty(), stdout=NotATty())
    assert isinstance(device, D.SimDevice) and device.terminal is None
    with pytest.raises(ConfigError):
        D.open_device(schema.load_board("pi4-oled"), script=str(tmp_path / "s"), gpio=FakeGPIO(), bus=FakeSMBus())


# --- a real board on strict fakes ---------------------------------------------------------------------


def test_hardware_device_on_the_pi4_board_with_strict_fakes():
    board = schema.load_board("pi4-oled")
    gpio = FakeGPIO()
    bus = FakeSMBus((0x3C,))
    device = D.open_device(board, gpio=gpio, bus=bus)
    assert gpio.mode == FakeGPIO.BCM
    phone = P.Phone(dial_domain="d")
    backend = FakeCallBackend()
    driver = D.PhoneDriver(phone, device, backend.dispatch)
    driver.start(0.0)
    now = 0.0

    def run_for(seconds):
        nonlocal now
        end = now + seconds
        while now < end:
            now = round(now + D.POLL_INTERVAL, 6)
            for event in backend.due(now):
                driver.feed(event, now)
            driver.tick(now)

    def press(row_pin, col_pin):
        gpio.press_key(row_pin, col_pin)
        run_for(0.05)
        gpio.release_key(row_pin, col_pin)
        run_for(0.05)

    press(5, 16)  # '2'
    press(19, 20)  # '#'
    assert backend.commands[0] == "Dial('sip:2@d')"
    run_for(0.5)
    assert phone.state == "secure"
    writes_before = len(bus.calls)
    gpio.hold_low(17)  # the trust button, short press
    run_for(0.1)
    gpio.release(17)
    run_for(0.1)
    assert phone.state == "verified"
    assert gpio.outputs(22)[-1] == 1  # the verified LED is on
    assert len(bus.calls) > writes_before  # the display was redrawn
    gpio.hold_low(27)  # lift the handset, then put it down: hook on hangs up
    run_for(0.2)
    gpio.release(27)
    run_for(0.2)
    assert phone.state == "ended"
    assert gpio.outputs(22)[-1] == 0
    device.close()
    assert gpio.calls[-1] == ("cleanup", None)


def test_hardware_device_sounds_the_buzzer_on_alarm():
    board = schema.load_board("pi4-oled")
    gpio = FakeGPIO()
    device = D.open_device(board, gpio=gpio, bus=FakeSMBus((0x3C,)))
    device.on_command(P.PlayTone("alarm"), 0.0)
    assert ("PWM", 18, 2500) in gpio.calls
    device.on_command(P.StopTone(), 1.0)
    assert gpio.calls[-1] == ("PWM.ChangeDutyCycle", 18, 0.0)


# --- history store and configuration --------------------------------------------------------------------


def test_history_store_round_trip_and_damage(tmp_path):
    store = H.HistoryStore(str(tmp_path / "data"))
    assert store.load() == []
    entries = [
        {
            "dir": "out",
            "remote": "sip:a@b",
            "duration": 5,
            "secure": True,
            "verified": False,
            "peer_zid": PEER_ZID,
            "reason": "hung up",
            "junk": [1, 2],
        }
    ] * 60
    store.save(entries)
    loaded = store.load()
    assert len(loaded) == 50
    assert loaded[0] == {
        "dir": "out",
        "remote": "sip:a@b",
        "duration": 5,
        "secure": True,
        "verified": False,
        "peer_zid": PEER_ZID,
        "reason": "hung up",
    }
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    (tmp_path / "data" / "history.json").write_bytes(b"{not json")
    assert store.load() == []
    (tmp_path / "data" / "history.json").write_text('[{"dir": 5, "duration": true, "remote": "sip:x@y"}, 7]')
    assert store.load() == [{"remote": "sip:x@y"}]


def test_the_phone_saves_its_history_through_the_store(tmp_path):
    store = H.HistoryStore(str(tmp_path))
    device = sim_device(tmp_path, "press 9#\nwait secure 5\nhangup\nwait ended 1\nquit\n")
    phone = P.Phone(dial_domain="d", history=store.load())
    backend = FakeCallBackend()
    dispatch = backend.dispatch

    def save_history(command, now):
        if isinstance(command, P.SaveHistory):
            store.save(command.entries)
        dispatch(command, now)

    backend.dispatch = save_history
    run_with_fake_clock(device, phone, backend)
    assert [e["remote"] for e in store.load()] == ["sip:9@d"]
    assert P.Phone(history=store.load()).last_dialed == "sip:9@d"


def test_phone_from_config():
    from firmware import config as configuration

    config = configuration.validate(
        {
            "account": {"uri": "sip:alice@example.org"},
            "dial": {"speed_dial": {"*43": "sip:echo@127.0.0.1:5070"}},
            "zrtp": {"secure_only": True},
        }
    )
    phone = D.phone_from_config(config)
    assert phone.dial_domain == "example.org" and phone.secure_only and phone.identity == "sip:alice@example.org"
    assert phone.speed_dial == [("*43", "sip:echo@127.0.0.1:5070")]
    assert D.phone_from_config(config, dial_domain="127.0.0.1:5072").dial_domain == "127.0.0.1:5072"
    default = D.phone_from_config(configuration.validate({}))
    assert default.dial_domain is None and not default.secure_only


def run_device(driver, gpio, start, seconds):
    now = start
    while now < start + seconds:
        now = round(now + D.POLL_INTERVAL, 6)
        driver.tick(now)
    return now


def test_hardware_device_with_a_character_lcd_and_a_4x4_keypad():
    board = schema.load_board("pizero2")  # SH1106 OLED, 4x4 keypad with letters
    gpio = FakeGPIO()
    device = D.open_device(board, gpio=gpio, bus=FakeSMBus((0x3C,)))
    phone = P.Phone()
    driver = D.PhoneDriver(phone, device, lambda command, now: None)
    driver.start(0.0)
    gpio.press_key(5, 21)  # row 1, column 4: 'A' = menu
    now = run_device(driver, gpio, 0.0, 0.1)
    assert phone.state == "menu"
    gpio.release_key(5, 21)
    now = run_device(driver, gpio, now, 0.1)
    device.close()

    board = schema.load_board("pi3-lcd")
    gpio = FakeGPIO()
    bus = FakeSMBus((0x27,))
    device = D.open_device(board, gpio=gpio, bus=bus)
    phone = P.Phone(dial_domain="d")
    commands = []
    driver = D.PhoneDriver(phone, device, lambda command, now: commands.append(repr(command)))
    driver.start(0.0)
    assert device.display.device is not None
    shown = list(device.display._shown)
    assert shown == ["Sotto           ", "Ready           "]
    gpio.press_key(6, 12)  # '4'
    now = run_device(driver, gpio, 0.0, 0.1)
    assert device.display._shown == ["Dial            ", "4_              "]
    gpio.release_key(6, 12)
    device.close()


def test_hardware_device_named_buttons_are_phone_keys():
    board = schema.load_board("pi4-oled")
    gpio = FakeGPIO()
    device = D.open_device(board, gpio=gpio, bus=FakeSMBus((0x3C,)))
    phone = P.Phone(dial_domain="d")
    commands = []
    driver = D.PhoneDriver(phone, device, lambda command, now: commands.append(repr(command)))
    driver.start(0.0)
    gpio.press_key(5, 12)  # '1'
    now = run_device(driver, gpio, 0.0, 0.1)
    gpio.release_key(5, 12)
    now = run_device(driver, gpio, now, 0.1)
    assert phone.state == "dialing"
    gpio.hold_low(23)  # the hang-up button
    now = run_device(driver, gpio, now, 0.1)
    gpio.release(23)
    now = run_device(driver, gpio, now, 0.1)
    assert phone.state == "idle"
    device.close()


def test_import_gpio_refuses_a_board_without_gpio():
    from boards.drivers.gpio import import_gpio

    with pytest.raises(ConfigError) as info:
        import_gpio("none")
    assert info.value.key == "gpio"


def test_a_display_that_does_not_answer_is_one_clear_error():
    board = schema.load_board("pi4-oled")
    with pytest.raises(ConfigError) as info:
        D.open_device(board, gpio=FakeGPIO(), bus=FakeSMBus(devices=(0x3D,)))
    assert info.value.key == "display.address"
    assert "a ssd1306 answering at 0x3C on I2C bus 1" in info.value.expected
