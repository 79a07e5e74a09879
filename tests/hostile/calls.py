"""Two real `sotto` processes in one call through tests/hostile/relay.py relays (loopback, bounded)."""

import math
import time
import wave

from tests.hostile.relay import MediaRelay
from tests.interop import sotto


def tone_wav(path, rate=8000, seconds=1.0, freq=440):
    frames = bytearray()
    for n in range(int(rate * seconds)):
        frames += int(8000 * math.sin(2 * math.pi * freq * n / rate)).to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return path


def relayed_call(tmp_path, tamper, caller_args=(), answer_args=(), duration=5, sip_port_of=None, timeout=40):
    """Alice (`sotto call`) calls Bob (`sotto answer`); all media crosses a MediaRelay running `tamper`.

    sip_port_of(bob_sip_port) -> the port Alice calls (a SipRelay in front of Bob), or None for direct.
    Returns (alice, bob, relay) where alice/bob are (exit code, summary, stderr).
    """
    wav = tone_wav(tmp_path / "tone.wav")
    relay = MediaRelay(tamper)
    bob_sip, alice_sip = sotto.free_udp_port(), sotto.free_udp_port()
    bob_rtp, alice_rtp = sotto.free_udp_port(), sotto.free_udp_port()
    relay.connect(alice_rtp, bob_rtp)
    with relay:
        bob = sotto.start(["answer", "--listen", "127.0.0.1:{}".format(bob_sip), "--rtp-port", str(bob_rtp),
                           "--public-address", "127.0.0.1:{}".format(relay.to_b_port), "--timeout", str(timeout - 5),
                           "--cache", str(tmp_path / "bob.cache"), "--play", str(wav), "--codecs", "PCMU",
                           *answer_args], tmp_path / "bob-home")
        time.sleep(0.5)
        target = sip_port_of(bob_sip) if sip_port_of else bob_sip
        alice = sotto.start(["call", "sip:bob@127.0.0.1:{}".format(target), "--listen",
                             "127.0.0.1:{}".format(alice_sip), "--rtp-port", str(alice_rtp), "--public-address",
                             "127.0.0.1:{}".format(relay.to_a_port), "--timeout", str(timeout - 5), "--duration",
                             str(duration), "--cache", str(tmp_path / "alice.cache"), "--play", str(wav),
                             "--codecs", "PCMU", *caller_args], tmp_path / "alice-home")
        a = sotto.finish(alice, timeout)
        b = sotto.finish(bob, timeout)
    assert relay.errors == [], relay.errors
    for _rc, _summary, err in (a, b):
        assert "Traceback" not in err, err[-3000:]
    return a, b, relay
