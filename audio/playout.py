"""Adaptive playout (jitter) buffer: reorders RTP packets and releases one per playout period.

The target delay follows the measured delay spread: the difference between the largest and smallest
transit time (arrival time minus media time) over the last `window` packets, plus a small margin,
clamped to [min_delay_ms, max_delay_ms] (20-200 ms by default). Playout starts (and restarts after
an underrun) once that much audio is buffered; a backlog that arrived all at once before the first
packet is played is trimmed to the target and its queueing is not taken for network jitter. While
playing, no whole packet is ever dropped or inserted to adapt the delay (a click or a gap): the
buffer asks its player to time-stretch instead (audio.stretch: one pitch period removed or repeated
inside a decoded frame), through `stretch`:
    -1 (shorten) when the average buffered delay stays above target + 2 packets, as when the sender's
       clock runs fast against ours or the jitter has calmed down, at most once per second (the target
       itself comes down slowly after a spike: at most 0.2 ms per packet); -2 (shorten
       now, on every packet) while more than target + 4 packets are buffered;
    +1 (lengthen) when the average buffered delay falls below both the target and 2 packets, as when
       the sender's clock runs slow (without it the buffer runs dry and rebuffers: a gap), at most
       once per second. Only then is the next packet at risk; lengthening merely to follow a rising
       target cost Opus 0.5 PESQ at 40 ms jitter in tools/bench/impair.py.
The player consumes the request by setting `stretch` back to 0. Everything is bounded: at most
`capacity` packets are held (the oldest are dropped beyond that, counted in `dropped`).

API (sans-I/O: `now` is a monotonic time in seconds, passed in):
    JitterBuffer(clock_rate, packet_ms=20, min_delay_ms=20, max_delay_ms=200, capacity=50, window=100)
        .push(sequence, timestamp, payload, now) -> ACCEPTED | LATE | DUPLICATE | RESET
            LATE: its playout time has passed (counted, dropped); DUPLICATE: already held or played
            (counted, dropped); RESET: a sequence jump of more than 1000 restarted the buffer.
        .pop() -> (status, payload)   call once per packet period from the audio thread
            (PLAY, payload)           the next packet in sequence
            (LOST, next_payload)      the next packet is missing while later ones are here: conceal
                                      (next_payload is the packet after it, or None, for Opus FEC)
            (WAIT, None)              nothing to play yet (buffering, or underrun: rebuffering)
        .fill(sequence, payload) -> bool   a copy of a missing packet's payload (RFC 2198 redundancy in a
                                      later packet): held only when that slot is still empty and not yet
                                      played (the primary always wins: arriving later, it replaces the
                                      copy); True when it was taken. `recovered` counts the copies that
                                      were played, or held, in place of a primary that never came
        .nearest_ahead() -> (frames, payload)   after a LOST with no next payload: the first packet
                                      held beyond the gap and how many are still missing before it
                                      ((0, None): none held), to conceal a burst towards its end
        .reset()                      forget everything (SSRC change)
        counters: received, late, duplicates, lost, dropped, underruns, recovered (ints)
        .stretch                      -2, -1, 0 or +1: shorten or lengthen a decoded frame (see above); -1
                                      and +1 may wait for a quiet frame, -2 may not
        .stretches                    how many stretches were asked for
        .jitter_ms                    RFC 3550 §6.4.1 interarrival jitter, in ms
        .target_ms                    current target delay
        .delay_ms                     audio currently buffered, in ms
        .average_delay_ms             exponential average (about 1 s) of the buffered delay at playout
"""

from firmware.rtp.packet import seq_delta, ts_delta

ACCEPTED = "accepted"
LATE = "late"
DUPLICATE = "duplicate"
RESET = "reset"
PLAY = "play"
LOST = "lost"
WAIT = "wait"

# Pops happen on the playout clock's 20 ms grid, so the depth seen at a pop varies by one packet even
# with no network jitter at all: the target is the measured spread + one packet + a small margin.
_MARGIN_MS = 5.0
# A packet missing at its playout time with nothing newer held is most often lost, not late: the target
# covers the measured jitter. Concealing it as lost keeps the timeline; rebuffering at once (as before)
# played two concealed frames for one lost packet and shifted the rest 20 ms later, every time (PCMU at
# 5 % loss, 40 ms jitter in tools/bench/impair.py: 2.81 -> 3.06 PESQ). A second miss in a row is an
# outage, or the end of the stream, or RFC 4733 events holding the sequence numbers: rebuffer then; and
# once a packet so concealed arrives after all (late, not lost), the next miss rebuffers at once.
_LOST_BEFORE_UNDERRUN = 1
# The delay average's time constant is 50 pops (1 s): a stretch shows in it only after that long.
_STRETCH_EVERY_POPS = 50
# A delay spike (the sender or the network stalls, then bursts) leaves the window after `window`
# packets (2 s): the target then fell at once, and the buffer, suddenly far above it, was shortened
# frame after frame in the middle of speech. The target now comes down by at most 0.2 ms per packet
# (10 ms/s at 20 ms packets): with a 300 ms stall every 3 s in tools/bench/impair.py (40 ms jitter;
# flite slt+rms) PCMU went from 1.80 to 2.41 and Opus from 2.40 to 3.12, with 2 stretches instead of
# 92; nothing changed without stalls. A rising spread still raises the target at once.
_RELEASE_MS = 0.2


class JitterBuffer:
    __slots__ = (
        "clock_rate",
        "packet_ms",
        "min_delay_ms",
        "max_delay_ms",
        "capacity",
        "_slots",
        "_next",
        "_highest",
        "_highest_ts",
        "_playing",
        "_transits",
        "_transit_index",
        "_last_transit",
        "jitter",
        "target_ms",
        "received",
        "late",
        "duplicates",
        "lost",
        "dropped",
        "underruns",
        "recovered",
        "_filled",
        "_played_any",
        "average_delay_ms",
        "_timestamp_ext",
        "_last_timestamp",
        "stretch",
        "stretches",
        "_pops_since_stretch",
        "_first_arrival",
        "_last_arrival",
        "_measured",
        "_missing_run",
        "_concealed_at_head",
        "_guessed_wrong",
    )

    def __init__(self, clock_rate, packet_ms=20, min_delay_ms=20, max_delay_ms=200, capacity=50, window=100):
        self.clock_rate = clock_rate
        self.packet_ms = packet_ms
        self.min_delay_ms = min_delay_ms
        self.max_delay_ms = max_delay_ms
        self.capacity = capacity
        self._transits = [0.0] * window
        self.received = self.late = self.duplicates = self.lost = self.dropped = self.underruns = 0
        self.recovered = 0
        self.average_delay_ms = 0.0
        self.stretches = 0
        self.reset()

    def reset(self):
        self._slots = {}
        self._filled = {}  # sequences held from a redundant copy, not (yet) from their own packet
        self._next = None
        self._highest = None
        self._highest_ts = None
        self._playing = False
        self._transit_index = 0
        self._timestamp_ext = 0
        self._last_timestamp = 0
        self._last_transit = None
        self.jitter = 0.0
        self.target_ms = float(self.min_delay_ms)
        self._played_any = False
        self.stretch = 0
        self._pops_since_stretch = 0
        self._first_arrival = self._last_arrival = 0.0
        self._measured = 0
        self._missing_run = 0
        self._concealed_at_head = None
        self._guessed_wrong = False

    @property
    def jitter_ms(self):
        return self.jitter * 1000.0 / self.clock_rate

    @property
    def delay_ms(self):
        return self._depth() * self.packet_ms

    def _depth(self):
        if self._next is None or self._highest is None:
            return 0
        depth = seq_delta(self._highest, self._next) + 1
        return depth if depth > 0 else 0

    def _measure(self, timestamp, now):
        # Timestamps are unwrapped against the previous packet's, so a 2^32 wrap is not a jump.
        if self._last_transit is None:
            self._timestamp_ext = timestamp
        else:
            self._timestamp_ext += ts_delta(timestamp, self._last_timestamp)
        self._last_timestamp = timestamp
        transit = now * self.clock_rate - self._timestamp_ext  # RFC 3550 A.8, in timestamp units
        if self._last_transit is None:
            self._first_arrival = now
        self._last_arrival = now
        self._measured += 1
        if self._last_transit is None:
            transits = self._transits
            for i in range(len(transits)):
                transits[i] = transit
        else:
            d = transit - self._last_transit
            self.jitter += ((d if d >= 0 else -d) - self.jitter) / 16.0
        self._last_transit = transit
        transits = self._transits
        transits[self._transit_index] = transit
        self._transit_index = (self._transit_index + 1) % len(transits)
        target = (max(transits) - min(transits)) * 1000.0 / self.clock_rate + self.packet_ms + _MARGIN_MS
        if target < self.min_delay_ms:
            target = float(self.min_delay_ms)
        elif target > self.max_delay_ms:
            target = float(self.max_delay_ms)
        if target < self.target_ms - _RELEASE_MS:
            target = self.target_ms - _RELEASE_MS
        self.target_ms = target

    def _forget_backlog_transits(self):
        """Before the first packet is played, packets that all arrived within one packet time (a backlog:
        the socket was read late, or the sender caught up after a slow start) have transit times spread by
        their queueing, not by the network. Counted as jitter, that spread raised the target to the
        backlog's length for a whole window (2 s): playout started that late, then shed the excess by
        shortening frame after frame in the middle of the speech (what Sotto received from linphonec
        scored 3.3-3.7 PESQ for PCMU instead of 3.9). The newest packet tells where the path's delay is
        now; real jitter is learnt from the packets that follow, and an underrun after the start
        rebuffers to it."""
        transits = self._transits
        for i in range(len(transits)):
            transits[i] = self._last_transit
        self.target_ms = float(max(self.min_delay_ms, min(self.max_delay_ms, self.packet_ms + _MARGIN_MS)))

    def push(self, sequence, timestamp, payload, now):
        self.received += 1
        if self._next is None:
            self._next = sequence
            self._highest = sequence
            self._highest_ts = timestamp
        delta = seq_delta(sequence, self._next)
        if delta > 1000 or delta < -1000:
            self.reset()
            self._next = self._highest = sequence
            self._highest_ts = timestamp
            self._slots[sequence] = payload
            self._measure(timestamp, now)
            return RESET
        self._measure(timestamp, now)
        if delta < 0:
            self.late += 1
            if sequence == self._concealed_at_head:
                # It was late, not lost: the buffer runs too close to the arrivals. The next miss
                # rebuffers, which adds the packet of delay that was missing.
                self._guessed_wrong = True
            return LATE
        if sequence in self._filled:
            # Reordered, not lost: the packet itself came after the copy in the next one. Same audio; it
            # takes its slot back, and the copy no longer counts as a recovery.
            del self._filled[sequence]
            self._slots[sequence] = payload
            self.recovered -= 1
            return ACCEPTED
        if sequence in self._slots:
            self.duplicates += 1
            return DUPLICATE
        while delta >= self.capacity:  # bounded: give up the oldest packets
            self._filled.pop(self._next, None)
            if self._slots.pop(self._next, None) is not None:
                self.dropped += 1
            self._next = (self._next + 1) & 0xFFFF
            delta -= 1
        self._slots[sequence] = payload
        ahead = seq_delta(sequence, self._highest)
        if ahead > 0:
            if ahead == 1 and self._highest_ts is not None:
                step = ts_delta(timestamp, self._highest_ts)
                if 0 < step <= self.clock_rate // 5:
                    self.packet_ms = step * 1000 // self.clock_rate or self.packet_ms
            self._highest = sequence
            self._highest_ts = timestamp
        return ACCEPTED

    def pop(self):
        if self._next is None:
            return WAIT, None
        if not self._playing:
            if not self._slots:
                return WAIT, None
            # (Re)start at the oldest packet held: the ones before it never came (or were not audio,
            # e.g. RFC 4733 events sharing the sequence space), so waiting for them only adds delay.
            if (
                not self._played_any
                and self._measured >= 3
                and (self._last_arrival - self._first_arrival) * 1000.0 < self.packet_ms
            ):
                self._forget_backlog_transits()
            earliest = self._next
            best = None
            for sequence in self._slots:
                delta = seq_delta(sequence, self._next)
                if best is None or delta < best:
                    best, earliest = delta, sequence
            depth = seq_delta(self._highest, earliest) + 1
            if depth * self.packet_ms < self.target_ms:
                return WAIT, None
            # Start no later than the target: a backlog (packets queued before playout began, a burst)
            # would otherwise be played late and only slowly drained.
            keep = int(self.target_ms // self.packet_ms) + 1
            while depth > keep:
                self._filled.pop(earliest, None)
                if self._slots.pop(earliest, None) is not None:
                    self.dropped += 1
                earliest = (earliest + 1) & 0xFFFF
                depth -= 1
            self._next = earliest
            self._playing = True
            self.average_delay_ms = depth * self.packet_ms  # the average starts where playout starts
        depth = self._depth()
        self._filled.pop(self._next, None)
        payload = self._slots.pop(self._next, None)
        if payload is None:
            if not self._slots:
                self._missing_run += 1
                if self._missing_run > _LOST_BEFORE_UNDERRUN or self._guessed_wrong:
                    # Nothing newer has arrived for a while: an outage (or the sender stopped, or
                    # telephone-events took the sequence numbers). Rebuffer to the target delay.
                    self.underruns += 1
                    self._playing = False
                    self._missing_run = 0
                    self._guessed_wrong = False
                    return WAIT, None
                self._concealed_at_head = self._next
            self.lost += 1
            self._next = (self._next + 1) & 0xFFFF
            return LOST, self._slots.get(self._next)
        self._missing_run = 0
        self._next = (self._next + 1) & 0xFFFF
        self._played_any = True
        # Exponential average of the delay the buffer adds (the packet being played included).
        self.average_delay_ms += (depth * self.packet_ms - self.average_delay_ms) * 0.02
        self._adapt(depth)
        return PLAY, payload

    def fill(self, sequence, payload):
        """A redundant copy of `sequence` (RFC 2198) arrived inside a later packet. It is no arrival of its
        own: no transit time is measured and the highest sequence does not move (the packet that carried
        it was pushed first). Taken only for a slot ahead of the playout point that is still empty."""
        if self._next is None:
            return False
        delta = seq_delta(sequence, self._next)
        if delta < 0 or delta >= self.capacity or sequence in self._slots:
            return False
        if self._highest is not None and seq_delta(sequence, self._highest) > 0:
            return False
        self._slots[sequence] = payload
        self._filled[sequence] = True
        self.recovered += 1
        return True

    def nearest_ahead(self):
        """(frames, payload): the first packet held at or after the next one to play, and how many
        packets are missing before it (0: it is the next one); (0, None) when none is held. A burst
        of losses shorter than the buffer is then concealed towards its known end."""
        if self._next is None:
            return 0, None
        best = None
        for sequence in self._slots:
            delta = seq_delta(sequence, self._next)
            if delta >= 0 and (best is None or delta < best):
                best = delta
        if best is None:
            return 0, None
        return best, self._slots[(self._next + best) & 0xFFFF]

    def _adapt(self, depth):
        """Ask for a time-stretch when the average delay strays from the target (see the module doc)."""
        self._pops_since_stretch += 1
        if self.stretch:
            return  # the last request is not consumed yet
        average, target, packet = self.average_delay_ms, self.target_ms, self.packet_ms
        if average > target + 2 * packet and depth * packet > target + 4 * packet:
            self.stretch = -2  # urgent: the player shortens this very frame
        elif average > target + 2 * packet and self._pops_since_stretch >= _STRETCH_EVERY_POPS:
            self.stretch = -1
        elif average < min(target, 2 * packet) and self._pops_since_stretch >= _STRETCH_EVERY_POPS:
            self.stretch = 1
        else:
            return
        self.stretches += 1
        self._pops_since_stretch = 0
