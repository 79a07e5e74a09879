"""PESQ helpers for the voice-quality figures (ITU-T P.862 via the PyPI `pesq` package) and a bench.

Helpers (host-only; numpy, espeak-ng and sox):
    make_speech_wav(path, rate=16000, text=SENTENCES, voice="en-us") -> path
        synthetic speech with espeak-ng, resampled by sox to `rate`, mono 16-bit; a second of silence
        is not added: the file starts and ends with speech-like pauses of espeak-ng's own
    align(reference, degraded, max_delay_samples) -> (reference, degraded)
        numpy int16 arrays cut to the same length after removing the delay found by cross-correlation
        (FFT); the delay may be positive (degraded late) or negative
    pesq_score(reference_wav, degraded_wav, mode="nb"|"wb", max_delay_s=2.0) -> float
        reads both WAV files (any rate), resamples them to 8 kHz (nb, P.862) or 16 kHz (wb, P.862.2),
        aligns, and scores MOS-LQO
    codec_chain(pcm16k, codec_name, loss=0.0, seed=1) -> pcm16k
        the speech through our codec path offline (resample, encode, decode or conceal lost frames,
        resample back): what MediaStream does minus the network

`run()` (make bench) prints PESQ for every codec through that offline chain, clean and with 5 % loss.
"""

import random
import subprocess
import tempfile
from pathlib import Path

SENTENCES = ("The quick brown fox jumps over the lazy dog. Please call me back at half past seven. "
             "Secure voice needs both people to read the short authentication string aloud.")


def make_speech_wav(path, rate=16000, text=SENTENCES, voice="en-us"):
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True,
                       capture_output=True, timeout=60)
        subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path)], check=True,
                       capture_output=True, timeout=60)
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
    for start in range(0, len(pcm16k), frame_bytes):
        frame = to_codec.process(pcm16k[start : start + frame_bytes])
        payload = codec.encode(frame)
        if loss and rng.random() < loss:
            decoded = codec.conceal(codec.frame_samples)
        else:
            decoded = codec.decode(payload)
        out.append(from_codec.process(decoded))
    return b"".join(out)


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
            print("    {:5s} {} clean {:.2f}   5 % random loss with concealment {:.2f}".format(
                name, mode, figures[0], figures[1]))
