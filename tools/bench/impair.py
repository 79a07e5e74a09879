"""A deterministic, offline impairment bench: two real MediaStreams (SRTP) on a simulated clock and network.

Nothing here depends on the machine's speed or load: time is simulated, every random choice comes from
one seeded generator, so a figure is reproduced exactly by running the same command again.

The sender's MediaStream runs its real send path (resample, encode, RTP, SRTP) once per 20 ms of its own
clock; the receiver's runs its real receive and play path (SRTP unprotect, RTP, JitterBuffer, decode or
conceal, resample) once per 20 ms of *its* clock. A clock skew of `skew_ppm` makes the sender's periods
(1 + skew_ppm * 1e-6) times as long as the receiver's, as a USB headset's crystal drifts against the far
end's. Between them the network drops packets (random, or in bursts: a Gilbert-Elliott two-state chain)
and delays each one by `base_ms` plus an independent uniform 0..`jitter_ms`, so packets also reorder.
Arrival times reach the receiver as the kernel's SO_TIMESTAMPNS stamps would.

API (host-only: numpy, pesq):
    RandomLoss(rate, rng)                     each packet lost with probability `rate`
    GilbertElliott(rate, mean_burst, rng)     bursts of mean length `mean_burst` packets; mean loss `rate`
        .lost() -> bool
    impaired_call(pcm, rate, codec, loss=0.0, burst=1.0, jitter_ms=0.0, skew_ppm=0.0, seed=1, base_ms=10.0,
                  red=False)
        -> (received pcm at `rate`, receiver stats, counters)
        red: both streams use RFC 2198 redundancy (G.711, G.722: each packet repeats the previous frame)
        pcm: 16-bit mono speech at `rate`; the call lasts the speech plus 1 s. counters: the network's
        (sent, dropped), the playout buffer's at the end (jb_*) and when the sender stopped (speech_jb_*)
    impaired_pesq(reference_wav, codec, mode, **impairment) -> (pesq, stats)
    run()  (make bench: python -m tools.bench impair) prints the table, and writes a PNG plot when
           matplotlib is installed

Command line: `python -m tools.bench.impair [red] CODEC LOSS_PERCENT JITTER_MS [BURST [SKEW_PPM [SEED]]]`
(`red`: with RFC 2198 redundancy) prints the PESQ (NB for G.711, WB otherwise) of the synthetic speech
through that impairment.
"""

import random
import tempfile
from pathlib import Path

PERIOD = 0.020
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8, "G722": 9, "opus": 111}
RED_PAYLOAD_TYPE = 121
PESQ_MODES = {"PCMU": "nb", "PCMA": "nb", "G722": "wb", "opus": "wb"}


class RandomLoss:
    def __init__(self, rate, rng):
        self.rate = rate
        self.rng = rng

    def lost(self):
        return bool(self.rate) and self.rng.random() < self.rate


class GilbertElliott:
    """Two states: Good (nothing lost) and Bad (everything lost). Leaving Bad has probability 1/mean_burst,
    entering it p = rate * r / (1 - rate), so the stationary loss is `rate` (Gilbert 1960, Elliott 1963)."""

    def __init__(self, rate, mean_burst, rng):
        self.rng = rng
        self.leave_bad = 1.0 / mean_burst
        self.enter_bad = rate * self.leave_bad / (1.0 - rate) if rate < 1.0 else 1.0
        self.bad = False

    def lost(self):
        if self.bad:
            if self.rng.random() < self.leave_bad:
                self.bad = False
        elif self.rng.random() < self.enter_bad:
            self.bad = True
        return self.bad


class _Wire:
    """The sender's socket: sendto() puts the datagram on the simulated network."""

    def __init__(self, network):
        self.network = network
        self.now = 0.0

    def sendto(self, datagram, addr):
        self.network.send(datagram, self.now)
        return len(datagram)


class _Network:
    def __init__(self, loss_model, jitter_s, base_s, rng):
        self.loss_model = loss_model
        self.jitter_s = jitter_s
        self.base_s = base_s
        self.rng = rng
        self.in_flight = []
        self.sent = self.dropped = 0

    def send(self, datagram, now):
        self.sent += 1
        if self.loss_model.lost():
            self.dropped += 1
            return
        delay = self.base_s + (self.rng.uniform(0.0, self.jitter_s) if self.jitter_s else 0.0)
        self.in_flight.append((now + delay, self.sent, datagram))

    def arrived_by(self, now):
        ready = [item for item in self.in_flight if item[0] <= now]
        if ready:
            self.in_flight = [item for item in self.in_flight if item[0] > now]
            ready.sort()
        return ready


class _Collector:
    def __init__(self, sample_rate):
        self.sample_rate = sample_rate
        self.frames = []

    def write(self, pcm):
        self.frames.append(pcm)

    def close(self):
        pass


class _Source:
    """Only its shape is used: the harness hands each period's PCM to MediaStream._cycle itself."""

    def __init__(self, sample_rate):
        self.sample_rate = sample_rate
        self.period_samples = sample_rate // 50

    def read(self):
        return bytes(2 * self.period_samples)

    def close(self):
        pass


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def impaired_call(pcm, rate, codec, loss=0.0, burst=1.0, jitter_ms=0.0, skew_ppm=0.0, seed=1, base_ms=10.0, red=False):
    from firmware.runtime.media import MediaStream

    rng = random.Random(seed)
    key_rng = random.Random(seed + 7919)

    def octets(count):
        return bytes(key_rng.getrandbits(8) for _ in range(count))

    loss_model = GilbertElliott(loss, burst, rng) if burst > 1.0 and loss else RandomLoss(loss, rng)
    network = _Network(loss_model, jitter_ms / 1000.0, base_ms / 1000.0, rng)
    wire = _Wire(network)
    sender_clock, receiver_clock = _Clock(), _Clock()
    pt = PAYLOAD_TYPES[codec]
    address = ("127.0.0.1", 40000)
    red_pt = RED_PAYLOAD_TYPE if red else None
    sender = MediaStream(
        wire,
        codec,
        pt,
        101,
        _Source(rate),
        _Collector(rate),
        octets,
        remote=address,
        clock=sender_clock,
        wallclock=sender_clock,
        realtime=False,
        red_payload_type=red_pt,
    )
    sink = _Collector(rate)
    receiver = MediaStream(
        _Wire(_Network(RandomLoss(0.0, rng), 0.0, 0.0, rng)),
        codec,
        pt,
        101,
        _Source(rate),
        sink,
        octets,
        remote=("127.0.0.1", 40002),
        clock=receiver_clock,
        wallclock=receiver_clock,
        realtime=False,
        red_payload_type=red_pt,
    )
    key_ab = ("AES_CM_128_HMAC_SHA1_80", octets(16), octets(14))
    key_ba = ("AES_CM_128_HMAC_SHA1_80", octets(16), octets(14))
    sender.set_keys(key_ab, key_ba)
    receiver.set_keys(key_ba, key_ab)

    frame_bytes = rate // 50 * 2
    pcm = pcm + bytes((-len(pcm)) % frame_bytes) + bytes(frame_bytes * 50)  # a second of silence at the end
    sender_period = PERIOD * (1.0 + skew_ppm * 1e-6)
    sender_index = receiver_index = 0
    sender_frames = len(pcm) // frame_bytes
    receiver_offset = 0.0071  # the two clocks' periods are not aligned
    during_speech = None  # the playout counters when the sender stops (the end of a stream is an underrun)
    while True:
        sender_time = sender_index * sender_period
        receiver_time = receiver_offset + receiver_index * PERIOD
        if sender_index < sender_frames and sender_time <= receiver_time:
            sender_clock.now = wire.now = sender_time
            frame = pcm[sender_index * frame_bytes : (sender_index + 1) * frame_bytes]
            sender._send_period(frame, sender_time)
            sender_index += 1
            continue
        if sender_index >= sender_frames and not network.in_flight and receiver_time > sender_time + 0.5:
            break
        if during_speech is None and sender_index >= sender_frames:
            during_speech = _playout_counters(receiver)
        receiver_clock.now = receiver_time
        for arrival, _, datagram in network.arrived_by(receiver_time):
            receiver._inbox.append((datagram, address, arrival))
        receiver._receive_pending(receiver_time)
        receiver._play_period()
        receiver_index += 1
    counters = {"sent": network.sent, "dropped": network.dropped}
    counters.update(("speech_" + key, value) for key, value in (during_speech or {}).items())
    return b"".join(sink.frames), receiver.stats(), dict(counters, **_playout_counters(receiver))


def _playout_counters(stream):
    jitter = stream._jitter
    return {
        "jb_dropped": jitter.dropped,
        "jb_underruns": jitter.underruns,
        "jb_lost": jitter.lost,
        "jb_late": jitter.late,
        "jb_delay_ms": jitter.delay_ms,
        "stretched": getattr(stream, "stretched", 0),
        "recovered": jitter.recovered,
    }


def impaired_pesq(reference_wav, codec, mode=None, **impairment):
    from audio.codecs import SAMPLE_RATES
    from audio.wavfile import read_wav, write_wav
    from tools.bench.pesq import pesq_score

    rate = SAMPLE_RATES[codec]
    from audio.resample import Resampler

    file_rate, pcm = read_wav(reference_wav)
    if file_rate != rate:
        pcm = Resampler(file_rate, rate).process(pcm)
    received, stats, counters = impaired_call(pcm, rate, codec, **impairment)
    counters["delay_ms"] = _delay_ms(pcm, received, rate)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "received.wav"
        write_wav(out, rate, received)
        score = pesq_score(reference_wav, out, mode or PESQ_MODES[codec])
    return score, dict(stats, **counters)


def _delay_ms(sent, received, rate):
    """How late the received speech is against the sent (cross-correlation peak): the one-way delay of
    the simulated path, from the sender's capture to the receiver's playback write (codec, packetisation,
    network base delay and jitter, playout buffer, resamplers), without the sound cards' own buffers."""
    import numpy as np

    ref = np.frombuffer(sent, dtype="<i2").astype(np.float64)
    deg = np.frombuffer(received, dtype="<i2").astype(np.float64)
    size = 1
    while size < len(ref) + len(deg):
        size <<= 1
    correlation = np.fft.irfft(np.fft.rfft(deg, size) * np.conj(np.fft.rfft(ref, size)), size)
    limit = rate  # at most 1 s late
    return float(np.argmax(correlation[:limit])) * 1000.0 / rate


LOSSES = (0.0, 0.03, 0.05, 0.10)
VOICES = ("slt", "rms")  # flite's US female and male voices
CODECS = ("PCMU", "PCMA", "G722", "opus")


RED_CODECS = ("PCMU", "PCMA", "G722")  # the codecs offered with RFC 2198 redundancy (firmware/sdp)


def table(speech_wavs, jitter_ms=40.0, burst=1.0, seeds=(1,), codecs=CODECS, red=False):
    """{codec: [mean PESQ over voices and seeds at each of LOSSES]} through `jitter_ms` of jitter."""
    rows = {}
    for codec in codecs:
        scores = []
        for loss in LOSSES:
            figures = [
                impaired_pesq(speech_wav, codec, loss=loss, burst=burst, jitter_ms=jitter_ms, seed=seed, red=red)[0]
                for seed in seeds
                for speech_wav in speech_wavs
            ]
            scores.append(sum(figures) / len(figures))
        rows[codec] = scores
    return rows


def plot(rows_by_label, path):
    """PESQ against loss, one line per (phone, codec, loss model); False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label, scores in rows_by_label.items():
        axes.plot([loss * 100 for loss in LOSSES], scores, marker="o", label=label)
    axes.set_xlabel("packet loss (%), 40 ms jitter")
    axes.set_ylabel("PESQ MOS-LQO (NB for G.711, WB otherwise)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(str(path), dpi=100)
    plt.close(figure)
    return True


def run(plot_path="bench-pesq-loss.png"):
    from tools.bench.pesq import make_voice_wav

    with tempfile.TemporaryDirectory() as tmp:
        voices = [make_voice_wav(Path(tmp) / "{}.wav".format(voice), 16000, voice=voice) for voice in VOICES]
        speech = voices[0]
        print("  Sotto -> Sotto, simulated clock and network (deterministic, seed 1), SRTP, 40 ms jitter;")
        print("  PESQ NB for G.711, WB for G.722 and Opus, the mean over flite's voices {}:".format(", ".join(VOICES)))
        print("    {:16s}".format("codec / loss") + "".join("{:>8.0f} %".format(loss * 100) for loss in LOSSES))
        lines = {}
        for burst, model in ((1.0, "random"), (3.0, "bursts of 3")):
            for red in (False, True):
                # RFC 2198 redundancy (`+RED`): each packet also carries the previous frame (twice the
                # payload: PCMU 64 -> 128 kbit/s of payload, G.722 likewise, plus 4 octets per packet).
                rows = table(voices, 40.0, burst, codecs=RED_CODECS if red else CODECS, red=red)
                for codec, scores in rows.items():
                    label = "Sotto {}{} ({})".format(codec, " +RED" if red else "", model)
                    lines[label] = scores
                    print(
                        "    {:16s}".format(
                            "{} {}{}".format(codec, "rand" if burst == 1.0 else "GE3", " +RED" if red else "")
                        )
                        + "".join("{:>10.2f}".format(score) for score in scores)
                    )
        print("  one-way delay through the simulated path (codec, 10 ms network, playout buffer, resampling;")
        print("  no sound-card buffers), from the cross-correlation of sent and received speech:")
        for codec in CODECS:
            figures = []
            for jitter in (0.0, 40.0):
                _, stats = impaired_pesq(speech, codec, jitter_ms=jitter, seed=1)
                figures.append(
                    "{:5.1f} ms (playout buffer {:5.1f} ms)".format(stats["delay_ms"], stats["playout_delay_ms"])
                )
            print("    {:5s} clean: {}   40 ms jitter: {}".format(codec, figures[0], figures[1]))
        if plot(lines, plot_path):
            print("  plot: {}".format(Path(plot_path).resolve()))
        else:
            print("  plot: not written (matplotlib is not installed)")


def main(argv):
    from tools.bench.pesq import make_voice_wav

    red = bool(argv) and argv[0] == "red"
    if red:
        argv = argv[1:]
    if len(argv) < 3:
        print("usage: python -m tools.bench.impair [red] CODEC LOSS_PERCENT JITTER_MS [BURST [SKEW_PPM [SEED]]]")
        return 2
    codec, loss, jitter = argv[0], float(argv[1]) / 100.0, float(argv[2])
    burst = float(argv[3]) if len(argv) > 3 else 1.0
    skew = float(argv[4]) if len(argv) > 4 else 0.0
    seed = int(argv[5]) if len(argv) > 5 else 1
    with tempfile.TemporaryDirectory() as tmp:
        speech = make_voice_wav(Path(tmp) / "speech.wav", 16000)
        score, stats = impaired_pesq(
            speech, codec, loss=loss, burst=burst, jitter_ms=jitter, skew_ppm=skew, seed=seed, red=red
        )
    print("{:.3f} {}".format(score, stats))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
