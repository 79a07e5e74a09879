"""The simulated board's parts: the terminal on a real pseudo-terminal, the display log, PNG frames."""

import json
import os
import pty
import select
import termios

from PIL import Image

from boards.drivers import sim
from firmware import phone as P
from firmware import screens


def read_until(fd, marker, timeout=5.0):
    text = ""
    while marker not in text:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            break
        text += os.read(fd, 4096).decode()
    return text


def test_terminal_ui_on_a_pty_reads_keys_in_cbreak_mode_and_restores_the_terminal():
    master, slave = pty.openpty()
    out = os.fdopen(os.dup(slave), "w")
    try:
        before = termios.tcgetattr(slave)
        ui = sim.TerminalUi(slave, out)
        ui.open()
        assert not termios.tcgetattr(slave)[3] & termios.ICANON  # keys arrive without Enter
        os.write(master, b"12t")
        assert ui.read_chars() == "12t"
        ui.draw("secure", screens.Screen("Compare SAS", ["read it aloud,"], big="ab3d"))
        drawn = read_until(master, "state: secure")
        assert "\x1b[H" in drawn and "a b 3 d" in drawn and "state: secure" in drawn
        ui.close()
        assert termios.tcgetattr(slave)[3] == before[3]
    finally:
        out.close()
        os.close(master)
        os.close(slave)


def test_terminal_input_mapping():
    assert repr(sim.terminal_input("7")) == "KeyPressed('7')"
    assert repr(sim.terminal_input("T")) == "TrustPressed(long=True)"
    assert sim.terminal_input("q") == sim.QUIT
    assert sim.terminal_input("h") == sim.HOOK_TOGGLE
    assert sim.terminal_input("Z") is None


def test_display_log_is_json_lines(tmp_path):
    log = sim.DisplayLog(str(tmp_path / "d.jsonl"))
    log.write(0.12345, "idle", ["Sotto", "Ready"])
    log.write(1.5, "dialing", ["Dial", "1_"])
    log.close()
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"t": 0.123, "state": "idle", "lines": ["Sotto", "Ready"]},
        {"t": 1.5, "state": "dialing", "lines": ["Dial", "1_"]},
    ]


def test_png_frames_are_real_128x64_images_of_the_framebuffer(tmp_path):
    writer = sim.PngWriter(str(tmp_path / "png"))
    phone = P.Phone()
    screen = phone.screen(0.0)
    path = writer.write(screens.render_oled(screen))
    assert path.endswith("frame-00001.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (128, 64) and image.mode == "1"
        fb = screens.render_oled(screen)
        for y in range(64):
            for x in range(128):
                assert bool(image.getpixel((x, y))) == screens.get_pixel(fb, x, y)
