"""A seeded network fuzz against a running `sotto run --board sim` (issue 11): a real process, real
loopback sockets, no Python fakes.

1. SIP: SOTTO_FUZZ_DATAGRAMS (default 20 000; set 1 000 000 for the long run) mutated real requests and
   responses (tests/hostile/mutator.py: byte flips, Unicode digits, control characters, overlong UTF-8,
   huge numbers, duplicated/cut/folded lines) from 8 loopback source addresses, in batches; after each
   batch an OPTIONS probe from another address must be answered (so the phone has read everything before
   it: the count is of datagrams the phone processed, and the probe's latency is its responsiveness).
   Any call the fuzz makes ring is CANCELled, as a caller would.
2. After the fuzz (and Timer J, so the fuzz's finished transactions are gone): an OPTIONS gets 200, and
   a real `sotto call` to the phone rings, is answered by the script and becomes secure.
3. During that call, SOTTO_FUZZ_MEDIA (default 3 000) mutated RTP/RTCP/ZRTP/STUN datagrams hit the
   phone's media port from foreign addresses; the call goes on and completes.
The phone must never exit (crashes: 0), never print a traceback, and end its script with exit code 0.
SOTTO_FUZZ_SEED picks the sequence; the totals are printed and shown in pytest's terminal summary.
"""

import json
import os
import random
import re
import select
import socket
import subprocess
import time

import pytest

from tests.hostile import totals
from tests.hostile.calls import tone_wav
from tests.hostile.mutator import Mutator
from tests.interop import sotto

pytestmark = pytest.mark.interop

DATAGRAMS = int(os.environ.get("SOTTO_FUZZ_DATAGRAMS", "20000"))
MEDIA_DATAGRAMS = int(os.environ.get("SOTTO_FUZZ_MEDIA", "3000"))
SEED = int(os.environ.get("SOTTO_FUZZ_SEED", "11"))
BATCH = 40  # datagrams between two probes: well inside a socket buffer
PROBE_TIMEOUT = 10.0
SOURCES = ["127.0.0.{}".format(k) for k in range(2, 10)]
TIMER_J = 33.0  # 64*T1 (RFC 3261 §17.2.2) and a margin: the fuzz's completed transactions are gone by then
# The script sleeps this long after the phone is idle before it answers anything: the whole SIP fuzz must
# fit in it (about 1.4 ms per datagram on a loaded machine; typically a quarter of that), then Timer J.
FUZZ_WINDOW = 20.0 + TIMER_J + DATAGRAMS / 700.0

SCRIPT = """\
wait idle 20
sleep {window:.0f}
wait ringing 120
hook off
wait secure 30
wait ended 60
quit
"""

CALL_ID = re.compile(rb"^(?:Call-ID|i)[ \t]*:[ \t]*([^\r\n]*)", re.I | re.M)


def _frames(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _options(port, source_port, tag):
    return ("OPTIONS sip:sotto@127.0.0.1:{port} SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:{me};rport;branch=z9hG4bK{tag}\r\nMax-Forwards: 70\r\n"
            "From: <sip:probe@127.0.0.1>;tag={tag}\r\nTo: <sip:sotto@127.0.0.1>\r\n"
            "Call-ID: {tag}@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").format(
                port=port, me=source_port, tag=tag).encode()


def _cancel_for(response):
    """A CANCEL (RFC 3261 §9.1) for the INVITE a provisional response answers, or None."""
    from firmware.errors import RemoteProtocolError
    from firmware.sip.message import Response, parse_message

    try:
        message = parse_message(response)
        if not isinstance(message, Response) or not 100 < message.status < 200 or message.cseq[1] != "INVITE":
            return None
        headers = message.headers
        to = re.sub(r";\s*tag=[^;]*", "", headers.get("To"))
        return ("CANCEL sip:sotto@127.0.0.1 SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n"
                "Call-ID: {}\r\nCSeq: {} CANCEL\r\nContent-Length: 0\r\n\r\n").format(
                    headers.get("Via"), headers.get("From"), to, message.call_id, message.cseq[0]).encode()
    except (RemoteProtocolError, TypeError, ValueError, AttributeError):
        return None


class SipFuzzer:
    def __init__(self, port, seed):
        self.port = port
        self.target = ("127.0.0.1", port)
        self.sockets = []
        for host in SOURCES:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((host, 0))
            sock.setblocking(False)
            self.sockets.append(sock)
        self.probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.probe.bind(("127.0.0.1", 0))
        self.mutator = Mutator(seed, port, self.sockets[0].getsockname()[1])
        self.sent = 0
        self.responses = {}  # status class ("2xx", "503", ...) -> count
        self.pending_cancels = {}  # Call-ID -> (socket, CANCEL): re-sent until the INVITE gets its 487
        self.cancels = 0
        self.probes = 0
        self.worst_probe = 0.0

    def close(self):
        for sock in self.sockets + [self.probe]:
            sock.close()

    def _drain(self):
        for sock in self.sockets:
            while True:
                try:
                    data, _ = sock.recvfrom(65536)
                except BlockingIOError:
                    break
                first = data.split(b"\r\n", 1)[0]
                status = first[8:11].decode("ascii", "replace") if first.startswith(b"SIP/2.0 ") else "request"
                key = status if status in ("503", "request") else status[:1] + "xx"
                self.responses[key] = self.responses.get(key, 0) + 1
                match = CALL_ID.search(data)
                call_id = match.group(1).strip() if match else None
                if status.startswith("1") and status != "100" and call_id not in self.pending_cancels:
                    cancel = _cancel_for(data)
                    if cancel:
                        self.pending_cancels[call_id] = (sock, cancel)
                        sock.sendto(cancel, self.target)
                        self.cancels += 1
                elif status == "487" or status == "481" and b" CANCEL\r\n" in data:
                    self.pending_cancels.pop(call_id, None)

    def resend_cancels(self):
        """A CANCEL answered 503 (a full transaction table) is sent again, as RFC 3261 §9.1 allows."""
        for sock, cancel in list(self.pending_cancels.values()):
            sock.sendto(cancel, self.target)
            self.cancels += 1

    def probe_once(self):
        """Send an OPTIONS from the probe address and wait for its answer (any status): the phone has
        then read every datagram sent before it. Returns the latency, or None on timeout."""
        self.probes += 1
        tag = "probe{}x{}".format(self.probes, random.getrandbits(32))
        self.probe.sendto(_options(self.port, self.probe.getsockname()[1], tag), self.target)
        started = time.monotonic()
        deadline = started + PROBE_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.probe] + self.sockets, [], [], 0.05)
            self._drain()
            if self.probe in ready:
                data, _ = self.probe.recvfrom(65536)
                if tag.encode() in data and data.startswith(b"SIP/2.0 "):
                    latency = time.monotonic() - started
                    self.worst_probe = max(self.worst_probe, latency)
                    return latency, int(data[8:11])
        return None, None

    def send_batch(self, count):
        for _ in range(count):
            data = self.mutator.next()
            self.sockets[self.sent % len(self.sockets)].sendto(data, self.target)
            self.sent += 1


def _media_fuzz(rand, port, count):
    """Mutated RTP, RTCP, ZRTP and STUN datagrams at the phone's media port, from foreign addresses."""
    socks = []
    for host in SOURCES[:4]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        socks.append(sock)
    types = [b"Hello   ", b"HelloACK", b"Commit  ", b"DHPart1 ", b"DHPart2 ", b"Confirm1", b"Confirm2",
             b"Conf2ACK", b"Error   ", b"ErrorACK", b"GoClear ", b"ClearACK", b"SASrelay", b"RelayACK", b"Ping    "]
    sent = 0
    try:
        for i in range(count):
            kind = i % 5
            if kind == 0:  # RTP with any payload type, sequence, SSRC
                data = bytes([0x80 | rand.randrange(16), rand.randrange(256)]) + rand.randbytes(10) + rand.randbytes(
                    rand.randrange(0, 400))
            elif kind == 1:  # ZRTP: the right cookie and preamble, any message type, wrong or right-looking CRC
                body = b"\x50\x5a" + rand.randbytes(2) + rand.choice(types) + rand.randbytes(rand.randrange(0, 600))
                data = b"\x10\x00" + rand.randbytes(2) + b"ZRTP" + rand.randbytes(4) + body + rand.randbytes(4)
            elif kind == 2:  # RTCP: SR, RR, SDES, BYE, APP with random lengths
                data = bytes([0x80 | rand.randrange(32), rand.choice((200, 201, 202, 203, 204, 205, 206))]) + \
                    rand.randbytes(rand.randrange(2, 200))
            elif kind == 3:  # STUN binding requests and junk
                data = b"\x00\x01" + rand.randbytes(2) + b"\x21\x12\xa4\x42" + rand.randbytes(rand.randrange(12, 100))
            else:
                data = rand.randbytes(rand.randrange(0, 1500))
            if data and rand.random() < 0.3:
                mutable = bytearray(data)
                mutable[rand.randrange(len(mutable))] ^= 1 << rand.randrange(8)
                data = bytes(mutable)
            socks[i % len(socks)].sendto(data, ("127.0.0.1", port))
            sent += 1
            if i % 100 == 99:
                time.sleep(0.05)  # about 2000 per second: a flood, spread over the call
    finally:
        for sock in socks:
            sock.close()
    return sent


@pytest.mark.timeout(FUZZ_WINDOW + 150)
def test_network_fuzz_leaves_the_phone_alive_and_working(tmp_path):
    port, rtp_port = sotto.free_udp_port(), sotto.free_udp_port()
    script = tmp_path / "script.txt"
    script.write_text(SCRIPT.format(window=FUZZ_WINDOW))
    log = tmp_path / "display.jsonl"
    stderr_path = tmp_path / "phone.stderr"
    wav = tone_wav(tmp_path / "tone.wav")
    home = tmp_path / "home"
    with open(stderr_path, "w") as stderr:  # a file: a pipe nobody reads could fill up and stall the phone
        phone = subprocess.Popen(sotto.sotto_command(
            "run", "--board", "sim", "--listen", "127.0.0.1:{}".format(port), "--rtp-port", str(rtp_port),
            "--script", str(script), "--display-log", str(log), "--play", str(wav), "--codecs", "PCMU",
            "--cache", str(tmp_path / "phone.cache")), cwd=sotto.ROOT, env=sotto.environment(home),
            stdout=subprocess.DEVNULL, stderr=stderr)
    fuzzer = SipFuzzer(port, SEED)
    crashes = unanswered = 0
    try:
        deadline = time.monotonic() + 20
        while not any(f["state"] == "idle" for f in _frames(log)) and time.monotonic() < deadline:
            assert phone.poll() is None, stderr_path.read_text()[-3000:]
            time.sleep(0.05)
        window_ends = time.monotonic() + FUZZ_WINDOW - 3  # the script's sleep began at "idle"
        started = time.monotonic()
        while fuzzer.sent < DATAGRAMS:
            fuzzer.send_batch(min(BATCH, DATAGRAMS - fuzzer.sent))
            latency, _status = fuzzer.probe_once()
            if phone.poll() is not None:
                crashes += 1
                break
            if latency is None:
                unanswered += 1
                break
            assert time.monotonic() < window_ends, (
                "the phone processed only {} of {} datagrams in the {:.0f} s fuzz window".format(
                    fuzzer.sent, DATAGRAMS, FUZZ_WINDOW))
        fuzz_seconds = time.monotonic() - started
        assert crashes == 0, "the phone died: " + stderr_path.read_text()[-3000:]
        assert unanswered == 0, "no answer to an OPTIONS probe within {} s".format(PROBE_TIMEOUT)
        # Ringing calls the fuzz started are cancelled; the phone must be back to idle before the script
        # starts answering.
        # Timer J: the fuzz's finished transactions leave the table; meanwhile the CANCELs that met a full
        # table are sent again. Then the phone must be idle and answer as new.
        last_fuzz = time.monotonic()
        while time.monotonic() < last_fuzz + TIMER_J:
            fuzzer._drain()
            fuzzer.resend_cancels()
            time.sleep(0.5)
        while time.monotonic() < window_ends and _frames(log)[-1]["state"] != "idle":
            fuzzer._drain()
            fuzzer.resend_cancels()
            time.sleep(0.5)
        assert _frames(log)[-1]["state"] == "idle", _frames(log)[-3:]
        latency, status = fuzzer.probe_once()
        assert status == 200, "OPTIONS after the fuzz: {}".format(status)
        assert phone.poll() is None
        # A real call to the phone: answered by the script (after its fuzz window), secure; media fuzz.
        caller = sotto.start(["call", "sip:sotto@127.0.0.1:{}".format(port), "--listen",
                              "127.0.0.1:{}".format(sotto.free_udp_port()), "--duration", "5", "--timeout", "90",
                              "--cache", str(tmp_path / "caller.cache"), "--play", str(wav), "--codecs", "PCMU"],
                             tmp_path / "caller-home")
        deadline = time.monotonic() + FUZZ_WINDOW + 60
        while not any(f["state"] == "secure" for f in _frames(log)) and time.monotonic() < deadline:
            assert phone.poll() is None, stderr_path.read_text()[-3000:]
            assert caller.poll() is None, caller.communicate()[1][-3000:]
            time.sleep(0.05)
        media_sent = _media_fuzz(random.Random(SEED + 1), rtp_port, MEDIA_DATAGRAMS)
        rc_call, summary, err_call = sotto.finish(caller, 60)
        rc_phone = phone.wait(timeout=60)
    finally:
        fuzzer.close()
        if phone.poll() is None:
            phone.kill()
            phone.wait()
    err = stderr_path.read_text()
    assert rc_call == 0 and summary["result"] == "completed", err_call[-3000:]
    assert summary["secure"] is True
    assert summary["rtp"]["received"] >= 200, summary["rtp"]  # 5 s of the phone's tone came through
    assert rc_phone == 0, err[-3000:]
    tracebacks = err.count("Traceback")
    assert tracebacks == 0, err[err.index("Traceback") - 200:][:4000]
    totals.record("network fuzz", sip_datagrams=fuzzer.sent, media_datagrams=media_sent, seed=SEED, crashes=crashes,
                  tracebacks=tracebacks, probes=fuzzer.probes, worst_probe_ms=round(fuzzer.worst_probe * 1000, 1),
                  fuzz_seconds=round(fuzz_seconds, 1), cancels=fuzzer.cancels,
                  answers=",".join("{}:{}".format(k, v) for k, v in sorted(fuzzer.responses.items())),
                  kinds=",".join("{}:{}".format(k, v) for k, v in sorted(fuzzer.mutator.kinds.items())))
