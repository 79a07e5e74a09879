"""audio/alsa.py: the real alsaaudio code through ALSA's `file` plugin (INTEROP.md), and injected xruns."""

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ALSA_CONF = """
pcm.sotto_test_play { @args [ FILE ] @args.FILE { type string default "/tmp/play.raw" }
                type file slave.pcm "null" file $FILE format "raw" truncate true }
pcm.sotto_test_cap  { @args [ INFILE ] @args.INFILE { type string default "/tmp/in.raw" }
                type file slave.pcm "null" file "/dev/null" infile $INFILE format "raw" }
"""


def _run_with_alsa_config(tmp_path, script):
    conf = tmp_path / "test.conf"
    conf.write_text(ALSA_CONF)
    env = dict(os.environ, ALSA_CONFIG_PATH="/usr/share/alsa/alsa.conf:{}".format(conf), PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_capture_and_playback_bytes_are_exact_through_the_file_plugin(tmp_path):
    data = bytes((i * 7) & 0xFF for i in range(320 * 8))
    (tmp_path / "in.raw").write_bytes(data)
    result = _run_with_alsa_config(
        tmp_path,
        """
        from audio.alsa import AlsaCapture, AlsaPlayback, open_pair
        pair = open_pair("sotto_test_cap:INFILE=in.raw", "sotto_test_play:FILE=pair.raw", 16000)
        assert [d.sample_rate for d in pair] == [16000, 16000] and pair[0].period_samples == 320
        for d in pair:
            d.close()
        cap = AlsaCapture("sotto_test_cap:INFILE=in.raw", rate=8000)
        assert cap.sample_rate == 8000 and cap.period_samples == 160, (cap.sample_rate, cap.period_samples)
        frames = [cap.read() for _ in range(3)]
        cap.close()
        open("captured.raw", "wb").write(b"".join(frames))
        play = AlsaPlayback("sotto_test_play:FILE=out.raw", rate=8000, prefill_periods=0)
        for f in frames:
            play.write(f)
        play.close()
        print("OK", play.xruns, cap.xruns)
    """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK 0 0")
    assert (tmp_path / "captured.raw").read_bytes() == data[: 320 * 3]
    assert (tmp_path / "out.raw").read_bytes() == data[: 320 * 3]


def test_missing_device_raises_oserror(tmp_path):
    result = _run_with_alsa_config(
        tmp_path,
        """
        from audio.alsa import AlsaCapture
        try:
            AlsaCapture("hw:97,0", rate=8000)
        except OSError as exc:
            print("OSError", "plughw:97,0" in str(exc) or "hw:97,0" in str(exc))
    """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OSError True"


class FakePcm:
    """Stands in for alsaaudio.PCM: reports a chosen rate, injects an xrun on request."""

    def __init__(self, rate, period_samples, script):
        self.rate = rate
        self.period_samples = period_samples
        self.script = script
        self.written = []
        self.closed = False

    def info(self):
        return {"rate": self.rate}

    def read(self):
        step = self.script.pop(0) if self.script else "ok"
        if step == "xrun":
            return -errno.EPIPE, b""
        if step == "half":
            return self.period_samples // 2, b"\x01\x00" * (self.period_samples // 2)
        return self.period_samples, b"\x02\x00" * self.period_samples

    def write(self, data):
        step = self.script.pop(0) if self.script else "ok"
        if step == "xrun":
            return -errno.EPIPE
        self.written.append(data)
        return len(data) // 2

    def close(self):
        self.closed = True


def test_capture_xrun_recovers_within_one_period_without_drift():
    from audio import alsa  # pyalsaaudio is pinned in requirements.txt: missing is a failure

    created = []

    def factory(pcm_type, device, rate, period_samples, periods):
        pcm = FakePcm(rate, period_samples, ["ok", "xrun", "half", "half", "ok"])
        created.append(pcm)
        return pcm

    cap = alsa.AlsaCapture("fake", rate=48000, pcm_factory=factory)
    frames = [cap.read() for _ in range(4)]
    assert [len(f) for f in frames] == [1920] * 4
    assert frames[1] == bytes(1920)  # the lost period, as silence: the sample count stays exact
    assert frames[2] == b"\x01\x00" * 960  # two short reads assemble one period
    assert cap.xruns == 1


def test_hardware_rate_is_discovered_and_playback_xrun_refills():
    from audio import alsa  # pyalsaaudio is pinned in requirements.txt: missing is a failure

    opened = []

    def factory(pcm_type, device, rate, period_samples, periods):
        pcm = FakePcm(48000, period_samples, ["ok", "ok", "xrun"])  # the hardware only does 48 kHz
        opened.append((rate, period_samples))
        return pcm

    play = alsa.AlsaPlayback("fake", rate=8000, prefill_periods=1, pcm_factory=factory)
    assert play.sample_rate == 48000 and play.period_samples == 960
    assert opened == [(8000, 160), (48000, 960)]
    play.write(b"\x05\x00" * 960)
    play.write(b"\x06\x00" * 960)  # underrun: silence refilled ahead, then the data
    assert play.xruns == 1
    assert play.pcm.written[-1] == b"\x06\x00" * 960 and play.pcm.written[-2] == bytes(1920)


def test_media_loop_paced_by_a_real_alsaaudio_capture(tmp_path):
    """MediaStream over AlsaCapture/AlsaPlayback (file plugin): a FIFO written every 20 ms paces it."""
    result = _run_with_alsa_config(
        tmp_path,
        """
        import math, os, socket, struct, threading, time
        from audio.alsa import AlsaCapture, AlsaPlayback
        from audio.wavfile import SilentSource, WavRecorder
        from firmware.runtime.media import MediaStream
        from firmware.runtime.tone_player import pcm_level_dbov
        os.mkfifo("cap.fifo")
        tone = struct.pack("<8000h", *[int(8000 * math.sin(2 * math.pi * 200 * i / 8000)) for i in range(8000)])
        stop = []
        def writer():
            fd = os.open("cap.fifo", os.O_WRONLY)
            start, n = time.monotonic(), 0
            while not stop:
                os.write(fd, tone[(n * 320) % 16000:(n * 320) % 16000 + 320])
                n += 1
                delay = start + n * 0.02 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            os.close(fd)
        threading.Thread(target=writer, daemon=True).start()
        capture = AlsaCapture("sotto_test_cap:INFILE=cap.fifo", rate=8000)
        playback = AlsaPlayback("sotto_test_play:FILE=played.raw", rate=8000, prefill_periods=0)
        a, b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
        sa = MediaStream(a, "PCMU", 0, 101, capture, playback, os.urandom, remote=b.getsockname())
        sb = MediaStream(b, "PCMU", 0, 101, SilentSource(8000), WavRecorder("rec.wav", 8000), os.urandom,
                         remote=a.getsockname())
        running = [True]
        def pump(sock, stream):
            sock.settimeout(0.05)
            while running[0]:
                try:
                    data, addr = sock.recvfrom(4096)
                except OSError:
                    continue
                stream.deliver(data, addr)
        for sock, stream in ((a, sa), (b, sb)):
            threading.Thread(target=pump, args=(sock, stream), daemon=True).start()
        started = time.monotonic()
        sa.start(); sb.start()
        time.sleep(2.0)
        sent = sa.stats()["sent"]
        received = sb.stats()["received"]
        stop.append(1)
        sa.stop(); sb.stop(); running[0] = False
        elapsed = time.monotonic() - started
        import wave
        with wave.open("rec.wav") as w:
            recorded = w.readframes(w.getnframes())
        print("RESULT", sent, received, round(elapsed, 2), os.path.getsize("played.raw"),
              round(pcm_level_dbov(recorded[8000:]), 1))
    """,
    )
    assert result.returncode == 0, result.stderr
    line = [x for x in result.stdout.splitlines() if x.startswith("RESULT")][0].split()
    sent, received, elapsed, played, level = int(line[1]), int(line[2]), float(line[3]), int(line[4]), float(line[5])
    assert 90 <= sent <= 110, sent  # paced by the capture reads: 50 periods a second, not faster
    assert elapsed < 3.0
    assert received >= sent - 3
    assert played >= 90 * 320  # the playback side wrote one period per cycle
    assert level > -25, level  # the 200 Hz tone (about -15 dBov) went through
