"""Sotto and linphonec receiving through the same impaired network, in one real call (issue 14).

Sotto's MediaStream (the code `sotto` runs) calls a linphonec that auto-answers, over SDES-SRTP on
127.0.0.1, with the hand-written SIP of tests/firmware/runtime/test_media_interop.py. The RTP of both
directions goes through a relay (ImpairedRelay): our offer names the relay's port, so linphonec sends to
it, and our stream sends to its other port. Each direction drops packets (random, or Gilbert-Elliott
bursts) and delays each packet by `base_ms` plus a uniform 0..`jitter_ms` (so packets also reorder),
from its own generator seeded alike: packet n of one direction meets the same fate as packet n of the
other. netem is not available here (../shared/INTEROP.md), and this needs no privilege.

Both phones play the same flite voice and record; PESQ (NB for G.711, WB otherwise) of what each one
received is the receiving phone's figure: its jitter buffer, concealment and playout against the
other's under the same loss. Real time on a shared machine: scheduling adds its own jitter, so the
figures move by a few hundredths from run to run; the deterministic Sotto-only bench is impair.py.

API (host-only):
    ImpairedRelay(loss, burst, jitter_ms, base_ms, seed)    .start(), .stop(); .a_port (faces linphone),
        .b_port (faces us); .to_linphone and .to_sotto: where each side's packets are forwarded;
        .counts = {"to_sotto": [forwarded, dropped], "to_linphone": [...]}
    versus_call(workdir, codec, voice_wav16k, loss=0.0, burst=1.0, jitter_ms=40.0, seed=1)
        -> (sotto_receives PESQ, linphone_receives PESQ, sotto's stream stats)
    run()   make bench: the side-by-side table, and a PNG plot (bench-versus-linphone.png)

Command line: `python -m tools.bench.versus CODEC LOSS_PERCENT JITTER_MS [BURST [SEED]]`.
"""

import heapq
import os
import random
import re
import select
import shutil
import socket
import subprocess
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


class ImpairedRelay:
    def __init__(self, loss, burst, jitter_ms, base_ms=10.0, seed=1):
        self.side_a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # linphonec sends here
        self.side_a.bind(("127.0.0.1", 0))
        self.side_b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # our stream sends here
        self.side_b.bind(("127.0.0.1", 0))
        self.a_port = self.side_a.getsockname()[1]
        self.b_port = self.side_b.getsockname()[1]
        self.to_linphone = None
        self.to_sotto = None
        args = (loss, burst, jitter_ms / 1000.0, base_ms / 1000.0, seed)
        self._directions = {"to_sotto": _Direction(*args), "to_linphone": _Direction(*args)}
        self._queue = []
        self._order = 0
        self._running = False
        self._thread = None

    @property
    def counts(self):
        return {name: [d.forwarded, d.dropped] for name, d in self._directions.items()}

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


def versus_call(workdir, codec, voice_wav16k, loss=0.0, burst=1.0, jitter_ms=40.0, seed=1):
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
    lp_sip, lp_rtp = _free_udp_port(), _free_udp_port()
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
            WavSource(speech, rate, loop=False),
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


def table(voices, losses=LOSSES, burst=1.0, jitter_ms=40.0, seed=1, codecs=tuple(CODECS)):
    """{codec: [(sotto mean, linphone mean) per loss]}, the mean over `voices`."""
    rows = {}
    for codec in codecs:
        row = []
        for loss in losses:
            pairs = []
            for voice in voices:
                with tempfile.TemporaryDirectory() as tmp:
                    sotto, linphone, _ = versus_call(tmp, codec, voice, loss, burst, jitter_ms, seed)
                pairs.append((sotto, linphone))
            row.append((sum(p[0] for p in pairs) / len(pairs), sum(p[1] for p in pairs) / len(pairs)))
        rows[codec] = row
    return rows


def run(plot_path="bench-versus-linphone.png"):
    from tools.bench.impair import plot
    from tools.bench.pesq import make_voice_wav

    with tempfile.TemporaryDirectory() as tmp:
        voices = [make_voice_wav(Path(tmp) / "{}.wav".format(v), 16000, voice=v) for v in VOICES]
        print("  One real call per cell: Sotto's MediaStream <-> linphonec, SDES-SRTP, both directions through")
        print("  one relay: 40 ms jitter (uniform, reordering) + 10 ms, loss seeded alike both ways (seed 1);")
        print(
            "  PESQ of what each phone RECEIVED (NB for PCMU, WB otherwise), mean of flite {}; load {}.".format(
                " and ".join(VOICES), os.getloadavg()[0]
            )
        )
        print("  target: Sotto >= linphone + {:.1f}".format(TARGET_MARGIN))
        header = "    {:10s}".format("codec") + "".join(
            "{:>20s}".format("{:.0f} % random".format(x * 100)) for x in LOSSES
        )
        print(header + "{:>20s}".format("5 % GE bursts of 3"))
        lines = {}
        random_rows = table(voices, burst=1.0)
        burst_rows = table(voices, losses=(0.05,), burst=3.0)
        for codec, row in random_rows.items():
            cells = []
            for index, (sotto, linphone) in enumerate(row + burst_rows[codec]):
                met = "met" if sotto >= linphone + TARGET_MARGIN else "MISSED"
                if index == 0:
                    met = ""  # the target is for 3, 5 and 10 % loss
                cells.append("{:>5.2f} vs {:4.2f} {:>6s}".format(sotto, linphone, met))
            print("    {:10s}".format(codec) + "".join("{:>20s}".format(c) for c in cells))
            lines["Sotto {}".format(codec)] = [s for s, _ in row]
            lines["linphone {}".format(codec)] = [lp for _, lp in row]
        print("    (each cell: Sotto receives vs linphone receives, then the target)")
        if plot(lines, plot_path):
            print("  plot: {}".format(Path(plot_path).resolve()))


def main(argv):
    from tools.bench.pesq import make_voice_wav

    codec, loss, jitter = argv[0], float(argv[1]) / 100.0, float(argv[2])
    burst = float(argv[3]) if len(argv) > 3 else 1.0
    seed = int(argv[4]) if len(argv) > 4 else 1
    with tempfile.TemporaryDirectory() as tmp:
        for voice in VOICES:
            wav = make_voice_wav(Path(tmp) / "{}.wav".format(voice), 16000, voice=voice)
            work = Path(tmp) / voice
            work.mkdir()
            sotto, linphone, stats = versus_call(work, codec, wav, loss, burst, jitter, seed)
            print(
                "{} {}: sotto receives {:.3f}  linphone receives {:.3f}  {}".format(
                    codec, voice, sotto, linphone, stats
                )
            )
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
