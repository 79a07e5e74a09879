"""Real calls, side by side with linphone-cli in the same run (issue 4's "Done when" figures).

1. PESQ per codec over SDES-SRTP (RFC 4568) on 127.0.0.1: what `sotto call` receives from a linphonec
   that auto-answers, what that linphonec receives from Sotto, and what one linphonec receives from
   another (both directions), every path fed the same speech file; beside them the offline ceiling of
   our own codec on that file (encode + decode, no network: tools.bench.pesq.codec_chain). Scores use
   the recording from 0.5 s on (a steady part of the call), aligned by cross-correlation.
2. CPU in a secure (ZRTP) G.711 call between `sotto call` and linphonec: CPU seconds each process used
   (utime + stime from /proc/PID/stat, all threads) over the same window, from 3 s after the call is
   secure to 10 s later, as % of one core and the ratio sotto/linphonec (linphonec without its debug
   log, as a user runs it; the cpu section compares with baresip too, median of 5 runs).
   Also split by thread (the main thread and the others), from /proc/PID/task/TID/stat.
3. ZRTP setup time linphonec -> linphonec (the caller's log: its INVITE client transaction starting ->
   "All streams are encrypted"), for comparison with the zrtp section's sotto figures.

espeak-ng's output differs slightly from run to run, so compare the columns of one run with each other
(every path in a run plays the same file), not single figures across runs.

Helpers (also used by tests/tools/bench/test_calls.py):
    mixed_speech_wav(path, rate=16000) -> path
        espeak-ng sentences alternating a male (en-us) and a female (en-us+f3) voice, with 1 s of
        silence before (so the 0.5 s skipped at the start of a recording is silence) and 0.5 s after
    score_recording(reference_wav, recording_wav, mode, skip_s=0.5, max_delay_s=1.5) -> float
        PESQ (nb: P.862 at 8 kHz, wb: P.862.2 at 16 kHz) of the recording from `skip_s` on, aligned to
        the reference with pesq.align
    sotto_linphone_call(workdir, codec, speech, seconds, ports) -> CallResult
        `sotto call --encryption sdes --play --record` to a linphonec (media_encryption=srtp,
        auto-answer) that plays and records too; .sotto_received, .linphone_received (WAV paths),
        .summary (sotto's JSON summary)
    linphone_linphone_call(workdir, codec, speech, seconds, ports) -> (caller_received, callee_received)
    cpu_call(workdir, speech, ports, settle_s=3.0, window_s=10.0) -> CpuResult
        .window_s, .sotto_s, .linphone_s (CPU seconds in the window), .percent(seconds),
        .sotto_threads / .linphone_threads ((main thread s, [other threads s, busiest first])), .summary
    cpu_seconds(pid), thread_cpu_seconds(pid) -> {tid: s}
    linphone_zrtp_setup_ms(workdir, ports, calls=3) -> [ms per call]
    Ports(base): the block of UDP ports one call uses (base .. base + 11)

linphonec is driven by tests/interop/linphone.py, with one change: Opus is configured as
opus/48000/2, the name linphone knows (as opus/48000/1 it sends Opus at 6 kbit/s).

Ports 18500-18999 on 127.0.0.1 only; every process is ended by its PID. Bounded: every wait has a
deadline and the whole section takes about two minutes here.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Sentences alternate: even ones in a male voice, odd ones in a female voice.
SENTENCES = (
    "Please call me back at half past seven.",
    "Read the short code aloud.",
    "See you on Thursday.",
    "The fox jumps over the dog.",
)
VOICES = ("en-us", "en-us+f3")
CODECS = (("PCMU", "nb"), ("PCMA", "nb"), ("G722", "wb"), ("opus", "wb"))
# The rate linphone plays a file at for each codec without resampling it (its recordings use this rate).
LINPHONE_RATES = {"PCMU": 8000, "PCMA": 8000, "G722": 16000, "opus": 48000}
LEAD_SILENCE_S = 1.0
TAIL_SILENCE_S = 0.5
GAP_S = 0.3  # between sentences
SKIP_S = 0.5

# Port plan (all UDP on 127.0.0.1): each call gets a block of 10 from the base.
PORT_BASE = 18500


class Ports:
    """A block of ports for one call: linphone A SIP/RTP, linphone B SIP/RTP, sotto SIP/RTP."""

    def __init__(self, base):
        self.lin_a_sip, self.lin_a_rtp = base, base + 2
        self.lin_b_sip, self.lin_b_rtp = base + 4, base + 6
        self.sotto_sip, self.sotto_rtp = base + 8, base + 10


def _block(index):
    return Ports(PORT_BASE + 20 * index)


def mixed_speech_wav(path, rate=16000, sentences=SENTENCES):
    from audio.wavfile import read_wav, write_wav
    from tools.bench.pesq import make_speech_wav

    path = Path(path)
    pieces = [bytes(int(rate * LEAD_SILENCE_S) * 2)]
    with tempfile.TemporaryDirectory() as tmp:
        for index, sentence in enumerate(sentences):
            part = make_speech_wav(Path(tmp) / "{}.wav".format(index), rate, sentence, VOICES[index % 2])
            file_rate, pcm = read_wav(part)
            if file_rate != rate:
                raise RuntimeError("sox produced {} Hz, not {}".format(file_rate, rate))
            if index:
                pieces.append(bytes(int(rate * GAP_S) * 2))
            pieces.append(_trimmed(pcm, rate))
    pieces.append(bytes(int(rate * TAIL_SILENCE_S) * 2))
    write_wav(path, rate, b"".join(pieces))
    return path


def _trimmed(pcm, rate):
    """espeak-ng's own silence around a sentence cut to 50 ms (the gaps are then ours)."""
    import numpy as np

    samples = np.frombuffer(pcm, dtype=np.int16)
    loud = np.nonzero(np.abs(samples) > 300)[0]
    if len(loud) == 0:
        return pcm
    margin = rate // 20
    return samples[max(0, loud[0] - margin) : loud[-1] + margin].tobytes()


def resampled_copy(source, path, rate):
    subprocess.run(
        ["sox", str(source), "-r", str(rate), "-c", "1", "-b", "16", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return Path(path)


def wav_seconds(path):
    from audio.wavfile import read_wav

    rate, pcm = read_wav(path)
    return len(pcm) / 2 / rate


def score_recording(reference_wav, recording_wav, mode, skip_s=SKIP_S, max_delay_s=1.5):
    from pesq import pesq

    from tools.bench.pesq import _read_at, align

    rate = 8000 if mode == "nb" else 16000
    reference = _read_at(reference_wav, rate)
    degraded = _read_at(recording_wav, rate)[int(skip_s * rate) :]
    if len(degraded) < len(reference) // 2:
        raise RuntimeError("{}: only {:.1f} s recorded".format(recording_wav, len(degraded) / rate))
    ref, deg = align(reference, degraded, int(max_delay_s * rate))
    return float(pesq(rate, ref, deg, mode))


def ceiling(speech16k, codec, mode, workdir):
    """PESQ of our codec alone on the same speech (no network)."""
    from audio.wavfile import read_wav, write_wav
    from tools.bench.pesq import codec_chain

    _, pcm = read_wav(speech16k)
    out = Path(workdir) / "ceiling-{}.wav".format(codec)
    write_wav(out, 16000, codec_chain(pcm, codec))
    return score_recording(speech16k, out, mode, skip_s=0.0)


def _linphone(workdir, sip_port, rtp_port, user, codecs, encryption, auto_answer, debug_log=True):
    from tests.interop.linphone import Linphone  # the interop tests' driver

    return Linphone(
        workdir,
        sip_port,
        rtp_port,
        user=user,
        auto_answer=auto_answer,
        media_encryption=encryption,
        codecs=codecs,
        debug_log=debug_log,
    )


def _stop_process(process, timeout=5.0):
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout)


def _sotto_call(uri, ports, workdir, args):
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_DATA_HOME=str(Path(workdir) / "sotto-data"))
    command = [
        sys.executable,
        "-m",
        "firmware",
        "call",
        uri,
        "--listen",
        "127.0.0.1:{}".format(ports.sotto_sip),
        "--rtp-port",
        str(ports.sotto_rtp),
        "--cache",
        str(Path(workdir) / "sotto.cache"),
    ] + list(args)
    return subprocess.Popen(command, cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish_sotto(process, timeout):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_process(process)
        out, err = process.communicate()
        raise RuntimeError("sotto call did not finish in {} s: {}".format(timeout, err[-1500:])) from None
    try:
        return json.loads(out)
    except ValueError:
        raise RuntimeError(
            "sotto call printed no summary (exit {}): {}".format(process.returncode, err[-1500:])
        ) from None


class CallResult:
    __slots__ = ("sotto_received", "linphone_received", "summary")

    def __init__(self, sotto_received, linphone_received, summary):
        self.sotto_received = sotto_received
        self.linphone_received = linphone_received
        self.summary = summary


def sotto_linphone_call(workdir, codec, speech, seconds, ports):
    """`sotto call` (SDES) to linphonec; both play `speech` (a WAV at the codec's linphone rate) and record."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sotto_received = workdir / "sotto-received.wav"
    linphone_received = workdir / "linphone-received.wav"
    with _linphone(workdir / "linphone", ports.lin_a_sip, ports.lin_a_rtp, "bob", [codec], "srtp", True) as bob:
        bob.command("play {}".format(speech))
        bob.command("record {}".format(linphone_received))
        time.sleep(0.2)
        process = _sotto_call(
            bob.uri,
            ports,
            workdir,
            [
                "--encryption",
                "sdes",
                "--codecs",
                codec,
                "--play",
                str(speech),
                "--record",
                str(sotto_received),
                "--duration",
                str(seconds),
                "--timeout",
                str(seconds + 15),
            ],
        )
        summary = _finish_sotto(process, seconds + 20)
        bob.wait_for(r"[Cc]all .*(ended|terminated)|End of call", timeout=5)
    if summary.get("result") != "completed":
        raise RuntimeError("sotto call {}: {}".format(summary.get("result"), summary.get("reason")))
    return CallResult(sotto_received, linphone_received, summary)


def linphone_linphone_call(workdir, codec, speech, seconds, ports):
    """linphonec A calls linphonec B (SDES); both play `speech` and record. (A's recording, B's recording)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    a_received, b_received = workdir / "a-received.wav", workdir / "b-received.wav"
    with (
        _linphone(workdir / "a", ports.lin_a_sip, ports.lin_a_rtp, "alice", [codec], "srtp", False) as alice,
        _linphone(workdir / "b", ports.lin_b_sip, ports.lin_b_rtp, "bob", [codec], "srtp", True) as bob,
    ):
        for phone, recording in ((alice, a_received), (bob, b_received)):
            phone.command("play {}".format(speech))
            phone.command("record {}".format(recording))
        time.sleep(0.2)
        alice.command("call {}".format(bob.uri))
        alice.wait_for(r"[Cc]all \d+ .*(connected|[Ss]treams running)", timeout=10)
        time.sleep(seconds)
        alice.command("terminate")
        bob.wait_for(r"[Cc]all .*(ended|terminated)|End of call", timeout=5)
    return a_received, b_received


def _stat_cpu_seconds(path):
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After "pid (comm)": state is field 3, utime 14 and stime 15 (proc(5), 1-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds, from /proc/PID/stat."""
    return _stat_cpu_seconds("/proc/{}/stat".format(pid))


def thread_cpu_seconds(pid):
    """{thread id: utime + stime in seconds} for the live threads of a process (/proc/PID/task/TID/stat)."""
    out = {}
    for tid in os.listdir("/proc/{}/task".format(pid)):
        try:
            out[int(tid)] = _stat_cpu_seconds("/proc/{}/task/{}/stat".format(pid, tid))
        except OSError:  # the thread ended meanwhile
            pass
    return out


def _thread_split(pid, before, after):
    """(main thread's seconds, other threads' seconds busiest first) between two thread_cpu_seconds()."""
    deltas = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    main = deltas.pop(pid, 0.0)
    return main, sorted((d for d in deltas.values() if d > 0), reverse=True)


class CpuResult:
    __slots__ = ("window_s", "sotto_s", "linphone_s", "summary", "sotto_threads", "linphone_threads")

    def __init__(self, window_s, sotto_s, linphone_s, summary, sotto_threads=None, linphone_threads=None):
        self.window_s = window_s
        self.sotto_s = sotto_s
        self.linphone_s = linphone_s
        self.summary = summary
        self.sotto_threads = sotto_threads  # (main thread s, [other threads s, busiest first])
        self.linphone_threads = linphone_threads

    def percent(self, seconds):
        return 100.0 * seconds / self.window_s


def cpu_call(workdir, speech, ports, settle_s=3.0, window_s=10.0):
    """A ZRTP PCMU call `sotto call` -> linphonec, both playing `speech` (8 kHz) and recording; CPU seconds
    of each process over the same window, `settle_s` after linphone reports the call fully encrypted."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    duration = settle_s + window_s + 1.5
    # linphonec without its level-6 debug log, as a user runs it: writing that log costs it CPU.
    with _linphone(
        workdir / "linphone", ports.lin_a_sip, ports.lin_a_rtp, "bob", ["PCMU"], "zrtp", True, debug_log=False
    ) as bob:
        bob.command("play {}".format(speech))
        bob.command("record {}".format(workdir / "linphone-received.wav"))
        time.sleep(0.2)
        process = _sotto_call(
            bob.uri,
            ports,
            workdir,
            [
                "--encryption",
                "zrtp",
                "--codecs",
                "PCMU",
                "--play",
                str(speech),
                "--record",
                str(workdir / "sotto-received.wav"),
                "--duration",
                str(duration),
                "--timeout",
                str(duration + 15),
            ],
        )
        try:
            bob.wait_for(r"fully encrypted", timeout=15)
            secure = time.monotonic()
            time.sleep(max(0.0, secure + settle_s - time.monotonic()))
            pids = (process.pid, bob.process.pid)
            start = (time.monotonic(), cpu_seconds(pids[0]), cpu_seconds(pids[1]))
            threads_start = [thread_cpu_seconds(pid) for pid in pids]
            time.sleep(window_s)
            end = (time.monotonic(), cpu_seconds(pids[0]), cpu_seconds(pids[1]))
            threads_end = [thread_cpu_seconds(pid) for pid in pids]
        except BaseException:
            _stop_process(process)
            raise
        summary = _finish_sotto(process, duration + 20)
    if summary.get("result") != "completed" or not summary.get("secure"):
        raise RuntimeError(
            "sotto call {} (secure {}): {}".format(summary.get("result"), summary.get("secure"), summary.get("reason"))
        )
    return CpuResult(
        end[0] - start[0],
        end[1] - start[1],
        end[2] - start[2],
        summary,
        _thread_split(pids[0], threads_start[0], threads_end[0]),
        _thread_split(pids[1], threads_start[1], threads_end[1]),
    )


_LOG_TIME = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3})"


def _log_ms(stamp):
    day, clock = stamp.split(" ")
    hours, minutes, seconds, millis = (int(x) for x in clock.split(":"))
    return ((hours * 60 + minutes) * 60 + seconds) * 1000.0 + millis


def linphone_zrtp_setup_ms(workdir, ports, calls=3):
    """linphonec -> linphonec ZRTP calls; per call, ms in the caller's log from its INVITE client transaction
    starting (INIT -> CALLING) to "All streams are encrypted"."""
    workdir = Path(workdir)
    figures = []
    with (
        _linphone(workdir / "a", ports.lin_a_sip, ports.lin_a_rtp, "alice", ["PCMU"], "zrtp", False) as alice,
        _linphone(workdir / "b", ports.lin_b_sip, ports.lin_b_rtp, "bob", ["PCMU"], "zrtp", True) as bob,
    ):
        for _ in range(calls):
            console_at, log_at = len(alice.console()), len(alice.log())
            alice.command("call {}".format(bob.uri))
            alice.wait_for(r"fully encrypted", timeout=10, start=console_at)
            started = alice.wait_for(
                _LOG_TIME + r" belle-sip-message-Changing \[client\] \[INVITE\] transaction "
                r"\[\w+\], from state \[INIT\] to \[CALLING\]",
                5,
                "log",
                log_at,
            )
            secure = alice.wait_for(
                _LOG_TIME + r" liblinphone-message-All streams are encrypted", 5, "log", started.end()
            )
            figures.append(_log_ms(secure.group(1)) - _log_ms(started.group(1)))
            time.sleep(0.3)
            alice.command("terminate")
            alice.wait_for(r"ended", timeout=5, start=console_at)
            time.sleep(0.3)
    return figures


def _median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _attempt(label, func, *args):
    """Run one measurement; a failure prints why and yields None, so the other figures still print."""
    try:
        return func(*args)
    except Exception as exc:  # a bench prints what it could measure
        print(
            "    ({} failed: {}: {})".format(
                label, type(exc).__name__, str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            )
        )
        return None


def _fmt(value):
    return "  --" if value is None else "{:4.2f}".format(value)


def run():
    missing = [tool for tool in ("linphonec", "espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        print("  skipped: {} not installed".format(", ".join(missing)))
        return
    with tempfile.TemporaryDirectory(prefix="sotto-bench-calls-") as tmp:
        tmp = Path(tmp)
        speech = mixed_speech_wav(tmp / "speech-16000.wav", 16000)
        seconds = wav_seconds(speech)
        print(
            "  Speech: {:.1f} s, espeak-ng, {} sentences alternating a male (en-us) and a female (en-us+f3)"
            " voice,".format(seconds, len(SENTENCES))
        )
        print(
            "  {:.1f} s of silence before; the same file (resampled by sox to the codec's rate) is played by"
            " every".format(LEAD_SILENCE_S)
        )
        print(
            "  sender. Scores: PESQ (P.862 nb / P.862.2 wb, PyPI pesq) of each recording from {:.1f} s on,"
            " aligned.".format(SKIP_S)
        )
        print(
            "  Calls over SDES-SRTP on 127.0.0.1; 'ceiling' = our codec alone on the file, no network. Load"
            " average at start {:.2f} (2 shared cores).".format(os.getloadavg()[0])
        )
        print("    codec mode  ceiling  sotto<-linphone  linphone<-sotto  linphone<-linphone (callee, caller)")
        for index, (codec, mode) in enumerate(CODECS):
            played = resampled_copy(speech, tmp / "speech-{}.wav".format(codec), LINPHONE_RATES[codec])
            call_seconds = wav_seconds(played) + SKIP_S + 0.8
            top = _attempt("ceiling", ceiling, speech, codec, mode, tmp)
            result = _attempt(
                "sotto/linphone call",
                sotto_linphone_call,
                tmp / "sl-{}".format(codec),
                codec,
                played,
                call_seconds,
                _block(index),
            )
            pair = _attempt(
                "linphone/linphone call",
                linphone_linphone_call,
                tmp / "ll-{}".format(codec),
                codec,
                played,
                call_seconds,
                _block(4 + index),
            )
            sotto_in = linphone_in = callee_in = caller_in = None
            if result is not None:
                sotto_in = _attempt("score", score_recording, played, result.sotto_received, mode)
                linphone_in = _attempt("score", score_recording, played, result.linphone_received, mode)
            if pair is not None:
                caller_in = _attempt("score", score_recording, played, pair[0], mode)
                callee_in = _attempt("score", score_recording, played, pair[1], mode)
            print(
                "    {:5s} {:4s}  {}     {}             {}             {}, {}".format(
                    codec, mode, _fmt(top), _fmt(sotto_in), _fmt(linphone_in), _fmt(callee_in), _fmt(caller_in)
                )
            )
            if result is not None:
                rtp = result.summary.get("rtp", {})
                print(
                    "          (sotto: received {} lost {} late {} concealed {} underruns {}, playout delay {} ms,"
                    " jitter {} ms)".format(
                        rtp.get("received"),
                        rtp.get("lost"),
                        rtp.get("late"),
                        rtp.get("concealed"),
                        rtp.get("underruns"),
                        rtp.get("playout_delay_ms"),
                        rtp.get("jitter_ms"),
                    )
                )
        narrow = resampled_copy(speech, tmp / "speech-cpu.wav", 8000)
        print("  CPU, secure ZRTP PCMU call sotto call -> linphonec (both play the speech file and record), the same")
        print("  window for both, from 3 s after linphone shows 'fully encrypted' for 10 s (/proc/PID/stat):")
        cpu = _attempt("cpu call", cpu_call, tmp / "cpu", narrow, _block(8))
        if cpu is not None:
            print(
                "    sotto {:5.2f} % of one core ({:.2f} s)   linphonec {:5.2f} % ({:.2f} s)   ratio sotto/linphonec"
                " {:.2f}   (window {:.1f} s, clock tick {:.0f} ms)".format(
                    cpu.percent(cpu.sotto_s),
                    cpu.sotto_s,
                    cpu.percent(cpu.linphone_s),
                    cpu.linphone_s,
                    cpu.sotto_s / cpu.linphone_s if cpu.linphone_s else float("inf"),
                    cpu.window_s,
                    1000.0 / os.sysconf("SC_CLK_TCK"),
                )
            )
            for name, split in (("sotto", cpu.sotto_threads), ("linphonec", cpu.linphone_threads)):
                print(
                    "      {} by thread: main {:4.2f} %, others {}".format(
                        name,
                        cpu.percent(split[0]),
                        ", ".join("{:4.2f} %".format(cpu.percent(d)) for d in split[1]) or "idle",
                    )
                )
        print("  ZRTP setup, call start -> secure (DH3k, 127.0.0.1):")
        figures = _attempt("linphone zrtp calls", linphone_zrtp_setup_ms, tmp / "zrtp", _block(9))
        if figures:
            print(
                "    linphonec -> linphonec (caller's log, INVITE sent -> all streams encrypted): median {:.0f} ms"
                "  min {:.0f}  max {:.0f}  ({} calls)".format(
                    _median(figures), min(figures), max(figures), len(figures)
                )
            )
        if cpu is not None and cpu.summary.get("zrtp"):
            print(
                "    sotto call -> linphonec (the CPU call's summary, secure_ms): {:.0f} ms; more calls and sotto ->"
                " sotto in the zrtp section".format(cpu.summary["zrtp"]["secure_ms"])
            )
