"""A fake clock and a lossy fake network for pair tests of sans-I/O SIP user agents (DESIGN.md, Testing).

Plain code (no pytest), so the pair tests also run under MicroPython.
"""

import hashlib


def counter_rng(seed):
    """A deterministic rng(n) for the UserAgent: SHA-256 of a counter."""
    state = [0]

    def rng(n):
        out = b""
        while len(out) < n:
            state[0] += 1
            out += hashlib.sha256("{}:{}".format(seed, state[0]).encode()).digest()
        return out[:n]

    return rng


class XorShift:
    """A tiny seeded PRNG for loss decisions (random.Random differs under MicroPython)."""

    def __init__(self, seed):
        self.state = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def next_float(self):
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x & 0xFFFFFFFF
        return self.state / 4294967296.0


def first_line(data):
    return data.split(b"\r\n", 1)[0].decode()


def cseq_method(data):
    for line in data.split(b"\r\n"):
        if line.lower().startswith(b"cseq:"):
            return line.split()[-1].decode()
    return None


class Network:
    """Agents keyed by address; datagrams take `latency` seconds; `drop(entry)` decides losses.

    Every datagram sent is logged as a dict: time, src, dst, data, line (first line), method (CSeq
    method), dropped.
    """

    def __init__(self, latency=0.01):
        self.now = 0.0
        self.latency = latency
        self.agents = []
        self.inflight = []
        self.log = []
        self.events = {}
        self.drop = None
        self.sinks = {}

    def add(self, address, agent):
        self.agents.append((address, agent))
        self.events[address] = []

    def add_sink(self, address, handler=None):
        """An address that only records (and optionally answers through `handler(data, src, now)`)."""
        self.sinks[address] = handler
        self.events[address] = []

    def _agent(self, address):
        for addr, agent in self.agents:
            if addr == address:
                return agent
        return None

    def send_raw(self, data, src, dst):
        entry = {
            "time": self.now,
            "src": src,
            "dst": dst,
            "data": data,
            "line": first_line(data),
            "method": cseq_method(data),
            "dropped": False,
        }
        self.log.append(entry)
        if self.drop is not None and self.drop(entry):
            entry["dropped"] = True
            return
        self.inflight.append((self.now + self.latency, len(self.log), data, src, dst))

    def pump(self):
        moved = True
        while moved:
            moved = False
            for address, agent in self.agents:
                for data, dest in agent.datagrams_to_send(self.now):
                    moved = True
                    self.send_raw(data, address, dest)
                while True:
                    event = agent.next_event()
                    if event is None:
                        break
                    self.events[address].append(event)

    def next_time(self):
        times = [item[0] for item in self.inflight]
        for _, agent in self.agents:
            t = agent.get_timer()
            if t is not None:
                times.append(t)
        return min(times) if times else None

    def step(self, limit):
        self.pump()
        t = self.next_time()
        if t is None or t > limit:
            self.now = limit
            return False
        self.now = max(self.now, t)
        due = [item for item in self.inflight if item[0] <= self.now]
        self.inflight = [item for item in self.inflight if item[0] > self.now]
        due.sort(key=lambda item: (item[0], item[1]))
        for _, _, data, src, dst in due:
            agent = self._agent(dst)
            if agent is not None:
                agent.receive_datagram(data, src, self.now)
            elif dst in self.sinks and self.sinks[dst] is not None:
                for reply in self.sinks[dst](data, src, self.now) or ():
                    self.send_raw(reply, dst, src)
        for _, agent in self.agents:
            t = agent.get_timer()
            if t is not None and t <= self.now:
                agent.handle_timer(self.now)
        self.pump()
        return True

    def run(self, duration):
        limit = self.now + duration
        steps = 0
        while self.step(limit):
            steps += 1
            if steps > 100000:
                raise AssertionError("simulation does not settle")

    def run_until(self, predicate, duration):
        limit = self.now + duration
        steps = 0
        while not predicate():
            if not self.step(limit):
                return False
            steps += 1
            if steps > 100000:
                raise AssertionError("simulation does not settle")
        return True

    def sent(self, src=None, line_prefix=None, method=None):
        out = []
        for entry in self.log:
            if src is not None and entry["src"] != src:
                continue
            if line_prefix is not None and not entry["line"].startswith(line_prefix):
                continue
            if method is not None and entry["method"] != method:
                continue
            out.append(entry)
        return out

    def event_types(self, address):
        return [type(e).__name__ for e in self.events[address]]

    def find(self, address, cls):
        return [e for e in self.events[address] if isinstance(e, cls)]
