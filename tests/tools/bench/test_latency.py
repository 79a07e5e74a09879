"""The latency bench's measurement (tools/bench/latency.py): device timelines from timed events, chirps
found by cross-correlation, one-way latency; synthetic signals with a known delay. The calls are
`make bench`."""

import numpy as np

from tools.bench import latency as L


def _device_events(origin, rate, chunk, count, late=lambda n: 0.0, capture=True):
    """A paced device: chunk n is handed over at its end (capture) or written at its start (playback),
    `late(n)` seconds behind."""
    events = []
    for n in range(count):
        if capture:
            events.append((origin + (n + 1) * chunk / rate + late(n), (n + 1) * chunk))
        else:
            events.append((origin + n * chunk / rate + late(n), n * chunk))
    return events


def _played(sent, starts, rate, delays, length, seed=1):
    rng = np.random.default_rng(seed)
    out = rng.normal(0.0, 30.0, length)  # a little noise, as a codec leaves
    probe = L.chirp(rate) * L.CHIRP_LEVEL * 32767.0 * 0.7
    for start, delay in zip(starts, delays):
        if delay is None:
            continue
        at = start + int(round(delay * rate))
        out[at : at + len(probe)] += probe
    return np.clip(out, -32768, 32767).astype(np.int16)


def test_a_synthetic_delayed_signal_gives_the_known_delay():
    rate = 8000
    sent, starts, span = L.stimulus(rate, np.zeros(4000, dtype=np.int16))
    assert span == (int(rate * (L.LEAD_S + L.CHIRPS_PER_TRAIN * L.CHIRP_EVERY_S + L.GAP_S)),) * 1 + (span[0] + 4000,)
    # The sender's microphone starts at t=100 s (20 ms periods); the receiver's earpiece starts 0.25 s
    # later (10 ms chunks), so a chirp played 73.5 ms after it was captured is at sample
    # start + (0.0735 - 0.25) * rate of the recording.
    capture = L.capture_origin(_device_events(100.0, rate, 160, 600), rate)
    playback = L.playback_origin(_device_events(100.25, rate, 80, 1200, capture=False), rate)
    assert len(capture) == 1 and abs(capture[0].origin - 100.0) < 1e-9
    assert len(playback) == 1 and abs(playback[0].origin - 100.25) < 1e-9
    delays = [0.0735 + 0.002 * (i % 3) for i in range(len(starts))]
    recording_delays = [d - 0.25 for d in delays]
    received = _played(sent, starts, rate, recording_delays, len(sent))
    found = L.latencies(starts, rate, capture, received, rate, playback)
    assert len(found) == len(starts) == 2 * L.CHIRPS_PER_TRAIN
    for measured, expected in zip(found, delays):
        assert measured is not None and abs(measured - expected) <= 1.0 / rate
    summary = L.summarise(found)
    assert abs(summary["median_ms"] - 75.5) < 0.2 and summary["found"] == 12


def test_a_lost_chirp_is_not_counted_and_the_others_are():
    rate = 16000
    sent, starts, _ = L.stimulus(rate)
    capture = L.capture_origin(_device_events(5.0, rate, 320, 400), rate)
    playback = L.playback_origin(_device_events(5.0, rate, 320, 400, capture=False), rate)
    delays = [0.120] * len(starts)
    delays[3] = None  # lost in the network and concealed: silence where it should be
    received = _played(sent, starts, rate, delays, len(sent) + rate)
    found = L.latencies(starts, rate, capture, received, rate, playback)
    assert found[3] is None
    assert all(abs(v - 0.120) <= 1.0 / rate for i, v in enumerate(found) if i != 3)
    assert L.summarise(found)["found"] == len(starts) - 1


def test_late_writes_and_a_stalled_timeline_do_not_move_the_origin():
    rate = 8000
    # Writes late by scheduling now and then (1 in 20 by 4 ms): the 90th percentile ignores them.
    events = _device_events(1.0, rate, 160, 200, late=lambda n: 0.004 if n % 20 == 7 else 0.0, capture=False)
    assert abs(L.playback_origin(events, rate)[0].origin - 1.0) < 1e-9
    # A recorder that got nothing for 300 ms: two segments, each with its own origin.
    stalled = events[:100] + [(t + 0.3, i) for t, i in events[100:]]
    segments = L.playback_origin(stalled, rate)
    assert [round(s.origin, 6) for s in segments] == [1.0, 1.3]
    assert segments[0].last < segments[1].first


def _ms2_reader(origin, rate, seconds, data_offset=44, poll_delay=lambda k: 0.0003):
    """What the poller sees of mediastreamer2's file player: a block of 4096 bytes read at open and
    another whenever less than a block is buffered before a 10 ms tick takes its chunk."""
    chunk = int(rate * L.MS2_TICK_S) * 2
    samples = [(origin - 0.05, data_offset + L.MS2_BLOCK)]
    read = L.MS2_BLOCK
    consumed = 0
    for tick in range(int(seconds / L.MS2_TICK_S)):
        when = origin + (tick + 1) * L.MS2_TICK_S  # the chunk [consumed, +chunk) is handed over now
        if read - consumed < L.MS2_BLOCK:
            read += L.MS2_BLOCK
            samples.append((when + poll_delay(tick), data_offset + read))
        consumed += chunk
    return samples


def _ms2_recorder(origin, rate, seconds, chunk_s=0.020, poll_delay=lambda k: 0.0003):
    chunk = int(rate * chunk_s) * 2
    samples = []
    stream = 0
    for tick in range(int(seconds / chunk_s)):
        when = origin + tick * chunk_s  # the chunk starting at stream byte `stream` is written now
        before = stream // L.MS2_BLOCK
        stream += chunk
        if stream // L.MS2_BLOCK > before:
            samples.append((when + poll_delay(tick), (stream // L.MS2_BLOCK) * L.MS2_BLOCK))
    return samples


def test_linphones_file_offsets_give_its_devices_timelines():
    for rate in (8000, 48000):
        reader = L.linphone_events(_ms2_reader(10.0, rate, 8.0), 44, rate, reader=True)
        origin = L.capture_origin(reader, rate)
        assert len(origin) == 1 and abs(origin[0].origin - 10.0) < 0.0005, (rate, origin)
        writer = L.linphone_events(_ms2_recorder(20.0, rate, 8.0), 44, rate, reader=False)
        origin = L.playback_origin(writer, rate)
        # The recording's sample 0 is stream sample 22 (the header overwrote 44 bytes).
        assert len(origin) == 1 and abs(origin[0].origin - (20.0 + 44 / 2 / rate)) < 0.0005, (rate, origin)


def test_one_event_off_the_line_is_left_out_and_a_moved_timeline_is_kept():
    rate = 8000
    events = _device_events(3.0, rate, 160, 300, late=lambda n: 0.050 if n == 40 else 0.0)
    segments = L.capture_origin(events, rate)
    assert len(segments) == 1 and abs(segments[0].origin - 3.0) < 1e-9
    moved = events[:150] + [(t + 0.060, i) for t, i in events[150:]]
    assert [round(s.origin, 6) for s in L.capture_origin(moved, rate)] == [3.0, 3.06]


def test_linphones_player_going_back_to_the_start_ends_its_timeline():
    rate = 8000
    samples = _ms2_reader(10.0, rate, 4.0)
    samples += [(14.5, 44 + L.MS2_BLOCK), (14.52, 44 + 2 * L.MS2_BLOCK)]  # looped: read again from the start
    segments = L.capture_origin(L.linphone_events(samples, 44, rate, reader=True), rate)
    assert len(segments) == 1 and abs(segments[0].origin - 10.0) < 0.0005
