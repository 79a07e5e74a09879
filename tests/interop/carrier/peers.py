"""Media peers and relays for the fallback tests, and a baresip driver.

PlainRtpPeer   the media side of a phone without ZRTP (sipp does its signalling): a UDP port that records
               what arrives (RTP, ZRTP, anything else) and, once RTP came, answers with a plain PCMU tone
               to where it came from (symmetric RTP). It never sends a ZRTP packet.
MediaRelay     a UDP relay between two phones that advertise it in their SDP (`sotto --public-address`):
               each side's packets go to the other, optionally dropping some (`drop(datagram) -> bool`),
               with arrival times for each kind, so a test sees exactly what went through and when.
Baresip        baresip 1.0 in the foreground with its own config directory: aufile source (a WAV) and
               sink (a recording), G.711, an optional media encryption (srtp, srtp-mand), auto answer.

Everything binds 127.0.0.1; threads and processes are ended by stop().
"""

import math
import os
import socket
import struct
import subprocess
import threading
import time
import wave

from audio import g711
from tests.interop.sip.driver import require
from tests.waiting import wait_udp_bound

RTP, ZRTP, OTHER = "rtp", "zrtp", "other"


def classify(datagram):
    """RFC 7983 by the first byte, and ZRTP by its magic cookie (RFC 6189 §5)."""
    if len(datagram) >= 12 and datagram[0] >> 6 == 2:
        return RTP
    if len(datagram) >= 12 and datagram[0] >> 4 == 1 and datagram[4:8] == b"ZRTP":
        return ZRTP
    return OTHER


def zrtp_message_type(datagram):
    """'Hello   ', 'Commit  ', ... of a ZRTP packet (the 8-character type after the 12-byte header and the
    4-byte preamble and length)."""
    return datagram[16:24].decode("ascii", "replace")


class PlainRtpPeer:
    def __init__(self, port, tone_hz=1000, amplitude=8000):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.02)
        self.port = port
        self.tone_hz = tone_hz
        self.amplitude = amplitude
        self.received = []  # (monotonic time, kind, datagram)
        self.sent_rtp = 0
        self.remote = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _frame(self, seq, timestamp, ssrc):
        samples = [
            int(self.amplitude * math.sin(2 * math.pi * self.tone_hz * (timestamp + i) / 8000)) for i in range(160)
        ]
        pcm = struct.pack("<160h", *samples)
        return struct.pack("!BBHII", 0x80, 0, seq, timestamp, ssrc) + g711.encode_ulaw(pcm)

    def _run(self):
        seq, timestamp, ssrc = 1, 0, 0x5EED1234
        next_send = None
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                data = None
            now = time.monotonic()
            if data is not None:
                kind = classify(data)
                self.received.append((now, kind, data))
                if kind == RTP and self.remote is None:
                    self.remote = addr
                    next_send = now
            while next_send is not None and now >= next_send:
                try:
                    self.sock.sendto(self._frame(seq, timestamp, ssrc), self.remote)
                    self.sent_rtp += 1
                except OSError:
                    pass
                seq, timestamp = (seq + 1) & 0xFFFF, (timestamp + 160) & 0xFFFFFFFF
                next_send += 0.020

    def of(self, kind):
        return [(t, d) for t, k, d in self.received if k == kind]

    def heard_pcm(self):
        """The PCMU payloads received, decoded, in arrival order (16-bit little-endian PCM at 8 kHz)."""
        return b"".join(g711.decode_ulaw(d[12:]) for _, d in self.of(RTP) if d[1] & 0x7F == 0)

    def write_heard(self, path):
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(self.heard_pcm())
        return path

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class MediaRelay:
    """Phone A advertises 127.0.0.1:port_a in its SDP, phone B 127.0.0.1:port_b; their real media ports are
    real_a and real_b. What B sends to port_a goes to real_a, from port_b (so A sees it come from where B
    said it would be, and symmetric RTP stays on the relay); what A sends to port_b goes to real_b, from
    port_a. `drop(direction, datagram)` ("a>b" or "b>a") returns True for a datagram to drop."""

    def __init__(self, port_a, real_a, port_b, real_b, drop=None):
        self.socks = {}
        for name, port in (("a", port_a), ("b", port_b)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", port))
            sock.settimeout(0.02)
            self.socks[name] = sock
        self.real = {"a": ("127.0.0.1", real_a), "b": ("127.0.0.1", real_b)}
        self.drop = drop or (lambda direction, datagram: False)
        self.log = []  # (monotonic time, "a>b" | "b>a", kind, datagram, dropped)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(name,), daemon=True) for name in ("a", "b")]
        for thread in self._threads:
            thread.start()

    def _run(self, arriving_on):
        sock = self.socks[arriving_on]
        receiver = arriving_on  # arriving on A's advertised port: B sent it to A
        sender = "b" if receiver == "a" else "a"
        out, target = self.socks[sender], self.real[receiver]
        direction = "{}>{}".format(sender, receiver)
        while not self._stop.is_set():
            try:
                data, _addr = sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            dropped = bool(self.drop(direction, data))
            self.log.append((time.monotonic(), direction, classify(data), data, dropped))
            if not dropped:
                try:
                    out.sendto(data, target)
                except OSError:
                    pass

    def of(self, direction, kind=None, dropped=None):
        return [
            (t, d)
            for t, di, k, d, x in self.log
            if di == direction and (kind is None or k == kind) and (dropped is None or x == dropped)
        ]

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        for sock in self.socks.values():
            sock.close()


BARESIP_CONFIG = """sip_listen\t\t127.0.0.1:{sip}
net_interface\t\t127.0.0.1
module_path\t\t/usr/lib/baresip/modules
module\t\t\tg711.so
module\t\t\taufile.so
module\t\t\tsndfile.so
module\t\t\talsa.so
module\t\t\tsrtp.so
module\t\t\taccount.so
module\t\t\tmenu.so
snd_path\t\t{record_dir}
audio_player\t\talsa,null
audio_source\t\taufile,{play}
audio_alert\t\taufile,/dev/null
rtp_ports\t\t{rtp_min}-{rtp_max}
"""


class Baresip:
    """baresip as sip:USER@127.0.0.1:SIP_PORT, auto answer; `mediaenc` None, "srtp" or "srtp-mand"."""

    def __init__(self, workdir, sip_port, rtp_ports, play, user="carol", mediaenc=None):
        self.workdir = os.path.abspath(str(workdir))
        self.sip_port = sip_port
        self.user = user
        self.conf = os.path.join(self.workdir, "conf")
        self.record_dir = os.path.join(self.workdir, "heard")
        os.makedirs(self.conf, exist_ok=True)
        os.makedirs(self.record_dir, exist_ok=True)
        with open(os.path.join(self.conf, "config"), "w") as f:
            f.write(
                BARESIP_CONFIG.format(
                    sip=sip_port, record_dir=self.record_dir, play=play, rtp_min=rtp_ports[0], rtp_max=rtp_ports[1]
                )
            )
        account = "<sip:{}@127.0.0.1:{}>;regint=0;answermode=auto".format(user, sip_port)
        if mediaenc:
            account += ";mediaenc={}".format(mediaenc)
        with open(os.path.join(self.conf, "accounts"), "w") as f:
            f.write(account + "\n")
        with open(os.path.join(self.conf, "contacts"), "w") as f:
            f.write("")
        self.log_path = os.path.join(self.workdir, "baresip.log")
        self.proc = None
        self._log = None

    @property
    def uri(self):
        return "sip:{}@127.0.0.1:{}".format(self.user, self.sip_port)

    def start(self, *args):
        """Start it (e.g. "-e", "/dial URI" to call, "-t", "SECONDS" to quit after a while)."""
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [require("baresip"), "-f", self.conf, *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
        )

        def alive():
            if self.proc.poll() is not None:
                raise AssertionError("baresip exited:\n" + self.log()[-3000:])

        wait_udp_bound(self.sip_port, 10, "baresip's SIP port", alive)
        return self

    def heard(self):
        """The WAV of what baresip decoded from the peer (its sndfile module's "*-dec.wav")."""
        names = sorted(n for n in os.listdir(self.record_dir) if n.endswith("dec.wav"))
        if len(names) != 1:
            raise AssertionError("baresip recorded {} (one *dec.wav expected):\n{}".format(names, self.log()[-2000:]))
        return os.path.join(self.record_dir, names[0])

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
