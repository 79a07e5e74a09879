"""The smallest CPU quota a secure call stays clean at, for Sotto and for linphonec (issue 14, Pi Zero 2 W).

One real call per cell: `sotto call --encryption sdes` (SRTP, RFC 4568 keys) to a linphonec that
auto-answers; both play the same flite voice and record. One of the two processes is put in a cgroup v1
`cpu` group with `cpu.cfs_quota_us` = quota x `cpu.cfs_period_us` (100 ms) right after it is spawned;
the other runs free. The throttled side's reception is scored: PESQ of what it received (NB for PCMU,
WB for Opus), and for Sotto its summary's playout underruns. A call is clean when that PESQ is within
0.1 of the unthrottled call's and (Sotto) no underrun happened. One core of the Pi Zero 2 W is
roughly a tenth of a core here. Needs root (cgroup v1 writable); otherwise the section says so.

The machine is shared: a quota is a ceiling, not a guarantee, so under load a call can be starved
below its quota; the load average is printed with the table.

API (host-only):
    CpuQuota(percent)           context manager: a cgroup (None: unlimited); .add(pid)
    quota_call(workdir, codec, throttled, percent, voice_wav16k) -> dict(pesq, underruns, seconds)
        throttled: "sotto" or "linphone"
    run()
"""

import os
import socket
import tempfile
from pathlib import Path

CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100000
QUOTAS = (None, 25.0, 15.0, 10.0, 7.5, 6.0, 5.0)  # % of one core; None = unthrottled
CODECS = (("PCMU", "nb"), ("opus", "wb"))
CLEAN_PESQ_DROP = 0.1


class CpuQuota:
    def __init__(self, percent):
        self.percent = percent
        self.path = None

    def __enter__(self):
        if self.percent is None:
            return self
        self.path = CGROUP_CPU / "sotto-bench-{}-{}".format(os.getpid(), int(self.percent * 10))
        self.path.mkdir(exist_ok=True)
        (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (self.path / "cpu.cfs_quota_us").write_text(str(int(PERIOD_US * self.percent / 100.0)))
        return self

    def add(self, pid):
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(pid))

    def __exit__(self, *exc):
        if self.path is not None:
            for pid in (self.path / "cgroup.procs").read_text().split():  # left-overs go back to the root
                try:
                    (CGROUP_CPU / "cgroup.procs").write_text(pid)
                except OSError:
                    pass
            try:
                self.path.rmdir()
            except OSError:
                pass


def _free_port():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


class _FreePorts:
    def __init__(self):
        self.lin_a_sip, self.lin_a_rtp = _free_port(), _free_port()
        self.sotto_sip, self.sotto_rtp = _free_port(), _free_port()


def quota_call(workdir, codec, throttled, percent, voice_wav16k):
    import time

    from tools.bench.calls import (
        LINPHONE_RATES,
        _finish_sotto,
        _linphone,
        _sotto_call,
        resampled_copy,
        score_recording,
        wav_seconds,
    )

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mode = dict(CODECS)[codec]
    speech = resampled_copy(voice_wav16k, workdir / "speech.wav", LINPHONE_RATES[codec])
    seconds = wav_seconds(speech) + 1.0
    ports = _FreePorts()
    sotto_received = workdir / "sotto-received.wav"
    linphone_received = workdir / "linphone-received.wav"
    with CpuQuota(percent) as quota:
        with _linphone(workdir / "linphone", ports.lin_a_sip, ports.lin_a_rtp, "bob", [codec], "srtp", True) as bob:
            if throttled == "linphone":
                quota.add(bob.process.pid)
            bob.command("play {}".format(speech))
            bob.command("record {}".format(linphone_received))
            time.sleep(0.2)
            process = _sotto_call(
                bob.uri,
                ports,
                workdir,
                ["--encryption", "sdes", "--codecs", codec, "--play", str(speech), "--record", str(sotto_received)]
                + ["--duration", str(seconds), "--timeout", str(seconds + 30)],
            )
            if throttled == "sotto":
                quota.add(process.pid)
            summary = _finish_sotto(process, seconds + 40)
            bob.wait_for(r"[Cc]all .*(ended|terminated)|End of call", timeout=10)
    if summary.get("result") != "completed":
        raise RuntimeError("sotto call {}: {}".format(summary.get("result"), summary.get("reason")))
    received = sotto_received if throttled == "sotto" else linphone_received
    return {
        "pesq": score_recording(speech, received, mode, skip_s=0.0),
        "underruns": summary.get("rtp", {}).get("underruns") if throttled == "sotto" else None,
        "seconds": seconds,
    }


def run():
    from tools.bench.pesq import make_voice_wav

    if not os.access(str(CGROUP_CPU), os.W_OK):
        print("  (not measured: cgroup v1 {} is not writable; run as root)".format(CGROUP_CPU))
        return
    with tempfile.TemporaryDirectory() as tmp:
        voice = make_voice_wav(Path(tmp) / "slt.wav", 16000, voice="slt")
        print("  secure call (SDES-SRTP) sotto call <-> linphonec, flite slt; one side in a cgroup v1 cpu quota")
        print(
            "  (% of one core); PESQ of what the throttled side received, underruns (Sotto); load {:.1f}".format(
                os.getloadavg()[0]
            )
        )
        for codec, _ in CODECS:
            for side in ("sotto", "linphone"):
                cells, reference, smallest, still_clean = [], None, None, True
                for index, percent in enumerate(QUOTAS):  # from the largest down: stop at the first unclean
                    work = Path(tmp) / "{}-{}-{}".format(codec, side, index)
                    try:
                        result = quota_call(work, codec, side, percent, voice)
                    except Exception as exc:  # a starved call may fail outright: that is not clean
                        cells.append("{}: failed ({})".format(_label(percent), type(exc).__name__))
                        still_clean = False
                        continue
                    if reference is None:
                        reference = result["pesq"]
                    clean = result["pesq"] >= reference - CLEAN_PESQ_DROP and not result["underruns"]
                    still_clean = still_clean and clean
                    if still_clean and percent is not None:
                        smallest = percent
                    cells.append(
                        "{}: {:.2f}{}{}".format(
                            _label(percent),
                            result["pesq"],
                            "" if result["underruns"] is None else " u{}".format(result["underruns"]),
                            "" if clean else " (not clean)",
                        )
                    )
                print("    {:5s} {:8s} {}".format(codec, side, "  ".join(cells)))
                print(
                    "    {:5s} {:8s} smallest clean quota: {}".format(
                        codec, side, "none" if smallest is None else "{} % of a core".format(smallest)
                    )
                )


def _label(percent):
    return "free" if percent is None else "{:g}%".format(percent)


if __name__ == "__main__":
    run()
