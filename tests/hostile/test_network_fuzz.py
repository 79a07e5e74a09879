"""A seeded network fuzz against a running `sotto run --board sim` (issue 11): a real process, real
loopback sockets, no Python fakes.

1. SIP: SOTTO_FUZZ_DATAGRAMS (default 20 000; set 1 000 000 for the long run) mutated real requests and
   responses (tests/hostile/mutator.py: byte flips, Unicode digits, control characters, overlong UTF-8,
   huge numbers, duplicated/cut/folded lines) from 8 loopback source hosts, in batches that fit the
   phone's socket buffer; after each batch an OPTIONS probe from another host must be answered, so the
   phone has read everything before it (the count is of datagrams the phone processed; the kernel's
   drops at its socket are read from /proc/net/udp and subtracted) and the probe's latency is its
   responsiveness. A call the fuzz makes ring is answered by the script like any call and the fuzzer,
   a polite caller, CANCELs, or ACKs and BYEs, what it can.
2. After the fuzz: an OPTIONS from a fresh host gets 200, and a real `sotto call` to the phone rings,
   is answered by the script and becomes secure.
3. During that call, SOTTO_FUZZ_MEDIA (default 3 000) mutated RTP/RTCP/ZRTP/STUN datagrams hit the
   phone's media port from foreign addresses; the call goes on and completes.
The phone must never exit (crashes: 0) nor print a traceback, and it exits 0 on SIGTERM at the end.
A long run is a series of such phones, 50 000 datagrams each (the answering script's length bounds the
calls one phone can take). SOTTO_FUZZ_SEED picks the sequence; the totals are printed and shown in pytest's terminal summary.
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
BATCH = 40  # datagrams between two probes,
BATCH_BYTES = 32 * 1024  # or fewer: a batch must fit the phone's socket buffer, or the kernel drops some
PROBE_TIMEOUT = 10.0
SOURCES = ["127.0.0.{}".format(k) for k in range(2, 10)]  # the fuzz (each host has its own transaction quota)
PROBE_HOST = "127.0.0.10"
CHECK_HOST = "127.0.0.11"
# One phone process takes at most this many datagrams: about one in thirty makes it ring, and each
# ring uses a round of the answering script, which may have 10 000 lines. A long run (1 M) is a series
# of phases, each a fresh phone with the whole check (fuzz, OPTIONS, a real secure call, SIGTERM).
PHASE_DATAGRAMS = 50000
PHASES = (DATAGRAMS + PHASE_DATAGRAMS - 1) // PHASE_DATAGRAMS
# Time budget: about 2 ms per datagram on a heavily loaded machine (typically a quarter of that), plus
# the settling and the call of every phase.
BUDGET = PHASES * 120.0 + DATAGRAMS * 0.006

# Answer whatever rings: a call the fuzz started, or the real call at the end. "press 1" answers a
# ringing phone; in a call it is a DTMF digit; on an idle one (the caller cancelled meanwhile) it dials
# 1, which ends 10 s later for want of a dial domain. The phone comes back to idle whatever happens, and
# no wait can time out.
SCRIPT_HEAD = "wait idle 20\n"
SCRIPT_ROUND = "wait ringing 86400\npress 1\n"
ROUNDS = 4990  # the script may have 10 000 lines

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


def _replies_for(response):
    """What a polite caller sends on a response to its INVITE: a CANCEL (RFC 3261 §9.1) on a provisional
    response; ACK and BYE (§13.2.2.4, §15.1.1) on a 2xx. Built from the response as the phone wrote it."""
    from firmware.errors import RemoteProtocolError
    from firmware.sip.message import Response, parse_message

    try:
        message = parse_message(response)
        if not isinstance(message, Response) or message.cseq[1] != "INVITE" or message.status < 101:
            return []
        headers = message.headers
        number = message.cseq[0]
        if message.status < 200:
            to = re.sub(r";\s*tag=[^;]*", "", headers.get("To"))
            return [("CANCEL sip:sotto@127.0.0.1 SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n"
                     "Call-ID: {}\r\nCSeq: {} CANCEL\r\nContent-Length: 0\r\n\r\n").format(
                         headers.get("Via"), headers.get("From"), to, message.call_id, number).encode()]
        if message.status >= 300:
            return []
        contact = re.search(r"<([^>]+)>", headers.get("Contact") or "")
        target = contact.group(1) if contact else "sip:sotto@127.0.0.1"
        out = []
        for method, cseq in (("ACK", number), ("BYE", number + 1)):
            out.append(("{m} {t} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK{m}{r}\r\n"
                        "Max-Forwards: 70\r\nFrom: {f}\r\nTo: {to}\r\nCall-ID: {c}\r\nCSeq: {n} {m}\r\n"
                        "Content-Length: 0\r\n\r\n").format(
                            m=method, t=target, r=random.getrandbits(48), f=headers.get("From"), to=headers.get("To"),
                            c=message.call_id, n=cseq).encode())
        return out
    except (RemoteProtocolError, TypeError, ValueError, AttributeError):
        return []


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
        self.probe.bind((PROBE_HOST, 0))
        self.mutator = Mutator(seed, port, self.sockets[0].getsockname()[1])
        self.sent = 0
        self.responses = {}  # status class ("2xx", "503", ...) -> count
        self.replied = set()  # (Call-ID, status class) already answered with a CANCEL, or an ACK and a BYE
        self.replies = 0
        self.probes = 0
        self.probe_retransmissions = 0
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
                if status[:1] in "12" and status != "100":
                    match = CALL_ID.search(data)
                    key = (match.group(1).strip() if match else None, status[:1])
                    if key not in self.replied:
                        self.replied.add(key)
                        for reply in _replies_for(data):
                            sock.sendto(reply, self.target)
                            self.replies += 1

    def probe_once(self):
        """Send an OPTIONS from the probe address and wait for its answer (any status): the phone has
        then read every datagram sent before it. Returns the latency, or None on timeout."""
        self.probes += 1
        tag = "probe{}x{}".format(self.probes, random.getrandbits(32))
        probe = _options(self.port, self.probe.getsockname()[1], tag)
        self.probe.sendto(probe, self.target)
        started = time.monotonic()
        deadline = started + PROBE_TIMEOUT
        resend = started + 0.5  # retransmitted as a UA would (RFC 3261 §17.1.2.2, Timer E)
        interval = 0.5
        while time.monotonic() < deadline:
            if time.monotonic() >= resend:
                self.probe.sendto(probe, self.target)
                self.probe_retransmissions += 1
                interval = min(interval * 2, 4.0)
                resend = time.monotonic() + interval
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
        size = 0
        for _ in range(count):
            data = self.mutator.next()
            self.sockets[self.sent % len(self.sockets)].sendto(data, self.target)
            self.sent += 1
            size += len(data) + 512  # and the kernel's per-datagram overhead
            if size >= BATCH_BYTES:
                return


def udp_drops(port):
    """Datagrams the kernel dropped at the loopback UDP socket bound to `port` (its receive buffer was
    full): /proc/net/udp's last column. Those never reached the phone, so they are not counted as fuzzed."""
    drops = 0
    with open("/proc/net/udp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                drops += int(fields[-1])
    return drops


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


def _wait_for(log, state, phone, stderr_path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frames = _frames(log)
        if frames and frames[-1]["state"] == state:
            return
        assert phone.poll() is None, stderr_path.read_text()[-3000:]
        time.sleep(0.05)
    raise AssertionError("the phone is not {} after {} s: {}".format(state, timeout, _frames(log)[-2:]))


@pytest.mark.timeout(BUDGET + 60)
def test_network_fuzz_leaves_the_phone_alive_and_working(tmp_path):
    figures = {}
    for phase in range(PHASES):
        count = min(PHASE_DATAGRAMS, DATAGRAMS - phase * PHASE_DATAGRAMS)
        directory = tmp_path / "phase{}".format(phase)
        directory.mkdir()
        for key, value in _fuzz_one_phone(directory, count, SEED + 1000 * phase).items():
            if isinstance(value, dict):
                merged = figures.setdefault(key, {})
                for name, n in value.items():
                    merged[name] = merged.get(name, 0) + n
            elif key == "worst_probe_ms":
                figures[key] = max(figures.get(key, 0), value)
            else:
                figures[key] = round(figures.get(key, 0) + value, 1)
    for key in ("answers", "kinds"):
        figures[key] = ",".join("{}:{}".format(k, v) for k, v in sorted(figures[key].items()))
    totals.record("network fuzz", seed=SEED, phones=PHASES, **figures)


def _fuzz_one_phone(tmp_path, datagrams, seed):
    port, rtp_port = sotto.free_udp_port(), sotto.free_udp_port()
    script = tmp_path / "script.txt"
    script.write_text(SCRIPT_HEAD + SCRIPT_ROUND * ROUNDS)
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
    fuzzer = SipFuzzer(port, seed)
    crashes = unanswered = 0
    try:
        _wait_for(log, "idle", phone, stderr_path, 20)
        started = time.monotonic()
        while fuzzer.sent < datagrams:
            fuzzer.send_batch(min(BATCH, datagrams - fuzzer.sent))
            latency, _status = fuzzer.probe_once()
            if phone.poll() is not None:
                crashes += 1
                break
            if latency is None:
                unanswered += 1
                break
        fuzz_seconds = time.monotonic() - started
        dropped = udp_drops(port)
        assert crashes == 0, "the phone died: " + stderr_path.read_text()[-3000:]
        assert unanswered == 0, "no answer to an OPTIONS probe within {} s".format(PROBE_TIMEOUT)
        # The calls the fuzz started end (cancelled, hung up, or 64*T1 after an unacknowledged 200).
        # Wait until the phone has been idle for 2 s (at most 70 s: 64*T1 and a margin).
        deadline = time.monotonic() + 70
        quiet_since, seen = time.monotonic(), None
        while time.monotonic() < deadline:
            fuzzer._drain()
            frames = _frames(log)
            if (len(frames), frames[-1]["state"]) != seen:
                seen, quiet_since = (len(frames), frames[-1]["state"]), time.monotonic()
            elif seen[1] == "idle" and time.monotonic() - quiet_since >= 2:
                break
            time.sleep(0.1)
        _wait_for(log, "idle", phone, stderr_path, 1)
        check = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        check.bind((CHECK_HOST, 0))
        check.settimeout(5)
        check.sendto(_options(port, check.getsockname()[1], "check{}".format(seed)), ("127.0.0.1", port))
        answer = check.recv(65536)
        check.close()
        assert answer.startswith(b"SIP/2.0 200 "), answer[:200]
        # A real call to the phone, answered by the script, secure; media fuzz meanwhile.
        caller = sotto.start(["call", "sip:sotto@127.0.0.1:{}".format(port), "--listen",
                              "127.0.0.1:{}".format(sotto.free_udp_port()), "--duration", "5", "--timeout", "40",
                              "--cache", str(tmp_path / "caller.cache"), "--play", str(wav), "--codecs", "PCMU"],
                             tmp_path / "caller-home")
        frames_before = len(_frames(log))
        deadline = time.monotonic() + 30
        while not any(f["state"] == "secure" for f in _frames(log)[frames_before:]) and time.monotonic() < deadline:
            assert phone.poll() is None, stderr_path.read_text()[-3000:]
            assert caller.poll() is None, caller.communicate()[1][-3000:]
            time.sleep(0.05)
        media_sent = _media_fuzz(random.Random(seed + 1), rtp_port, MEDIA_DATAGRAMS)
        rc_call, summary, err_call = sotto.finish(caller, 60)
        _wait_for(log, "idle", phone, stderr_path, 15)
        phone.terminate()
        rc_phone = phone.wait(timeout=30)
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
    assert dropped <= fuzzer.sent // 100, "the kernel dropped {} datagrams: the pacing is wrong".format(dropped)
    rung = sum(1 for f in _frames(log) if f["state"] == "ringing")
    return {"sip_datagrams": fuzzer.sent - dropped, "kernel_drops": dropped, "media_datagrams": media_sent,
            "crashes": crashes, "tracebacks": tracebacks, "probes": fuzzer.probes,
            "probe_retransmissions": fuzzer.probe_retransmissions,
            "worst_probe_ms": round(fuzzer.worst_probe * 1000, 1), "fuzz_seconds": fuzz_seconds,
            "ringing_frames": rung, "polite_replies": fuzzer.replies, "answers": dict(fuzzer.responses),
            "kinds": dict(fuzzer.mutator.kinds)}
