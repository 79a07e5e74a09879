"""The desk settings and the address book in the data directory, and the contacts file import (issue 15)."""

import json
import logging
import os

from firmware.runtime.desk_store import DeskStore, parse_contacts_csv


def test_settings_round_trip_and_damage(tmp_path, caplog):
    store = DeskStore(str(tmp_path / "data"))
    assert store.load_settings() is None
    store.save_settings({"dnd": True, "forward_always": "sip:a@b", "forward_busy": "", "forward_no_answer": ""})
    assert os.stat(store.settings_path).st_mode & 0o777 == 0o600
    assert store.load_settings()["dnd"] is True
    assert store.load_settings()["forward_always"] == "sip:a@b"
    with open(store.settings_path, "w") as f:
        json.dump({"dnd": "maybe", "forward_busy": "sip:x@y"}, f)
    with caplog.at_level(logging.WARNING):
        loaded = store.load_settings()
    assert loaded["dnd"] is False and loaded["forward_busy"] == "sip:x@y"
    assert "ignoring a bad dnd" in caplog.text
    with open(store.settings_path, "wb") as f:
        f.write(b"\xff{not json")
    assert store.load_settings() is None  # logged, defaults


def test_contacts_file_import_bad_lines_one_message_each(tmp_path, caplog):
    store = DeskStore(str(tmp_path / "data"))
    source = tmp_path / "sotto-contacts.csv"
    source.write_text(
        "# name,uri\n"
        "Alice Martin,sip:alice@example.org\n"
        '"Bob, the builder",sips:bob@example.org\n'
        "no comma here\n"
        ",sip:nameless@example.org\n"
        "Carol,tel:+123\n"
        "\n"
        "Dave,sip:dave@example.org;transport=tcp\n",
        encoding="utf-8",
    )
    contacts = []
    with caplog.at_level(logging.WARNING):
        assert store.import_contacts(str(source), contacts) == 3
    assert [c["name"] for c in contacts] == ["Alice Martin", "Bob, the builder", "Dave"]
    bad = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(bad) == 3
    assert any("sotto-contacts.csv:4: expected NAME,URI" in m for m in bad)
    assert any(":5: a name of 1 to 32" in m for m in bad)
    assert any(":6: a sip: or sips: URI" in m for m in bad)
    assert store.load_contacts() == contacts
    # the same file again: nothing to do (a contact deleted from the menu stays deleted)
    del contacts[0]
    store.save_contacts(contacts)
    assert store.import_contacts(str(source), contacts) == 0
    assert len(store.load_contacts()) == 2
    # a changed file is imported (merged by address)
    source.write_text("Alice,sip:alice@example.org\n", encoding="utf-8")
    assert store.import_contacts(str(source), contacts) == 1
    assert len(store.load_contacts()) == 3


def test_contacts_file_that_is_not_a_file_or_too_big(tmp_path, caplog):
    store = DeskStore(str(tmp_path / "data"))
    with caplog.at_level(logging.WARNING):
        assert store.import_contacts(str(tmp_path), []) == 0
        big = tmp_path / "big.csv"
        big.write_bytes(b"A,sip:a@b\n" * 30000)
        assert store.import_contacts(str(big), []) == 0
        latin = tmp_path / "latin.csv"
        latin.write_bytes(b"Jos\xe9,sip:jose@b\n")
        assert store.import_contacts(str(latin), []) == 0
    assert store.import_contacts("", []) == 0
    assert store.import_contacts(str(tmp_path / "missing.csv"), []) == 0
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 3


def test_parse_contacts_csv_rows():
    rows = parse_contacts_csv("A,sip:a@b\n# c\n")
    assert rows == [("A", "sip:a@b", None), (None, None, None), (None, None, None)]
