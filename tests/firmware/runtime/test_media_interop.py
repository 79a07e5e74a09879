"""MediaStream against linphone-cli over SDES-SRTP, both directions, every codec, scored with PESQ.

The SIP part is a minimal hand-written INVITE/ACK/BYE exchange (this test is about the media path, not
the SIP engine): linphonec auto-answers with `media_encryption=srtp` (RFC 4568 SDES), plays a speech
file into the call and records what it receives; Sotto's MediaStream does the same. Ports come from
the media range 16000-16999.
"""

import os
import random
import re
import socket
import subprocess
import threading
import time

import pytest

from audio.wavfile import WavRecorder, WavSource, read_wav
from firmware.runtime.media import MediaStream
from firmware.srtp import sdes
from tests.conftest import require_tool
from tools.bench.pesq import make_speech_wav, pesq_score

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _linphone_installed():
    require_tool("linphonec", "linphone-cli")


# codec: (payload type, our sample rate, rtpmap, RTP clock, PESQ mode, port offset)
CODECS = {
    "PCMU": (0, 8000, "PCMU/8000", 8000, "nb", 0),
    "PCMA": (8, 8000, "PCMA/8000", 8000, "nb", 10),
    "G722": (9, 16000, "G722/8000", 8000, "wb", 20),
    "opus": (111, 48000, "opus/48000/2", 48000, "wb", 30),
}
# Floors that catch broken audio (a wrong codec path, byte order or key scores under 2), not a benchmark:
# the figures are `make bench`'s. Measured here over 5 runs each (espeak-ng speech, load 0.2-4), Sotto-
# receives / linphone-receives: PCMU 3.91-3.93 / 3.87-3.92, PCMA 3.88-3.89 / 3.63-3.91, G722 2.88-2.90 /
# 2.88-2.89, opus 3.53-4.04 / 3.89-3.93; G.711 on this material cannot exceed ~3.92 (the codec alone),
# G.722 ~2.93. What linphonec receives dips when this real-time test shares the machine, so the floors
# sit under the lowest figure seen rather than under the typical one.
FLOORS = {"PCMU": 3.5, "PCMA": 3.5, "G722": 2.6, "opus": 3.3}


def _rc(home, sip_port, rtp_port, rtpmap, clock, suites):
    mime, rate = rtpmap.split("/")[:2]
    channels = rtpmap.split("/")[2] if rtpmap.count("/") == 2 else "1"
    return "\n".join(
        [
            "[sip]",
            "sip_port={}".format(sip_port),
            "sip_tcp_port=0",
            "sip_tls_port=0",
            "bind_address=127.0.0.1",
            "ipv6_migration_done=1",
            "use_ipv6=0",
            "contact=sip:bob@127.0.0.1:{}".format(sip_port),
            "guess_hostname=0",
            "media_encryption=srtp",
            "media_encryption_mandatory=1",
            "srtp_crypto_suites={}".format(",".join(suites)),
            "[rtp]",
            "audio_rtp_port={}".format(rtp_port),
            "bind_address=127.0.0.1",
            "[storage]",
            "uri={}/.local/share/linphone/linphone.db".format(home),
            "[misc]",
            "add_missing_audio_codecs=0",
            "[audio_codec_0]",
            "mime={}".format(mime),
            "rate={}".format(rate),
            "channels={}".format(channels),
            "enabled=1",
            "[audio_codec_1]",
            "mime=telephone-event",
            "rate={}".format(clock),
            "channels=1",
            "enabled=1",
            "",
        ]
    )


class SipCaller:
    """Just enough SIP (RFC 3261) to place one call to linphonec and hang it up."""

    def __init__(self, port, peer_port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(10)
        self.port = port
        self.peer = ("127.0.0.1", peer_port)
        self.call_id = "{:x}@127.0.0.1".format(random.getrandbits(64))
        self.to_tag = ""

    def request(self, method, cseq, body="", content_type=""):
        to = "<sip:bob@127.0.0.1:{}>".format(self.peer[1]) + (";tag=" + self.to_tag if self.to_tag else "")
        headers = [
            "{} sip:bob@127.0.0.1:{} SIP/2.0".format(method, self.peer[1]),
            "Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK{:x};rport".format(self.port, random.getrandbits(48)),
            "Max-Forwards: 70",
            "From: <sip:alice@127.0.0.1:{}>;tag=sotto1".format(self.port),
            "To: " + to,
            "Call-ID: " + self.call_id,
            "CSeq: {} {}".format(cseq, method),
            "Contact: <sip:alice@127.0.0.1:{}>".format(self.port),
        ]
        if content_type:
            headers.append("Content-Type: " + content_type)
        headers.append("Content-Length: {}".format(len(body)))
        self.sock.sendto(("\r\n".join(headers) + "\r\n\r\n" + body).encode(), self.peer)

    def invite(self, sdp):
        self.request("INVITE", 1, sdp, "application/sdp")
        while True:
            text = self.sock.recvfrom(65535)[0].decode("utf-8", "replace")
            status = int(text.split(" ", 2)[1])
            if status >= 300:
                raise AssertionError("linphonec answered " + text.split("\r\n", 1)[0])
            if status == 200:
                self.to_tag = re.search(r"^To:.*;tag=([^;\r\n]+)", text, re.M | re.I).group(1)
                self.request("ACK", 1)
                return text.split("\r\n\r\n", 1)[1]

    def bye(self):
        self.request("BYE", 2)

    def close(self):
        self.sock.close()


def files_and_offer(linphone, play, record, rtp_port, codec, suites, opus_fec=False):
    """Have linphonec play `play` and record to `record` (its sound card is files), then (SDES offer lines,
    our SDP offer) for an SRTP call to it with media at 127.0.0.1:`rtp_port`. opus_fec: offer Opus in-band
    FEC (RFC 7587 useinbandfec=1), as the real sotto does."""
    pt, rtpmap, clock = CODECS[codec][0], CODECS[codec][2], CODECS[codec][3]
    for command in ("soundcard use files", "play {}".format(play), "record {}".format(record)):
        linphone.stdin.write((command + "\n").encode())
        linphone.stdin.flush()
    time.sleep(0.5)  # linphonec reads its commands in its own time; nothing tells us it has
    offer = sdes.make_offer(os.urandom, suites)
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio {} RTP/SAVP {} 101\r\na=rtpmap:{} {}\r\na=rtpmap:101 telephone-event/{}\r\n".format(
            rtp_port, pt, pt, rtpmap, clock
        )
        + ("a=fmtp:{} useinbandfec=1\r\n".format(pt) if opus_fec and codec == "opus" else "")
        + "".join("a=crypto:{}\r\n".format(a.value()) for a in offer)
        + "a=sendrecv\r\n"
    )
    return offer, sdp


def _linphone_call(tmp_path, codec, suites, offset, seconds=13.5):
    """One SDES-SRTP call with linphonec; returns our stream's stats. Both sides play speech and record."""
    pt, rate, rtpmap, clock, mode, _ = CODECS[codec]
    lp_sip, lp_rtp, our_sip, our_rtp = 16100 + offset, 16200 + offset, 16300 + offset, 16400 + offset
    home = tmp_path / "home"
    (home / ".local/share/linphone").mkdir(parents=True)
    (tmp_path / "rc").write_text(_rc(home, lp_sip, lp_rtp, rtpmap, clock, suites))
    ours_speech = make_speech_wav(tmp_path / "sotto_speech.wav", 16000)
    their_speech = make_speech_wav(tmp_path / "linphone_speech.wav", rate)
    linphone = subprocess.Popen(
        ["linphonec", "-c", str(tmp_path / "rc"), "-d", "6", "-l", str(tmp_path / "log.txt"), "-a"],
        stdin=subprocess.PIPE,
        stdout=(tmp_path / "console.txt").open("wb"),
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, HOME=str(home)),
        cwd=tmp_path,
    )
    caller = SipCaller(our_sip, lp_sip)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", our_rtp))
    rtcp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # no a=rtcp-mux: RTCP on port + 1
    rtcp_sock.bind(("127.0.0.1", our_rtp + 1))
    stream = None
    running = [True]
    pumps = []
    try:
        time.sleep(1.5)  # linphonec starting up
        offer, sdp = files_and_offer(linphone, their_speech, tmp_path / "linphone_received.wav", our_rtp, codec, suites)
        answer = caller.invite(sdp)
        port = int(re.search(r"m=audio (\d+)", answer).group(1))
        ours, theirs = sdes.accept_answer(offer, re.search(r"a=crypto:(.*)", answer).group(1).strip())
        stream = MediaStream(
            rtp,
            codec,
            pt,
            101,
            WavSource(ours_speech, rate, loop=False),
            WavRecorder(tmp_path / "sotto_received.wav", rate),
            os.urandom,
            remote=("127.0.0.1", port),
            rtcp_mux=False,
        )
        stream.set_keys(ours.params(), theirs.params())

        def pump_loop(sock):
            sock.settimeout(0.05)
            while running[0]:
                try:
                    data, addr = sock.recvfrom(4096)
                except OSError:
                    continue
                stream.deliver(data, addr)

        for sock in (rtp, rtcp_sock):
            pumps.append(threading.Thread(target=pump_loop, args=(sock,), daemon=True))
            pumps[-1].start()
        stream.start()
        time.sleep(seconds - 1.2)  # the speech is over: RFC 4733 events will not disturb the PESQ comparison
        stream.send_dtmf("7")
        time.sleep(1.2)
        stats = stream.stats()
        caller.bye()
        time.sleep(0.5)
    finally:
        if stream is not None:
            stream.stop()
        running[0] = False
        for pump in pumps:
            pump.join(2)
        try:
            linphone.stdin.write(b"quit\n")
            linphone.stdin.flush()
            linphone.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            linphone.kill()
            linphone.wait(5)
        caller.close()
        rtp.close()
        rtcp_sock.close()
    assert stats["auth_failures"] == 0 and stats["replays"] == 0
    assert stats["lost"] == 0 and stats["underruns"] == 0
    # SRTCP both ways: Linphone's reports authenticate here and carry LSR/DLSR of our own SR.
    assert stats["rtt_ms"] is not None and stats["rtt_ms"] < 50, stats["rtt_ms"]
    assert "Receiving tone 7" in (tmp_path / "console.txt").read_text(errors="replace")  # RFC 4733 to Linphone
    # Levels survive the trip both ways (within 3 dB): no clipping, no quiet peer.
    for reference, recording in ((their_speech, "sotto_received.wav"), (ours_speech, "linphone_received.wav")):
        _, ref = read_wav(reference)
        _, rec = read_wav(tmp_path / recording)
        assert 0.7 < _rms(rec) / _rms(ref) < 1.4, (recording, _rms(rec), _rms(ref))
    return stats, ours_speech, their_speech


@pytest.mark.parametrize("codec", list(CODECS))
def test_srtp_call_with_linphone_both_directions(tmp_path, codec):
    # One call, no second chance. What Sotto received from linphonec used to vary by 0.5 PESQ (PCMU 3.3-3.9):
    # the packets queued while the stream was being set up arrive at once, and the playout buffer took
    # their queueing for 250 ms of network jitter, then shed it mid-speech (audio/playout.py, issue 14).
    stats, ours_speech, their_speech = _linphone_call(
        tmp_path, codec, ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"), CODECS[codec][5]
    )
    mode = CODECS[codec][4]
    assert stats["received"] > 600
    sotto_receives = pesq_score(their_speech, tmp_path / "sotto_received.wav", mode)
    linphone_receives = pesq_score(ours_speech, tmp_path / "linphone_received.wav", mode)
    print(
        "PESQ {} sotto receives {:.3f}, linphone receives {:.3f}, stretched {}, dropped {}".format(
            codec, sotto_receives, linphone_receives, stats["stretched"], stats.get("dropped")
        )
    )
    assert sotto_receives >= FLOORS[codec] and linphone_receives >= FLOORS[codec], (
        codec,
        FLOORS[codec],
        sotto_receives,
        linphone_receives,
        stats,
    )


@pytest.mark.parametrize("suite,offset", [("AES_256_CM_HMAC_SHA1_80", 40), ("AES_256_CM_HMAC_SHA1_32", 50)])
def test_aes_256_profiles_with_linphone(tmp_path, suite, offset):
    """RFC 6188 suites against libsrtp inside Linphone (pylibsrtp cannot do them)."""
    # 9 s, not 6: linphone reports every ~5 s and our first SR leaves at 2.5 s, so a 6 s call could end
    # before any linphone report carried our SR's timestamp back (no round-trip time: seen once in CI).
    stats, _, _ = _linphone_call(tmp_path, "PCMU", (suite,), offset, seconds=9.0)
    assert stats["received"] > 250


def _rms(pcm):
    import numpy

    samples = numpy.frombuffer(pcm, dtype="<i2").astype(float)
    loud = samples[numpy.abs(samples) > 300]  # speech only, not the silence around it
    return float(numpy.sqrt(numpy.mean(loud * loud))) if len(loud) else 0.0
