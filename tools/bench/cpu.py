"""CPU of Sotto, linphonec and baresip side by side in secure G.711 calls (issue 14, item 4).

One run is two calls at the same time on 127.0.0.1, both PCMU over SDES-SRTP (RFC 4568; baresip 1.0 as
Debian ships it has an `srtp` module but no ZRTP one, so SDES is the secure mode all three share):

    sotto call -> linphonec (auto-answer, media_encryption=srtp, no debug log: as a user runs it)
    sotto call -> baresip   (auto-answer, mediaenc=srtp-mand, aufile source and player)

Every phone plays the same speech file and writes what it receives to a WAV file (no sound card), so
each does the same work: read, encode, SRTP-protect, send; receive, unprotect, jitter buffer, decode,
write. Once both callees report the call established, after `settle_s`, the CPU time of all four
processes (utime + stime of all threads, /proc/PID/stat) is read over one window of `window_s`: the same
wall-clock window and the same machine load for every phone. CPU time, not wall time: the machine is
shared, and the load average is printed with the table.

Ratios per run: sotto/linphonec (the Sotto process of the linphonec call), baresip/linphonec, and
sotto/baresip (the Sotto process of the baresip call); the table gives the median of `RUNS` runs.
Target (issue 14): the median sotto/linphonec is at most 0.64, baresip's figure in the issue.

Every port is a free port (bound to port 0 and released; RTP ports with RTP + 1 free too, where
linphonec and baresip put RTCP; linphonec binds nothing else here), so it needs no lock.

API (host-only):
    baresip_config(sip_port, rtp_ports, play_wav, record_wav) -> the text of baresip's config file
    cpu_run(workdir, speech8k, settle_s=SETTLE_S, window_s=WINDOW_S) -> RunResult
    RunResult.ratios() -> {"sotto/linphonec": r, "baresip/linphonec": r, "sotto/baresip": r}
    summarize(results) -> {name: (median, minimum, maximum)} over RunResult.ratios() of every run
    run()   make bench
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

RUNS = 5
SETTLE_S = 3.0
WINDOW_S = 20.0
TARGET_RATIO = 0.64  # issue 14: Sotto's CPU at most 0.64 x linphonec's (baresip's figure)
RATIOS = ("sotto/linphonec", "baresip/linphonec", "sotto/baresip")
BARESIP_MODULES = "/usr/lib/baresip/modules"


def baresip_config(sip_port, rtp_ports, play_wav, record_wav):
    """baresip 1.0: G.711 and SRTP, the WAV file as microphone and as loudspeaker, no UI on stdin."""
    lines = [
        ("sip_listen", "127.0.0.1:{}".format(sip_port)),
        ("net_interface", "127.0.0.1"),
        ("module_path", BARESIP_MODULES),
        ("module", "g711.so"),
        ("module", "srtp.so"),
        ("module", "aufile.so"),
        ("module", "account.so"),
        ("module", "menu.so"),  # carries the account's answermode=auto
        ("audio_player", "aufile,{}".format(record_wav)),
        ("audio_source", "aufile,{}".format(play_wav)),
        ("audio_alert", "aufile,/dev/null"),
        ("rtp_ports", "{}-{}".format(*rtp_ports)),
    ]
    return "".join("{}\t\t{}\n".format(key, value) for key, value in lines)


class Baresip:
    """baresip -f CONF in the foreground, sip:carol@127.0.0.1:PORT, auto answer, SRTP mandatory."""

    def __init__(self, workdir, sip_port, rtp_ports, play_wav):
        self.workdir = Path(workdir)
        self.sip_port = sip_port
        self.conf = self.workdir / "conf"
        self.conf.mkdir(parents=True, exist_ok=True)
        self.received = self.workdir / "baresip-received.wav"
        (self.conf / "config").write_text(baresip_config(sip_port, rtp_ports, play_wav, self.received))
        (self.conf / "accounts").write_text(
            "<sip:carol@127.0.0.1:{}>;regint=0;answermode=auto;mediaenc=srtp-mand\n".format(sip_port)
        )
        (self.conf / "contacts").write_text("")
        self.log_path = self.workdir / "baresip.log"
        self.process = None

    @property
    def uri(self):
        return "sip:carol@127.0.0.1:{}".format(self.sip_port)

    def __enter__(self):
        from tests.conftest import require_tool
        from tests.waiting import wait_udp_bound

        binary = require_tool("baresip", "baresip-core")
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [binary, "-f", str(self.conf)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(self.workdir),
            start_new_session=True,
        )

        def alive():
            if self.process.poll() is not None:
                raise RuntimeError("baresip exited:\n" + self.log()[-2000:])

        wait_udp_bound(self.sip_port, 10, "baresip's SIP port", alive)
        return self

    def log(self):
        try:
            return self.log_path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern, timeout):
        from tests.waiting import wait_until

        regex = re.compile(pattern)
        return wait_until(lambda: regex.search(self.log()), timeout, "baresip to log {!r}".format(pattern))

    def __exit__(self, *exc):
        from tools.bench.calls import _stop_process

        if self.process is not None:
            _stop_process(self.process)
        self._log.close()


class RunResult:
    __slots__ = ("window_s", "seconds", "summaries", "load")

    def __init__(self, window_s, seconds, summaries, load):
        self.window_s = window_s
        self.seconds = seconds  # {"sotto/linphonec call": s, "linphonec": s, "sotto/baresip call": s, "baresip": s}
        self.summaries = summaries
        self.load = load

    def percent(self, name):
        return 100.0 * self.seconds[name] / self.window_s

    def ratios(self):
        def ratio(a, b):
            return self.seconds[a] / self.seconds[b] if self.seconds[b] else float("inf")

        return {
            "sotto/linphonec": ratio("sotto (linphonec call)", "linphonec"),
            "baresip/linphonec": ratio("baresip", "linphonec"),
            "sotto/baresip": ratio("sotto (baresip call)", "baresip"),
        }


def summarize(results):
    """{ratio name: (median, min, max)} over the runs (the median of an even count is the upper middle)."""
    out = {}
    for name in RATIOS:
        values = sorted(result.ratios()[name] for result in results)
        out[name] = (values[len(values) // 2], values[0], values[-1])
    return out


def _free_udp_port(pair=False):
    """A free UDP port on 127.0.0.1; pair: an even one whose next port is free too (RTP and RTCP)."""
    from tools.bench.versus import _free_rtp_port
    from tools.bench.versus import _free_udp_port as free

    return _free_rtp_port() if pair else free()


class _SottoPorts:
    def __init__(self):
        self.sotto_sip, self.sotto_rtp = _free_udp_port(), _free_udp_port(pair=True)


def cpu_run(workdir, speech8k, settle_s=SETTLE_S, window_s=WINDOW_S):
    from tools.bench.calls import _finish_sotto, _sotto_call, _stop_process, cpu_seconds

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    duration = settle_s + window_s + 4.0
    sotto_args = ["--encryption", "sdes", "--codecs", "PCMU", "--play", str(speech8k)]
    sotto_args += ["--duration", str(duration), "--timeout", str(duration + 20)]
    baresip_rtp = _free_udp_port(pair=True)
    with (
        _quiet_linphone(workdir / "linphone") as bob,
        Baresip(workdir / "baresip", _free_udp_port(), (baresip_rtp, baresip_rtp + 1), speech8k) as carol,
    ):
        bob.command("play {}".format(speech8k))
        bob.command("record {}".format(workdir / "linphone-received.wav"))
        time.sleep(0.2)
        to_bob = _sotto_call(
            bob.uri,
            _SottoPorts(),
            workdir / "sotto-l",
            sotto_args + ["--record", str(workdir / "sotto-l-received.wav")],
        )
        to_carol = _sotto_call(
            carol.uri,
            _SottoPorts(),
            workdir / "sotto-b",
            sotto_args + ["--record", str(workdir / "sotto-b-received.wav")],
        )
        processes = {
            "sotto (linphonec call)": to_bob.pid,
            "linphonec": bob.process.pid,
            "sotto (baresip call)": to_carol.pid,
            "baresip": carol.process.pid,
        }
        try:
            bob.wait_for(r"[Cc]all \d+ .*(connected|[Ss]treams running)", timeout=15)
            carol.wait_for(r"[Cc]all established", timeout=15)
            time.sleep(settle_s)
            load = os.getloadavg()[0]
            started = time.monotonic()
            before = {name: cpu_seconds(pid) for name, pid in processes.items()}
            time.sleep(window_s)
            after = {name: cpu_seconds(pid) for name, pid in processes.items()}
            ended = time.monotonic()
        except BaseException:
            _stop_process(to_bob)
            _stop_process(to_carol)
            raise
        summaries = {
            "sotto (linphonec call)": _finish_sotto(to_bob, duration + 25),
            "sotto (baresip call)": _finish_sotto(to_carol, duration + 25),
        }
    for name, summary in summaries.items():
        if summary.get("result") != "completed" or not summary.get("secure"):
            raise RuntimeError(
                "{}: {} (secure {}): {}".format(
                    name, summary.get("result"), summary.get("secure"), summary.get("reason")
                )
            )
        if not summary.get("rtp", {}).get("received"):
            raise RuntimeError("{}: no RTP received".format(name))
    seconds = {name: after[name] - before[name] for name in processes}
    return RunResult(ended - started, seconds, summaries, load)


def _quiet_linphone(workdir):
    from tests.interop.linphone import Linphone

    return Linphone(
        workdir,
        _free_udp_port(),
        _free_udp_port(pair=True),
        user="bob",
        auto_answer=True,
        media_encryption="srtp",
        codecs=["PCMU"],
        debug_log=False,
    )


def speech_wav(path, seconds):
    """flite slt and rms, alternating, repeated to `seconds` at 8 kHz (every phone plays it once)."""
    from audio.wavfile import read_wav, write_wav
    from tools.bench.pesq import make_voice_wav

    path = Path(path)
    pieces = []
    for voice in ("slt", "rms"):
        _, pcm = read_wav(make_voice_wav(path.with_name("{}.wav".format(voice)), 8000, voice=voice))
        pieces.append(pcm + bytes(8000))  # and half a second of silence
    out, index = b"", 0
    while len(out) < seconds * 8000 * 2:
        out += pieces[index % 2]
        index += 1
    write_wav(path, 8000, out)
    return path


def run(runs=RUNS):
    missing = [t for t in ("linphonec", "baresip", "flite", "sox") if shutil.which(t) is None]
    if missing:
        raise RuntimeError("not installed: {} (make venv-dev installs them)".format(", ".join(missing)))
    with tempfile.TemporaryDirectory(prefix="sotto-bench-cpu-") as tmp:
        speech = speech_wav(Path(tmp) / "speech.wav", SETTLE_S + WINDOW_S + 15)
        print("  Two secure (SDES-SRTP) PCMU calls at once: sotto call -> linphonec, sotto call -> baresip; every")
        print("  phone plays the same speech file and records to a file. CPU time (utime + stime, /proc/PID/stat)")
        print(
            "  of the four processes over one window of {:.0f} s, {:.0f} s after both calls are up.".format(
                WINDOW_S, SETTLE_S
            )
        )
        print("    run  load  sotto(l)  linphonec  sotto(b)  baresip   % of one core")
        results = []
        for index in range(runs):
            result = cpu_run(Path(tmp) / "run{}".format(index), speech)
            results.append(result)
            print(
                "    {:3d}  {:4.2f}  {:7.2f}  {:8.2f}  {:8.2f}  {:7.2f}   ratios {}".format(
                    index + 1,
                    result.load,
                    result.percent("sotto (linphonec call)"),
                    result.percent("linphonec"),
                    result.percent("sotto (baresip call)"),
                    result.percent("baresip"),
                    "  ".join("{} {:.2f}".format(k, v) for k, v in result.ratios().items()),
                )
            )
        for name, (median, low, high) in summarize(results).items():
            verdict = ""
            if name == "sotto/linphonec":
                verdict = "  target <= {:.2f}: {}".format(TARGET_RATIO, "met" if median <= TARGET_RATIO else "MISSED")
            print(
                "    median {} {:.2f} (min {:.2f}, max {:.2f}, {} runs){}".format(
                    name, median, low, high, len(results), verdict
                )
            )


if __name__ == "__main__":
    run()
