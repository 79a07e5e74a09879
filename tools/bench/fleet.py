"""The fleet without a registrar (issue 15): 20 phones on one Loop in this process (tools/fleet.py), each
provisioned over HTTPS from an in-process `tools.provision` server (self-signed, Ed25519-signed files),
then 10 ZRTP calls at once, phone to phone by IP. Prints the setup latency distribution (INVITE to both
ends secure) and CPU per call; the kamailio + rtpengine version is tests/interop/carrier/test_fleet.py,
which prints the same figures. Loopback only, free ports, bounded waits."""

import logging
import os
import shutil
import tempfile
import threading

from firmware.provisioning.document import mac_name
from firmware.runtime.endpoint import _bind_udp
from firmware.runtime.loop import Loop
from tools import provision
from tools.fleet import CpuMeter, Fleet, distribution, local_data, setup_latencies

PHONES = 20
MEDIA_SECONDS = 3.0


def _free_port():
    probe = _bind_udp("127.0.0.1", 0, "SIP")
    port = probe.getsockname()[1]
    probe.close()
    return port


def run(phones=PHONES):
    logging.getLogger("sotto").setLevel(logging.ERROR)  # twenty phones' INFO lines would bury the figures
    workdir = tempfile.mkdtemp(prefix="sotto-bench-fleet-")
    server = loop = fleet = None
    try:
        served = os.path.join(workdir, "served")
        os.mkdir(served)
        private, public = os.path.join(workdir, "p.key"), os.path.join(workdir, "p.pub")
        provision.keygen(private, public)
        with open(os.path.join(served, "common.toml"), "w") as f:
            f.write('serial = 1\n[media]\ncodecs = ["PCMU"]\n[zrtp]\nsecure_only = true\n')
        macs = ["02:00:5e:30:00:{:02x}".format(i) for i in range(phones)]
        for mac in macs:
            with open(os.path.join(served, mac_name(mac)), "w") as f:
                f.write('serial = 1\n[account]\ndisplay_name = "desk {}"\n'.format(mac[-2:]))
        provision.sign_directory(served, private)
        cert = os.path.join(workdir, "cert.pem")
        provision.self_signed_certificate(cert, cert + ".key")
        server = provision.make_server(served, cert=cert, cert_key=cert + ".key", quiet=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()

        loop = Loop()
        fleet = Fleet(loop)
        listens = {}
        for index, mac in enumerate(macs):
            name = "desk{:02d}".format(index)
            listens[name] = "127.0.0.1:{}".format(_free_port())
            prov = {"url": server.url, "ca": cert, "public_key": public, "mac": mac}
            fleet.add(name, local_data(name, listens[name], os.path.join(workdir, name), prov))
        if not fleet.provision(timeout=60.0):
            print("  provisioning did not finish")
            return
        fleet.start()
        names = sorted(fleet.phones)
        pairs = [(names[i], names[i + 1]) for i in range(0, len(names) - 1, 2)]
        meter = CpuMeter()
        for caller, callee in pairs:
            fleet.phones[caller].call("sip:{}@{}".format(callee, listens[callee]))
        phones_list = list(fleet.phones.values())
        fleet.run_until(lambda: all(p.secure_at is not None for p in phones_list), timeout=60.0)
        setup_cpu, _ = meter.read()
        media = CpuMeter()
        fleet.run_until(lambda: False, timeout=MEDIA_SECONDS)
        media_cpu, media_wall = media.read()
        latencies = setup_latencies(fleet, pairs)
        secure = [x for x in latencies if x is not None]
        equal = sum(1 for a, b in pairs if fleet.phones[a].sas and fleet.phones[a].sas == fleet.phones[b].sas)
        print("  {} phones on one loop, {} ZRTP calls at once by IP (no registrar)".format(phones, len(pairs)))
        print("  secure with equal SAS: {}/{}".format(equal, len(pairs)))
        print("  setup latency (INVITE to both ends secure): " + distribution(secure))
        print(
            "  CPU per call set-up {:.0f} ms; per call while up {:.1f}% of a core ({:.2f} s over {:.1f} s)".format(
                setup_cpu / len(pairs) * 1000, media_cpu / media_wall / len(pairs) * 100, media_cpu, media_wall
            )
        )
        fleet.hang_up_all()
        fleet.run_until(lambda: all(p.call_id is None for p in phones_list), timeout=15.0)
    finally:
        if fleet is not None:
            fleet.close()
        if loop is not None:
            loop.close()
        if server is not None:
            server.shutdown()
            server.server_close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    run()
