"""A seeded network fuzz against a running `sotto run --board sim` (issue 11): a real process, real
loopback sockets, no Python fakes.

1. SIP: SOTTO_FUZZ_DATAGRAMS (default 20 000; set 1 000 000 for the long run) mutated real requests and
   responses (tests/hostile/mutator.py: byte flips, Unicode digits, control characters, overlong UTF-8,
   huge numbers, duplicated/cut/folded lines) from 8 loopback source hosts, in batches that fit the
   phone's socket buffer; after each batch an OPTIONS probe from another host must be answered, so the
   phone has read everything before it (the count is of datagrams the phone processed; the kernel's
   drops at its socket are read from /proc/net/udp and subtracted) and the probe's latency is its
   responsiveness. A call the fuzz makes ring is CANCELled, as a polite caller would.
2. After the fuzz: an OPTIONS from a fresh host gets 200, and a real `sotto call` to the phone rings,
   is answered by the script and becomes secure.
3. During that call, SOTTO_FUZZ_MEDIA (default 3 000) mutated RTP/RTCP/ZRTP/STUN datagrams hit the
   phone's media port from foreign addresses; the call goes on and completes.
The phone must never exit (crashes: 0) nor print a traceback, and it ends its script with exit code 0.

The script cannot tell a fuzz call from the real one, so it sleeps through a fuzz window of
WINDOW seconds before it answers anything; a phone fuzzes until its window is nearly over, then the
checks run and, if datagrams remain (a long run, or a slow machine), a fresh phone takes the rest.
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
from tests.waiting import WaitTimeout, wait_until

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
CANCEL_HOST = "127.0.0.12"
# Each phone's script sleeps WINDOW seconds (after idle), declines what still rings then (a fuzz call
# its own caller could not cancel: see _fuzz_one_phone) and answers the next call, the real one.
WINDOW = 45.0
SETTLE = 8.0  # the end of the window, kept for cancelling what the fuzz left ringing
BUDGET = 600.0 + DATAGRAMS * 0.002  # in all; a phone costs WINDOW + about 15 s

SCRIPT = """\
wait idle 20
sleep {window:.0f}
hangup
wait idle 10
wait ringing 60
press 1
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
    return (
        (
            "OPTIONS sip:sotto@127.0.0.1:{port} SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:{me};rport;branch=z9hG4bK{tag}\r\nMax-Forwards: 70\r\n"
            "From: <sip:probe@127.0.0.1>;tag={tag}\r\nTo: <sip:sotto@127.0.0.1>\r\n"
            "Call-ID: {tag}@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        .format(port=port, me=source_port, tag=tag)
        .encode()
    )


def _cancel(uri, via, frm, to, call_id, cseq_number):
    to = re.sub(r";\s*tag=[^;]*", "", to)
    return (
        (
            "CANCEL {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n"
            "Call-ID: {}\r\nCSeq: {} CANCEL\r\nContent-Length: 0\r\n\r\n"
        )
        .format(uri, via, frm, to, call_id, cseq_number)
        .encode()
    )


def _cancel_for(data):
    """A CANCEL (RFC 3261 §9.1) for an INVITE, built from a provisional response to it or from the INVITE
    itself as the phone's own parser reads it; None when neither applies. The CANCEL matches the INVITE's
    transaction by its Via branch (§9.2), whatever address it comes from; its Request-URI is the
    INVITE's (a branch without the magic cookie is matched the RFC 2543 way, Request-URI included)."""
    from firmware.errors import RemoteProtocolError
    from firmware.sip.message import Request, Response, parse_message

    try:
        message = parse_message(data)
        if isinstance(message, Response) and not (100 < message.status < 200):
            return None
        if isinstance(message, Request) and message.method != "INVITE":
            return None
        if message.cseq[1] != "INVITE":
            return None
        headers = message.headers
        uri = message.uri if isinstance(message, Request) else "sip:sotto@127.0.0.1"
        return _cancel(
            uri, headers.get("Via"), headers.get("From"), headers.get("To"), message.call_id, message.cseq[0]
        )
    except (RemoteProtocolError, TypeError, ValueError, AttributeError, IndexError):
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
        self.probe.bind((PROBE_HOST, 0))
        self.canceller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # its own host: its own quota
        self.canceller.bind((CANCEL_HOST, 0))
        self.canceller.setblocking(False)
        self.mutator = Mutator(seed, port, self.sockets[0].getsockname()[1])
        self.sent = 0
        self.responses = {}  # status class ("2xx", "503", ...) -> count
        self.pending = {}  # Call-ID -> CANCEL, until the INVITE's 487 (or a final response) arrives
        self.invite_by_call_id = {}
        self.invites = {}  # the mutator's number -> the datagram, for INVITEs (the display shows "Fuzz N")
        self.cancels = 0
        self.cancel_answers = {}
        self.probes = 0
        self.probe_retransmissions = 0
        self.worst_probe = 0.0

    def close(self):
        for sock in self.sockets + [self.probe, self.canceller]:
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
                if data.startswith(b"SIP/2.0 ") and b" INVITE\r\n" in data:
                    match = CALL_ID.search(data)
                    call_id = match.group(1).strip() if match else None
                    if status.startswith("1") and status != "100" and call_id not in self.pending:
                        invite = self.invite_by_call_id.get(call_id)
                        cancel = (_cancel_for(invite) if invite else None) or _cancel_for(data)
                        if cancel:
                            self.pending[call_id] = cancel
                            self._send_cancel(cancel)
                    elif status[:1] in "23456":
                        self.pending.pop(call_id, None)
        while True:
            try:
                data, _ = self.canceller.recvfrom(65536)  # the CANCELs' own answers
            except BlockingIOError:
                break
            status = data[8:11].decode("ascii", "replace")
            self.cancel_answers[status] = self.cancel_answers.get(status, 0) + 1

    def _send_cancel(self, cancel):
        self.canceller.sendto(cancel, self.target)
        self.cancels += 1

    def cancel_again(self, ringing_lines):
        """Re-send the CANCELs still pending; and when the phone still rings for a caller whose answers
        went astray (a mutated Via), cancel the INVITEs with that From name from their own text."""
        for cancel in list(self.pending.values()):
            self._send_cancel(cancel)
        name = ringing_lines[1] if len(ringing_lines) > 1 else ""
        if not name:
            return
        # The display shows the caller's From name as the phone's parser read it: find the INVITEs it
        # reads the same name from (the same parser), and cancel them.
        for data in self._invites_named(name):
            cancel = _cancel_for(data)
            if cancel:
                self._send_cancel(cancel)

    def _invites_named(self, name):
        from firmware.sip.message import parse_message

        found = []
        for data in self.invites.values():
            try:
                message = parse_message(data)
                if message.from_addr.display == name:
                    found.append(data)
            except Exception:  # noqa: BLE001 - whatever the phone could not parse did not ring
                continue
        return found

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
            if b"INVITE" in data[:16]:
                self.invites[self.mutator.n] = data
                match = CALL_ID.search(data)
                if match:
                    self.invite_by_call_id[match.group(1).strip()] = data
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
    types = [
        b"Hello   ",
        b"HelloACK",
        b"Commit  ",
        b"DHPart1 ",
        b"DHPart2 ",
        b"Confirm1",
        b"Confirm2",
        b"Conf2ACK",
        b"Error   ",
        b"ErrorACK",
        b"GoClear ",
        b"ClearACK",
        b"SASrelay",
        b"RelayACK",
        b"Ping    ",
    ]
    sent = 0
    try:
        for i in range(count):
            kind = i % 5
            if kind == 0:  # RTP with any payload type, sequence, SSRC
                data = (
                    bytes([0x80 | rand.randrange(16), rand.randrange(256)])
                    + rand.randbytes(10)
                    + rand.randbytes(rand.randrange(0, 400))
                )
            elif kind == 1:  # ZRTP: the right cookie and preamble, any message type, wrong or right-looking CRC
                body = b"\x50\x5a" + rand.randbytes(2) + rand.choice(types) + rand.randbytes(rand.randrange(0, 600))
                data = b"\x10\x00" + rand.randbytes(2) + b"ZRTP" + rand.randbytes(4) + body + rand.randbytes(4)
            elif kind == 2:  # RTCP: SR, RR, SDES, BYE, APP with random lengths
                data = bytes(
                    [0x80 | rand.randrange(32), rand.choice((200, 201, 202, 203, 204, 205, 206))]
                ) + rand.randbytes(rand.randrange(2, 200))
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
    def reached():
        frames = _frames(log)
        return frames and frames[-1]["state"] == state

    def alive():
        assert phone.poll() is None, stderr_path.read_text()[-3000:]

    try:
        wait_until(reached, timeout, "the phone to be {}".format(state), alive)
    except WaitTimeout:
        raise AssertionError("the phone is not {} after {} s: {}".format(state, timeout, _frames(log)[-2:])) from None


@pytest.mark.timeout(BUDGET + 120)
def test_network_fuzz_leaves_the_phone_alive_and_working(tmp_path):
    figures = {}
    started = time.monotonic()
    sent = phones = 0
    while sent < DATAGRAMS:
        assert time.monotonic() - started < BUDGET, "only {} of {} datagrams in {:.0f} s".format(
            sent, DATAGRAMS, BUDGET
        )
        directory = tmp_path / "phone{}".format(phones)
        directory.mkdir()
        result = _fuzz_one_phone(directory, DATAGRAMS - sent, SEED + 1000 * phones)
        phones += 1
        sent += result["sip_datagrams"] + result["kernel_drops"]
        for key, value in result.items():
            if isinstance(value, dict):
                merged = figures.setdefault(key, {})
                for name, n in value.items():
                    merged[name] = merged.get(name, 0) + n
            elif key == "worst_probe_ms":
                figures[key] = max(figures.get(key, 0), value)
            else:
                figures[key] = round(figures.get(key, 0) + value, 1)
    for key in ("answers", "cancel_answers", "kinds"):
        figures[key] = ",".join("{}:{}".format(k, v) for k, v in sorted(figures[key].items()))
    totals.record("network fuzz", seed=SEED, phones=phones, **figures)


def _fuzz_one_phone(tmp_path, datagrams, seed):
    """One phone: fuzz it with up to `datagrams` until its window is nearly over, then the checks."""
    port, rtp_port = sotto.free_udp_port(), sotto.free_udp_port()
    script = tmp_path / "script.txt"
    script.write_text(SCRIPT.format(window=WINDOW))
    log = tmp_path / "display.jsonl"
    stderr_path = tmp_path / "phone.stderr"
    wav = tone_wav(tmp_path / "tone.wav")
    home = tmp_path / "home"
    with open(stderr_path, "w") as stderr:  # a file: a pipe nobody reads could fill up and stall the phone
        phone = subprocess.Popen(
            sotto.sotto_command(
                "run",
                "--board",
                "sim",
                "--listen",
                "127.0.0.1:{}".format(port),
                "--rtp-port",
                str(rtp_port),
                "--script",
                str(script),
                "--display-log",
                str(log),
                "--play",
                str(wav),
                "--codecs",
                "PCMU",
                "--cache",
                str(tmp_path / "phone.cache"),
            ),
            cwd=sotto.ROOT,
            env=sotto.environment(home),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    fuzzer = SipFuzzer(port, seed)
    crashes = unanswered = 0
    try:
        _wait_for(log, "idle", phone, stderr_path, 20)
        started = time.monotonic()
        window_ends = started + WINDOW  # the script's sleep began at "idle" (a little earlier, even)
        while fuzzer.sent < datagrams and time.monotonic() < window_ends - SETTLE:
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
        # What the fuzz left ringing is cancelled. An INVITE whose Via branch the mutation broke (no
        # RFC 3261 magic cookie) cannot be: its CANCEL meets 481 (the RFC 2543 matching of §17.2.3 is
        # not done), and it would ring for the 180 s ring timeout: the script declines it.
        while time.monotonic() < window_ends - 1:
            fuzzer._drain()
            frames = _frames(log)
            if frames[-1]["state"] == "idle" and not fuzzer.pending:
                break
            if frames[-1]["state"] == "ringing":
                fuzzer.cancel_again(frames[-1]["lines"])
            time.sleep(0.5)
        stuck = int(_frames(log)[-1]["state"] == "ringing")
        while time.monotonic() < window_ends + 2:  # the script's "hangup" is at the window's end
            fuzzer._drain()
            time.sleep(0.1)
        _wait_for(log, "idle", phone, stderr_path, 15)
        check = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        check.bind((CHECK_HOST, 0))
        check.settimeout(5)
        check.sendto(_options(port, check.getsockname()[1], "check{}".format(seed)), ("127.0.0.1", port))
        answer = check.recv(65536)
        check.close()
        assert answer.startswith(b"SIP/2.0 200 "), answer[:200]
        # A real call to the phone, answered by the script.
        caller = sotto.start(
            [
                "call",
                "sip:sotto@127.0.0.1:{}".format(port),
                "--listen",
                "127.0.0.1:{}".format(sotto.free_udp_port()),
                "--duration",
                "5",
                "--timeout",
                "40",
                "--cache",
                str(tmp_path / "caller.cache"),
                "--play",
                str(wav),
                "--codecs",
                "PCMU",
            ],
            tmp_path / "caller-home",
        )
        frames_before = len(_frames(log))

        def both_alive():
            assert phone.poll() is None, stderr_path.read_text()[-3000:]
            assert caller.poll() is None, caller.communicate()[1][-3000:]

        wait_until(
            lambda: any(f["state"] == "secure" for f in _frames(log)[frames_before:]), 30, "a secure call", both_alive
        )
        media_sent = _media_fuzz(random.Random(seed + 1), rtp_port, MEDIA_DATAGRAMS)
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
    assert tracebacks == 0, err[err.index("Traceback") - 200 :][:4000]
    assert dropped <= fuzzer.sent // 100, "the kernel dropped {} datagrams: the pacing is wrong".format(dropped)
    rung = sum(1 for f in _frames(log) if f["state"] == "ringing")
    return {
        "sip_datagrams": fuzzer.sent - dropped,
        "kernel_drops": dropped,
        "media_datagrams": media_sent,
        "crashes": crashes,
        "tracebacks": tracebacks,
        "probes": fuzzer.probes,
        "probe_retransmissions": fuzzer.probe_retransmissions,
        "worst_probe_ms": round(fuzzer.worst_probe * 1000, 1),
        "fuzz_seconds": fuzz_seconds,
        "ringing_frames": rung,
        "cancels": fuzzer.cancels,
        "declined_at_window_end": stuck,
        "answers": dict(fuzzer.responses),
        "cancel_answers": dict(fuzzer.cancel_answers),
        "kinds": dict(fuzzer.mutator.kinds),
    }
