"""Buttons (short / long press), the hook switch, LEDs and the buzzer against the strict RPi.GPIO fake."""

import pytest

from boards.drivers import gpio as gpio_setup
from boards.drivers.buttons import LONG, SHORT, Button, HookSwitch
from boards.drivers.buzzer import Buzzer
from boards.drivers.leds import Led, verified_led_mode
from tests.boards.fakes import FakeGPIO


def prepared():
    gpio = FakeGPIO()
    gpio_setup.prepare(gpio)
    return gpio


def test_button_setup_uses_the_pull_up():
    gpio = prepared()
    Button(gpio, 17).setup()
    assert gpio.calls[-1] == ("setup", 17, FakeGPIO.IN, FakeGPIO.PUD_UP, -1)
    Button(gpio, 4, active_low=False).setup()
    assert gpio.calls[-1] == ("setup", 4, FakeGPIO.IN, FakeGPIO.PUD_DOWN, -1)


def test_short_press_is_reported_on_release():
    gpio = prepared()
    button = Button(gpio, 17)
    button.setup()
    assert button.poll(0.0) is None
    gpio.hold_low(17)
    assert button.poll(0.10) is None
    assert button.poll(0.13) is None  # debounced press
    assert button.poll(1.50) is None
    gpio.release(17)
    assert button.poll(1.60) is None
    assert button.poll(1.63) == SHORT
    assert button.poll(1.70) is None


def test_long_press_is_reported_after_two_seconds_while_held_and_the_release_is_ignored():
    gpio = prepared()
    button = Button(gpio, 17)
    button.setup()
    gpio.hold_low(17)
    button.poll(0.0)
    button.poll(0.03)
    assert button.poll(1.99) is None
    assert button.poll(2.04) == LONG
    assert button.poll(3.0) is None
    gpio.release(17)
    button.poll(3.1)
    assert button.poll(3.2) is None


def test_contact_bounce_is_not_a_press():
    gpio = prepared()
    button = Button(gpio, 17, debounce=0.02)
    button.setup()
    results = []
    for i in range(8):
        (gpio.hold_low if i % 2 == 0 else gpio.release)(17)
        results.append(button.poll(i * 0.005))
    gpio.release(17)
    results.append(button.poll(0.1))
    results.append(button.poll(0.2))
    assert results == [None] * 10


def test_hook_switch_reports_lift_and_put_down():
    gpio = prepared()
    hook = HookSwitch(gpio, 27)
    hook.setup()
    assert hook.poll(0.0) is None and not hook.off_hook
    gpio.hold_low(27)
    assert hook.poll(0.1) is None
    assert hook.poll(0.16) is True
    assert hook.off_hook
    gpio.release(27)
    hook.poll(1.0)
    assert hook.poll(1.06) is False


def test_input_before_setup_is_refused_by_the_fake_like_the_real_module():
    gpio = prepared()
    with pytest.raises(RuntimeError, match="setup"):
        Button(gpio, 17).poll(0.0)


def test_led_on_off_and_blinking():
    gpio = prepared()
    led = Led(gpio, 22)
    led.setup()
    assert gpio.calls[-1] == ("setup", 22, FakeGPIO.OUT, FakeGPIO.PUD_OFF, FakeGPIO.LOW)
    led.set(verified_led_mode("verified"), 0.0)
    assert gpio.outputs(22) == [1]
    led.set(verified_led_mode("secure"), 1.0)
    assert gpio.outputs(22) == [1, 0]
    led.set(verified_led_mode("alarm"), 2.0)
    assert led.next_change(2.0) == 2.25
    for t in (2.1, 2.3, 2.4, 2.6, 2.8):
        led.update(t)
    assert gpio.outputs(22) == [1, 0, 1, 0, 1, 0]
    with pytest.raises(ValueError):
        led.set("strobe", 3.0)


def test_led_active_low():
    gpio = prepared()
    led = Led(gpio, 22, active_high=False)
    led.setup()
    assert gpio.calls[-1] == ("setup", 22, FakeGPIO.OUT, FakeGPIO.PUD_OFF, FakeGPIO.HIGH)
    led.set("on", 0.0)
    assert gpio.outputs(22) == [0]


def test_verified_led_mode_per_state():
    assert [verified_led_mode(s) for s in ("idle", "secure", "verified", "alarm")] == ["off", "off", "on", "blink"]


def test_buzzer_plays_patterns_with_one_pwm_object():
    gpio = prepared()
    buzzer = Buzzer(gpio, 18)
    buzzer.setup()
    buzzer.play("alarm", 0.0)
    assert ("PWM", 18, 2500) in gpio.calls
    assert gpio.calls[-1] == ("PWM.start", 18, 50.0)
    buzzer.update(0.2)
    assert gpio.calls[-1] == ("PWM.ChangeFrequency", 18, 1500)
    buzzer.stop()
    assert gpio.calls[-1] == ("PWM.ChangeDutyCycle", 18, 0.0)
    buzzer.play("ring", 10.0)
    assert gpio.calls[-2:] == [("PWM.ChangeDutyCycle", 18, 50.0), ("PWM.ChangeFrequency", 18, 1000)]
    buzzer.update(10.5)
    assert gpio.calls[-1] == ("PWM.ChangeDutyCycle", 18, 0.0)
    buzzer.close()
    assert gpio.calls[-1] == ("PWM.stop", 18)
    with pytest.raises(ValueError):
        buzzer.play("fanfare", 11.0)


def test_pwm_needs_an_output_pin():
    gpio = prepared()
    with pytest.raises(RuntimeError, match="output"):
        Buzzer(gpio, 18).play("ring", 0.0)
