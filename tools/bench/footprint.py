"""Memory of the phone in a call: `sotto run --board sim` answers a secure (ZRTP) Opus call from `sotto call`
on loopback, and its resident set size (VmRSS, /proc) is sampled every 0.3 s from ringing to hang-up.

The phone side has no `--play` (its microphone is the sim board's silence, as a real phone's ALSA device
runs at the codec's rate): a WAV microphone at another rate is resampled at load with numpy, which a
phone never needs. The caller plays speech. Linux only (reads /proc).

API:
    measure(codec="opus", seconds=8.0) -> dict(peak_mb, median_mb, secure, modules)
    run()   (make bench: python -m tools.bench footprint)
"""

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rss_kb(pid):
    try:
        with open("/proc/{}/status".format(pid)) as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _mapped_libraries(pid):
    try:
        with open("/proc/{}/maps".format(pid)) as maps:
            return {line.rsplit("/", 1)[-1].strip() for line in maps if ".so" in line}
    except OSError:
        return set()


def measure(codec="opus", seconds=8.0):
    from tools.bench.pesq import make_voice_wav

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        speech = make_voice_wav(tmp / "speech.wav", 16000)
        script = tmp / "answer.script"
        script.write_text("wait ringing 30\nhook off\nwait secure 30\nsleep {}\nhangup\nquit\n".format(seconds))
        phone_port, caller_port = _free_port(), _free_port()
        phone = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "firmware",
                "run",
                "--board",
                "sim",
                "--listen",
                "127.0.0.1:{}".format(phone_port),
                "--codecs",
                codec,
                "--script",
                str(script),
                "--cache",
                str(tmp / "phone.cache"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        caller = None
        samples = []
        libraries = set()
        try:
            time.sleep(1.5)
            caller = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "firmware",
                    "call",
                    "sip:phone@127.0.0.1:{}".format(phone_port),
                    "--listen",
                    "127.0.0.1:{}".format(caller_port),
                    "--codecs",
                    codec,
                    "--play",
                    str(speech),
                    "--duration",
                    str(seconds + 2),
                    "--timeout",
                    str(seconds + 30),
                    "--cache",
                    str(tmp / "caller.cache"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            deadline = time.monotonic() + seconds + 40
            while phone.poll() is None and time.monotonic() < deadline:
                rss = _rss_kb(phone.pid)
                if rss:
                    samples.append(rss)
                    if len(samples) == int(seconds / 0.3):
                        libraries = _mapped_libraries(phone.pid)
                time.sleep(0.3)
            summary = caller.communicate(timeout=seconds + 40)[0]
        finally:
            for process in (phone, caller):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait(5)
    samples.sort()
    heavy = sorted(
        name
        for name in ("numpy", "PIL", "luma", "openblas")
        if any(name.lower() in library.lower() for library in libraries)
    )
    return {
        "peak_mb": samples[-1] / 1024.0 if samples else None,
        "median_mb": samples[len(samples) // 2] / 1024.0 if samples else None,
        "secure": '"secure": true' in summary,
        "heavy_libraries": heavy,
    }


def run():
    result = measure("opus")
    print(
        "  sotto run --board sim answering a secure Opus call (ZRTP, SRTP): VmRSS peak {:.1f} MB, median "
        "{:.1f} MB, secure: {}, numpy/Pillow/luma mapped: {}".format(
            result["peak_mb"] or 0.0,
            result["median_mb"] or 0.0,
            result["secure"],
            ", ".join(result["heavy_libraries"]) or "none",
        )
    )
