"""Sotto and linphonec receiving through the same impaired network, in one real call (issue 14).

Sotto's MediaStream (the code `sotto` runs) calls a linphonec that auto-answers, over SDES-SRTP on
127.0.0.1, with the hand-written SIP of tests/firmware/runtime/test_media_interop.py. The RTP of both
directions goes through a relay (ImpairedRelay): our offer names the relay's port, so linphonec sends to
it, and our stream sends to its other port. Each direction drops packets (random, or Gilbert-Elliott
bursts) and delays each packet by `base_ms` plus a uniform 0..`jitter_ms` (so packets also reorder),
from its own generator seeded alike: packet n of one direction meets the same fate as packet n of the
other. netem is not available here (../shared/INTEROP.md), and this needs no privilege.

linphone <-> linphone: two linphonecs through the same relay, with the same seeds (linphone_pair_call).
linphonec's SDP cannot be told to name the relay, so a small SIP forwarder (SdpForwarder) sits between
caller and callee and rewrites the m=audio port of the offer and of the answer.

Sotto -> Sotto: two MediaStreams through the same relay and seeds, each in a process of its own as `sotto`
runs (sotto_pair_call, through latency.py's SottoPhone), without RFC 2198 redundancy: concealment alone,
as against linphone (impair.py shows what RED adds).

Clock skew: `skew_ppm` runs Sotto's sound card (the WavSource that paces the audio loop; every period is
one capture read and one playback write) that many parts per million fast or slow against real time, as
a USB headset's crystal off by that much: Sotto then sends 1 + ppm/1e6 packets per 20 ms of the peer's
clock, and plays the peer's packets at that rate, so both receivers meet the drift. linphonec's side is
not skewed (its file sound card is paced by its own ticker on the system clock).

Every port is a free port (linphonec's RTCP on RTP + 1 included), so no lock is needed.

Both phones play the same flite voice and record; PESQ (NB for G.711, WB otherwise) of what each one
received is the receiving phone's figure: its jitter buffer, concealment and playout against the
other's under the same loss. Real time on a shared machine: scheduling adds its own jitter, so the
figures move by a few hundredths from run to run; the deterministic Sotto-only bench is impair.py.

API (host-only):
    ImpairedRelay(loss, burst, jitter_ms, base_ms, seed)    .start(), .stop(); .a_port (faces linphone),
        .b_port (faces us); .to_linphone and .to_sotto: where each side's packets are forwarded;
        .counts = {"to_sotto": [forwarded, dropped], "to_linphone": [...]}
    versus_call(workdir, codec, voice_wav16k, loss=0.0, burst=1.0, jitter_ms=40.0, seed=1, skew_ppm=0.0)
        -> (sotto_receives PESQ, linphone_receives PESQ, sotto's stream stats)
    linphone_pair_call(workdir, codec, voice_wav16k, loss=0.0, burst=1.0, jitter_ms=40.0, seed=1)
        -> (caller receives PESQ, callee receives PESQ, relay counts)
    sotto_pair_call(workdir, codec, voice_wav16k, loss=0.0, burst=1.0, jitter_ms=40.0, seed=1)
        -> PESQ of what the called Sotto received (None when its speech could not be located)
    SdpForwarder(relay, callee_sip_port)   .port (the caller calls sip:bob@127.0.0.1:PORT), .start(),
        .stop(), .rewrite(message, from_caller) -> message
    skewed_clock(ppm, clock=time.monotonic) -> a clock running ppm parts per million fast
    cell(voices, codec, loss, burst, jitter_ms, seed, skew_ppm) -> (Sotto, linphone from Sotto,
        linphone from linphone), means over the voices
    run()   make bench: the side-by-side table, and a PNG plot (bench-versus-linphone.png)

Command line: `python -m tools.bench.versus CODEC LOSS_PERCENT JITTER_MS [BURST [SEED [SKEW_PPM]]]`.
"""

import heapq
import os
import random
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tools.bench.impair import GilbertElliott, RandomLoss

# codec: (payload type, the rate our WAVs are read at, rtpmap, RTP clock, PESQ mode)
CODECS = {
    "PCMU": (0, 8000, "PCMU/8000", 8000, "nb"),
    "G722": (9, 16000, "G722/8000", 8000, "wb"),
    "opus": (111, 48000, "opus/48000/2", 48000, "wb"),
}
LOSSES = (0.0, 0.03, 0.05, 0.10)
VOICES = ("slt", "rms")
TARGET_MARGIN = 0.3  # issue 14: what Sotto receives is at least linphone + 0.3


def _free_udp_port():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def _free_rtp_port():
    """A free port whose next one is free too: linphonec binds RTCP on RTP + 1."""
    for _ in range(100):
        port = _free_udp_port()
        if port % 2 or port + 1 > 65535:
            continue
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        finally:
            probe.close()
        return port
    raise RuntimeError("no free pair of UDP ports on 127.0.0.1")


class _Direction:
    def __init__(self, loss, burst, jitter_s, base_s, seed):
        rng = random.Random(seed)
        self.loss = GilbertElliott(loss, burst, rng) if burst > 1.0 and loss else RandomLoss(loss, rng)
        self.delay_rng = random.Random(seed + 1)
        self.jitter_s = jitter_s
        self.base_s = base_s
        self.forwarded = self.dropped = 0

    def delay(self):
        return self.base_s + self.delay_rng.uniform(0.0, self.jitter_s)


class _SocketPairThread:
    """Two UDP sockets on loopback free ports, side_a and side_b, served by a daemon thread (the
    subclass's _run(), while _running) from start() until stop(), which also closes them."""

    def __init__(self):
        self.side_a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.side_a.bind(("127.0.0.1", 0))
        self.side_b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.side_b.bind(("127.0.0.1", 0))
        self._running = False
        self._thread = None

    def start(self):
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self):
        self._running = False
        if self._thread is not None:
            self._thread.join(2)
        self.side_a.close()
        self.side_b.close()


class ImpairedRelay(_SocketPairThread):
    """side_a faces linphonec (it sends there), side_b our stream."""

    def __init__(self, loss, burst, jitter_ms, base_ms=10.0, seed=1):
        super().__init__()
        self.a_port = self.side_a.getsockname()[1]
        self.b_port = self.side_b.getsockname()[1]
        self.to_linphone = None
        self.to_sotto = None
        args = (loss, burst, jitter_ms / 1000.0, base_ms / 1000.0, seed)
        self._directions = {"to_sotto": _Direction(*args), "to_linphone": _Direction(*args)}
        self._queue = []
        self._order = 0

    @property
    def counts(self):
        return {name: [d.forwarded, d.dropped] for name, d in self._directions.items()}

    def _accept(self, sock, now):
        try:
            data = sock.recv(4096)
        except OSError:
            return
        if sock is self.side_a:
            name, out, target = "to_sotto", self.side_b, self.to_sotto
        else:
            name, out, target = "to_linphone", self.side_a, self.to_linphone
        if target is None:
            return
        direction = self._directions[name]
        if direction.loss.lost():
            direction.dropped += 1
            return
        direction.forwarded += 1
        self._order += 1
        heapq.heappush(self._queue, (now + direction.delay(), self._order, out, data, target))

    def _run(self):
        sockets = [self.side_a, self.side_b]
        while self._running:
            now = time.monotonic()
            while self._queue and self._queue[0][0] <= now:
                _, _, out, data, target = heapq.heappop(self._queue)
                try:
                    out.sendto(data, target)
                except OSError:
                    pass
            timeout = 0.05
            if self._queue:
                timeout = max(0.0, min(timeout, self._queue[0][0] - now))
            readable, _, _ = select.select(sockets, [], [], timeout)
            now = time.monotonic()
            for sock in readable:
                self._accept(sock, now)


def skewed_clock(ppm, clock=time.monotonic):
    """A clock that runs `ppm` parts per million fast (negative: slow) from now on: a sound card's crystal
    off by that much. WavSource paces its periods by it, so the card delivers (and, in MediaStream, plays,
    since every period is one read and one write) 1 + ppm/1e6 periods per real period."""
    start = clock()
    factor = 1.0 + ppm * 1e-6
    return lambda: start + (clock() - start) * factor


def versus_call(workdir, codec, voice_wav16k, loss=0.0, burst=1.0, jitter_ms=40.0, seed=1, skew_ppm=0.0):
    from audio.wavfile import WavRecorder, WavSource
    from firmware.runtime.media import MediaStream
    from firmware.srtp import sdes
    from tests.firmware.runtime.test_media_interop import SipCaller, _rc, files_and_offer
    from tools.bench.calls import resampled_copy, wav_seconds
    from tools.bench.pesq import pesq_score

    if shutil.which("linphonec") is None:
        raise RuntimeError("linphonec is not installed (Debian package linphone-cli; make venv-dev installs it)")
    pt, rate, rtpmap, clock, mode = CODECS[codec]
    workdir = Path(workdir)
    home = workdir / "home"
    (home / ".local/share/linphone").mkdir(parents=True)
    speech = resampled_copy(voice_wav16k, workdir / "speech.wav", rate)
    seconds = wav_seconds(speech) + 1.5
    lp_sip, lp_rtp = _free_udp_port(), _free_rtp_port()
    suites = ("AES_CM_128_HMAC_SHA1_80",)
    (workdir / "rc").write_text(_rc(home, lp_sip, lp_rtp, rtpmap, clock, suites))
    linphone = subprocess.Popen(
        ["linphonec", "-c", str(workdir / "rc"), "-a"],
        stdin=subprocess.PIPE,
        stdout=(workdir / "console.txt").open("wb"),
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, HOME=str(home)),
        cwd=workdir,
        start_new_session=True,
    )
    relay = ImpairedRelay(loss, burst, jitter_ms, seed=seed)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    caller = SipCaller(_free_udp_port(), lp_sip)
    stream = None
    running = [True]
    pump = None
    stats = None
    try:
        time.sleep(1.5)
        offer, sdp = files_and_offer(
            linphone, speech, workdir / "linphone_received.wav", relay.a_port, codec, suites, opus_fec=True
        )
        relay.to_sotto = rtp.getsockname()
        relay.start()
        answer = caller.invite(sdp)
        relay.to_linphone = ("127.0.0.1", int(re.search(r"m=audio (\d+)", answer).group(1)))
        ours, theirs = sdes.accept_answer(offer, re.search(r"a=crypto:(.*)", answer).group(1).strip())
        stream = MediaStream(
            rtp,
            codec,
            pt,
            101,
            WavSource(speech, rate, loop=False, clock=skewed_clock(skew_ppm)),
            WavRecorder(workdir / "sotto_received.wav", rate),
            os.urandom,
            remote=("127.0.0.1", relay.b_port),
            rtcp_mux=False,
        )
        stream.set_keys(ours.params(), theirs.params())

        def pump_loop():
            rtp.settimeout(0.05)
            while running[0]:
                try:
                    data, addr = rtp.recvfrom(4096)
                except OSError:
                    continue
                stream.deliver(data, addr)

        pump = threading.Thread(target=pump_loop, daemon=True)
        pump.start()
        stream.start()
        time.sleep(seconds)
        stats = stream.stats()
        caller.bye()
        time.sleep(0.5)
    finally:
        if stream is not None:
            stream.stop()
        running[0] = False
        if pump is not None:
            pump.join(2)
        try:
            linphone.stdin.write(b"quit\n")
            linphone.stdin.flush()
            linphone.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            linphone.kill()
            linphone.wait(5)
        relay.stop()
        caller.close()
        rtp.close()
    sotto_receives = pesq_score(speech, workdir / "sotto_received.wav", mode)
    linphone_receives = pesq_score(speech, workdir / "linphone_received.wav", mode)
    return sotto_receives, linphone_receives, dict(stats, relay=relay.counts)


class SdpForwarder(_SocketPairThread):
    """Puts the relay into a call between two linphonecs: a UDP SIP forwarder between caller A and callee B
    that rewrites the SDP, so each one's RTP goes to the relay (there is no other way into linphonec's
    media path). A calls sip:bob@127.0.0.1:`.port`; what A sends there goes on to B from a second socket,
    and what B sends back to that socket goes on to A. B answers there because linphone's Via carries
    rport (RFC 3581: responses go to the request's source). The offer's m=audio port becomes the relay's
    port facing B (relay.a_port) and the answer's the one facing A (relay.b_port); the real ports are
    where the relay forwards (A in the role of `to_sotto`). ACK and BYE go to the Contact, straight
    between the two: they carry no SDP. Loopback only; stop() ends its thread."""

    def __init__(self, relay, callee_sip_port):
        self.relay = relay
        self.callee = ("127.0.0.1", callee_sip_port)
        super().__init__()  # side_a faces the caller, side_b the callee
        self.port = self.side_a.getsockname()[1]
        self.caller = None
        self.forwarded = 0

    def rewrite(self, message, from_caller):
        """The SIP message with its SDP's audio port moved to the relay and its Content-Length fixed; the
        request URI and To of the caller's requests name the callee's real port."""
        head, sep, body = message.partition(b"\r\n\r\n")
        match = re.search(rb"^m=audio (\d+)", body, re.M)
        if match:
            real = ("127.0.0.1", int(match.group(1)))
            if from_caller:
                self.relay.to_sotto = real
                port = self.relay.a_port
            else:
                self.relay.to_linphone = real
                port = self.relay.b_port
            body = body[: match.start(1)] + str(port).encode() + body[match.end(1) :]
            head = re.sub(rb"(?im)^(Content-Length|l)[ \t]*:[ \t]*\d+", b"Content-Length: %d" % len(body), head)
        if from_caller:
            ours = b"127.0.0.1:%d" % self.port
            head = head.replace(ours, b"127.0.0.1:%d" % self.callee[1])
        return head + sep + body

    def _run(self):
        while self._running:
            readable, _, _ = select.select([self.side_a, self.side_b], [], [], 0.05)
            for sock in readable:
                try:
                    data, addr = sock.recvfrom(65535)
                except OSError:
                    continue
                if sock is self.side_a:
                    self.caller = addr
                    out, target, from_caller = self.side_b, self.callee, True
                elif self.caller is not None:
                    out, target, from_caller = self.side_a, self.caller, False
                else:
                    continue
                try:
                    out.sendto(self.rewrite(data, from_caller), target)
                    self.forwarded += 1
                except OSError:
                    pass


def _start_linphonec(workdir, codec, suites, auto_answer):
    from tests.firmware.runtime.test_media_interop import _rc

    _, _, rtpmap, clock, _ = CODECS[codec]
    workdir.mkdir(parents=True)
    home = workdir / "home"
    (home / ".local/share/linphone").mkdir(parents=True)
    sip_port, rtp_port = _free_udp_port(), _free_rtp_port()
    (workdir / "rc").write_text(_rc(home, sip_port, rtp_port, rtpmap, clock, suites))
    process = subprocess.Popen(
        ["linphonec", "-c", str(workdir / "rc")] + (["-a"] if auto_answer else []),
        stdin=subprocess.PIPE,
        stdout=(workdir / "console.txt").open("wb"),
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, HOME=str(home)),
        cwd=workdir,
        start_new_session=True,
    )
    return process, sip_port


def _linphonec_command(process, line):
    process.stdin.write((line + "\n").encode())
    process.stdin.flush()


def _wait_console(workdir, pattern, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, (workdir / "console.txt").read_text(errors="replace")):
            return
        time.sleep(0.1)
    raise RuntimeError("linphonec did not print {!r} in {} s".format(pattern, timeout))


def _end_linphonec(process):
    try:
        _linphonec_command(process, "quit")
        process.wait(5)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()
        process.wait(5)


def linphone_pair_call(workdir, codec, voice_wav16k, loss=0.0, burst=1.0, jitter_ms=40.0, seed=1):
    """linphonec A calls linphonec B (auto-answer) over SDES-SRTP with the RTP of both directions through
    the same seeded ImpairedRelay as versus_call; both play the speech and record.
    -> (A receives PESQ, B receives PESQ, relay counts)"""
    from tools.bench.calls import resampled_copy, wav_seconds
    from tools.bench.pesq import pesq_score

    if shutil.which("linphonec") is None:
        raise RuntimeError("linphonec is not installed (Debian package linphone-cli; make venv-dev installs it)")
    _, rate, _, _, mode = CODECS[codec]
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    speech = resampled_copy(voice_wav16k, workdir / "speech.wav", rate)
    seconds = wav_seconds(speech) + 1.5
    suites = ("AES_CM_128_HMAC_SHA1_80",)
    received = {side: workdir / "{}_received.wav".format(side) for side in ("a", "b")}
    relay = ImpairedRelay(loss, burst, jitter_ms, seed=seed)
    callee, callee_port = _start_linphonec(workdir / "b", codec, suites, True)
    caller = forwarder = None
    try:
        caller, _ = _start_linphonec(workdir / "a", codec, suites, False)
        forwarder = SdpForwarder(relay, callee_port)
        time.sleep(1.5)  # both starting up
        for process, side in ((caller, "a"), (callee, "b")):
            for line in ("soundcard use files", "play {}".format(speech), "record {}".format(received[side])):
                _linphonec_command(process, line)
        time.sleep(0.5)
        relay.start()
        forwarder.start()
        _linphonec_command(caller, "call sip:bob@127.0.0.1:{}".format(forwarder.port))
        _wait_console(workdir / "a", r"[Cc]all \d+ .*connected", 15)
        time.sleep(seconds)
        _linphonec_command(caller, "terminate")
        time.sleep(0.5)
    finally:
        for process in (caller, callee):
            if process is not None:
                _end_linphonec(process)
        if forwarder is not None:
            forwarder.stop()
        relay.stop()
    return pesq_score(speech, received["a"], mode), pesq_score(speech, received["b"], mode), relay.counts


def sotto_pair_call(workdir, codec, voice_wav16k, loss=0.0, burst=1.0, jitter_ms=40.0, seed=1):
    """Sotto -> Sotto through the same seeded ImpairedRelay: two MediaStreams, each in a process of its own
    as `sotto` runs (latency.py's SottoPhone; the speech sits between two chirp trains, and PESQ is of the
    speech as received). -> PESQ, or None where the speech could not be located."""
    from tools.bench import latency

    Path(workdir).mkdir(parents=True, exist_ok=True)
    results, _ = latency.measure("sotto-sotto", codec, voice_wav16k, jitter_ms, workdir, seed, loss, burst)
    return results["Sotto -> Sotto"][1]


SKEWS_PPM = (300.0, -300.0)  # Sotto's sound card, at 0 % loss and 40 ms jitter


def _mean(values):
    return sum(values) / len(values)


def cell(voices, codec, loss=0.0, burst=1.0, jitter_ms=40.0, seed=1, skew_ppm=0.0):
    """(Sotto receives, linphone receives from Sotto, linphone receives from linphone), each the mean over
    `voices`; the last is the mean of both directions of a linphonec <-> linphonec call through the same
    relay (no skew there: linphonec's sound card is files paced by its own clock)."""
    sotto, linphone, pair = [], [], []
    for voice in voices:
        with tempfile.TemporaryDirectory() as tmp:
            ours, theirs, _ = versus_call(Path(tmp) / "sl", codec, voice, loss, burst, jitter_ms, seed, skew_ppm)
            a_receives, b_receives, _ = linphone_pair_call(Path(tmp) / "ll", codec, voice, loss, burst, jitter_ms, seed)
        sotto.append(ours)
        linphone.append(theirs)
        pair.append((a_receives + b_receives) / 2)
    return _mean(sotto), _mean(linphone), _mean(pair)


def table(voices, losses=LOSSES, burst=1.0, jitter_ms=40.0, seed=1, codecs=tuple(CODECS)):
    """{codec: [cell() per loss]}."""
    return {codec: [cell(voices, codec, loss, burst, jitter_ms, seed) for loss in losses] for codec in codecs}


def verdict(sotto, linphone, pair):
    """The issue's target against the better of the two linphone figures (from Sotto, from linphone)."""
    return "met" if sotto >= max(linphone, pair) + TARGET_MARGIN else "MISSED"


def run(plot_path="bench-versus-linphone.png"):
    from tools.bench.impair import plot
    from tools.bench.pesq import make_voice_wav

    with tempfile.TemporaryDirectory() as tmp:
        voices = [make_voice_wav(Path(tmp) / "{}.wav".format(v), 16000, voice=v) for v in VOICES]
        print("  One real call per figure, SDES-SRTP, both directions through one relay: 40 ms jitter (uniform,")
        print("  reordering) + 10 ms, loss seeded alike both ways (seed 1). Sotto's MediaStream <-> linphonec, and")
        print("  linphonec <-> linphonec (a SIP forwarder puts the relay in their SDP). PESQ of what each phone")
        print(
            "  RECEIVED (NB for PCMU, WB otherwise), mean of flite {}; load {:.1f}. Free ports only.".format(
                " and ".join(VOICES), os.getloadavg()[0]
            )
        )
        print("  Each cell: Sotto receives / linphone receives from Sotto / linphone receives from linphone, and")
        print(
            "  the target: Sotto >= the better linphone figure + {:.1f} (at 3, 5 and 10 % loss).".format(TARGET_MARGIN)
        )
        columns = ["{:.0f} % random".format(x * 100) for x in LOSSES] + ["5 % GE bursts of 3"]
        columns += ["0 %, Sotto's card {:+.0f} ppm".format(ppm) for ppm in SKEWS_PPM]
        print("    {:6s}".format("codec") + "".join("{:>28s}".format(c) for c in columns))
        lines = {}
        for codec in CODECS:
            row = table(voices, codecs=(codec,))[codec]
            extra = [cell(voices, codec, 0.05, 3.0)] + [cell(voices, codec, skew_ppm=ppm) for ppm in SKEWS_PPM]
            texts = []
            for index, (sotto, linphone, pair) in enumerate(row + extra):
                met = verdict(sotto, linphone, pair) if 1 <= index <= 4 else ""  # loss: 3, 5, 10 %, bursts
                texts.append("{:4.2f}/{:4.2f}/{:4.2f} {:>6s}".format(sotto, linphone, pair, met))
            print("    {:6s}".format(codec) + "".join("{:>28s}".format(t) for t in texts))
            sys.stdout.flush()
            lines["Sotto {}".format(codec)] = [c[0] for c in row]
            lines["linphone from Sotto {}".format(codec)] = [c[1] for c in row]
            lines["linphone from linphone {}".format(codec)] = [c[2] for c in row]
        print("  Sotto -> Sotto through the same relay and loss (two MediaStreams, each in its own process as")
        print("  `sotto` runs; no RED, so concealment alone as against linphone; mean of the voices):")
        print("    {:6s}".format("codec") + "".join("{:>28s}".format(c) for c in columns[: len(LOSSES) + 1]))
        for codec in CODECS:
            conditions = [(loss, 1.0) for loss in LOSSES] + [(0.05, 3.0)]
            texts = []
            for loss, burst in conditions:
                scores = [
                    sotto_pair_call(Path(tmp) / "pair-{}-{}-{}-{}".format(codec, loss, burst, n), codec, v, loss, burst)
                    for n, v in enumerate(voices)
                ]
                found = [score for score in scores if score is not None]
                texts.append("{:4.2f}".format(_mean(found)) if found else "-")
            print("    {:6s}".format(codec) + "".join("{:>28s}".format(t) for t in texts))
            sys.stdout.flush()
        if plot(lines, plot_path):
            print("  plot: {}".format(Path(plot_path).resolve()))


def main(argv):
    from tools.bench.pesq import make_voice_wav

    codec, loss, jitter = argv[0], float(argv[1]) / 100.0, float(argv[2])
    burst = float(argv[3]) if len(argv) > 3 else 1.0
    seed = int(argv[4]) if len(argv) > 4 else 1
    skew_ppm = float(argv[5]) if len(argv) > 5 else 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for voice in VOICES:
            wav = make_voice_wav(Path(tmp) / "{}.wav".format(voice), 16000, voice=voice)
            work = Path(tmp) / voice
            sotto, linphone, stats = versus_call(work / "sl", codec, wav, loss, burst, jitter, seed, skew_ppm)
            a_receives, b_receives, _ = linphone_pair_call(work / "ll", codec, wav, loss, burst, jitter, seed)
            print(
                "{} {}: sotto receives {:.3f}  linphone receives from sotto {:.3f}  linphone <-> linphone {:.3f}"
                " {:.3f}  {}".format(codec, voice, sotto, linphone, a_receives, b_receives, stats)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
