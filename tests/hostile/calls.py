"""Two real `sotto` processes in one call through tests/hostile/relay.py relays (loopback, bounded)."""

import math
import wave

from tests.hostile.relay import MediaRelay, SipRelay
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


class Ports:
    """The loopback ports of one test, kept for all its calls: Alice always calls the same AOR
    (sip:bob@127.0.0.1:<sip_relay>), as she would call a contact from her address book."""

    def __init__(self):
        (
            self.bob_sip,
            self.alice_sip,
            self.bob_rtp,
            self.alice_rtp,
            self.relay_to_b,
            self.relay_to_a,
            self.sip_relay,
        ) = (sotto.free_udp_port() for _ in range(7))

    @property
    def bob_uri(self):
        return "sip:bob@127.0.0.1:{}".format(self.sip_relay)


def relayed_call(
    tmp_path,
    tamper=None,
    caller_args=(),
    answer_args=(),
    duration=5,
    ports=None,
    sip_rewrite=None,
    mitm=None,
    timeout=40,
):
    """Alice (`sotto call`) calls Bob (`sotto answer`) through a SipRelay (running `sip_rewrite`) and a
    MediaRelay (running `tamper`, or the ZrtpMitm `mitm`): all of the call crosses the relays.

    Returns (alice, bob, relay) where alice/bob are (exit code, summary, stderr).
    """
    ports = ports or Ports()
    wav = tone_wav(tmp_path / "tone.wav")
    relay = MediaRelay(tamper, ports.relay_to_b, ports.relay_to_a)
    relay.connect(ports.alice_rtp, ports.bob_rtp)
    if mitm is not None:
        mitm.attach(relay)
    sip = SipRelay(ports.bob_sip, sip_rewrite, port=ports.sip_relay)
    with relay, sip:
        bob = sotto.start(
            [
                "answer",
                "--listen",
                "127.0.0.1:{}".format(ports.bob_sip),
                "--rtp-port",
                str(ports.bob_rtp),
                "--public-address",
                "127.0.0.1:{}".format(ports.relay_to_b),
                "--timeout",
                str(timeout - 5),
                "--cache",
                str(tmp_path / "bob.cache"),
                "--play",
                str(wav),
                "--codecs",
                "PCMU",
                *answer_args,
            ],
            tmp_path / "bob-home",
        )
        sotto.wait_listening(ports.bob_sip, bob)
        alice = sotto.start(
            [
                "call",
                ports.bob_uri,
                "--listen",
                "127.0.0.1:{}".format(ports.alice_sip),
                "--rtp-port",
                str(ports.alice_rtp),
                "--public-address",
                "127.0.0.1:{}".format(ports.relay_to_a),
                "--timeout",
                str(timeout - 5),
                "--duration",
                str(duration),
                "--cache",
                str(tmp_path / "alice.cache"),
                "--play",
                str(wav),
                "--codecs",
                "PCMU",
                *caller_args,
            ],
            tmp_path / "alice-home",
        )
        a = sotto.finish(alice, timeout)
        b = sotto.finish(bob, timeout)
    assert relay.errors == [] and sip.errors == [], relay.errors + sip.errors
    for _rc, _summary, err in (a, b):
        assert "Traceback" not in err, err[-3000:]
    return a, b, relay
