"""The PESQ helper: identical files score high, noise scores low, a delayed copy is re-aligned."""

import random
import struct

import numpy as np
import pytest

from audio.wavfile import read_wav, write_wav
from tools.bench.pesq import align, codec_chain, make_speech_wav, pesq_score


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return make_speech_wav(
        tmp_path_factory.mktemp("pesq") / "speech.wav",
        16000,
        text="Hello, this is a test of the secure phone. Please read the code aloud.",
    )


def test_identical_files_score_high(speech):
    assert pesq_score(speech, speech, "nb") > 4.3
    assert pesq_score(speech, speech, "wb") > 4.3


def test_noise_scores_low(speech, tmp_path):
    rate, pcm = read_wav(speech)
    rng = random.Random(7)
    count = len(pcm) // 2
    noise = struct.pack("<%dh" % count, *[rng.randint(-8000, 8000) for _ in range(count)])
    write_wav(tmp_path / "noise.wav", rate, noise)
    assert pesq_score(speech, tmp_path / "noise.wav", "nb") < 2.0
    assert pesq_score(speech, tmp_path / "noise.wav", "wb") < 2.0


def test_delay_is_removed_before_scoring(speech, tmp_path):
    rate, pcm = read_wav(speech)
    delayed = bytes(2 * 3456) + pcm  # 216 ms late
    write_wav(tmp_path / "late.wav", rate, delayed)
    assert pesq_score(speech, tmp_path / "late.wav", "wb") > 4.3
    ref = np.arange(1000, dtype=np.int16)
    a, b = align(ref, np.concatenate((np.zeros(10, np.int16), ref)), 50)
    assert np.array_equal(a, b)


def test_codec_chain_scores_are_in_a_sane_range(speech, tmp_path):
    _, pcm = read_wav(speech)
    write_wav(tmp_path / "pcmu.wav", 16000, codec_chain(pcm, "PCMU"))
    assert 3.5 < pesq_score(speech, tmp_path / "pcmu.wav", "nb") < 4.6
