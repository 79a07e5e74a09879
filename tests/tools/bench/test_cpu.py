"""The CPU bench's own arithmetic and baresip set-up (tools/bench/cpu.py), deterministic. The calls
themselves (linphonec, baresip, two `sotto call`) are `make bench`: `python -m tools.bench cpu`."""

from tools.bench.cpu import RunResult, baresip_config, summarize


def _run(sotto_l, linphonec, sotto_b, baresip):
    seconds = {
        "sotto (linphonec call)": sotto_l,
        "linphonec": linphonec,
        "sotto (baresip call)": sotto_b,
        "baresip": baresip,
    }
    return RunResult(20.0, seconds, {}, 1.0)


def test_ratios_divide_each_phone_by_its_counterpart_in_the_same_window():
    result = _run(0.40, 0.50, 0.45, 0.30)
    ratios = result.ratios()
    assert ratios["sotto/linphonec"] == 0.40 / 0.50
    assert ratios["baresip/linphonec"] == 0.30 / 0.50
    assert ratios["sotto/baresip"] == 0.45 / 0.30
    assert result.percent("linphonec") == 2.5  # 0.5 s of CPU in a 20 s window


def test_a_phone_that_used_no_measurable_cpu_gives_an_infinite_ratio_not_an_error():
    assert _run(0.40, 0.0, 0.45, 0.30).ratios()["sotto/linphonec"] == float("inf")


def test_summary_is_the_median_of_the_runs_with_its_range():
    runs = [_run(s, 0.50, 0.40, 0.25) for s in (0.50, 0.30, 0.45, 0.35, 0.40)]
    median, low, high = summarize(runs)["sotto/linphonec"]
    assert (median, low, high) == (0.40 / 0.50, 0.30 / 0.50, 0.50 / 0.50)
    assert summarize(runs)["baresip/linphonec"] == (0.5, 0.5, 0.5)


def test_baresip_plays_and_records_files_with_g711_and_srtp_on_loopback(tmp_path):
    text = baresip_config(15000, (15010, 15011), tmp_path / "in.wav", tmp_path / "out.wav")
    settings = [line.split("\t\t", 1) for line in text.splitlines()]
    assert ["sip_listen", "127.0.0.1:15000"] in settings
    assert ["audio_source", "aufile,{}".format(tmp_path / "in.wav")] in settings
    assert ["audio_player", "aufile,{}".format(tmp_path / "out.wav")] in settings
    assert ["rtp_ports", "15010-15011"] in settings
    modules = [value for key, value in settings if key == "module"]
    assert "srtp.so" in modules and "g711.so" in modules and "aufile.so" in modules
