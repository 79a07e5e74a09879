"""The receive and play half of the real-time audio loop (firmware/runtime/media.py). Host-only.

Apart from media.py because it is the half that takes peer input, and so where every defence sits:
SRTP authentication with the replaced keys' overlap (RFC 3711 §3.3; RFC 6189 §4.6 for when a peer
switches), symmetric RTP only towards authenticated media (RFC 4961), the bounded inbox, and playout
(jitter buffer, concealment, comfort noise, time-stretching) so that nothing a peer sends can stall
the 20 ms period. A mixin of MediaStream: it runs on the audio thread, on MediaStream's state; RTCP
reception is in media_rtcp.py.
"""

import socket
import struct

from audio.gain import scale
from audio.playout import LOST, PLAY
from audio.stretch import lengthen, quiet, shorten
from firmware.errors import RemoteProtocolError
from firmware.rtp import demux, rtcp
from firmware.rtp.dtmf import DtmfReceiver
from firmware.rtp.packet import parse_rtp
from firmware.rtp.red import parse_red

MAX_DATAGRAM = 4096
# Linux's SO_TIMESTAMPNS (the socket module does not name it): a struct timespec per datagram.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)
CN_PAYLOAD_TYPE = 13  # RFC 3389 comfort noise


class ReceivePath:
    __slots__ = ()

    # receive ------------------------------------------------------------------------------------

    def read_socket(self, on_other):
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass  # no kernel timestamps: arrival is when this thread reads the packet
        self._on_other = on_other

    def _drain_socket(self):
        """Read what arrived during the last period (non-blocking; bounded by the inbox size)."""
        on_other = self._on_other
        offset = None
        for _ in range(self._queue_limit):
            try:
                datagram, ancdata, _flags, addr = self.sock.recvmsg(MAX_DATAGRAM, _ANCILLARY_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP errors from a peer that went away: keep reading
                continue
            kind = demux.classify(datagram)
            if kind != demux.RTP and kind != demux.RTCP:
                on_other(datagram, addr)
                continue
            arrival = None
            for level, kind_, data in ancdata:
                if level == socket.SOL_SOCKET and kind_ == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
                    seconds, nanoseconds = _TIMESPEC.unpack_from(data)
                    if offset is None:
                        offset = self._clock() - self._wallclock()
                    arrival = seconds + nanoseconds * 1e-9 + offset
            self._inbox.append((datagram, addr, arrival if arrival is not None else self._clock()))

    def deliver(self, datagram, addr):
        if len(self._inbox) >= self._queue_limit:
            self.inbox_overflows += 1  # the deque drops the oldest
        self._inbox.append((datagram, addr, self._clock()))

    def _receive_pending(self, now):
        inbox = self._inbox
        while inbox:
            datagram, addr, arrival = inbox.popleft()
            kind = demux.classify(datagram)
            try:
                if kind == demux.RTP:
                    self._receive_rtp(datagram, addr, arrival)
                elif kind == demux.RTCP:
                    self._receive_rtcp(datagram, addr, arrival)
                else:
                    self.malformed += 1
            except RemoteProtocolError:
                self.malformed += 1  # auth failures and replays are counted by the SRTP context

    def _authenticated_source(self, addr):
        # Symmetric RTP (RFC 4961): send to where authenticated media comes from.
        if addr != self._remote:
            self._remote = addr

    def _unprotect(self, crypto, datagram, rtcp):
        try:
            return crypto.rx.unprotect_rtcp(datagram) if rtcp else crypto.rx.unprotect(datagram)
        except RemoteProtocolError:
            if crypto.previous_rx is None or self._clock() > crypto.previous_until:
                raise
        # Perhaps sent before the peer switched keys. One packet, one verdict: the failure the new context
        # counted is taken back, whatever the replaced keys say.
        self._double_counted += 1
        previous = crypto.previous_rx
        return previous.unprotect_rtcp(datagram) if rtcp else previous.unprotect(datagram)

    def _receive_rtp(self, datagram, addr, arrival):
        crypto = self._crypto
        if crypto is not None:
            datagram = self._unprotect(crypto, datagram, False)
        elif self._keys_required:
            return
        packet = parse_rtp(datagram)
        self.authentic += 1
        self._authenticated_source(addr)
        pt = packet.payload_type
        if packet.ssrc != self._remote_ssrc:
            self._remote_ssrc = packet.ssrc
            self._jitter.reset()
            self._reception = rtcp.ReceptionStats(self.codec.rtp_clock)
            self._dtmf_receiver = DtmfReceiver()
        if pt == self.payload_type:
            self.received += 1
            self._reception.update(packet.sequence, packet.timestamp, arrival)
            self._jitter.push(packet.sequence, packet.timestamp, packet.payload, arrival)
        elif pt == self.red_payload_type and pt is not None:
            self._receive_red(packet, arrival)
        elif pt == self.telephone_event_pt and self.telephone_event_pt is not None:
            self._reception.update(packet.sequence, packet.timestamp, arrival)
            digit = self._dtmf_receiver.receive(packet.timestamp, packet.payload)
            if digit is not None:
                if len(self.dtmf_received) < 256:
                    self.dtmf_received += digit
                self.events.append(("dtmf", digit))
        elif pt == CN_PAYLOAD_TYPE:
            self._comfort.apply_cn_payload(packet.payload)

    def _receive_red(self, packet, arrival):
        """An RFC 2198 packet: the primary is played as a plain packet; a redundant block of our codec one
        or two periods older fills the slot of the packet that many sequence numbers earlier, only if it
        is still empty and not yet played (JitterBuffer.fill: the primary always wins). Anything else in
        it (another encoding, an offset that is not whole periods) is ignored. Malformed: the whole packet
        is dropped and counted, before anything reaches the buffer."""
        primary_pt, primary, blocks = parse_red(packet.payload)
        if primary_pt != self.payload_type:
            raise RemoteProtocolError("RED primary is not the call's codec")
        self.received += 1
        sequence = packet.sequence
        self._reception.update(sequence, packet.timestamp, arrival)
        jitter = self._jitter
        jitter.push(sequence, packet.timestamp, primary, arrival)
        step = self._ts_step
        for block_pt, offset, data in blocks:
            if block_pt == primary_pt and data and offset % step == 0 and offset <= 2 * step:
                jitter.fill((sequence - offset // step) & 0xFFFF, data)

    # play ---------------------------------------------------------------------------------------

    def _decode_next(self):
        codec = self.codec
        jitter = self._jitter
        status, payload = jitter.pop()
        if status == PLAY:
            self._since_good = 0
            pcm = codec.decode(payload)
            if jitter.stretch:
                pcm = self._stretch(pcm, jitter)
            return pcm
        self._since_good += 1
        if status == LOST or self._since_good <= 3:
            self.concealed += 1
            if status == LOST and payload is not None:
                recover = getattr(codec, "recover", None)
                if recover is not None:  # Opus: in-band FEC from the following packet
                    return recover(payload, self._codec_frame)
                return codec.conceal(self._codec_frame, payload)
            if status == LOST:
                # A burst: the packet after it may be held already; conceal towards it.
                missing, payload = jitter.nearest_ahead()
                if payload is not None:
                    return codec.conceal(self._codec_frame, payload, missing * self._codec_frame)
            return codec.conceal(self._codec_frame)
        return self._comfort.frame(self._codec_frame)

    def _stretch(self, pcm, jitter):
        """Playout adaptation by one pitch period, never a whole frame (audio.playout, audio.stretch). A
        request that is not urgent waits up to half a second for a quiet frame, where it is inaudible."""
        if jitter.stretch in (-1, 1) and self._stretch_waited < 25 and not quiet(pcm):
            self._stretch_waited += 1
            return pcm
        rate = self.codec.sample_rate
        pcm = shorten(pcm, rate) if jitter.stretch < 0 else lengthen(pcm, rate)
        jitter.stretch = 0
        self._stretch_waited = 0
        self.stretched += 1
        return pcm

    def _play_period(self):
        needed = self._codec_frame * 2
        fifo = self._play_fifo
        guard = 0
        while len(fifo) < needed and guard < 8:
            fifo += self._decode_next()
            guard += 1
        frame, self._play_fifo = fifo[:needed], fifo[needed:]
        if len(self._play_fifo) > 8 * needed:  # bounded: a peer sending huge frames
            self._play_fifo = self._play_fifo[-needed:]
        out = self._playback_resampler.process(frame)
        if self._tone is not None:
            out = self._tone.frame(len(out) // 2)
        self.sink.write(scale(out, self._playback_gain))
