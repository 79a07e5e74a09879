"""The calls bench's own code against a real linphonec, so `make bench` cannot rot silently: one short
PCMU call over SDES-SRTP, `sotto call` <-> linphonec, both directions scored with the bench's helpers."""

import numpy as np
import pytest

from tests.conftest import require_tool
from tools.bench import calls

pytestmark = [pytest.mark.interop]


@pytest.fixture(autouse=True)
def _tools_installed():
    for tool, package in (("linphonec", "linphone-cli"), ("espeak-ng", "espeak-ng"), ("sox", "sox")):
        require_tool(tool, package)


def test_mixed_speech_has_the_silent_lead_and_both_voices(tmp_path):
    from audio.wavfile import read_wav

    rate, pcm = read_wav(calls.mixed_speech_wav(tmp_path / "speech.wav", 8000, calls.SENTENCES[:2]))
    samples = np.frombuffer(pcm, dtype=np.int16)
    assert rate == 8000
    assert np.abs(samples[: int(rate * calls.LEAD_SILENCE_S)]).max() == 0  # the part the scores skip is silence
    assert np.abs(samples).max() > 5000
    tail = samples[-int(rate * calls.TAIL_SILENCE_S) :]
    assert np.abs(tail).max() == 0


def test_one_pcmu_sdes_call_scores_plausibly_both_ways(tmp_path):
    speech = calls.mixed_speech_wav(tmp_path / "speech.wav", 8000, calls.SENTENCES[:2])
    seconds = calls.wav_seconds(speech) + calls.SKIP_S + 0.8
    result = calls.sotto_linphone_call(tmp_path / "call", "PCMU", speech, seconds, calls.Ports(18900))
    assert result.summary["codec"] == "PCMU" and result.summary["encryption"] == "sdes"
    assert result.summary["secure"] is True and result.summary["rtp"]["auth_failures"] == 0
    sotto_receives = calls.score_recording(speech, result.sotto_received, "nb")
    linphone_receives = calls.score_recording(speech, result.linphone_received, "nb")
    assert sotto_receives > 3.0, sotto_receives
    assert linphone_receives > 3.0, linphone_receives
    # The helper tells the right reference from a wrong one: the same speech played backwards scores low.
    from audio.wavfile import read_wav, write_wav

    rate, pcm = read_wav(speech)
    write_wav(tmp_path / "backwards.wav", rate, np.frombuffer(pcm, dtype=np.int16)[::-1].tobytes())
    assert calls.score_recording(tmp_path / "backwards.wav", result.sotto_received, "nb") < 2.5


def test_cpu_seconds_reads_this_process():
    import os
    import time

    before = calls.cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert 0.2 < calls.cpu_seconds(os.getpid()) - before < 1.0


def test_thread_cpu_seconds_sees_a_busy_thread_apart_from_the_main_one():
    import os
    import threading
    import time

    pid = os.getpid()
    before = calls.thread_cpu_seconds(pid)
    burnt, release = threading.Event(), threading.Event()

    def burn():
        deadline = time.thread_time() + 0.3
        while time.thread_time() < deadline:
            pass
        burnt.set()
        release.wait(5)  # stay alive (in /proc) until measured

    worker = threading.Thread(target=burn)
    worker.start()
    try:
        assert burnt.wait(10)
        main, others = calls._thread_split(pid, before, calls.thread_cpu_seconds(pid))
    finally:
        release.set()
        worker.join(5)
    assert main < 0.15 and others and others[0] > 0.2
