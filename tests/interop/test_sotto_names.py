"""Contact names typed on the keypad (multi-tap, issue 15) on `sotto run --board sim`, driven by sim scripts:
a new contact named and numbered from the menu, a rename, and "save number" after a real call with the
built-in echo line. The display log and the contacts.json the phone wrote are the evidence. Free ports
only (no flock needed)."""

import json

import pytest

from tests.interop import sotto
from tests.interop.test_sotto_two_calls import first

pytestmark = pytest.mark.interop


def run_script(tmp_path, script, timeout=60, contacts=None):
    home = tmp_path / "home"
    if contacts is not None:
        data = home / "sotto"
        data.mkdir(parents=True)
        (data / "contacts.json").write_text(json.dumps(contacts, ensure_ascii=False), encoding="utf-8")
    path = tmp_path / "script.txt"
    path.write_text(script)
    log = tmp_path / "display.jsonl"
    port = sotto.free_udp_port()
    args = ["run", "--board", "sim", "--listen", "127.0.0.1:{}".format(port), "--dial-domain", "pbx.example"]
    args += ["--script", str(path), "--display-log", str(log)]
    rc, _summary, err = sotto.run(args, home, timeout=timeout)
    assert rc == 0, err
    frames = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    saved = json.loads((home / "sotto" / "contacts.json").read_text(encoding="utf-8"))
    return frames, saved, err


NEW_CONTACT = """\
wait idle 5
press **#5
sleep 0.2
press 1
sleep 0.2
// M (6), a (2), pause: the same key again is a new letter after the timeout, then x (9 twice) and a space
press 6
sleep 0.2
press 2
sleep 1.5
press 2
sleep 0.2
press 99
sleep 0.2
press 0
sleep 1.5
// O: a capital after the space; the digit 1 cycles punctuation and then "1": . , - ' @ & / 1
press 666
sleep 1.5
press 1111
sleep 0.2
press #
sleep 0.2
press 2001#
sleep 0.5
quit
"""


def test_a_new_contact_typed_by_multi_tap_is_saved(tmp_path):
    frames, saved, _err = run_script(tmp_path, NEW_CONTACT)
    assert saved == [{"name": "Maax O'", "uri": "sip:2001@pbx.example"}]
    typing = [f["lines"] for f in frames if f["lines"][0] == "New contact: name"]
    assert ["New contact: name", "M", "[M]NO6mno", "# save  * erase"] in typing  # the pending letter shown
    assert ["New contact: name", "Maax O_", "6/32 letters", "# save  * erase"] in typing  # O committed by its timeout
    assert ["New contact: name", "Maax O'", ".,-[']@&/1", "# save  * erase"] in typing  # '#' commits it
    contacts = first(frames, "menu", [f["lines"][0] for f in frames].index("New contact: number"))
    after = [f["lines"] for f in frames[contacts:] if f["lines"][0] == "Contacts 1/1"]
    assert after and after[-1][1] == "? Maax O'" and after[-1][2] == "2001@pbx.example"


RENAME = """\
wait idle 5
press **#5
sleep 0.2
press 8
sleep 0.2
press 4
sleep 0.2
// erase "Ŝtefan", keep "Zoë ", type "Al"
press ******
sleep 0.2
press 2
sleep 0.2
press 555
sleep 0.2
press #
sleep 0.5
quit
"""


def test_a_unicode_contact_renamed_on_the_keypad(tmp_path):
    book = [{"name": "Adam", "uri": "sip:adam@a.example"}, {"name": "Zoë Ŝtefan", "uri": "sip:zoe@z.example"}]
    frames, saved, _err = run_script(tmp_path, RENAME, contacts=book)
    assert saved == [{"name": "Adam", "uri": "sip:adam@a.example"}, {"name": "Zoë Al", "uri": "sip:zoe@z.example"}]
    editing = [f["lines"] for f in frames if f["lines"][0] == "Contact name"]
    assert editing[0][1] == "Zoë Ŝtefan_" and ["Contact name", "Zoë _", "4/32 letters", "# save  * erase"] in editing


SAVE_NUMBER = """\
wait idle 5
press *43#
wait secure 10
sleep 0.5
hangup
wait ended 5
key menu
wait menu 2
sleep 0.2
// the user part "echo" offered; erase it and type "Echo": 33 222 44 666, then the trust button saves
press ****
sleep 0.2
press 33
sleep 0.2
press 222
sleep 0.2
press 44
sleep 0.2
press 666
sleep 0.2
trust
sleep 0.5
quit
"""


def test_save_number_after_a_call_with_the_echo_line(tmp_path):
    frames, saved, _err = run_script(tmp_path, SAVE_NUMBER)
    assert len(saved) == 1 and saved[0]["name"] == "Echo" and saved[0]["uri"].startswith("sip:echo@127.0.0.1:")
    offered = [f for f in frames if f["lines"][0] == "Save number: name"]
    assert offered[0]["lines"][1] == "echo_" and offered[0]["state"] == "menu"
    assert frames[frames.index(offered[0]) - 1]["state"] == "ended"  # the menu key on the ended screen
    # "k": the call left a retained secret of the echo line in the ZRTP cache (a known key)
    assert [f["lines"] for f in frames if f["lines"][0] == "Contacts 1/1"][-1][1] == "k Echo"
