"""SRTP replay and tamper on the wire (issue 11): a relay between two real `sotto` processes in a secure
call replays some SRTP packets and sends bit-flipped copies of others. The receiver's summary counts
each exactly (`rtp.replays`, `rtp.auth_failures`, RFC 3711 §3.3 steps 4 and 5) and the audio goes on."""

import math
import wave

import pytest

from tests.hostile import totals
from tests.hostile.calls import relayed_call
from tests.hostile.relay import is_rtp

pytestmark = pytest.mark.interop

START_AFTER = 60  # SRTP packets left alone first (the call is secure by then)
EVERY = 10  # then every 10th packet is replayed, and every 10th (other) one gets a tampered copy
LIMIT = 12  # of each, so the counts stay well inside the call


class ReplayAndTamper:
    def __init__(self):
        self.srtp = 0
        self.replayed = 0
        self.tampered = 0

    def __call__(self, direction, data):
        if direction != "a->b" or not is_rtp(data):
            return [data]
        self.srtp += 1
        n = self.srtp - START_AFTER
        if n <= 0:
            return [data]
        if n % EVERY == 0 and self.replayed < LIMIT:
            self.replayed += 1
            return [data, data]  # the very same packet again: a replay
        if n % EVERY == EVERY // 2 and self.tampered < LIMIT:
            self.tampered += 1
            flipped = bytearray(data)
            flipped[20] ^= 0x01  # one bit of the encrypted payload (the header is 12 bytes, PCMU 160)
            return [bytes(flipped), data]  # the forgery first (it fails authentication), then the real one
        return [data]


def _rms(path):
    with wave.open(str(path), "rb") as r:
        pcm = r.readframes(r.getnframes())
    samples = memoryview(pcm).cast("h")
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


def test_replayed_and_bit_flipped_srtp_is_counted_exactly_and_audio_goes_on(tmp_path):
    tamper = ReplayAndTamper()
    record = tmp_path / "bob-heard.wav"
    (rc_a, alice, err_a), (rc_b, bob, err_b), relay = relayed_call(
        tmp_path, tamper, answer_args=["--record", str(record)], duration=5
    )
    assert rc_a == 0 and rc_b == 0, err_a[-2000:] + err_b[-2000:]
    assert tamper.replayed == LIMIT and tamper.tampered == LIMIT, (tamper.replayed, tamper.tampered, tamper.srtp)
    for summary in (alice, bob):
        assert summary["result"] == "completed" and summary["secure"] is True
    assert bob["rtp"]["replays"] == LIMIT, bob["rtp"]
    assert bob["rtp"]["auth_failures"] == LIMIT, bob["rtp"]
    assert alice["rtp"]["replays"] == 0 and alice["rtp"]["auth_failures"] == 0
    # Audio went on: every genuine packet arrived and played (the forgeries and replays cost nothing).
    assert bob["rtp"]["received"] >= tamper.srtp - 5, (bob["rtp"], tamper.srtp)
    assert bob["rtp"]["lost"] <= 2, bob["rtp"]
    assert _rms(record) > 1000  # the 440 Hz tone (amplitude 8000), not silence
    totals.record(
        "srtp replay/tamper",
        srtp_packets=tamper.srtp,
        replays_sent=tamper.replayed,
        replays_counted=bob["rtp"]["replays"],
        forgeries_sent=tamper.tampered,
        auth_failures_counted=bob["rtp"]["auth_failures"],
        forwarded=sum(relay.forwarded.values()),
    )
