"""Many phones in one process (issue 15): the core is sans-I/O, so N Endpoints (each a SIP socket, a
UserAgent, a ZRTP cache) and their calls share one runtime Loop. Each phone is provisioned from the
server exactly as `sotto` is (firmware/runtime/provisioning.Provisioner), then registers and calls.

Used by tests/interop/carrier/test_fleet.py (20 phones through kamailio + rtpengine) and by
`python -m tools.bench fleet`. Audio is silence (no sound card for twenty phones); everything else is
the phone's own code: SIP, digest auth, SDP, ZRTP, SRTP, the real-time media thread per call.

    fleet = Fleet(loop)
    phone = fleet.add(name, local_data)       # its own [provisioning] (mac, url, key, ca) and data dir
    fleet.provision(timeout)                   # every phone fetches <mac>.toml and common.toml at once
    fleet.start()                              # Endpoints from the provisioned configuration; REGISTER
    fleet.call_pairs([(a, b), ...])            # a calls b's address of record; b answers
"""

import os
import statistics
import time

from firmware import config as configuration
from firmware.runtime.call_media import AudioPlan
from firmware.runtime.calls import CallController
from firmware.runtime.endpoint import Endpoint
from firmware.runtime.provisioning import Provisioner
from firmware.sip import events as sip_events


class FleetPhone(CallController):
    """One phone of the fleet: answers every call at once, records when its call went secure and its SAS."""

    def __init__(self, name, endpoint, settings):
        super().__init__(endpoint, settings, AudioPlan())
        self.name = name
        self.registered = False
        self.registration_failure = None
        self.placed_at = None
        self.secure_at = None
        self.sas = None
        self.calls_over = 0
        self.media_counters = None

    def on_registration(self, event):
        self.registered = isinstance(event, sip_events.Registered)
        if isinstance(event, sip_events.RegistrationFailed):
            self.registration_failure = event.reason

    def on_incoming(self, event):
        if self.take_incoming(event):
            self.ua.ringing(event.call_id, self.loop.now())
            self.answer()

    def call(self, uri):
        self.placed_at = self.loop.now()
        self.place(uri)

    def on_secure(self, event):
        if self.secure_at is None:
            self.secure_at = self.loop.now()
            self.sas = event.sas

    def on_call_over(self):
        self.calls_over += 1

    def counters(self):
        """(authentic SRTP packets from the peer, authentication failures) of the call in progress."""
        if self.media is None or self.media.stream is None:
            return 0, 0
        return self.media.stream.counters()


class Fleet:
    def __init__(self, loop):
        self.loop = loop
        self.pending = []  # (name, local data, settings, Provisioner) before start()
        self.phones = {}

    def add(self, name, local_data):
        settings = configuration.validate(local_data, "{} local.toml".format(name))
        provisioner = Provisioner(self.loop, settings, local_data)
        self.pending.append((name, provisioner))
        return provisioner

    def provision(self, timeout):
        """Every phone fetches its files (all at once, each on its own worker thread); True when every
        round ended within `timeout` seconds. Refusals are in each Provisioner's last_error."""
        for _name, provisioner in self.pending:
            provisioner.fetch_now()
        return self.loop.run(until=lambda: all(p.rounds for _n, p in self.pending), timeout=timeout)

    def start(self):
        """An Endpoint per phone from its provisioned configuration; each registers."""
        for name, provisioner in self.pending:
            provisioner.close()  # one round is enough here; `sotto run` keeps its schedule
            settings = provisioner.config
            endpoint = Endpoint(self.loop, settings)
            phone = FleetPhone(name, endpoint, settings)
            self.phones[name] = phone
            if settings.account.uri:
                endpoint.ua.register(self.loop.now())
                endpoint.pump()
        self.pending = []

    def run_until(self, predicate, timeout):
        return self.loop.run(until=predicate, timeout=timeout)

    def call_pairs(self, pairs):
        for caller, callee in pairs:
            self.phones[caller].call(self.phones[callee].settings.account.uri)

    def hang_up_all(self):
        for phone in self.phones.values():
            if phone.call_id is not None and phone.placed_at is not None:
                phone.hangup("completed", "fleet test over")

    def close(self):
        for phone in self.phones.values():
            if phone.media is not None:
                phone.media.close()
            phone.endpoint.close()
        for _name, provisioner in self.pending:
            provisioner.close()


def setup_latencies(fleet, pairs):
    """Per call: seconds from the INVITE to the later of the two ends being secure (None if not)."""
    out = []
    for caller, callee in pairs:
        a, b = fleet.phones[caller], fleet.phones[callee]
        if a.secure_at is None or b.secure_at is None:
            out.append(None)
        else:
            out.append(max(a.secure_at, b.secure_at) - a.placed_at)
    return out


def distribution(values):
    """min / median / p90 / max of `values` (seconds), in milliseconds, as one line."""
    values = sorted(values)
    if not values:
        return "no values"
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return "min {:.0f} ms, median {:.0f} ms, p90 {:.0f} ms, max {:.0f} ms (n={})".format(
        values[0] * 1000, statistics.median(values) * 1000, p90 * 1000, values[-1] * 1000, len(values)
    )


class CpuMeter:
    """This process's CPU time (all threads: the loop and every call's media thread) over a wall interval."""

    def __init__(self):
        self.cpu = time.process_time()
        self.wall = time.monotonic()

    def read(self):
        return time.process_time() - self.cpu, time.monotonic() - self.wall


def local_data(name, listen, data_dir, provisioning):
    """A phone's own sotto.toml as data: where it listens, its data directory, its [provisioning]."""
    os.makedirs(data_dir, exist_ok=True)
    return {
        "account": {"display_name": name},
        "sip": {"listen": listen},
        "data": {"dir": data_dir},
        "provisioning": dict(provisioning),
    }
