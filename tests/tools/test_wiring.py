"""Wiring tables from the board files, and tools/README.md kept in step with them."""

import pathlib

from boards import schema
from tools import wiring

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_table_has_one_row_per_wiring_row():
    board = schema.load_board("pi4-oled")
    lines = wiring.wiring_table(board).splitlines()
    rows = schema.wiring(board)
    assert lines[0] == "| part | signal | GPIO (BCM) | header pin |"
    assert len(lines) == 2 + len(rows)
    for line, (part, signal, bcm, header) in zip(lines[2:], rows):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0] == part and cells[1] == signal
        assert cells[2] == ("—" if bcm is None else "GPIO {}".format(bcm))
        assert cells[3] == ("—" if header is None else str(header))
    assert "| trust button | signal (to GND when pressed) | GPIO 17 | 11 |" in lines


def test_parts_list_follows_the_board():
    lcd = wiring.parts_list(schema.load_board("pi3-lcd"))
    assert "HD44780" in lcd and "16x2" in lcd and "0x27" in lcd and "4x3 matrix keypad (7 wires)" in lcd
    zero = wiring.parts_list(schema.load_board("pizero2"))
    assert "SH1106" in zero and "4x4 matrix keypad (8 wires)" in zero and "buzzer" not in zero


def test_simulated_board_is_not_in_the_generated_tables():
    names = [board.name for board in wiring.hardware_boards()]
    assert "sim" not in names and "pi4-oled" in names


def test_readme_tables_match_the_board_files():
    # When this fails after a board file changed: python -m tools.wiring --update tools/README.md
    assert wiring.main(["--check", str(REPO / "tools" / "README.md")]) == 0


def test_update_rewrites_only_the_generated_part(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n\n{}\nstale\n{}\n\noutro\n".format(wiring.BEGIN, wiring.END))
    assert wiring.main(["--check", str(doc)]) == 1
    assert wiring.main(["--update", str(doc), "pi5"]) == 0
    text = doc.read_text()
    assert text.startswith("intro\n\n" + wiring.BEGIN) and text.endswith(wiring.END + "\n\noutro\n")
    assert "stale" not in text and "### `pi5`: Raspberry Pi 5" in text and "rpi-lgpio" in text
    assert wiring.main(["--update", str(doc), "pi5"]) == 0
    assert doc.read_text() == text


def test_errors(tmp_path, capsys):
    assert wiring.main(["no-such-board"]) == 2
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert wiring.main(["--check", str(plain)]) == 2
    assert "no generated-wiring markers" in capsys.readouterr().err
