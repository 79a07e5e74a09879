"""`sotto run --board sim` provisioned from the server (issue 15): the real `sotto` command, the real
`tools.provision serve` (HTTPS, self-signed certificate pinned as provisioning.ca), kamailio with its
subscriber and location tables in SQLite.

- A badly signed file: the display shows "Provisioning" with why, the journal says it, and the phone
  keeps running on its configuration.
- A good one: the phone registers with the provisioned account (its password from the server). The server
  then moves it to another account (serial 2), SIGHUP asks for a round at once, and at the idle moment
  the phone unregisters the old account and registers the new one; the idle screen shows it.

Ports: kamailio 18760; sotto and the provisioning server take free ports.
"""

import json
import os
import signal
import sqlite3

import pytest

from firmware.provisioning.document import mac_name
from tests.fixtures.provisioning import Server, keygen, provision
from tests.interop import sotto
from tests.interop.sip.driver import Kamailio
from tests.waiting import wait_until

pytestmark = pytest.mark.interop

KAMAILIO_PORT = 18760
MAC = "02:00:5e:20:00:01"


def _local_config(tmp_path, server, public, listen):
    path = tmp_path / "sotto.toml"
    path.write_text(
        '[sip]\nlisten = "{}"\n[provisioning]\nurl = "{}"\nca = "{}"\npublic_key = "{}"\nmac = "{}"\n'.format(
            listen, server.url, server.ca, public, MAC
        )
    )
    return path


def _frames(log):
    if not os.path.exists(log):
        return []
    return [json.loads(line) for line in open(log).read().splitlines() if line.strip()]


def test_a_badly_signed_file_is_shown_and_the_phone_keeps_running(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    private, public = keygen(tmp_path)
    (served / mac_name(MAC)).write_text('serial = 1\n[account]\nuri = "sip:desk@127.0.0.1"\npassword = "x"\n')
    provision("sign", served, "--key", private)
    (served / mac_name(MAC)).write_text('serial = 1\n[account]\nuri = "sip:evil@127.0.0.1"\npassword = "x"\n')
    server = Server(served, tmp_path)
    try:
        port = sotto.free_udp_port()
        config = _local_config(tmp_path, server, public, "127.0.0.1:{}".format(port))
        script = tmp_path / "script.txt"
        script.write_text("wait error 30\nquit\n")
        log = tmp_path / "display.jsonl"
        args = ["run", "--board", "sim", "--config", config, "--script", script, "--display-log", log]
        rc, _summary, err = sotto.run([str(a) for a in args], tmp_path / "home", timeout=90)
        assert rc == 0, err[-3000:]
        errors = [f for f in _frames(log) if f["state"] == "error"]
        assert errors, _frames(log)
        text = " ".join(errors[0]["lines"])
        assert "Provisioning" in text and "config kept" in text, errors[0]
        journal = [line for line in err.splitlines() if "bad signature" in line]
        assert journal and "sotto.provisioning" in journal[0], err[-3000:]
        assert "evil" not in " ".join(" ".join(f["lines"]) for f in _frames(log))  # not applied
    finally:
        server.stop()


def test_provisioned_account_registers_then_moves_at_idle_after_sighup(tmp_path):
    users = [("desk1", "pw-one-" + os.urandom(4).hex()), ("desk2", "pw-two-" + os.urandom(4).hex())]
    (tmp_path / "kamailio").mkdir()
    kamailio = Kamailio(tmp_path / "kamailio", KAMAILIO_PORT, users, database="sqlite")
    served = tmp_path / "served"
    served.mkdir()
    private, public = keygen(tmp_path)
    mine = served / mac_name(MAC)

    def publish(serial, user, password):
        mine.write_text(
            'serial = {}\n[account]\nuri = "sip:{}@127.0.0.1"\npassword = "{}"\nproxy = "127.0.0.1:{}"\n'.format(
                serial, user, password, KAMAILIO_PORT
            )
        )
        provision("sign", served, "--key", private)

    def bound():
        with sqlite3.connect(str(kamailio.db_path)) as db:
            return {row[0] for row in db.execute("SELECT username FROM location")}

    publish(1, *users[0])
    server = Server(served, tmp_path)
    try:
        port = sotto.free_udp_port()
        config = _local_config(tmp_path, server, public, "127.0.0.1:{}".format(port))
        script = tmp_path / "script.txt"
        script.write_text("sleep 80\nquit\n")
        log = tmp_path / "display.jsonl"
        args = ["run", "--board", "sim", "--config", config, "--script", script, "--display-log", log]
        with sotto.running([str(a) for a in args], tmp_path / "home") as phone:

            def alive():
                if phone.poll() is not None:
                    raise AssertionError("sotto exited: " + phone.stderr.read()[-3000:])

            wait_until(lambda: bound() == {"desk1"}, 40, "desk1 registered from its provisioned file", alive)
            publish(2, *users[1])
            phone.send_signal(signal.SIGHUP)
            wait_until(lambda: bound() == {"desk2"}, 40, "desk1 unregistered, desk2 registered", alive)
            wait_until(
                lambda: any("desk2" in " ".join(f["lines"]) for f in _frames(log) if f["state"] == "idle"),
                10,
                "the idle screen showing desk2",
                alive,
            )
            phone.send_signal(signal.SIGTERM)
            rc, _summary, err = sotto.finish(phone, timeout=20)
        assert rc == 0, err[-3000:]
        assert "configuration applied (account sip:desk2@127.0.0.1)" in err
        assert users[1][1] not in err and users[0][1] not in err  # never the password in the journal
    finally:
        server.stop()
        kamailio.stop()
