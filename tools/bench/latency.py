"""Mouth-to-ear latency, one way, Sotto and linphonec in the same set-up (issue 14, item 3).

What is measured: a train of chirps is put into the sender's microphone and found, by cross-correlation,
in what the receiver's earpiece plays; both ends' audio devices are timed on one clock
(time.monotonic, CLOCK_MONOTONIC, the same in every process of the machine). The path is the whole
one: capture (the sender's period), resample, encode, RTP, SRTP, the network (tools/bench/versus.py's
ImpairedRelay: 10 ms one way, and 0 or 40 ms of uniform jitter), SRTP, the jitter buffer, decode or
conceal, resample, playback.

The devices, counted alike for both phones (no sound card here: /dev/snd is absent):
- Sotto: its MediaStream (the code `sotto` runs), in a process of its own as in `sotto`, with a WAV
  file as microphone (audio.wavfile.WavSource, paced like an ALSA capture: one 20 ms period is handed
  over when it has been "captured") and a WAV recorder as earpiece. TimedSource / TimedSink note when
  each period is handed over and written.
- linphonec: its file sound card (`soundcard use files`, `play`, `record`), ticked every 10 ms by
  mediastreamer2. Its file accesses are timed from outside, without touching it: a poller process reads
  the file offsets in /proc/PID/fdinfo every 0.5 ms. mediastreamer2 5.1 reads the played file in 4 KiB
  blocks ahead (asyncrw.c: the next block when less than one is buffered) and writes the recording in
  4 KiB blocks (the first 44 bytes of its stream are overwritten by the WAV header at close); each
  offset change pins one sample of the file to one tick time, to within the tick's chunk, and many
  changes at different phases give the file's time origin (capture_origin / playback_origin below).
- Capture time of a sample: when its period was captured (a device hands a period over at its end).
  Playback time of a sample: when the chunk holding it was written, as if a device played each chunk the
  moment it was written, with no headroom. Neither includes a sound card's own buffer: on a Raspberry Pi,
  Sotto's ALSA playback adds its prefill (audio/alsa.py, 2 periods: 40 ms) and linphone's ALSA writer its
  own; the table is the software path, the same way for both.

API (host-only; numpy):
    chirp(rate) -> float array               the probe: a 40 ms Hann-windowed 300-3000 Hz linear chirp
    stimulus(rate, speech=None) -> (int16 array, chirp starts, speech span)
        lead-in, a train of 6 chirps 0.5 s apart, the speech (for PESQ), and another train
    capture_origin(events, rate) / playback_origin(events, rate) -> [Segment]
        events: (time, sample index) pairs; capture: the sample index just past the chunk handed over
        at that time; playback: the index of the first sample of the chunk written at that time. A jump
        of more than JUMP_S in (time - index / rate) starts a new segment (the device's timeline moved:
        a recorder that got nothing for a while, a paced file that restarted after a stall).
    latencies(starts, sent_rate, capture, received, received_rate, playback) -> [seconds or None]
        for each chirp sent at sample starts[i]: when it was played, minus when it was captured
    linphone_events(samples, data_offset, rate, reader=True) -> events, from the poller's (time, offset)
    measure(kind, codec, voice16k, jitter_ms, workdir, seed=1) -> ({direction: (summary, PESQ)}, stats)
        one call: kind "sotto-sotto", "sotto-linphone" (both directions) or "linphone-linphone" (one
        call of their own SIP through versus.py's SdpForwarder), each through an ImpairedRelay
    run()   make bench: the table and the targets; `python -m tools.bench.latency [--runs=N] [CODEC...]`
Internal command lines: `--poll PID OUT FILE...` (the offset poller), `--sotto CONFIG.json` (one
MediaStream until its stdin closes).
"""

import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHIRP_MS = 40
CHIRP_BAND = (300.0, 3000.0)  # inside G.711's band: every codec carries it
CHIRP_LEVEL = 0.5  # of full scale
CHIRP_EVERY_S = 0.5  # longer than any latency searched for: each chirp is found in its own window
CHIRPS_PER_TRAIN = 6
LEAD_S = 1.0
GAP_S = 0.5
TAIL_S = 1.0
MAX_LATENCY_S = 0.45
MIN_MATCH = 0.6  # normalised correlation of a chirp found; a lost or smeared one is not counted
JUMP_S = 0.030  # more than one 20 ms chunk of sawtooth: a device timeline that moved
NETWORK_BASE_MS = 10.0  # the relay's one-way delay (versus.py's default), in every figure
MS2_TICK_S = 0.010  # mediastreamer2's ticker: its file player hands over 10 ms per tick
MS2_BLOCK = 4096  # asyncrw.c: getpagesize()
MS2_RECORD_SKIPPED = 44  # the recorder's stream starts at offset 0; the header overwrites 44 bytes
POLL_INTERVAL_S = 0.0005


# --- the probe and the measurement (deterministic; unit-tested) --------------------------------------


def chirp(rate, ms=CHIRP_MS, band=CHIRP_BAND):
    import numpy as np

    count = rate * ms // 1000
    t = np.arange(count) / float(rate)
    duration = count / float(rate)
    sweep = band[0] * t + (band[1] - band[0]) * t * t / (2.0 * duration)
    return np.sin(2.0 * np.pi * sweep) * np.hanning(count)


def stimulus(rate, speech=None):
    """(int16 samples at `rate`, sample index where each chirp starts, (start, end) of the speech or
    None). speech: int16 samples at `rate`."""
    import numpy as np

    probe = (chirp(rate) * CHIRP_LEVEL * 32767.0).astype(np.int16)
    every = int(CHIRP_EVERY_S * rate)
    train = np.zeros(every * CHIRPS_PER_TRAIN, dtype=np.int16)
    for index in range(CHIRPS_PER_TRAIN):
        train[index * every : index * every + len(probe)] = probe
    parts = [np.zeros(int(LEAD_S * rate), dtype=np.int16)]
    starts = []
    span = None

    def add(part):
        parts.append(part)
        return sum(len(p) for p in parts) - len(part)

    first = add(train)
    starts.extend(first + i * every for i in range(CHIRPS_PER_TRAIN))
    if speech is not None and len(speech):
        add(np.zeros(int(GAP_S * rate), dtype=np.int16))
        begin = add(np.asarray(speech, dtype=np.int16))
        span = (begin, begin + len(speech))
        add(np.zeros(int(GAP_S * rate), dtype=np.int16))
    second = add(train)
    starts.extend(second + i * every for i in range(CHIRPS_PER_TRAIN))
    add(np.zeros(int(TAIL_S * rate), dtype=np.int16))
    return np.concatenate(parts), starts, span


class Segment:
    """A stretch of a device's timeline: sample n is at `origin + n / rate` for n in [first, last]."""

    __slots__ = ("origin", "first", "last")

    def __init__(self, origin, first, last):
        self.origin = origin
        self.first = first
        self.last = last

    def __repr__(self):
        return "Segment({:.6f}, {}, {})".format(self.origin, self.first, self.last)


def _segments(events, rate, settle=3):
    """Groups of (time - index / rate, index), split where that value moves by more than JUMP_S and
    stays moved for `settle` events; an event alone off the line (a read the scheduler held back) is
    left out rather than taken for a new timeline."""
    groups = []
    pending = []
    for when, index in sorted(events):
        value = when - index / float(rate)
        if groups and abs(value - groups[-1][-1][0]) <= JUMP_S:
            groups[-1].append((value, index))
            pending = []
            continue
        if pending and abs(value - pending[0][0]) > JUMP_S:
            pending = []
        pending.append((value, index))
        if not groups or len(pending) >= settle:
            groups.append(pending)
            pending = []
    return groups


def capture_origin(events, rate):
    """A chunk is handed over once its last sample is captured, never before, and late by scheduling
    only: the origin is the lower envelope of (time - index / rate)."""
    return [Segment(min(v for v, _ in g), min(i for _, i in g), max(i for _, i in g)) for g in _segments(events, rate)]


def playback_origin(events, rate):
    """A device playing each chunk from the moment it is written starts no later than any write allows:
    the upper envelope of (time - index / rate). Its 90th percentile, so that one write the scheduler
    held back (a real device's headroom would absorb it) does not move the whole timeline."""
    segments = []
    for group in _segments(events, rate):
        values = sorted(v for v, _ in group)
        origin = values[min(len(values) - 1, int(0.9 * len(values)))]
        segments.append(Segment(origin, min(i for _, i in group), max(i for _, i in group)))
    return segments


def _segment_for(segments, index, rate, reach_s=1.0):
    best = None
    for segment in segments:
        distance = max(segment.first - index, index - segment.last, 0)
        if distance <= reach_s * rate and (best is None or distance < best[0]):
            best = (distance, segment)
    return None if best is None else best[1]


def _matches(received, template):
    """Normalised cross-correlation of `template` at every offset of `received` (FFT), and the gain."""
    import numpy as np

    signal = np.asarray(received, dtype=np.float64)
    size = 1
    while size < len(signal) + len(template):
        size <<= 1
    product = np.fft.irfft(np.fft.rfft(signal, size) * np.conj(np.fft.rfft(template, size)), size)
    count = len(signal) - len(template) + 1
    if count <= 0:
        return np.zeros(0), np.zeros(0)
    correlation = product[:count]
    squares = np.concatenate(([0.0], np.cumsum(signal * signal)))
    energy = squares[len(template) : len(template) + count] - squares[:count]
    template_energy = float(np.dot(template, template))
    normalised = correlation / np.sqrt(np.maximum(energy, 1e-9) * template_energy)
    return normalised, correlation / template_energy


def latencies(starts, sent_rate, capture, received, received_rate, playback, max_latency_s=MAX_LATENCY_S):
    """For each chirp that starts at sample `starts[i]` of what the sender captured (at `sent_rate`, on
    the `capture` segments), its one-way latency in seconds, or None where it was not found (lost,
    concealed beyond recognition, or outside the recording)."""
    normalised, gain = _matches(received, chirp(received_rate))
    results = []
    for start in starts:
        segment = _segment_for(capture, start, sent_rate)
        if segment is None:
            results.append(None)
            continue
        captured = segment.origin + start / float(sent_rate)
        best = None
        for play in playback:
            low = int((captured - play.origin) * received_rate)
            high = int((captured + max_latency_s - play.origin) * received_rate) + 1
            low, high = max(low, play.first, 0), min(high, play.last + int(received_rate), len(normalised))
            if low >= high:
                continue
            offset = low + int(normalised[low:high].argmax())
            score = float(normalised[offset])
            if score >= MIN_MATCH and gain[offset] >= 0.05 and (best is None or score > best[0]):
                best = (score, play.origin + offset / float(received_rate) - captured)
        results.append(None if best is None else best[1])
    return results


def linphone_events(samples, data_offset, rate, reader=True, chunks_s=(0.010, 0.020)):
    """Device events from the offsets of one of linphonec's files polled over time ([(time, offset)]).

    reader (the played file, read ahead in MS2_BLOCK blocks, asyncrw.c): when the offset reaches data
    byte X + 2 blocks, the tick that takes the chunk starting at the first chunk boundary past X is
    running (less than a block was left before it), and that chunk, which ends one tick later, is being
    handed over. writer (the recording, written in blocks): a block is written at the tick whose chunk
    carried the stream to the block's end, and that chunk starts at the last chunk boundary before it.
    The player's chunk is one tick; the recorder's is what the decoder hands over (10 or 20 ms): the
    one whose events line up best (least sawtooth) is taken."""
    changes = []
    previous = None
    for when, offset in samples:
        if offset != previous:
            changes.append((when, offset))
            previous = offset
    if reader:
        chunk = 2 * int(MS2_TICK_S * rate)
        events = []
        for number, (when, offset) in enumerate(changes):
            if number and offset < changes[number - 1][1]:
                break  # the end of the file: the player went back to its start (and paused)
            past = offset - data_offset - 2 * MS2_BLOCK
            if past < 0:
                continue  # the blocks read when the file was opened, before the first tick
            start = (past // chunk + 1) * chunk
            events.append((when, (start + chunk) // 2))
        return events
    best = None
    for chunk_s in chunks_s:
        chunk = 2 * int(chunk_s * rate)
        events = [
            (when, ((offset - 1) // chunk * chunk - MS2_RECORD_SKIPPED) // 2)
            for when, offset in changes
            if offset > MS2_RECORD_SKIPPED + chunk
        ]
        values = [when - index / float(rate) for when, index in events]
        steps = [abs(b - a) for a, b in zip(values, values[1:]) if abs(b - a) <= JUMP_S]
        spread = sum(steps) / len(steps) if steps else float("inf")
        if best is None or spread < best[0]:
            best = (spread, events)
    return best[1]


def summarise(values):
    found = sorted(v for v in values if v is not None)
    if not found:
        return None
    middle = len(found) // 2
    median = found[middle] if len(found) % 2 else (found[middle - 1] + found[middle]) / 2.0
    return {
        "median_ms": median * 1000.0,
        "min_ms": found[0] * 1000.0,
        "max_ms": found[-1] * 1000.0,
        "found": len(found),
        "sent": len(values),
    }


# --- the devices, timed ------------------------------------------------------------------------------


class TimedSource:
    """A MediaStream capture device (WavSource) that notes when each period was handed over."""

    def __init__(self, inner, clock=time.monotonic):
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.period_samples = inner.period_samples
        self.events = []
        self._clock = clock
        self._samples = 0

    def read(self):
        pcm = self.inner.read()
        self._samples += len(pcm) // 2
        self.events.append((self._clock(), self._samples))
        return pcm

    def close(self):
        self.inner.close()


class TimedSink:
    """A MediaStream playback device (WavRecorder) that notes when each chunk was written."""

    def __init__(self, inner, clock=time.monotonic):
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.events = []
        self._clock = clock
        self._samples = 0

    def write(self, pcm):
        self.events.append((self._clock(), self._samples))
        self._samples += len(pcm) // 2
        self.inner.write(pcm)

    def close(self):
        self.inner.close()


def read_recording(path):
    """(rate, int16 samples) of a WAV file, tolerating linphonec's: its header claims 44 bytes more data
    than the file holds (the header was written over the start of the stream)."""
    import numpy as np

    data = Path(path).read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("{}: not a WAV file".format(path))
    offset = 12
    rate = None
    while offset + 8 <= len(data):
        kind, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
        if kind == b"fmt ":
            channels = int.from_bytes(data[offset + 10 : offset + 12], "little")
            rate = int.from_bytes(data[offset + 12 : offset + 16], "little")
            if channels != 1:
                raise ValueError("{}: {} channels (expected mono)".format(path, channels))
        elif kind == b"data":
            body = data[offset + 8 : offset + 8 + size]
            return rate, np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2").astype(np.int16)
        offset += 8 + size
    raise ValueError("{}: no data chunk".format(path))


def _data_offset(path):
    data = Path(path).read_bytes()[:4096]
    return data.index(b"data") + 8


# --- polling linphonec's file offsets (a process of its own: no GIL shared with a media thread) -------


def poll_main(argv):
    """`python -m tools.bench.latency --poll PID OUT FILE...`: until stdin closes, note every change of
    PID's file offset of each FILE (from /proc/PID/fdinfo), as lines "time index offset" in OUT."""
    pid, out, paths = int(argv[0]), argv[1], [str(Path(p).resolve()) for p in argv[2:]]
    watched = {}  # index -> open fdinfo file
    last = {}
    lines = []
    next_scan = 0.0
    stdin = sys.stdin.fileno()
    while True:
        now = time.monotonic()
        if len(watched) < len(paths) and now >= next_scan:
            next_scan = now + 0.02
            try:
                for fd in os.listdir("/proc/{}/fd".format(pid)):
                    try:
                        target = os.readlink("/proc/{}/fd/{}".format(pid, fd))
                    except OSError:
                        continue
                    if target in paths and paths.index(target) not in watched:
                        watched[paths.index(target)] = open("/proc/{}/fdinfo/{}".format(pid, fd), "rb")
            except OSError:
                break  # linphonec is gone
        for index, info in list(watched.items()):
            try:
                info.seek(0)
                text = info.read(64)
                offset = int(text.split(b"\n", 1)[0].split()[1])
            except (OSError, ValueError, IndexError):
                del watched[index]  # the file was closed (the call ended)
                continue
            when = time.monotonic()
            if last.get(index) != offset:
                last[index] = offset
                lines.append("{:.6f} {} {}\n".format(when, index, offset))
        readable, _, _ = select.select([stdin], [], [], POLL_INTERVAL_S)
        if readable and not os.read(stdin, 64):
            break
    Path(out).write_text("".join(lines))
    return 0


class _Poller:
    def __init__(self, pid, out, paths):
        root = Path(__file__).resolve().parents[2]
        self.out = Path(out)
        self.paths = [str(Path(p).resolve()) for p in paths]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.bench.latency", "--poll", str(pid), str(out)] + self.paths,
            stdin=subprocess.PIPE,
            cwd=str(root),
        )

    def stop(self):
        """{path: [(time, offset)]}"""
        try:
            self.process.stdin.close()
            self.process.wait(5)
        except Exception:
            self.process.kill()
            self.process.wait(5)
        series = {p: [] for p in self.paths}
        if self.out.exists():
            for line in self.out.read_text().splitlines():
                when, index, offset = line.split()
                series[self.paths[int(index)]].append((float(when), int(offset)))
        return series


# --- the two kinds of phone ------------------------------------------------------------------------


class _Direction:
    """What one phone sent and what the other played: enough to measure one direction."""

    def __init__(self, name, starts, span, sent_rate, capture, received_rate, received, playback, reference):
        self.name = name
        self.starts = starts
        self.span = span
        self.sent_rate = sent_rate
        self.capture = capture
        self.received_rate = received_rate
        self.received = received
        self.playback = playback
        self.reference = reference  # the speech alone, a WAV at sent_rate, for PESQ


class _Stimulus:
    def __init__(self, workdir, voice16k, rate):
        import numpy as np

        from audio.wavfile import read_wav, write_wav
        from tools.bench.calls import resampled_copy

        self.rate = rate
        speech_path = resampled_copy(voice16k, Path(workdir) / "speech-{}.wav".format(rate), rate)
        _, speech = read_wav(speech_path)
        self.reference = speech_path
        pcm, self.starts, self.span = stimulus(rate, np.frombuffer(speech, dtype="<i2"))
        self.path = Path(workdir) / "stimulus-{}.wav".format(rate)
        write_wav(self.path, rate, pcm.astype("<i2").tobytes())
        self.seconds = len(pcm) / float(rate)


class SottoPhone:
    """Sotto's MediaStream in a process of its own, as `sotto` runs it (no other thread of the bench
    shares its interpreter), on a UDP socket it reads once per period (read_socket), with the stimulus
    as microphone and a recorder as earpiece, both timed (`python -m tools.bench.latency --sotto`)."""

    def __init__(self, workdir, name, codec, stim):
        from tools.bench.versus import CODECS

        self.name = name
        self.codec = codec
        self.rate = CODECS[codec][1]
        self.stim = stim
        self.workdir = Path(workdir)
        self.recording = self.workdir / "{}-received.wav".format(name)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        self.process = None
        self.stats = None
        self._result = None

    def open(self, remote, tx_params, rx_params):
        """Start the stream: it sends to `remote` with `tx_params` and accepts `rx_params`."""
        import json

        def keys(params):
            return [params[0], params[1].hex(), params[2].hex()]

        config = self.workdir / "{}.json".format(self.name)
        config.write_text(
            json.dumps(
                {
                    "fd": self.sock.fileno(),
                    "codec": self.codec,
                    "rate": self.rate,
                    "stimulus": str(self.stim.path),
                    "recording": str(self.recording),
                    "remote": list(remote),
                    "tx": keys(tx_params),
                    "rx": keys(rx_params),
                    "out": str(self.workdir / "{}-events.json".format(self.name)),
                }
            )
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.bench.latency", "--sotto", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=str(Path(__file__).resolve().parents[2]),
            pass_fds=[self.sock.fileno()],
        )
        ready = self.process.stdout.readline()  # bounded: the child exits (EOF) if it cannot start
        if ready.strip() != b"started":
            self.process.wait(10)
            raise RuntimeError("the Sotto media process did not start (exit {})".format(self.process.returncode))

    def stop(self):
        import json

        if self.process is not None:
            try:
                self.process.stdin.close()
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            out = self.workdir / "{}-events.json".format(self.name)
            if out.exists():
                self._result = json.loads(out.read_text())
                self.stats = self._result["stats"]
        self.sock.close()

    def _events(self, name):
        if self._result is None:
            raise RuntimeError("the Sotto media process left no timings")
        return [tuple(event) for event in self._result[name]]

    def capture(self):
        return capture_origin(self._events("capture"), self.rate)

    def played(self):
        rate, received = read_recording(self.recording)
        return rate, received, playback_origin(self._events("playback"), rate)


def sotto_main(argv):
    """`python -m tools.bench.latency --sotto CONFIG.json`: one MediaStream until stdin closes."""
    import json

    from audio.wavfile import WavRecorder, WavSource
    from firmware.runtime.media import MediaStream
    from tools.bench.versus import CODECS

    config = json.loads(Path(argv[0]).read_text())
    sock = socket.socket(fileno=config["fd"])
    sock.setblocking(False)  # as sotto's sockets: the audio thread drains it without waiting

    def keys(value):
        return (value[0], bytes.fromhex(value[1]), bytes.fromhex(value[2]))

    codec, rate = config["codec"], config["rate"]
    source = TimedSource(WavSource(config["stimulus"], rate, loop=False))
    sink = TimedSink(WavRecorder(config["recording"], rate))
    stream = MediaStream(
        sock, codec, CODECS[codec][0], 101, source, sink, os.urandom, remote=tuple(config["remote"]), rtcp_mux=False
    )
    stream.set_keys(keys(config["tx"]), keys(config["rx"]))
    stream.read_socket(lambda datagram, addr: None)
    stream.start()
    sys.stdout.write("started\n")
    sys.stdout.flush()
    while os.read(sys.stdin.fileno(), 64):
        pass
    stats = stream.stats()
    stream.stop()
    Path(config["out"]).write_text(json.dumps({"capture": source.events, "playback": sink.events, "stats": stats}))
    return 0


class LinphonePhone:
    """linphonec, auto-answering, with its file sound card playing the stimulus and recording; its file
    offsets polled from outside."""

    def __init__(self, workdir, name, codec, stim, auto_answer=True):
        from tests.firmware.runtime.test_media_interop import _rc
        from tools.bench.versus import CODECS, _free_udp_port

        if shutil.which("linphonec") is None:
            raise RuntimeError("linphonec is not installed (Debian package linphone-cli; make venv-dev installs it)")
        self.name = name
        self.codec = codec
        self.stim = stim
        self.workdir = Path(workdir) / name
        home = self.workdir / "home"
        (home / ".local/share/linphone").mkdir(parents=True)
        self.recording = self.workdir / "received.wav"
        _, _, rtpmap, clock, _ = CODECS[codec]
        self.sip_port, rtp_port = _free_udp_port(), _free_udp_port()
        self.suites = ("AES_CM_128_HMAC_SHA1_80",)
        (self.workdir / "rc").write_text(_rc(home, self.sip_port, rtp_port, rtpmap, clock, self.suites))
        self.process = subprocess.Popen(
            ["linphonec", "-c", str(self.workdir / "rc")] + (["-a"] if auto_answer else []),
            stdin=subprocess.PIPE,
            stdout=(self.workdir / "console.txt").open("wb"),
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, HOME=str(home)),
            cwd=self.workdir,
            start_new_session=True,
        )
        self.poller = _Poller(self.process.pid, self.workdir / "offsets.txt", [stim.path, self.recording])
        self.series = None

    def command(self, line):
        self.process.stdin.write((line + "\n").encode())
        self.process.stdin.flush()

    def use_files(self):
        for line in ("soundcard use files", "play {}".format(self.stim.path), "record {}".format(self.recording)):
            self.command(line)

    def offer(self, rtp_port):
        from tests.firmware.runtime.test_media_interop import files_and_offer

        return files_and_offer(
            self.process, self.stim.path, self.recording, rtp_port, self.codec, self.suites, opus_fec=True
        )

    def stop(self):
        try:
            self.process.stdin.write(b"quit\n")
            self.process.stdin.flush()
            self.process.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(5)
        self.series = self.poller.stop()

    def capture(self):
        path = str(Path(self.stim.path).resolve())
        return capture_origin(
            linphone_events(self.series[path], _data_offset(self.stim.path), self.stim.rate, reader=True),
            self.stim.rate,
        )

    def played(self):
        rate, received = read_recording(self.recording)
        path = str(Path(self.recording).resolve())
        return rate, received, playback_origin(linphone_events(self.series[path], 0, rate, reader=False), rate)


def _direction(name, sender, receiver):
    rate, received, playback = receiver.played()
    return _Direction(
        name,
        sender.stim.starts,
        sender.stim.span,
        sender.stim.rate,
        sender.capture(),
        rate,
        received,
        playback,
        sender.stim.reference,
    )


# --- the calls, through versus.py's relay ---------------------------------------------------------------


def _keys():
    return ("AES_CM_128_HMAC_SHA1_80", os.urandom(16), os.urandom(14))


def _call_sotto_sotto(workdir, codec, stim, relay, seed=1):
    alice, bob = SottoPhone(workdir, "sotto-a", codec, stim), SottoPhone(workdir, "sotto-b", codec, stim)
    a_to_b, b_to_a = _keys(), _keys()
    try:
        relay.to_linphone, relay.to_sotto = alice.address, bob.address
        relay.start()
        alice.open(("127.0.0.1", relay.a_port), a_to_b, b_to_a)
        bob.open(("127.0.0.1", relay.b_port), b_to_a, a_to_b)
        time.sleep(stim.seconds + 1.0)
    finally:
        alice.stop()
        bob.stop()
    return [_direction("Sotto -> Sotto", alice, bob)], {"Sotto": bob.stats}


def _call_sotto_linphone(workdir, codec, stim, relay, seed=1):
    import re

    from firmware.srtp import sdes
    from tests.firmware.runtime.test_media_interop import SipCaller
    from tools.bench.versus import _free_udp_port

    linphone = LinphonePhone(workdir, "linphone", codec, stim)
    sotto = SottoPhone(workdir, "sotto", codec, stim)
    caller = SipCaller(_free_udp_port(), linphone.sip_port)
    try:
        time.sleep(1.5)  # linphonec starting up
        offer, sdp = linphone.offer(relay.a_port)
        relay.to_sotto = sotto.address
        relay.start()
        answer = caller.invite(sdp)
        relay.to_linphone = ("127.0.0.1", int(re.search(r"m=audio (\d+)", answer).group(1)))
        ours, theirs = sdes.accept_answer(offer, re.search(r"a=crypto:(.*)", answer).group(1).strip())
        sotto.open(("127.0.0.1", relay.b_port), ours.params(), theirs.params())
        time.sleep(stim.seconds + 1.0)
        caller.bye()
        time.sleep(0.3)
    finally:
        sotto.stop()
        linphone.stop()
        caller.close()
    return [_direction("Sotto -> linphone", sotto, linphone), _direction("linphone -> Sotto", linphone, sotto)], {
        "Sotto": sotto.stats
    }


def _call_linphone_linphone(workdir, codec, stim, relay, seed=1):
    """linphonec A calls linphonec B (auto-answer) with its own SIP, through versus.py's SdpForwarder,
    which moves both SDPs' audio ports to the relay: one SDES call between the two, as in versus."""
    from tools.bench.versus import SdpForwarder

    callee = LinphonePhone(workdir, "linphone-b", codec, stim)
    caller = LinphonePhone(workdir, "linphone-a", codec, stim, auto_answer=False)
    forwarder = SdpForwarder(relay, callee.sip_port)
    try:
        time.sleep(1.5)  # both starting up
        for phone in (caller, callee):
            phone.use_files()
        time.sleep(0.5)  # linphonec reads its commands in its own time; nothing tells us it has
        relay.start()
        forwarder.start()
        caller.command("call sip:bob@127.0.0.1:{}".format(forwarder.port))
        time.sleep(stim.seconds + 1.5)
        caller.command("terminate")
        time.sleep(0.5)
    finally:
        caller.stop()
        callee.stop()
        forwarder.stop()
    return [_direction("linphone -> linphone", caller, callee)], {}


CALLS = {
    "sotto-sotto": _call_sotto_sotto,
    "sotto-linphone": _call_sotto_linphone,
    "linphone-linphone": _call_linphone_linphone,
}


def _pesq(direction, latency_s, workdir, mode):
    """PESQ of the speech in what the receiver played: cut from the recording where the measured
    latency puts it (pesq_score then aligns to the sample)."""
    from audio.wavfile import write_wav
    from tools.bench.pesq import pesq_score

    if direction.span is None or latency_s is None:
        return None
    begin, end = direction.span
    segment = _segment_for(direction.capture, begin, direction.sent_rate)
    if segment is None:
        return None
    played_at = segment.origin + begin / float(direction.sent_rate) + latency_s
    best = None
    for play in direction.playback:  # the earpiece's timeline that holds the speech's start, or the nearest
        first = int((played_at - play.origin) * direction.received_rate)
        distance = max(play.first - first, first - play.last, 0)
        if best is None or distance < best[0]:
            best = (distance, first)
    if best is None or best[0] > direction.received_rate:
        return None
    start = best[1]
    margin = direction.received_rate // 4
    length = int((end - begin) / float(direction.sent_rate) * direction.received_rate)
    cut = direction.received[max(0, start - margin) : start + length + margin]
    path = Path(workdir) / "{}-speech.wav".format(direction.name.replace(" ", "").replace(">", ""))
    write_wav(path, direction.received_rate, cut.astype("<i2").tobytes())
    return pesq_score(direction.reference, path, mode, max_delay_s=0.5)


def measure(kind, codec, voice16k, jitter_ms, workdir, seed=1, loss=0.0, burst=1.0):
    """One call of `kind` (a CALLS key) through the relay (`jitter_ms` uniform jitter on top of
    NETWORK_BASE_MS; no loss unless `loss`, in bursts of mean `burst` when above 1, as versus.py):
    {direction name: (summary or None, PESQ or None)} and the Sotto streams' stats."""
    from tools.bench.versus import CODECS, ImpairedRelay

    workdir = Path(workdir)
    rate, mode = CODECS[codec][1], CODECS[codec][4]
    stim = _Stimulus(workdir, voice16k, rate)
    relay = ImpairedRelay(loss, burst, jitter_ms, base_ms=NETWORK_BASE_MS, seed=seed)
    try:
        directions, stats = CALLS[kind](workdir, codec, stim, relay, seed)
    finally:
        relay.stop()
    results = {}
    for direction in directions:
        found = latencies(
            direction.starts,
            direction.sent_rate,
            direction.capture,
            direction.received,
            direction.received_rate,
            direction.playback,
        )
        summary = summarise(found)
        score = None
        if summary is not None:
            score = _pesq(direction, summary["median_ms"] / 1000.0, workdir, mode)
        results[direction.name] = (summary, score)
    return results, stats


# --- make bench --------------------------------------------------------------------------------------

CODECS_MEASURED = ("PCMU", "opus")
JITTERS_MS = (0.0, 40.0)
ORDER = ("Sotto -> Sotto", "Sotto -> linphone", "linphone -> Sotto", "linphone -> linphone")
TARGET_BELOW_LINPHONE_MS = 20.0
TARGET_CLEAN_MS = 80.0


RUNS = 3  # calls per cell: each call's figure is fixed by the phase its two audio clocks happen to meet at


def table(codecs=CODECS_MEASURED, jitters=JITTERS_MS, voice="slt", runs=RUNS):
    """{(codec, jitter, direction): [(summary, PESQ) per call]}, and {(codec, jitter, kind): [Sotto stats]}."""
    from tools.bench.pesq import make_voice_wav

    rows = {}
    stats_rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        voice16k = make_voice_wav(Path(tmp) / "voice.wav", 16000, voice=voice)
        for codec in codecs:
            for jitter in jitters:
                for kind in CALLS:
                    for run_index in range(runs):
                        work = Path(tmp) / "{}-{}-{:.0f}-{}".format(codec, kind, jitter, run_index)
                        work.mkdir()
                        try:
                            results, stats = measure(kind, codec, voice16k, jitter, work, seed=run_index + 1)
                        except Exception as exc:  # one failed call leaves its cells short, says why
                            print(
                                "    ({} {} {:.0f} ms jitter, call {} failed: {}: {})".format(
                                    codec, kind, jitter, run_index + 1, type(exc).__name__, exc
                                )
                            )
                            continue
                        for name, result in results.items():
                            rows.setdefault((codec, jitter, name), []).append(result)
                        if stats.get("Sotto"):
                            stats_rows.setdefault((codec, jitter, kind), []).append(stats["Sotto"])
    return rows, stats_rows


def _median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0


def cell(results):
    """(median over calls of each call's median latency in ms, lowest, highest chirp, mean PESQ), or None."""
    found = [(summary, score) for summary, score in results or () if summary is not None]
    if not found:
        return None
    scores = [score for _, score in found if score is not None]
    return (
        _median([summary["median_ms"] for summary, _ in found]),
        min(summary["min_ms"] for summary, _ in found),
        max(summary["max_ms"] for summary, _ in found),
        sum(scores) / len(scores) if scores else None,
        len(found),
    )


def _cell_text(figures):
    if figures is None:
        return "-"
    median, low, high, score, calls = figures
    return "{:6.1f} ms ({:.0f}-{:.0f})  PESQ {}  [{} calls]".format(
        median, low, high, "-" if score is None else "{:.2f}".format(score), calls
    )


def run(codecs=CODECS_MEASURED, runs=RUNS):
    print(
        "  One-way mouth-to-ear latency, median of {} calls (each: the median over {} chirps; lowest-highest".format(
            runs, 2 * CHIRPS_PER_TRAIN
        )
    )
    print("  chirp in brackets), PESQ of the speech between the chirps (NB for PCMU, WB otherwise, flite slt);")
    print(
        "  SDES-SRTP through versus.py's relay ({:.0f} ms one way + uniform jitter, no loss); file devices on".format(
            NETWORK_BASE_MS
        )
    )
    print("  both phones, no sound-card buffer on either (a real card adds Sotto's ALSA prefill, 2 periods: 40 ms,")
    print("  and linphone's ALSA start threshold, 2 periods of 32 ms: 64 ms); load {:.1f}.".format(os.getloadavg()[0]))
    rows, stats_rows = table(codecs, runs=runs)
    verdicts = []
    for codec in codecs:
        for jitter in JITTERS_MS:
            print("    {}, {}:".format(codec, "clean" if not jitter else "{:.0f} ms jitter".format(jitter)))
            for name in ORDER:
                print("      {:22s} {}".format(name, _cell_text(cell(rows.get((codec, jitter, name))))))
            for kind in CALLS:
                stats = stats_rows.get((codec, jitter, kind))
                if stats:
                    print(
                        "      (Sotto's playout, {}: target {:.0f} ms, buffered {:.0f} ms on average)".format(
                            kind,
                            _median([s["target_delay_ms"] for s in stats]),
                            _median([s["playout_delay_ms"] for s in stats]),
                        )
                    )
            sotto = cell(rows.get((codec, jitter, "Sotto -> Sotto")))
            linphone = cell(rows.get((codec, jitter, "linphone -> linphone")))
            if sotto is not None and not jitter:
                verdicts.append(
                    "{} clean: Sotto {:.1f} ms, target under {:.0f}: {}".format(
                        codec, sotto[0], TARGET_CLEAN_MS, "met" if sotto[0] < TARGET_CLEAN_MS else "MISSED"
                    )
                )
            if sotto is not None and linphone is not None:
                gap = linphone[0] - sotto[0]
                verdicts.append(
                    "{} {}: Sotto {:.1f} ms less than linphone (target {:.0f}, at equal PESQ: {:.2f} vs {}): {}".format(
                        codec,
                        "clean" if not jitter else "{:.0f} ms jitter".format(jitter),
                        gap,
                        TARGET_BELOW_LINPHONE_MS,
                        sotto[3] or 0.0,
                        "-" if linphone[3] is None else "{:.2f}".format(linphone[3]),
                        "met" if gap >= TARGET_BELOW_LINPHONE_MS else "MISSED",
                    )
                )
    for line in verdicts:
        print("  " + line)


def main(argv):
    if argv and argv[0] == "--poll":
        return poll_main(argv[1:])
    if argv and argv[0] == "--sotto":
        return sotto_main(argv[1:])
    runs = RUNS
    if argv and argv[0].startswith("--runs="):
        runs = int(argv[0].split("=", 1)[1])
        argv = argv[1:]
    run(tuple(argv) or CODECS_MEASURED, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
