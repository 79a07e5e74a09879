"""Matrix keypad scanning against the strict RPi.GPIO fake."""

import pytest

from boards.drivers import gpio as gpio_setup
from boards.drivers.keypad import MatrixKeypad
from tests.boards.fakes import FakeGPIO

ROWS = [5, 6, 13, 19]
COLS = [12, 16, 20]
KEYS = [["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"], ["*", "0", "#"]]


def make():
    gpio = FakeGPIO()
    gpio_setup.prepare(gpio)
    keypad = MatrixKeypad(gpio, ROWS, COLS, KEYS, debounce=0.02)
    keypad.setup()
    return gpio, keypad


def test_setup_drives_rows_high_and_pulls_columns_up():
    gpio, _ = make()
    assert gpio.calls[:2] == [("setwarnings", False), ("setmode", FakeGPIO.BCM)]
    setups = [c for c in gpio.calls if c[0] == "setup"]
    assert setups == [("setup", pin, FakeGPIO.OUT, FakeGPIO.PUD_OFF, FakeGPIO.HIGH) for pin in ROWS] + [
        ("setup", pin, FakeGPIO.IN, FakeGPIO.PUD_UP, -1) for pin in COLS
    ]


def test_construction_does_no_io_and_setup_needs_a_mode():
    gpio = FakeGPIO()
    keypad = MatrixKeypad(gpio, ROWS, COLS, KEYS)
    assert gpio.calls == []
    with pytest.raises(RuntimeError, match="setmode"):
        keypad.setup()


def test_a_scan_drives_one_row_low_at_a_time_and_restores_it():
    gpio, keypad = make()
    gpio.calls.clear()
    assert keypad.scan() == []
    outputs = [c for c in gpio.calls if c[0] == "output"]
    assert outputs == [c for pin in ROWS for c in (("output", pin, 0), ("output", pin, 1))]
    gpio.press_key(13, 16)
    assert keypad.scan() == [(2, 1)]


def test_a_key_is_reported_once_after_the_debounce_time():
    gpio, keypad = make()
    gpio.press_key(19, 20)  # '#'
    assert keypad.poll(0.000) == []
    assert keypad.poll(0.010) == []
    assert keypad.poll(0.025) == ["#"]
    assert keypad.poll(0.500) == []  # held: not repeated
    gpio.release_key(19, 20)
    assert keypad.poll(0.510) == []
    assert keypad.poll(0.540) == []
    gpio.press_key(5, 12)
    keypad.poll(0.600)
    assert keypad.poll(0.630) == ["1"]


def test_bounces_shorter_than_the_debounce_time_are_ignored():
    gpio, keypad = make()
    for i in range(10):
        if i % 2 == 0:
            gpio.press_key(6, 16)
        else:
            gpio.release_key(6, 16)
        assert keypad.poll(i * 0.005) == []
    gpio.release_key(6, 16)
    assert keypad.poll(0.1) == []


def test_two_keys_at_once_report_nothing_until_all_are_released():
    gpio, keypad = make()
    gpio.press_key(5, 12)
    gpio.press_key(6, 16)
    keypad.poll(0.0)
    assert keypad.poll(0.05) == []
    gpio.release_key(6, 16)  # '1' is still held after the chord: not reported
    keypad.poll(0.1)
    assert keypad.poll(0.15) == []
    gpio.release_key(5, 12)
    keypad.poll(0.2)
    keypad.poll(0.25)
    gpio.press_key(6, 16)
    keypad.poll(0.3)
    assert keypad.poll(0.35) == ["5"]


def test_mismatched_layout_is_refused():
    with pytest.raises(ValueError):
        MatrixKeypad(FakeGPIO(), ROWS, COLS, KEYS[:3])


def test_the_first_poll_with_nothing_pressed_is_quiet():
    gpio, keypad = make()
    assert keypad.poll(0.0) == []
    assert keypad.poll(1.0) == []
