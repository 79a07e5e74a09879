"""The one microphone and earpiece shared by the phone's calls (issue 15): call waiting, hold, the local
three-way conference. Host-only (threads).

Each call's MediaStream gets a port from the hub (`AudioHub.open(codec)` -> (source, sink), the AudioPlan
interface) instead of the device itself. The thread of one of the streams drives the device: its port's
read() reads the real capture device (so it is paced by it, as with one call) and hands every other port
its input for the period; its write() mixes what the ports played, and the call-waiting tone, into the
real earpiece. When the driving stream stops, the next port that reads takes the device over.

What each port hears and says:
    a port on hold        hears silence (the held call's far end hears nothing of us), and what it plays
                          is not heard (RFC 3264 hold: its media keeps flowing, silent, so its ZRTP and
                          SRTP sessions and the NAT bindings stay as they are)
    a port in the call    hears the microphone; what it plays goes to the earpiece
    conference            each active port hears the microphone plus what every other active port
                          played in the last period (each leg hears us and the other leg); the earpiece
                          gets every active port (we hear both legs)

One ALSA device is opened once, at the rate of the first call's codec; a later call's stream resamples to
and from that rate like any stream does. The device is closed when the last port closes.
"""

import collections
import logging
import threading

from audio.gain import mix
from audio.tones import ToneGenerator

log = logging.getLogger("sotto.audio-hub")

# How long a port that does not drive waits for its period before it checks whether the driver left.
TAKEOVER_WAIT = 0.1
# Periods of a port's input or output that may wait (bounded: a stalled stream never grows a backlog).
PORT_BACKLOG = 3
# The call-waiting tone over the call: soft (about -26 dBFS peak).
WAITING_TONE_LEVEL = 0.05


class AudioHub:
    def __init__(self, plan):
        self.plan = plan  # call_media.AudioPlan: where the real device is
        self.conference = False
        self._lock = threading.Lock()
        self._ports = []
        self._driver = None
        self._source = None
        self._sink = None
        self._tone = None

    # -- the AudioPlan interface -------------------------------------------------------------------
    def open(self, codec):
        with self._lock:
            if self._source is None:
                self._source, self._sink = self.plan.open(codec)
            port = _Port(self, self._source.sample_rate, self._source.period_samples, self._sink.sample_rate)
            self._ports.append(port)
        return port, _PortSink(port)

    def open_speaker(self, rate=16000):
        return self.plan.open_speaker(rate)

    # -- control thread API ------------------------------------------------------------------------
    @property
    def busy(self):
        """A call's stream has the device: tones are mixed in here, not played on a speaker of their own."""
        return self._source is not None

    def set_active(self, port, active):
        """False: the port's call is on hold (it hears silence and is not heard)."""
        if port is not None:
            port.active = bool(active)
            if not active:
                port.played.clear()

    def set_conference(self, on):
        self.conference = bool(on)

    def set_tone(self, cadence):
        """A tone mixed softly into the earpiece over the calls (call waiting), or None to stop it."""
        self._tone = None if cadence is None else ToneGenerator(cadence, self._sink.sample_rate, WAITING_TONE_LEVEL)

    def port_of(self, stream):
        """The port a MediaStream reads from, or None (a stream on the device itself)."""
        source = getattr(stream, "source", None)
        return source if isinstance(source, _Port) else None

    # -- the audio threads -------------------------------------------------------------------------
    def _read(self, port):
        while True:
            with self._lock:
                if port.closed:
                    return port.silence
                driver = self._driver
                if driver is None or driver is port or driver.closed:
                    self._driver = port
                    driving = True
                else:
                    driving = False
            if driving:
                microphone = self._source.read()  # blocks one period: this paces every call
                return self._distribute(port, microphone)
            with port.ready:
                if not port.inbox:
                    port.ready.wait(TAKEOVER_WAIT)
                if port.inbox:
                    return port.inbox.popleft()

    def _distribute(self, driver, microphone):
        """Each port's input for this period; the driver's own is returned, the others' queued."""
        with self._lock:
            ports = list(self._ports)
            conference = self.conference
        mine = None
        for port in ports:
            if not port.active:
                heard = port.silence
            elif conference:
                others = [p.last for p in ports if p is not port and p.active and p.last is not None]
                heard = mix([microphone] + others)
            else:
                heard = microphone
            if port is driver:
                mine = heard
            else:
                with port.ready:
                    port.inbox.append(heard)
                    port.ready.notify()
        return mine if mine is not None else driver.silence

    def _write(self, port, pcm):
        if port.active:
            port.last = pcm
            port.played.append(pcm)
        else:
            port.last = None
        if self._driver is not port:
            return
        with self._lock:
            ports = list(self._ports)
        frames = [p.played.popleft() for p in ports if p.active and p.played]
        tone = self._tone
        if tone is not None:
            frames.append(tone.frame(len(pcm) // 2))
        out = mix(frames) or bytes(len(pcm))
        self._sink.write(out)

    def _close(self, port):
        with self._lock:
            if port.closed:
                return
            port.closed = True
            if port in self._ports:
                self._ports.remove(port)
            if self._driver is port:
                self._driver = None
            last = not self._ports
            source, sink = self._source, self._sink
            if last:
                self._source = self._sink = None
                self._tone = None
                self.conference = False
            waiting = list(self._ports)
        for other in waiting:  # one of them takes the device over now, not after TAKEOVER_WAIT
            with other.ready:
                other.ready.notify()
        if last:
            for device in (source, sink):
                try:
                    device.close()
                except Exception:  # closing a broken device must not stop the call from ending
                    log.exception("closing an audio device failed")


class _Port:
    """One call's microphone (the MediaStream's source; its sink is _PortSink)."""

    def __init__(self, hub, sample_rate, period_samples, sink_rate):
        self.hub = hub
        self.sample_rate = sample_rate
        self.period_samples = period_samples
        self.sink_rate = sink_rate
        self.silence = bytes(period_samples * 2)
        self.active = True
        self.closed = False
        self.inbox = collections.deque((), PORT_BACKLOG)
        self.ready = threading.Condition()
        self.played = collections.deque((), PORT_BACKLOG)
        self.last = None

    def read(self):
        return self.hub._read(self)

    def close(self):
        self.hub._close(self)


class _PortSink:
    def __init__(self, port):
        self.port = port
        self.sample_rate = port.sink_rate

    def write(self, pcm):
        self.port.hub._write(self.port, pcm)

    def close(self):
        self.port.hub._close(self.port)
