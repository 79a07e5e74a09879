"""A fleet (issue 15): 20 phones in ONE process (tools/fleet.py: 20 Endpoints and their calls on one runtime
Loop), each provisioned from the server (`python -m tools.provision serve`, HTTPS, Ed25519-signed files:
its own <mac>.toml with its account and password, and common.toml with the proxy and the media
settings), registering to kamailio whose subscriber and location tables are in SQLite (Debian's
kamailio-sqlite-modules, auth_db + usrloc db_mode 1), then calling each other pairwise (10 calls at once)
through kamailio with rtpengine relaying every call's media. Every call must go secure (ZRTP, secure_only)
with an equal SAS on both ends and carry authentic SRTP both ways.

Figures printed (never asserted: the machine is shared): setup latency (INVITE to both ends secure)
distribution, CPU per call while 10 calls run, CPU per call set-up.

Ports: kamailio 18560, rtpengine ng 18562, media 18600-18699; the phones and the provisioning server
take free loopback ports.
"""

import os
import sqlite3

import pytest

from firmware.provisioning.document import mac_name
from firmware.runtime.endpoint import _bind_udp
from firmware.runtime.loop import Loop
from tests.fixtures.provisioning import Server, keygen, provision
from tests.interop.carrier import figures
from tests.interop.carrier.stack import Carrier
from tools.fleet import CpuMeter, Fleet, distribution, local_data, setup_latencies

pytestmark = pytest.mark.interop

PHONES = 20
KAMAILIO_PORT = 18560
MEDIA_PORTS = 18600
MEDIA_SECONDS = 3.0


def _free_sip_port():
    probe = _bind_udp("127.0.0.1", 0, "SIP")
    port = probe.getsockname()[1]
    probe.close()
    return port


def _office(tmp_path, proxy, users):
    """The served directory: common.toml and one <mac>.toml per phone, signed. Returns (macs, public key)."""
    served = tmp_path / "served"
    served.mkdir()
    private, public = keygen(tmp_path)
    (served / "common.toml").write_text(
        "serial = 1\n"
        '[account]\nproxy = "{}"\n'
        '[media]\ncodecs = ["PCMU"]\nencryption = "zrtp"\n'
        "[zrtp]\nsecure_only = true\n".format(proxy)
    )
    macs = []
    for index, (user, password) in enumerate(users):
        mac = "02:00:5e:10:00:{:02x}".format(index)  # locally administered addresses
        macs.append(mac)
        (served / mac_name(mac)).write_text(
            'serial = 1\n[account]\nuri = "sip:{}@127.0.0.1"\npassword = "{}"\n'.format(user, password)
        )
    provision("sign", served, "--key", private)
    return served, macs, public


def test_twenty_provisioned_phones_call_each_other_pairwise_secure(tmp_path):
    users = [("desk{:02d}".format(i), "pw-{}".format(os.urandom(6).hex())) for i in range(PHONES)]
    names = [user for user, _ in users]
    with Carrier(tmp_path, KAMAILIO_PORT, users, media_ports=MEDIA_PORTS, database="sqlite") as carrier:
        served, macs, public = _office(tmp_path, carrier.proxy, users)
        server = Server(served, tmp_path)
        loop = Loop()
        fleet = Fleet(loop)
        try:
            for name, mac in zip(names, macs):
                provisioning = {"url": server.url, "ca": server.ca, "public_key": public, "mac": mac}
                listen = "127.0.0.1:{}".format(_free_sip_port())
                fleet.add(name, local_data(name, listen, str(tmp_path / "phones" / name), provisioning))
            assert fleet.provision(timeout=60.0), "the provisioning rounds did not end"
            refused = [(n, p.last_error) for n, p in fleet.pending if p.last_error]
            assert not refused, refused
            for name, provisioner in fleet.pending:  # each got its own account and the common settings
                assert provisioner.config.account.uri == "sip:{}@127.0.0.1".format(name)
                assert provisioner.config.account.proxy == carrier.proxy
                assert provisioner.config.zrtp.secure_only
            fleet.start()
            phones = list(fleet.phones.values())
            assert fleet.run_until(lambda: all(p.registered for p in phones), timeout=30.0), [
                (p.name, p.registration_failure) for p in phones if not p.registered
            ]
            # The registrar keeps every binding in its database (usrloc write-through).
            with sqlite3.connect(str(carrier.kamailio.db_path)) as db:
                bound = {row[0] for row in db.execute("SELECT username FROM location")}
            assert bound == set(names), sorted(set(names) - bound)

            pairs = [(names[i], names[i + 1]) for i in range(0, PHONES, 2)]
            setup_meter = CpuMeter()
            fleet.call_pairs(pairs)
            all_secure = fleet.run_until(lambda: all(p.secure_at is not None for p in phones), timeout=60.0)
            setup_cpu, _wall = setup_meter.read()
            assert all_secure, [(p.name, p.summary and p.summary.reason) for p in phones if p.secure_at is None]
            media_meter = CpuMeter()
            fleet.run_until(lambda: False, timeout=MEDIA_SECONDS)
            media_cpu, media_wall = media_meter.read()

            for caller, callee in pairs:
                a, b = fleet.phones[caller], fleet.phones[callee]
                assert a.sas and a.sas == b.sas, (caller, a.sas, callee, b.sas)
                for phone in (a, b):
                    authentic, failures = phone.counters()
                    assert authentic > 0 and failures == 0, (phone.name, authentic, failures)
            relayed = carrier.relays[0].calls()
            assert len(relayed) == len(pairs), relayed  # every call's media went through rtpengine
            for call_id in relayed:
                for party in carrier.relays[0].parties(call_id).values():
                    assert party["from_party"] > 0 and party["crypto"] is None  # it relays, holding no keys

            latencies = setup_latencies(fleet, pairs)
            figures.record(
                "fleet",
                [
                    "{} phones in one process, {} calls at once through kamailio (SQLite) + rtpengine".format(
                        PHONES, len(pairs)
                    ),
                    "setup latency (INVITE to both ends secure): " + distribution(latencies),
                    "CPU per call set-up {:.0f} ms; CPU per call while up {:.1f}% of a core "
                    "({:.2f} s CPU over {:.1f} s, {} calls)".format(
                        setup_cpu / len(pairs) * 1000,
                        media_cpu / media_wall / len(pairs) * 100,
                        media_cpu,
                        media_wall,
                        len(pairs),
                    ),
                ],
            )

            fleet.hang_up_all()
            assert fleet.run_until(lambda: all(p.call_id is None for p in phones), timeout=15.0)
            assert all(p.summary.result == "completed" for p in phones), [(p.name, p.summary.result) for p in phones]
        finally:
            fleet.close()
            loop.close()
            server.stop()
