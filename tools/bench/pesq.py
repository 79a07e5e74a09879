"""PESQ helpers for the voice-quality figures (ITU-T P.862 via the PyPI `pesq` package) and a bench.

Helpers (host-only; numpy, espeak-ng and sox):
    make_speech_wav(path, rate=16000, text=SENTENCES, voice="en-us") -> path
        synthetic speech with espeak-ng, resampled by sox to `rate`, mono 16-bit; a second of silence
        is not added: the file starts and ends with speech-like pauses of espeak-ng's own
    make_voice_wav(path, rate=16000, text=SENTENCES, voice="slt") -> path
        the same with one of flite's voices (slt: US female, rms and awb: male, kal16): statistical
        voices far closer to recorded speech than espeak-ng's formant synthesis, whose buzzy high band
        makes G.722 (2 bits for 4-8 kHz) score 2.9 clean against 4.2 on flite's slt
    align(reference, degraded, max_delay_samples) -> (reference, degraded)
        numpy int16 arrays cut to the same length after removing the delay found by cross-correlation
        (FFT); the delay may be positive (degraded late) or negative
    pesq_score(reference_wav, degraded_wav, mode="nb"|"wb", max_delay_s=2.0) -> float
        reads both WAV files (any rate), resamples them to 8 kHz (nb, P.862) or 16 kHz (wb, P.862.2),
        aligns, and scores MOS-LQO
    codec_chain(pcm16k, codec_name, loss=0.0, seed=1) -> pcm16k
        the speech through our codec path offline (resample, encode, decode or conceal lost frames,
        resample back): what MediaStream does minus the network

    loopback_call(reference_wav, recording_wav, codec, loss=0.0, jitter_s=0.0, seconds=None, seed=1)
        -> stats dict of the receiving MediaStream, taken just before the sender stops
        two real MediaStreams (SRTP, AES_CM_128_HMAC_SHA1_80) over loopback UDP in real time; the
        sender plays `reference_wav`, the receiver records what it decodes; datagrams to the receiver
        are dropped with probability `loss` and delayed by a uniform 0..jitter_s (so also reordered)
        on their way from the socket to MediaStream.deliver(), where the lead's loop would hand them

Command line: `python -m tools.bench.pesq REFERENCE.wav DEGRADED.wav [nb|wb]` prints the score, and
`python -m tools.bench.pesq --speech OUT.wav [RATE]` writes the synthetic speech file.

`run()` (make bench) prints PESQ for every codec through the offline chain, clean and with 5 % loss,
then through real MediaStreams over loopback, clean and with 5 % loss + 40 ms jitter, with the
receiver's playout delay.
"""

import random
import subprocess
import tempfile
from pathlib import Path

SENTENCES = (
    "The quick brown fox jumps over the lazy dog. Please call me back at half past seven. "
    "Secure voice needs both people to read the short authentication string aloud."
)


def make_speech_wav(path, rate=16000, text=SENTENCES, voice="en-us"):
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True, capture_output=True, timeout=60
        )
        subprocess.run(
            ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path)],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return path


def make_voice_wav(path, rate=16000, text=SENTENCES, voice="slt"):
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "flite.wav"
        try:
            subprocess.run(
                ["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True, capture_output=True, timeout=60
            )
        except FileNotFoundError:
            raise RuntimeError("flite is not installed (Debian package flite; make venv-dev installs it)") from None
        subprocess.run(
            ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path)],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return path


def align(reference, degraded, max_delay_samples):
    import numpy as np

    ref = reference.astype(np.float64)
    deg = degraded.astype(np.float64)
    size = 1
    while size < len(ref) + len(deg):
        size <<= 1
    correlation = np.fft.irfft(np.fft.rfft(deg, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.concatenate((correlation[: max_delay_samples + 1], correlation[size - max_delay_samples :]))
    index = int(np.argmax(lags))
    delay = index if index <= max_delay_samples else index - len(lags)
    if delay >= 0:
        deg_cut = degraded[delay:]
        ref_cut = reference
    else:
        deg_cut = degraded
        ref_cut = reference[-delay:]
    length = min(len(ref_cut), len(deg_cut))
    return ref_cut[:length], deg_cut[:length]


def _read_at(path, rate):
    import numpy as np

    from audio.resample import Resampler
    from audio.wavfile import read_wav

    file_rate, pcm = read_wav(path)
    if file_rate != rate:
        pcm = Resampler(file_rate, rate).process(pcm)
    return np.frombuffer(pcm, dtype=np.int16)


def pesq_score(reference_wav, degraded_wav, mode="nb", max_delay_s=2.0):
    from pesq import pesq

    rate = 8000 if mode == "nb" else 16000
    reference = _read_at(reference_wav, rate)
    degraded = _read_at(degraded_wav, rate)
    ref, deg = align(reference, degraded, int(max_delay_s * rate))
    return float(pesq(rate, ref, deg, mode))


def codec_chain(pcm16k, codec_name, loss=0.0, seed=1):
    from audio.codecs import make_codec
    from audio.resample import Resampler

    codec = make_codec(codec_name)
    to_codec = Resampler(16000, codec.sample_rate)
    from_codec = Resampler(codec.sample_rate, 16000)
    rng = random.Random(seed)
    out = []
    frame_bytes = 640  # 20 ms at 16 kHz
    pcm16k = pcm16k + bytes((-len(pcm16k)) % frame_bytes)
    payloads = [
        codec.encode(to_codec.process(pcm16k[start : start + frame_bytes]))
        for start in range(0, len(pcm16k), frame_bytes)
    ]
    lost = [bool(loss) and rng.random() < loss for _ in payloads]
    for index, payload in enumerate(payloads):
        if lost[index]:
            # As MediaStream does: the next packet, when it arrived, helps (G.711 bridge, Opus FEC).
            following = payloads[index + 1] if index + 1 < len(payloads) and not lost[index + 1] else None
            recover = getattr(codec, "recover", None)
            if following is not None and recover is not None:
                decoded = recover(following, codec.frame_samples)
            else:
                decoded = codec.conceal(codec.frame_samples, following)
        else:
            decoded = codec.decode(payload)
        out.append(from_codec.process(decoded))
    return b"".join(out)


class _ImpairedPump:
    """Reads a socket and hands datagrams to a stream, dropping and delaying them (the control thread)."""

    def __init__(self, sock, stream, loss, jitter_s, seed):
        import heapq
        import threading

        self._heapq = heapq
        self.sock = sock
        self.stream = stream
        self.loss = loss
        self.jitter_s = jitter_s
        self.rng = random.Random(seed)
        self.pending = []
        self.running = True
        self.counter = 0
        sock.settimeout(0.002)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        import time

        while self.running:
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:  # the timeout, or the socket closed
                data = None
            now = time.monotonic()
            if data is not None and not (self.loss and self.rng.random() < self.loss):
                self.counter += 1
                due = now + self.rng.uniform(0, self.jitter_s) if self.jitter_s else now
                self._heapq.heappush(self.pending, (due, self.counter, data, addr))
            while self.pending and self.pending[0][0] <= now:
                _, _, packet, source = self._heapq.heappop(self.pending)
                self.stream.deliver(packet, source)

    def stop(self):
        self.running = False
        self.thread.join(2)


def loopback_call(reference_wav, recording_wav, codec, loss=0.0, jitter_s=0.0, seconds=None, seed=1):
    import os
    import socket
    import time

    from audio.codecs import make_codec
    from audio.wavfile import NullSink, SilentSource, WavRecorder, WavSource, read_wav
    from firmware.runtime.media import MediaStream

    payload_types = {"PCMU": 0, "PCMA": 8, "G722": 9, "opus": 111}
    rate = make_codec(codec).sample_rate
    if seconds is None:
        file_rate, pcm = read_wav(reference_wav)
        seconds = len(pcm) / 2 / file_rate + 1.0
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    key_ab = ("AES_CM_128_HMAC_SHA1_80", os.urandom(16), os.urandom(14))
    key_ba = ("AES_CM_128_HMAC_SHA1_80", os.urandom(16), os.urandom(14))
    sender = MediaStream(
        a,
        codec,
        payload_types[codec],
        101,
        WavSource(reference_wav, rate, loop=False),
        NullSink(rate),
        os.urandom,
        remote=b.getsockname(),
    )
    receiver = MediaStream(
        b,
        codec,
        payload_types[codec],
        101,
        SilentSource(rate),
        WavRecorder(recording_wav, rate),
        os.urandom,
        remote=a.getsockname(),
    )
    sender.set_keys(key_ab, key_ba)
    receiver.set_keys(key_ba, key_ab)
    pumps = [_ImpairedPump(a, sender, 0.0, 0.0, seed), _ImpairedPump(b, receiver, loss, jitter_s, seed + 1)]
    receiver.start()
    sender.start()
    try:
        time.sleep(seconds)
        stats = receiver.stats()  # before the sender stops: the end of a stream is an underrun by nature
    finally:
        sender.stop()
        time.sleep(0.3)
        receiver.stop()
        for pump in pumps:
            pump.stop()
        a.close()
        b.close()
    return stats


def run():
    from audio.wavfile import read_wav, write_wav

    with tempfile.TemporaryDirectory() as tmp:
        speech = make_speech_wav(Path(tmp) / "speech.wav", 16000)
        _, pcm = read_wav(speech)
        print("  synthetic speech: {:.1f} s (espeak-ng, 16 kHz)".format(len(pcm) / 32000))
        print("  PESQ of the offline codec chain (resample, encode, decode/conceal, resample):")
        for name, mode in (("PCMU", "nb"), ("PCMA", "nb"), ("G722", "wb"), ("opus", "wb")):
            figures = []
            for loss in (0.0, 0.05):
                out = Path(tmp) / "{}-{}.wav".format(name, loss)
                write_wav(out, 16000, codec_chain(pcm, name, loss))
                figures.append(pesq_score(speech, out, mode))
            print(
                "    {:5s} {} clean {:.2f}   5 % random loss with concealment {:.2f}".format(
                    name, mode, figures[0], figures[1]
                )
            )
        print("  PESQ through two MediaStreams over loopback SRTP, real time:")
        for name, mode in (("PCMU", "nb"), ("PCMA", "nb"), ("G722", "wb"), ("opus", "wb")):
            for loss, jitter in ((0.0, 0.0), (0.05, 0.04)):
                out = Path(tmp) / "call-{}-{}.wav".format(name, loss)
                stats = loopback_call(speech, out, name, loss, jitter)
                print(
                    "    {:5s} {} loss {:2.0f} % jitter {:2.0f} ms: PESQ {:.2f}  playout delay {:5.1f} ms "
                    "(target {:5.1f})  jitter {:5.1f} ms  lost {} late {} concealed {} underruns {}".format(
                        name,
                        mode,
                        loss * 100,
                        jitter * 1000,
                        pesq_score(speech, out, mode),
                        stats["playout_delay_ms"],
                        stats["target_delay_ms"],
                        stats["jitter_ms"],
                        stats["lost"],
                        stats["late"],
                        stats["concealed"],
                        stats["underruns"],
                    )
                )


def main(argv):
    if len(argv) >= 2 and argv[0] == "--speech":
        make_speech_wav(argv[1], int(argv[2]) if len(argv) > 2 else 16000)
        return 0
    if len(argv) not in (2, 3):
        print("usage: python -m tools.bench.pesq REFERENCE.wav DEGRADED.wav [nb|wb] | --speech OUT.wav [RATE]")
        return 2
    print("{:.3f}".format(pesq_score(argv[0], argv[1], argv[2] if len(argv) == 3 else "nb")))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
