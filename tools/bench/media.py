"""Media costs per packet / per frame, beside libsrtp where it has the same profile.

Prints: SRTP protect/unprotect per 172-octet packet (ours for every profile; libsrtp via pylibsrtp for
AES_CM_128_HMAC_SHA1_80/_32), G.711 encode/decode per 20 ms frame, the other codecs, resampling per
frame, loss concealment, the jitter buffer per packet, and one whole MediaStream period (receive +
send + play, G.711 with SRTP, 48 kHz device) as a share of one core.
"""

import os
import socket
import time

PACKET_PAYLOAD = 160


def _per_call(func, count):
    started = time.perf_counter()
    for _ in range(count):
        func()
    return (time.perf_counter() - started) / count * 1e6


def _rtp(seq):
    from firmware.rtp.packet import build_rtp

    return build_rtp(0, seq & 0xFFFF, seq * 160, 0x1234ABCD, bytes(PACKET_PAYLOAD))


def _srtp_figures(count=20000):
    from firmware.srtp.context import SrtpContext

    key, salt = os.urandom(32), os.urandom(14)
    print("  SRTP per 172-octet RTP packet (us):          protect  unprotect")
    for profile in (
        "AES_CM_128_HMAC_SHA1_80",
        "AES_CM_128_HMAC_SHA1_32",
        "AES_256_CM_HMAC_SHA1_80",
        "AES_256_CM_HMAC_SHA1_32",
    ):
        length = 32 if "256" in profile else 16
        tx = SrtpContext(profile, key[:length], salt)
        rx = SrtpContext(profile, key[:length], salt)
        packets = [_rtp(i) for i in range(count)]
        protected = []
        started = time.perf_counter()
        for packet in packets:
            protected.append(tx.protect(packet))
        protect_us = (time.perf_counter() - started) / count * 1e6
        started = time.perf_counter()
        for packet in protected:
            rx.unprotect(packet)
        unprotect_us = (time.perf_counter() - started) / count * 1e6
        print("    sotto   {:26s} {:8.2f} {:9.2f}".format(profile, protect_us, unprotect_us))
    try:
        import pylibsrtp
    except ImportError:
        print("    libsrtp: pylibsrtp not installed")
        return
    for profile, code in (
        ("AES_CM_128_HMAC_SHA1_80", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80),
        ("AES_CM_128_HMAC_SHA1_32", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32),
    ):
        tx = pylibsrtp.Session(
            pylibsrtp.Policy(key=key[:16] + salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=code)
        )
        rx = pylibsrtp.Session(
            pylibsrtp.Policy(key=key[:16] + salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=code)
        )
        packets = [_rtp(i) for i in range(count)]
        started = time.perf_counter()
        protected = [tx.protect(p) for p in packets]
        protect_us = (time.perf_counter() - started) / count * 1e6
        started = time.perf_counter()
        for packet in protected:
            rx.unprotect(packet)
        unprotect_us = (time.perf_counter() - started) / count * 1e6
        print("    libsrtp {:26s} {:8.2f} {:9.2f}".format(profile, protect_us, unprotect_us))


def _codec_figures():
    from audio import g711
    from audio.codecs import make_codec

    pcm = os.urandom(320)
    ulaw = g711.encode_ulaw(pcm)
    print("  codecs per 20 ms frame (us):")
    print(
        "    G.711 u-law encode {:7.2f}  decode {:7.2f}".format(
            _per_call(lambda: g711.encode_ulaw(pcm), 20000), _per_call(lambda: g711.decode_ulaw(ulaw), 20000)
        )
    )
    print(
        "    G.711 A-law encode {:7.2f}  decode {:7.2f}".format(
            _per_call(lambda: g711.encode_alaw(pcm), 20000), _per_call(lambda: g711.decode_alaw(ulaw), 20000)
        )
    )
    for name in ("G722", "opus"):
        try:
            codec = make_codec(name)
        except Exception as exc:
            print("    {} unavailable: {}".format(name, exc))
            continue
        frame = bytes(codec.frame_samples * 2)
        payload = codec.encode(frame)
        print(
            "    {:5s} encode {:7.2f}  decode {:7.2f}  conceal {:7.2f}".format(
                name,
                _per_call(lambda c=codec, f=frame: c.encode(f), 2000),
                _per_call(lambda c=codec, p=payload: c.decode(p), 2000),
                _per_call(lambda c=codec: c.conceal(c.frame_samples), 500),
            )
        )
    codec = make_codec("PCMU")
    for _ in range(5):
        codec.decode(ulaw)
    print(
        "    G.711 concealment of one lost frame: {:7.2f}".format(
            _per_call(lambda: (codec.conceal(160), codec.decode(ulaw)), 2000)
        )
    )


def _resample_figures():
    from audio.resample import Resampler

    print("  resampling per 20 ms frame (us):       numpy   pure Python")
    for source, target in ((48000, 8000), (8000, 48000), (48000, 16000), (16000, 48000)):
        fast = Resampler(source, target)
        pure = Resampler(source, target, use_numpy=False)
        frame = os.urandom(source // 50 * 2)
        print(
            "    {:5d} -> {:5d}  {:14.1f} {:13.1f}   ({} taps per output sample)".format(
                source,
                target,
                _per_call(lambda r=fast, f=frame: r.process(f), 500),
                _per_call(lambda r=pure, f=frame: r.process(f), 100),
                fast._taps,
            )
        )


def _jitter_figures():
    from audio.playout import JitterBuffer

    jb = JitterBuffer(8000)
    payload = bytes(160)
    state = {"seq": 0}

    def step():
        seq = state["seq"]
        jb.push(seq & 0xFFFF, seq * 160, payload, seq * 0.02)
        jb.pop()
        state["seq"] = seq + 1

    print("  jitter buffer push + pop per packet (us): {:.2f}".format(_per_call(step, 20000)))


def _stream_cycle_figures(periods=1500):
    from audio.wavfile import NullSink, SilentSource
    from firmware.runtime.media import MediaStream

    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    sink_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink_sock.bind(("127.0.0.1", 0))
    sink_sock.setblocking(False)
    keys = ("AES_CM_128_HMAC_SHA1_80", os.urandom(16), os.urandom(14))
    for codec, pt, rate in (
        ("PCMU", 0, 8000),
        ("G722", 9, 16000),
        ("PCMU", 0, 48000),
        ("G722", 9, 48000),
        ("opus", 111, 48000),
    ):
        stream = MediaStream(
            sender,
            codec,
            pt,
            101,
            SilentSource(rate, paced=False),
            NullSink(rate),
            os.urandom,
            remote=sink_sock.getsockname(),
            realtime=False,
        )
        stream.set_keys(keys, keys)
        # A peer's packets are fed in as received media, so every period also unprotects and plays.
        peer = MediaStream(
            sender,
            codec,
            pt,
            101,
            SilentSource(rate, paced=False),
            NullSink(rate),
            os.urandom,
            remote=sink_sock.getsockname(),
            realtime=False,
        )
        peer.set_keys(keys, keys)
        now = 0.0
        pcm = bytes(rate // 50 * 2)
        cost = 0.0
        for i in range(periods):
            now = i * 0.02
            peer._cycle(pcm, now)
            try:
                while True:
                    data, addr = sink_sock.recvfrom(2048)
                    stream._inbox.append((data, addr, now))
            except BlockingIOError:
                pass
            started = time.perf_counter()
            stream._cycle(pcm, now)
            cost += time.perf_counter() - started
        per_period_us = cost / periods * 1e6
        print(
            "  MediaStream period ({:4s}, SRTP, {:5d} Hz devices): {:7.1f} us = {:.2f} % of one core".format(
                codec, rate, per_period_us, per_period_us / 20000 * 100
            )
        )
    sender.close()
    sink_sock.close()


def run():
    _srtp_figures()
    _codec_figures()
    _resample_figures()
    _jitter_figures()
    _stream_cycle_figures()
