"""The real-time audio loop: one thread per call, paced by the capture device. Host-only.

Every period (20 ms) the thread blocks in `source.read()` (an ALSA capture read, or a WAV file device
paced like one; never sleep()), then:
    send:    capture -> resample to the codec rate -> encode (or RFC 4733 DTMF) -> RTP (timestamp from
             the sample counter) -> SRTP -> sendto(remote)
    receive: datagrams queued by deliver() -> SRTP unprotect -> RTP -> playout buffer
    play:    playout buffer -> decode / conceal / comfort noise -> resample -> sink.write()
    RTCP:    an SR (or RR) + SDES CNAME every 5 s, to the RTP address (rtcp-mux) or port + 1.

The control thread (the selectors loop) owns the socket's reading side: it demultiplexes with
firmware.rtp.demux.classify() and hands RTP/RTCP datagrams to deliver(), a bounded deque append.
Keys and the peer address are handed over as immutable snapshots (one attribute store each).

API:
    MediaStream(sock, codec, payload_type, telephone_event_pt, source, sink, rng, remote=None,
                rtcp_mux=True, cname="sotto", clock=time.monotonic, wallclock=time.time, queue_limit=64,
                realtime=True, keys_required=False, red_payload_type=None)
        sock: the bound UDP socket (shared with ZRTP); this thread only calls sock.sendto().
        codec: "PCMU" | "PCMA" | "G722" | "opus"; payload_type: its negotiated PT;
        telephone_event_pt: PT of telephone-event/<codec rtp clock>, or None.
        source: .sample_rate, .period_samples (20 ms), .read() -> 16-bit LE mono PCM, blocking;
                .close() (audio.alsa.AlsaCapture, audio.wavfile.WavSource / SilentSource)
        sink: .sample_rate, .write(pcm), .close() (audio.alsa.AlsaPlayback, audio.wavfile.WavRecorder /
              NullSink)
        rng(n) -> n random octets: the SSRC, first sequence number and first timestamp.
        remote: (host, port) to send RTP to, or None until set_remote().
        rtcp_mux: True when both SDPs carry a=rtcp-mux (RFC 5761); otherwise RTCP goes to port + 1.
        red_payload_type: the PT of red/<clock> (RFC 2198) negotiated for this codec, or None: each audio
                packet then carries the previous frame as a redundant block ahead of the current one,
                and RED packets received are unpacked (a redundant frame fills a lost packet's slot).
                RFC 4733 events are never wrapped.
        keys_required: True for --encryption zrtp|sdes: nothing is sent or accepted until set_keys()
                (SRTP arriving before ZRTP completes must not be decoded as plain RTP).
    .start()                        start the thread
    .stop(send_bye=True)            stop it, join it, send RTCP BYE, close source and sink (finalises a
                                    WAV recording)
    .set_remote(addr)               where to send (symmetric RTP then follows authenticated media)
    .set_keys(tx_params, rx_params) SRTP keys: each (profile, master_key, master_salt[, rtcp_tag_len])
                                    (firmware.srtp.context.zrtp_profile maps ZRTP's names), or both None
                                    for plain RTP. Until set, with plain RTP nothing is withheld;
                                    call with the keys before start() to never send in the clear.
    .require_keys()                 send nothing and accept nothing until set_keys() gives keys
    .deliver(datagram, addr)        from the control thread: an RTP or RTCP datagram for us
    .read_socket(on_other)          from now on this thread reads the socket itself, once per period
                                    (DESIGN.md: "recv -> SRTP -> playout"), so the control thread no
                                    longer wakes for every packet; datagrams that are not RTP/RTCP
                                    (ZRTP, STUN) go to on_other(datagram, addr), called on this thread.
                                    Arrival times come from the kernel (SO_TIMESTAMPNS), so jitter is
                                    measured as precisely as when every packet woke the control thread.
    .send_dtmf(digit, duration_ms=100)   RFC 4733 (needs telephone_event_pt), else in-band tones
    .set_volume(gain)               playback gain (audio.gain.volume_gain(level)); 0.0 is silent
    .set_mute(muted)                the microphone: while muted, silence is encoded and sent (the
                                    RTP timeline and the peer's jitter buffer carry on undisturbed)
    .set_tone(cadence)              play a local tone (audio.tones.RINGBACK, ...) instead of the far
                                    end, or None to stop
    .stats() -> dict                sent, received, lost, late, auth_failures, replays (ints),
                                    jitter_ms, playout_delay_ms (average buffered delay),
                                    target_delay_ms, rtt_ms (float or None), underruns, concealed,
                                    stretched (frames time-stretched to adapt the playout delay),
                                    recovered (lost packets rebuilt from RFC 2198 redundancy),
                                    dtmf_received (str), bye (bool), max_cycle_ms and mean_cycle_ms
                                    (time spent per 20 ms period by the audio thread)
    .events                         deque of ("dtmf", digit) and ("bye",) for the control thread


    Apart: the receive and play path (media_receive.py), RTCP (media_rtcp.py); TonePlayer, for tones
    outside a call, is in tone_player.py.
"""

import collections
import logging
import os
import threading
import time

from audio.codecs import make_codec
from audio.comfort import ComfortNoise
from audio.playout import JitterBuffer
from audio.resample import Resampler
from audio.tones import ToneGenerator, dtmf_cadence
from firmware.rtp.dtmf import DtmfReceiver, DtmfSender
from firmware.rtp.packet import build_rtp
from firmware.rtp.red import MAX_BLOCK, pack_red
from firmware.runtime.media_receive import ReceivePath
from firmware.runtime.media_rtcp import Rtcp
from firmware.srtp.context import context_from_params

log = logging.getLogger("sotto.media")

PERIOD_MS = 20
RTCP_INTERVAL = 5.0
# After a key change, packets under the replaced keys are still accepted this long (the peer switches when
# its own exchange completes, RFC 6189 §4.6; packets in flight and its jitter buffer need a moment).
KEY_OVERLAP = 2.0


class _Crypto:
    """An immutable set of SRTP contexts handed from the control thread to the audio thread. `previous_rx`:
    the receive context of the keys just replaced (a ZRTP re-key, SDES -> ZRTP), tried when the new one
    fails, so packets the peer sent before it switched still play (no gap in audio)."""

    __slots__ = ("tx", "rx", "previous_rx", "previous_until")

    def __init__(self, tx, rx, previous_rx=None, previous_until=0.0):
        self.tx = tx
        self.rx = rx
        self.previous_rx = previous_rx
        self.previous_until = previous_until


class MediaStream(ReceivePath, Rtcp):
    def __init__(
        self,
        sock,
        codec,
        payload_type,
        telephone_event_pt,
        source,
        sink,
        rng,
        remote=None,
        rtcp_mux=True,
        cname="sotto",
        clock=time.monotonic,
        wallclock=time.time,
        queue_limit=64,
        realtime=True,
        keys_required=False,
        red_payload_type=None,
    ):
        self.sock = sock
        self.codec = make_codec(codec)
        self.codec_name = codec
        self.payload_type = payload_type
        self.telephone_event_pt = telephone_event_pt
        self.red_payload_type = red_payload_type
        self._previous_frame = None  # the last encoded frame, sent again as RFC 2198 redundancy
        self.source = source
        self.sink = sink
        self.rtcp_mux = rtcp_mux
        self.cname = cname
        self._clock = clock
        self._wallclock = wallclock
        self._realtime = realtime
        self.ssrc = int.from_bytes(rng(4), "big")
        self._seq = int.from_bytes(rng(2), "big")
        self._timestamp = int.from_bytes(rng(4), "big")
        self._first_packet = True
        self._remote = remote
        self._crypto = None  # None: plain RTP
        self._keys_required = keys_required
        self._inbox = collections.deque((), queue_limit)
        self._queue_limit = queue_limit
        self._dtmf_requests = collections.deque((), 32)
        self.events = collections.deque((), 64)
        self._tone = None
        self._playback_gain = 1.0
        self._muted = False
        self._stop = threading.Event()
        self._thread = None
        self._on_other = None  # set by read_socket(): this thread then reads the socket

        codec_rate = self.codec.sample_rate
        self._ts_step = self.codec.rtp_clock * PERIOD_MS // 1000
        self._codec_frame = codec_rate * PERIOD_MS // 1000
        if source.period_samples != source.sample_rate * PERIOD_MS // 1000:
            raise ValueError("the capture device must deliver 20 ms periods")
        self._capture_resampler = Resampler(source.sample_rate, codec_rate)
        self._playback_resampler = Resampler(codec_rate, sink.sample_rate)
        self._sink_frame_bytes = sink.sample_rate * PERIOD_MS // 1000 * 2
        self._jitter = JitterBuffer(self.codec.rtp_clock, PERIOD_MS)
        self._reception = None
        self._remote_ssrc = None
        self._comfort = ComfortNoise(codec_rate)
        self._dtmf_sender = DtmfSender(self.codec.rtp_clock, PERIOD_MS)
        self._dtmf_receiver = DtmfReceiver()
        self._inband_dtmf = None
        self._inband_periods = 0
        self._play_fifo = b""
        self._since_good = 1000  # periods since the last decoded frame

        # Counters (ints written only by the audio thread, read by stats()).
        self.sent = 0
        self.sent_octets = 0
        self.send_errors = 0
        self.received = 0
        self.authentic = 0  # RTP and RTCP from the peer that passed SRTP (or any, in the clear): liveness
        self._double_counted = 0  # packets tried under both the new and the replaced keys
        self.malformed = 0
        self.inbox_overflows = 0
        self.concealed = 0
        self.stretched = 0  # decoded frames time-stretched for playout adaptation
        self._stretch_waited = 0
        self._auth_failures_before = 0
        self._replays_before = 0
        self._rtt = None
        self._next_rtcp = None
        self.dtmf_received = ""
        self.bye = False
        self.loop_errors = 0
        self.max_cycle_ms = 0.0
        self.busy_ms = 0.0
        self.cycles = 0

    # -- control thread API ----------------------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self._run, name="sotto-media", daemon=True)
        self._thread.start()

    def stop(self, send_bye=True):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if send_bye and self._thread is not None and not self._thread.is_alive():
            self._send_bye()
        for device in (self.source, self.sink):
            try:
                device.close()
            except Exception:  # closing a broken device must not stop the call from ending
                log.exception("closing an audio device failed")
        log.info("media stopped: %s", self._summary_line())

    def set_remote(self, addr):
        self._remote = addr

    def require_keys(self):
        self._keys_required = True

    def set_keys(self, tx_params, rx_params, keep_previous=False):
        if tx_params is None or rx_params is None:
            self._crypto = None
            self._keys_required = False
            return
        old = self._crypto
        previous_rx = old.rx if (keep_previous and old is not None) else None
        self._crypto = _Crypto(
            context_from_params(tx_params), context_from_params(rx_params), previous_rx, self._clock() + KEY_OVERLAP
        )
        if old is not None:
            self._auth_failures_before += old.rx.auth_failures
            self._replays_before += old.rx.replays
            if old.previous_rx is not None:
                self._auth_failures_before += old.previous_rx.auth_failures
                self._replays_before += old.previous_rx.replays

    def set_receive_keys(self, rx_params):
        """New receive keys ahead of the send keys (a ZRTP initiator re-keying, RFC 6189 §4.6: the peer may
        switch once our Confirm2 is out); the replaced receive context stays usable for KEY_OVERLAP."""
        old = self._crypto
        if old is None:
            return
        self._crypto = _Crypto(old.tx, context_from_params(rx_params), old.rx, self._clock() + KEY_OVERLAP)
        if old.previous_rx is not None:
            self._auth_failures_before += old.previous_rx.auth_failures
            self._replays_before += old.previous_rx.replays

    def send_dtmf(self, digit, duration_ms=100):
        self._dtmf_requests.append((str(digit), duration_ms))

    def set_volume(self, playback_gain):
        self._playback_gain = float(playback_gain)

    def set_mute(self, muted):
        self._muted = bool(muted)

    def set_tone(self, cadence):
        self._tone = None if cadence is None else ToneGenerator(cadence, self.sink.sample_rate)

    def counters(self):
        """(authentic packets from the peer, SRTP authentication failures), cheap enough to poll."""
        crypto = self._crypto
        failures = self._auth_failures_before - self._double_counted
        if crypto is not None:
            failures += crypto.rx.auth_failures
            if crypto.previous_rx is not None:
                failures += crypto.previous_rx.auth_failures
        return self.authentic, failures

    def stats(self):
        crypto = self._crypto
        auth_failures = self.counters()[1]
        replays = self._replays_before + (crypto.rx.replays if crypto else 0)
        if crypto is not None and crypto.previous_rx is not None:
            replays += crypto.previous_rx.replays
        reception = self._reception
        lost = reception.lost if reception is not None else 0
        jitter = self._jitter
        return {
            "sent": self.sent,
            "received": self.received,
            "lost": lost if lost > 0 else 0,
            "late": jitter.late,
            "auth_failures": auth_failures,
            "replays": replays,
            "jitter_ms": round(jitter.jitter_ms, 2),
            "playout_delay_ms": round(jitter.average_delay_ms, 1),
            "target_delay_ms": round(jitter.target_ms, 1),
            "underruns": jitter.underruns,
            "concealed": self.concealed,
            "stretched": self.stretched,
            "recovered": jitter.recovered,
            "rtt_ms": None if self._rtt is None else round(self._rtt * 1000.0, 2),
            "dtmf_received": self.dtmf_received,
            "bye": self.bye,
            "max_cycle_ms": round(self.max_cycle_ms, 3),
            "mean_cycle_ms": round(self.busy_ms / self.cycles, 3) if self.cycles else 0.0,
        }

    def _summary_line(self):
        s = self.stats()
        return (
            "codec={} sent={} received={} lost={} late={} auth_failures={} replays={} jitter_ms={} "
            "playout_delay_ms={} underruns={} concealed={}"
        ).format(
            self.codec_name,
            s["sent"],
            s["received"],
            s["lost"],
            s["late"],
            s["auth_failures"],
            s["replays"],
            s["jitter_ms"],
            s["playout_delay_ms"],
            s["underruns"],
            s["concealed"],
        )

    # -- the audio thread ------------------------------------------------------------------------

    def _run(self):
        if self._realtime:
            try:  # real-time priority where the system allows it
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            except (AttributeError, OSError):
                pass
        last_log = None
        while not self._stop.is_set():
            try:
                pcm = self.source.read()
            except Exception:
                self.loop_errors += 1
                log.exception("capture failed")
                if self._stop.wait(PERIOD_MS / 1000.0):  # a broken device must not spin the CPU
                    break
                continue
            started = self._clock()
            try:
                self._cycle(pcm, started)
            except Exception:  # the loop must survive anything; count it and go on
                self.loop_errors += 1
                if self.loop_errors < 5:
                    log.exception("media cycle failed")
            elapsed = (self._clock() - started) * 1000.0
            self.busy_ms += elapsed
            self.cycles += 1
            if elapsed > self.max_cycle_ms:
                self.max_cycle_ms = elapsed
            if last_log is None:
                last_log = started
            elif started - last_log >= 10.0:
                last_log = started
                log.info("media: %s", self._summary_line())

    def _cycle(self, pcm, now):
        if self._on_other is not None:
            self._drain_socket()
        self._receive_pending(now)
        self._send_period(pcm, now)
        self._play_period()
        if self._next_rtcp is None:
            self._next_rtcp = now + RTCP_INTERVAL / 2
        elif now >= self._next_rtcp:
            self._next_rtcp = now + RTCP_INTERVAL
            self._send_rtcp(now)

    # send ---------------------------------------------------------------------------------------

    def _send_packet(self, packet):
        remote = self._remote
        crypto = self._crypto
        if remote is None or (crypto is None and self._keys_required):
            return False
        if crypto is not None:
            packet = crypto.tx.protect(packet)
        try:
            self.sock.sendto(packet, remote)
        except OSError:
            self.send_errors += 1
            return False
        self.sent += 1
        self.sent_octets += len(packet)
        return True

    def _send_period(self, pcm, now):
        while self._dtmf_requests:
            digit, duration_ms = self._dtmf_requests.popleft()
            if self.telephone_event_pt is not None:
                try:
                    self._dtmf_sender.start(digit, self._timestamp, duration_ms)
                except Exception:
                    log.warning("ignoring DTMF request %r", digit)
            else:
                try:
                    self._inband_dtmf = ToneGenerator(
                        dtmf_cadence(digit, duration_ms), self.source.sample_rate, level=0.25
                    )
                    self._inband_periods = -(-(duration_ms + 60) // PERIOD_MS)
                except KeyError:
                    log.warning("ignoring DTMF request %r", digit)
        if self._inband_dtmf is not None:
            pcm = self._inband_dtmf.frame(len(pcm) // 2)
            self._inband_periods -= 1
            if self._inband_periods <= 0:
                self._inband_dtmf = None
        if self._muted:
            pcm = bytes(len(pcm))
        frame = self._capture_resampler.process(pcm)
        if self._dtmf_sender.active:
            for marker, timestamp, payload in self._dtmf_sender.next_packets(self._timestamp):
                self._send_packet(build_rtp(self.telephone_event_pt, self._seq, timestamp, self.ssrc, payload, marker))
                self._seq = (self._seq + 1) & 0xFFFF
            # The events took sequence numbers: the frame before the next one is no longer the packet before.
            self._previous_frame = None
        else:
            payload = self.codec.encode(frame)
            pt = self.payload_type
            if self.red_payload_type is not None:
                payload, pt = self._redundant(payload), self.red_payload_type
            if self._send_packet(build_rtp(pt, self._seq, self._timestamp, self.ssrc, payload, self._first_packet)):
                self._first_packet = False
            self._seq = (self._seq + 1) & 0xFFFF
        self._timestamp = (self._timestamp + self._ts_step) & 0xFFFFFFFF

    def _redundant(self, frame):
        """RFC 2198 §3: the current frame as primary, the previous one (one packet and one period earlier)
        as the redundant block; the receiver rebuilds a lone loss from the next packet."""
        previous = self._previous_frame
        self._previous_frame = frame
        if previous is None or len(previous) > MAX_BLOCK:
            return pack_red(self.payload_type, frame)
        return pack_red(self.payload_type, frame, ((self.payload_type, self._ts_step, previous),))
