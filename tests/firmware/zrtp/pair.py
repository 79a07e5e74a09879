"""Two ZRTP engines wired together through a fake network with a fake clock.

FakeNetwork can drop, duplicate, reorder and delay datagrams deterministically (seeded random); `run`
pumps both engines until both are secure or failed, or the fake clock passes `until`.
"""

import random

from firmware.zrtp.cache import ZrtpCache
from firmware.zrtp.engine import Alarm, CacheUpdated, Failed, Preferences, Secure, ZrtpEngine


def seeded_rng(seed):
    source = random.Random(seed)

    def rng(n):
        return bytes(source.getrandbits(8) for _ in range(n))

    return rng


class Side:
    def __init__(self, name, engine):
        self.name = name
        self.engine = engine
        self.events = []
        self.sent = []  # (time, packet) of everything this side sent

    def secure(self):
        return [e for e in self.events if isinstance(e, Secure)]

    def failed(self):
        return [e for e in self.events if isinstance(e, Failed)]

    def alarms(self):
        return [e for e in self.events if isinstance(e, Alarm)]

    def cache_updates(self):
        return [e for e in self.events if isinstance(e, CacheUpdated)]

    def drain(self):
        while True:
            event = self.engine.next_event()
            if event is None:
                return
            self.events.append(event)


class FakeNetwork:
    def __init__(self, seed=1, loss=0.0, reorder=0.0, duplicate=0.0, delay=0.005, jitter=0.0, drop=None):
        self.random = random.Random(seed)
        self.loss = loss
        self.reorder = reorder
        self.duplicate = duplicate
        self.delay = delay
        self.jitter = jitter
        self.drop = drop  # optional predicate(sender_name, packet) -> True to drop
        self.in_flight = []  # (arrival, order, receiver, packet)
        self.order = 0

    def send(self, now, sender, receiver, packet):
        if self.drop is not None and self.drop(sender.name, packet):
            return
        if self.random.random() < self.loss:
            return
        copies = 2 if self.random.random() < self.duplicate else 1
        for _ in range(copies):
            arrival = now + self.delay + self.random.random() * self.jitter
            if self.random.random() < self.reorder:
                arrival += 0.05
            self.order += 1
            self.in_flight.append((arrival, self.order, receiver, packet))

    def next_arrival(self):
        return min((item[0] for item in self.in_flight), default=None)

    def deliver_due(self, now):
        due = sorted(item for item in self.in_flight if item[0] <= now)
        self.in_flight = [item for item in self.in_flight if item[0] > now]
        return due


def make_engine(seed, cache=None, prefs=None, **kwargs):
    rng = seeded_rng(seed)
    if cache is None:
        cache = ZrtpCache.create(rng)
    return ZrtpEngine(cache.zid, cache, prefs or Preferences(), rng, ssrc=seed, **kwargs)


def run(a, b, network=None, until=30.0, start_b=0.0, stop_when_secure=True):
    """Pump until both sides are secure (or one failed), or the fake clock reaches `until`.

    Returns the fake time at which the run stopped.
    """
    network = network or FakeNetwork()
    sides = {"a": a, "b": b}
    peer = {"a": b, "b": a}
    now = 0.0
    a.engine.start(now)
    started_b = False
    while now <= until:
        if not started_b and now >= start_b:
            b.engine.start(now)
            started_b = True
        for side in (a, b):
            if side is b and not started_b:
                continue
            side.engine.handle_timer(now)
            for packet in side.engine.datagrams_to_send(now):
                side.sent.append((now, packet))
                network.send(now, side, peer[side.name], packet)
            side.drain()
        for _arrival, _order, receiver, packet in network.deliver_due(now):
            if receiver is b and not started_b:
                continue  # b's socket is not open yet
            receiver.engine.receive_datagram(packet, now)
            receiver.drain()
            for out in receiver.engine.datagrams_to_send(now):
                receiver.sent.append((now, out))
                network.send(now, receiver, peer[receiver.name], out)
        done = all(s.secure() or s.failed() for s in sides.values())
        if done and stop_when_secure and not network.in_flight:
            return now
        candidates = [t for t in (a.engine.get_timer(), b.engine.get_timer(), network.next_arrival()) if t is not None]
        if not started_b:
            candidates.append(start_b)
        nxt = min(candidates) if candidates else None
        if nxt is None:
            return now
        now = max(nxt, now + 1e-6)
    return now


def pair(seed=10, prefs_a=None, prefs_b=None, cache_a=None, cache_b=None, **kwargs):
    a = Side("a", make_engine(seed, cache_a, prefs_a, **kwargs))
    b = Side("b", make_engine(seed + 1, cache_b, prefs_b, **kwargs))
    return a, b


def run_restart(a, b, network=None, start=10.0, until=40.0, started=("a",)):
    """Pump after a restart: the sides named in `started` are already running (their engines were
    started in an earlier run); the others are started at `start`. Stops when every side has one
    Secure more than it had, or one failed, or the clock passes `until`. Returns the stop time."""
    network = network or FakeNetwork()
    peer = {"a": b, "b": a}
    goal = {side.name: len(side.secure()) + 1 for side in (a, b)}
    now = start
    for side in (a, b):
        if side.name not in started:
            side.engine.start(now)
    while now <= until:
        for side in (a, b):
            side.engine.handle_timer(now)
            for packet in side.engine.datagrams_to_send(now):
                side.sent.append((now, packet))
                network.send(now, side, peer[side.name], packet)
            side.drain()
        for _arrival, _order, receiver, packet in network.deliver_due(now):
            receiver.engine.receive_datagram(packet, now)
            receiver.drain()
            for out in receiver.engine.datagrams_to_send(now):
                receiver.sent.append((now, out))
                network.send(now, receiver, peer[receiver.name], out)
        done = all(len(s.secure()) >= goal[s.name] or s.failed() for s in (a, b))
        if done and not network.in_flight:
            return now
        candidates = [t for t in (a.engine.get_timer(), b.engine.get_timer(), network.next_arrival()) if t is not None]
        if not candidates:
            return now
        now = max(min(candidates), now + 1e-6)
    return now
