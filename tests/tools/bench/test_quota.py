"""The CPU-quota bench's verdict rule (tools/bench/quota.py), deterministic: a scripted `call` stands in
for the real calls, which are `make bench` (`python -m tools.bench quota`, as root)."""

from tools.bench.quota import CLEAN_PESQ_DROP, QUOTAS, Cell, measure_row, smallest_clean


def _cell(percent, pesqs, underruns=0, failures=()):
    cell = Cell(percent)
    for pesq in pesqs:
        cell.add(pesq, 0)
    cell.underruns = underruns
    for reason in failures:
        cell.fail(reason)
    return cell


def test_one_bad_call_out_of_three_does_not_make_a_cell_unclean_the_median_decides():
    cell = _cell(10.0, [4.05, 3.70, 4.02])  # one call 0.4 below: the noise the old single-call rule tripped on
    assert cell.median() == 4.02
    assert cell.clean(reference=4.10, runs=3)
    assert not _cell(10.0, [3.95, 3.70, 4.02]).clean(reference=4.10, runs=3)  # median 3.95: 0.15 below


def test_the_line_is_exactly_the_drop_below_the_reference_median():
    assert CLEAN_PESQ_DROP == 0.1
    assert _cell(7.5, [4.0, 4.0, 4.0]).clean(reference=4.0 + CLEAN_PESQ_DROP, runs=3)
    assert not _cell(7.5, [3.99, 3.99, 3.99]).clean(reference=4.0 + CLEAN_PESQ_DROP, runs=3)


def test_one_underrun_in_any_run_or_a_failed_or_missing_call_makes_a_cell_unclean():
    assert not _cell(6.0, [4.1, 4.1, 4.1], underruns=1).clean(reference=4.1, runs=3)
    assert not _cell(6.0, [4.1, 4.1], failures=["RuntimeError"]).clean(reference=4.1, runs=3)
    assert not _cell(6.0, [4.1, 4.1]).clean(reference=4.1, runs=3)


def test_a_cell_is_settled_unclean_only_once_the_remaining_runs_cannot_save_it():
    assert not _cell(5.0, [3.0]).settled_unclean(reference=4.0, runs=3)  # two more could lift the median
    assert _cell(5.0, [3.0, 3.5]).settled_unclean(reference=4.0, runs=3)  # two of three below: median below
    assert _cell(5.0, [4.0], underruns=2).settled_unclean(reference=4.0, runs=3)
    assert _cell(5.0, [], failures=["RuntimeError"]).settled_unclean(reference=4.0, runs=3)
    assert not _cell(5.0, [4.0, 4.0]).settled_unclean(reference=4.0, runs=3)


def test_smallest_clean_quota_is_the_last_of_the_unbroken_clean_run_from_the_top():
    cells = [_cell(15.0, [4.1] * 3), _cell(10.0, [4.05] * 3), _cell(7.5, [3.5] * 3), _cell(6.0, [4.1] * 3)]
    assert smallest_clean(cells, reference=4.1, runs=3) == 10.0  # 6 % clean again does not count
    assert smallest_clean([_cell(15.0, [3.0] * 3)], reference=4.1, runs=3) is None
    assert smallest_clean([], reference=4.1, runs=3) is None


class _Script:
    """Scripted calls: PESQ (or an exception) per quota, in order; records which calls were made."""

    def __init__(self, outcomes):
        self.outcomes = {percent: list(results) for percent, results in outcomes.items()}
        self.made = []

    def __call__(self, percent, index):
        self.made.append((percent, index))
        outcome = self.outcomes[percent].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        pesq, underruns = outcome
        return {"pesq": pesq, "underruns": underruns}


def test_a_row_measures_the_free_median_then_goes_down_until_the_first_unclean_quota_and_stops_early():
    script = _Script(
        {
            None: [(4.10, 0), (3.90, 0), (4.12, 0)],  # reference median 4.10
            15.0: [(4.05, 0), (4.11, 0), (3.70, 0)],
            10.0: [(4.00, 0), (3.95, 0), (4.08, 0)],  # median 4.00: exactly the line, clean
            7.5: [(3.80, 0), (3.60, 0), (4.20, 0)],  # two below after two runs: the third is never made
            6.0: [(4.10, 0)] * 3,
        }
    )
    reference, cells = measure_row(script, runs=3, quotas=(15.0, 10.0, 7.5, 6.0))
    assert reference.median() == 4.10
    assert [cell.percent for cell in cells] == [15.0, 10.0, 7.5]
    assert (7.5, 2) not in script.made and all(percent != 6.0 for percent, _ in script.made)
    assert smallest_clean(cells, reference.median(), runs=3) == 10.0


def test_an_underrun_or_a_failed_call_ends_the_cell_at_once_and_is_shown():
    script = _Script(
        {
            None: [(4.1, 0)] * 3,
            15.0: [(4.1, 0), (4.1, 2)],
            10.0: [RuntimeError("starved")],
        }
    )
    reference, cells = measure_row(script, runs=3, quotas=(15.0, 10.0))
    assert [cell.percent for cell in cells] == [15.0]
    assert cells[0].underruns == 2 and "u2" in cells[0].describe()
    assert smallest_clean(cells, reference.median(), runs=3) is None
    failing = _Script({None: [(4.1, 0)] * 3, 15.0: [RuntimeError("starved")]})
    _, cells = measure_row(failing, runs=3, quotas=(15.0,))
    assert cells[0].describe() == "15%: failed (RuntimeError)"


def test_a_failed_free_call_leaves_the_row_unmeasured():
    script = _Script({None: [(4.1, 0), RuntimeError("no answer"), (4.1, 0)]})
    reference, cells = measure_row(script, runs=3, quotas=QUOTAS)
    assert cells == [] and reference.failures == ["RuntimeError"]


def test_every_call_gets_a_group_from_its_spawn_and_the_quota_only_once_limited(tmp_path, monkeypatch):
    # A directory stands in for /sys/fs/cgroup/cpu: what matters is what is written where.
    import tools.bench.quota as quota

    monkeypatch.setattr(quota, "CGROUP_CPU", tmp_path)
    for percent, limited in ((None, "-1"), (7.5, str(quota.PERIOD_US * 75 // 1000))):
        with quota.CpuQuota(percent) as group:
            group.add(4242)
            assert group.path.parent == tmp_path
            assert (group.path / "cgroup.procs").read_text() == "4242"
            assert (group.path / "cpu.cfs_quota_us").read_text() == "-1"  # start-up runs unthrottled
            group.limit()
            assert (group.path / "cpu.cfs_quota_us").read_text() == limited
        assert (tmp_path / "cgroup.procs").read_text() == "4242"  # a left-over process goes back to the root
