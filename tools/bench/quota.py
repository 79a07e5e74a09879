"""The smallest CPU quota a secure call stays clean at, for Sotto and for linphonec (issue 14, Pi Zero 2 W).

Real calls: `sotto call --encryption sdes` (SRTP, RFC 4568 keys) to a linphonec that auto-answers
(without its level-6 debug log, as a user runs it: writing that log costs linphonec CPU); both play the
same flite voice and record. One of the two processes is put in a cgroup v1 `cpu` group with
`cpu.cfs_quota_us` = quota x `cpu.cfs_period_us` (PERIOD_US) once the call is answered (neither phone's
start-up is charged: a desk phone starts long before its calls); the other runs free. The free reference
calls put that side in a group with no quota: a new group has no real-time budget (cpu.rt_runtime_us 0),
so there, as under a quota, a phone's SCHED_FIFO audio thread is refused and runs as an ordinary thread;
only the quota differs. The throttled side's reception is scored: PESQ of what it received (NB for PCMU,
WB for Opus), and for Sotto its summary's playout underruns. One call's PESQ moves by +-0.2 from run to
run, more than the 0.1 the rule allows, so every cell is RUNS calls and the median decides: a quota is
clean when its calls all completed, none had an underrun, and their median PESQ is within 0.1 of the
median of RUNS free calls. Quotas go from the largest down and stop at the first unclean one; a cell
stops as soon as its remaining calls cannot make it clean. One core of the Pi Zero 2 W is roughly a
tenth of a core here. Needs root (cgroup v1 writable); otherwise the section says so.

The machine is shared: a quota is a ceiling, not a guarantee, so under load a call can be starved
below its quota; the load average is printed with the table.

API (host-only):
    CpuQuota(percent)           context manager: a cgroup, no quota yet; .add(pid); .limit() applies
                                the quota (None: stays -1)
    quota_call(workdir, codec, throttled, percent, voice_wav16k) -> dict(pesq, underruns, seconds)
        throttled: "sotto" or "linphone"
    Cell(percent)               one quota's runs: .add(pesq, underruns), .fail(reason), .median(),
                                .clean(reference_median, runs), .settled_unclean(...), .describe()
    smallest_clean(cells, reference_median, runs) -> percent or None
    measure_row(call, runs, quotas) -> (reference Cell, [Cell]); call(percent, index) -> dict(pesq, underruns)
    run()
"""

import os
import socket
import statistics
import sys
import tempfile
from pathlib import Path

CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100000
QUOTAS = (15.0, 10.0, 7.5, 6.0, 5.0)  # % of one core, from the largest down; the reference runs free
RUNS = 3  # calls per cell: the median decides
CODECS = (("PCMU", "nb"), ("opus", "wb"))
CLEAN_PESQ_DROP = 0.1


class CpuQuota:
    def __init__(self, percent):
        self.percent = percent
        self.path = None

    def __enter__(self):
        # Every call's throttled side, the free reference's too, lives in a group of its own from its
        # spawn: a new cgroup v1 cpu group has cpu.rt_runtime_us = 0, so a phone's real-time audio thread
        # (SCHED_FIFO) is refused there and runs as an ordinary thread (and a process that already has one
        # cannot be moved in: EINVAL). In the root group the free calls kept SCHED_FIFO while the throttled
        # ones lost it: two changes at once. The group starts with no quota (-1); limit() sets it.
        label = "free" if self.percent is None else int(self.percent * 10)
        self.path = CGROUP_CPU / "sotto-bench-{}-{}".format(os.getpid(), label)
        self.path.mkdir(exist_ok=True)
        (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (self.path / "cpu.cfs_quota_us").write_text("-1")
        return self

    def add(self, pid):
        (self.path / "cgroup.procs").write_text(str(pid))

    def limit(self):
        """Apply the quota from now on (nothing for the free reference)."""
        if self.percent is not None:
            (self.path / "cpu.cfs_quota_us").write_text(str(int(PERIOD_US * self.percent / 100.0)))

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
        _stop_process,
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
        with _linphone(
            workdir / "linphone", ports.lin_a_sip, ports.lin_a_rtp, "bob", [codec], "srtp", True, debug_log=False
        ) as bob:
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
            # The quota applies from the moment the call is answered: a desk phone has started long before
            # its call, and `sotto call` spends ~0.45 s of CPU importing its code at start. Charged to the
            # quota, that start-up ran throttled into the first media periods: the lone underrun of a
            # throttled Sotto call came there, with no throttling at all for the rest of the call.
            try:
                bob.wait_for(r"[Cc]all \d+ .*(connected|[Ss]treams running)", timeout=15)
                quota.limit()
            except BaseException:
                _stop_process(process)
                raise
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


class Cell:
    """The runs of one quota (or of the free reference): PESQ per completed call, underruns, failures."""

    __slots__ = ("percent", "pesqs", "underruns", "failures")

    def __init__(self, percent):
        self.percent = percent
        self.pesqs = []
        self.underruns = 0
        self.failures = []

    def add(self, pesq, underruns):
        self.pesqs.append(pesq)
        self.underruns += underruns or 0

    def fail(self, reason):
        self.failures.append(reason)

    def median(self):
        return statistics.median(self.pesqs) if self.pesqs else None

    def clean(self, reference, runs=RUNS):
        """The rule: all `runs` calls completed, no underrun summed over them, and the median PESQ within
        CLEAN_PESQ_DROP of the reference (the free calls' median). A median of several calls, because one
        call's PESQ moves by +-0.2 from run to run, more than the 0.1 the rule allows."""
        return (
            not self.failures
            and len(self.pesqs) == runs
            and self.underruns == 0
            and self.median() >= reference - CLEAN_PESQ_DROP
        )

    def settled_unclean(self, reference, runs=RUNS):
        """True when the remaining runs cannot make the cell clean (a failure, an underrun, or a majority of
        the runs already below the line, which fixes the median below it): the bench stops early."""
        if self.failures or self.underruns:
            return True
        below = sum(1 for pesq in self.pesqs if pesq < reference - CLEAN_PESQ_DROP)
        return below > runs // 2

    def describe(self):
        if not self.pesqs:
            return "{}: failed ({})".format(_label(self.percent), ", ".join(self.failures))
        text = "{}: {:.2f}".format(_label(self.percent), self.median())
        if len(self.pesqs) > 1:
            text += " [{:.2f}-{:.2f}]".format(min(self.pesqs), max(self.pesqs))
        if self.underruns:
            text += " u{}".format(self.underruns)
        if self.failures:
            text += " {} failed".format(len(self.failures))
        return text


def smallest_clean(cells, reference, runs=RUNS):
    """Cells from the largest quota down; the smallest quota clean with every larger one clean too
    (None: not clean at the largest)."""
    smallest = None
    for cell in cells:
        if not cell.clean(reference, runs):
            break
        smallest = cell.percent
    return smallest


def measure_row(call, runs=RUNS, quotas=QUOTAS):
    """call(percent, index) -> dict(pesq, underruns) or raises. The free reference's `runs` calls, then
    each quota from the largest down, stopping at the first unclean cell; a cell stops early once it
    cannot be clean. Returns (reference Cell, [Cell per quota measured])."""
    reference = Cell(None)
    for index in range(runs):
        _measure_into(reference, call, None, index)
    if len(reference.pesqs) < runs:
        return reference, []
    line = reference.median()
    cells = []
    for percent in quotas:
        cell = Cell(percent)
        cells.append(cell)
        for index in range(runs):
            _measure_into(cell, call, percent, index)
            if cell.settled_unclean(line, runs):
                break
        if not cell.clean(line, runs):
            break
    return reference, cells


def _measure_into(cell, call, percent, index):
    try:
        result = call(percent, index)
    except Exception as exc:  # a starved call may fail outright: that is not clean
        cell.fail(type(exc).__name__)
        return
    cell.add(result["pesq"], result["underruns"])


def run(runs=RUNS):
    import time

    from tools.bench.pesq import make_voice_wav

    if not os.access(str(CGROUP_CPU), os.W_OK):
        print("  (not measured: cgroup v1 {} is not writable; run as root)".format(CGROUP_CPU))
        return
    with tempfile.TemporaryDirectory() as tmp:
        voice = make_voice_wav(Path(tmp) / "slt.wav", 16000, voice="slt")
        print("  secure call (SDES-SRTP) sotto call <-> linphonec, flite slt (the same speech every call);")
        print("  one side in a cgroup v1 cpu quota (% of one core); PESQ of what the throttled side received.")
        print(
            "  Rule: {} calls per quota; clean = all completed, no underrun in any (Sotto), median PESQ within"
            " {}".format(runs, CLEAN_PESQ_DROP)
        )
        print(
            "  of the median of {} free calls. Quotas {} from the largest down to the first unclean one; a cell".format(
                runs, "/".join(_label(p) for p in QUOTAS)
            )
        )
        print("  stops early once it cannot be clean. Cells: median [min-max] uN (underruns over all runs).")
        for codec, _ in CODECS:
            for side in ("sotto", "linphone"):
                started, load_before = time.monotonic(), os.getloadavg()[0]

                def call(percent, index, codec=codec, side=side):
                    work = Path(tmp) / "{}-{}-{}-{}".format(codec, side, _label(percent), index)
                    return quota_call(work, codec, side, percent, voice)

                reference, cells = measure_row(call, runs)
                print("    {:5s} {:8s} {}".format(codec, side, "  ".join(c.describe() for c in [reference] + cells)))
                if len(reference.pesqs) < runs:
                    verdict = "not measured (a free call failed)"
                else:
                    smallest = smallest_clean(cells, reference.median(), runs)
                    verdict = "none down to {}".format(_label(QUOTAS[0])) if smallest is None else _label(smallest)
                print(
                    "    {:5s} {:8s} smallest clean quota: {}  (load {:.1f} -> {:.1f}, {:.0f} s)".format(
                        codec, side, verdict, load_before, os.getloadavg()[0], time.monotonic() - started
                    )
                )
                sys.stdout.flush()


def _label(percent):
    return "free" if percent is None else "{:g}%".format(percent)


if __name__ == "__main__":
    run()
