"""One call's media on the shell side: the RTP/RTCP sockets, the ZRTP engine, the SDP offer/answer, the audio
stream, and the call policy (firmware.call) that decides what the media may do. Host-only (the shell)."""

import logging
import time

from audio.codecs import SAMPLE_RATES
from firmware import call as policy
from firmware import sdp
from firmware.errors import RemoteProtocolError
from firmware.rtp import demux
from firmware.runtime.endpoint import EngineTimer, StartupError, _bind_udp

log = logging.getLogger("sotto.call-media")


MAX_DATAGRAMS_PER_READ = 64


def _bind_rtp_pair(host, port):
    """The RTP socket and, on the next port, the RTCP socket (RFC 3550 §11: RTP on an even port, RTCP
    on the odd one above), for peers that do not multiplex RTCP (linphone does not). A configured port
    is taken as it is; otherwise even ports are tried until a pair is free."""
    if port:
        rtp = _bind_udp(host, port, "RTP")
        try:
            return rtp, _bind_udp(host, port + 1, "RTCP")
        except StartupError:
            return rtp, None  # rtcp-mux only, then
    for _ in range(32):
        rtp = _bind_udp(host, 0, "RTP")
        number = rtp.getsockname()[1]
        if number % 2 == 0 and number < 65535:
            try:
                return rtp, _bind_udp(host, number + 1, "RTCP")
            except StartupError:
                pass
        rtp.close()
    return _bind_udp(host, 0, "RTP"), None


class AudioPlan:
    """Where a call's microphone and speaker are: WAV files, silence, or ALSA devices."""

    def __init__(self, play=None, record=None, devices=None):
        self.play = play
        self.record = record
        self.devices = devices  # (capture_name, playback_name) for ALSA, or None

    def open(self, codec):
        from audio import wavfile

        rate = SAMPLE_RATES[codec]
        if self.devices is not None:
            from audio import alsa

            try:
                return alsa.open_pair(self.devices[0], self.devices[1], rate)
            except Exception as exc:  # no sound card: one clear line, the phone shows "no audio device"
                raise StartupError("no audio device ({})".format(exc)) from None
        source = wavfile.WavSource(self.play, rate) if self.play else wavfile.SilentSource(rate)
        sink = wavfile.WavRecorder(self.record, rate) if self.record else wavfile.NullSink(rate)
        return source, sink

    def open_speaker(self, rate=16000):
        """The speaker alone, for tones outside a call (the ring, ringback before the far end answers).
        With WAV files it is silent: --record holds what the far end says, not our own tones."""
        from audio import wavfile

        if self.devices is None:
            return wavfile.NullSink(rate)
        from audio import alsa

        try:
            return alsa.AlsaPlayback(self.devices[1], rate)
        except Exception as exc:  # no sound card: the tone is skipped, the call itself reports the device
            raise StartupError("no audio device ({})".format(exc)) from None


class CallMedia:
    """One call's media: the RTP socket (ZRTP, RTP and RTCP share it), the ZRTP engine and the stream.

    It is created before the offer or answer is written, so the a=zrtp-hash and the port are known,
    and it accepts ZRTP from the moment the INVITE leaves (linphone sends Hello before our ACK).
    """

    def __init__(self, endpoint, summary, peer_uri, offer_sdes=False):
        self.endpoint = endpoint
        self.offer_sdes = offer_sdes or endpoint.settings.media.encryption == "sdes"
        self.summary = summary
        settings = endpoint.settings
        self.encryption = settings.media.encryption
        host = endpoint.media_host
        self.sock, self.rtcp_sock = _bind_rtp_pair(host, endpoint.next_rtp_port())
        self.local_port = self.sock.getsockname()[1]
        self.remote = None
        self.remote_zrtp_hash = None
        self.stream = None
        self.codec = None
        self.zrtp = None
        self.zrtp_timer = None
        self.sdes_offer = None
        self.sdes_keys = None
        self.sdes_line = None  # our a=crypto value in force, repeated in answers to re-INVITEs
        self.started_at = endpoint.loop.now()
        self.media_up_at = None
        self.secure_at = None
        self.ignored_datagrams = 0
        self.ended = False
        self.lost_tail = 0
        self._socket_handed_over = False
        self._policy_open = False
        self._sdp_version = 1
        self._last_sdp_body = None
        self._sampler = None
        # What the media may do (clear, SDES, ZRTP), when to give up on ZRTP, alarms, liveness: one policy.
        self.policy = policy.CallPolicy(self.encryption, settings.zrtp.secure_only, settings.media.inactivity_timeout)
        self.policy_timer = EngineTimer(endpoint.loop, self.policy, self.pump_policy)
        if self.encryption == "zrtp":
            from firmware.zrtp.engine import Preferences, ZrtpEngine

            z = settings.zrtp
            prefs = Preferences(
                hashes=z.hashes,
                ciphers=z.ciphers,
                auth_tags=z.auth_tags,
                key_agreements=z.key_agreements,
                sas_types=z.sas,
            )
            cache = endpoint.zrtp_cache()
            self.zrtp = ZrtpEngine(
                cache.zid,
                cache,
                prefs,
                endpoint.rng,
                ssrc=_ssrc(endpoint.rng),
                peer_uri=peer_uri,
                wall_time=int(time.time()),
            )
            self.zrtp_timer = EngineTimer(endpoint.loop, self.zrtp, self.pump_zrtp)
        endpoint.loop.add_reader(self.sock, self._on_readable)
        if self.rtcp_sock is not None:
            endpoint.loop.add_reader(self.rtcp_sock, self._on_rtcp_readable)

    # -- SDP ----------------------------------------------------------------------------------------
    def _sdp_common(self, toward=None):
        settings = self.endpoint.settings
        if toward is None and self.remote is not None:
            toward = self.remote[0]
        address, port = self.endpoint.advertised_media(self.local_port, toward)
        kwargs = {"zrtp_hash": self.zrtp.hello_hash() if self.zrtp else None}
        return settings.media.codecs, address, port, kwargs

    def offer(self):
        codecs, address, port, kwargs = self._sdp_common()
        if self.offer_sdes:
            from firmware.srtp import sdes

            # A ZRTP offer carries no a=crypto at first: linphone with ZRTP mandatory refuses such an offer
            # (488). A peer that refuses ours is offered ZRTP and SDES together (CallController.place).
            self.sdes_offer = sdes.make_offer(self.endpoint.rng)
            kwargs["crypto_lines"] = [line.value() for line in self.sdes_offer]
        # rtcp-mux (RFC 5761): RTCP on the one port we have; a peer that declines gets it at port + 1.
        return self._versioned(
            lambda version: sdp.build_offer(codecs, address, port, rtcp_mux=True, session_version=version, **kwargs)
        )

    def _versioned(self, build):
        """Our SDP with the o= version RFC 3264 §8 wants: the same as last time when nothing changed, the next
        one when something did. build(version) -> SessionDescription."""
        text = build(self._sdp_version).to_bytes()
        body = b"\n".join(line for line in text.split(b"\n") if not line.startswith(b"o="))
        if self._last_sdp_body is not None and body != self._last_sdp_body:
            self._sdp_version += 1
            text = build(self._sdp_version).to_bytes()
        self._last_sdp_body = body
        return text

    def answer(self, offer_bytes):
        """Our SDP answer to the peer's offer; RemoteProtocolError(488) when we cannot take it."""
        offer = sdp.parse_sdp(offer_bytes)
        remote = sdp.remote_media(offer)
        codecs, address, port, kwargs = self._sdp_common(remote.address)
        if self.encryption == "sdes" or (self.encryption == "zrtp" and remote.crypto_lines):
            from firmware.srtp import sdes

            chosen = sdes.answer_offer(remote.crypto_lines, self.endpoint.rng) if remote.crypto_lines else None
            if chosen is not None:
                theirs, ours = chosen
                self.sdes_keys = (ours.params(), theirs.params())
                self.sdes_line = ours.value()
                kwargs["crypto_lines"] = [self.sdes_line]
            elif self.encryption == "sdes":
                raise RemoteProtocolError("no acceptable a=crypto line for SDES-SRTP", 488)
        chosen = []

        def build(version):
            description, codec = sdp.answer_offer(offer, codecs, address, port, session_version=version, **kwargs)
            chosen.append(codec)
            return description

        text = self._versioned(build)
        self._use_remote(remote, chosen[-1])
        return text

    def accept_answer(self, answer_bytes):
        """The peer's SDP answer to our offer."""
        remote = sdp.remote_media(sdp.parse_sdp(answer_bytes))
        ours = [c for c in remote.codecs if c.name in self.endpoint.settings.media.codecs]
        if not ours:
            raise RemoteProtocolError("the answer has no codec we offered", 488)
        if self.encryption == "sdes" and not remote.crypto_lines:
            raise RemoteProtocolError("the answer has no a=crypto line: SDES-SRTP refused", 488)
        if self.sdes_offer is not None and remote.crypto_lines:
            from firmware.srtp import sdes

            try:
                mine, theirs = sdes.accept_answer(self.sdes_offer, remote.crypto_lines[0])
            except RemoteProtocolError:
                if self.encryption == "sdes":
                    raise
            else:
                self.sdes_keys = (mine.params(), theirs.params())
                self.sdes_line = mine.value()
        self._use_remote(remote, ours[0])

    def answer_reinvite(self, offer_bytes):
        """Our answer to a re-INVITE's offer (hold, resume, new address); the policy raises the alarm when the
        offer drops the call's keying. RemoteProtocolError(488) when the offer cannot be taken.

        The answer keeps the call's keying: our a=zrtp-hash, or the a=crypto line in force (new SDES keys
        in a re-INVITE are not taken).
        """
        offer = sdp.parse_sdp(offer_bytes)
        remote = sdp.remote_media(offer)
        codecs, address, port, kwargs = self._sdp_common(remote.address)
        if self.sdes_line is not None:
            kwargs["crypto_lines"] = [self.sdes_line]
        answer = self._versioned(
            lambda version: sdp.answer_offer(offer, codecs, address, port, session_version=version, **kwargs)[0]
        )
        self.policy.reinvite(remote.zrtp_hash, bool(remote.crypto_lines), remote.direction, self.endpoint.loop.now())
        self._follow(remote)
        self.pump_policy()
        return answer

    def reoffer(self, direction):
        """A re-INVITE offer for hold ("sendonly", RFC 3264 §8.4) or resume ("sendrecv"), keeping the call's
        keying (our a=zrtp-hash, the a=crypto line in force) so the peer sees no downgrade."""
        codecs, address, port, kwargs = self._sdp_common()
        if self.sdes_line is not None:
            kwargs["crypto_lines"] = [self.sdes_line]
        return self._versioned(
            lambda version: sdp.build_offer(
                [self.codec.name] if self.codec else codecs,
                address,
                port,
                direction=direction,
                rtcp_mux=self.rtcp_mux,
                session_version=version,
                **kwargs,
            )
        )

    def accept_reanswer(self, answer_bytes, on_hold):
        """The peer's answer to our re-INVITE: follow a moved media address; tell the policy about hold."""
        if answer_bytes:
            self._follow(sdp.remote_media(sdp.parse_sdp(answer_bytes)))
        self.policy.hold(on_hold, self.endpoint.loop.now())
        self.pump_policy()

    def _follow(self, remote):
        """A moved media address (a relay re-anchoring the call): RTP and ZRTP both go there now, so a ZRTP
        restart after the move (RFC 6189 §4.6.1) is answered where the peer is, not at the old address."""
        if not remote.port:
            return
        self.remote = (remote.address, remote.port)
        if self.stream is not None:
            self.stream.set_remote(self.remote)

    def _use_remote(self, remote, codec):
        self.codec = codec
        self.telephone_event = remote.telephone_event
        self.remote = (remote.address, remote.port)
        self.remote_zrtp_hash = remote.zrtp_hash
        self.rtcp_mux = remote.rtcp_mux
        if self.zrtp is not None and remote.zrtp_hash:
            self.zrtp.set_peer_hello_hash(remote.zrtp_hash)
        self.policy.remote_description(remote.zrtp_hash, self.sdes_keys)

    # -- media --------------------------------------------------------------------------------------
    def start(self, audio):
        """The call is up: start the audio loop (nothing leaves or is played until the policy releases the
        media) and, with ZRTP, the key agreement (RFC 6189 §4.1)."""
        from firmware.runtime.media import MediaStream

        self.summary.codec = self.codec.name
        source, sink = audio.open(self.codec.name)
        self.stream = MediaStream(
            self.sock,
            self.codec.name,
            self.codec.payload_type,
            self.telephone_event,
            source,
            sink,
            self.endpoint.rng,
            remote=self.remote,
            rtcp_mux=self.rtcp_mux,
            keys_required=True,
        )
        self.stream.start()
        now = self.media_up_at = self.endpoint.loop.now()
        self.policy.start_media(now)
        self._sampler = self.endpoint.loop.call_later(policy.MEDIA_SAMPLE, self._sample_media)
        if self.zrtp is not None:
            self.zrtp.start(now)
            self.pump_zrtp()

    def _sample_media(self):
        """Feed the media counters to the policy (liveness, SRTP health) a few times a second."""
        self._sampler = None
        if self.ended or self.stream is None:
            return
        stats = self.stream.counters()
        self.policy.media_progress(stats[0], stats[1], self.endpoint.loop.now())
        self.pump_policy()
        if not self.ended:
            self._sampler = self.endpoint.loop.call_later(policy.MEDIA_SAMPLE, self._sample_media)

    def open_policy(self):
        """The front end has shown "media up": from now on the policy's verdicts go out (a clear call's "not
        secure" comes after "in call", so the phone shows both)."""
        self._policy_open = True
        self.pump_policy()

    def pump_policy(self):
        """Carry out what the call policy decided; the front ends hear about it through the endpoint."""
        if not self._policy_open:
            return
        self.policy_timer.rearm()
        while True:
            event = self.policy.next_event()
            if event is None:
                break
            if isinstance(event, policy.ReceiveKeys):
                self.stream.set_receive_keys(event.rx)
            elif isinstance(event, policy.MediaUp):
                self.stream.set_keys(event.tx, event.rx, keep_previous=event.rekey)
                self.summary.encryption = event.encryption
                if not self._socket_handed_over:
                    self._socket_handed_over = True
                    self._hand_socket_to_audio_thread()
                if event.encryption == "sdes" and self.policy.configured == "sdes":
                    self.summary.secure = True
            elif isinstance(event, policy.Secure):
                self._on_secure(event.info, event.rekey)
            elif isinstance(event, policy.NotSecure):
                if event.kind != policy.ENCRYPTION_OFF:
                    log.warning("CALL IS NOT SECURE: %s", event.reason)
                    self.summary.alarms.append("not secure: {}".format(event.reason))
                self.endpoint.emit("not-secure", self, event)
            elif isinstance(event, policy.Alarm):
                log.warning("SECURITY ALARM (%s): %s", event.kind, event.reason)
                self.summary.alarms.append(event.reason)
                if event.kind == policy.PEER_STOPPED_ENCRYPTING:
                    self.summary.secure = False
                self.endpoint.emit("alarm", self, event)
            elif isinstance(event, policy.Ended):
                self.lost_tail = event.lost_tail
                log.warning("ending the call: %s", event.reason)
                self.endpoint.emit("end", self, event)
        self.policy_timer.rearm()

    def _on_readable(self):
        _drain(self.sock, self._dispatch_datagram)

    def _dispatch_datagram(self, data, addr):
        """One datagram from the RTP port, demultiplexed by its first byte (RFC 7983)."""
        if self.ended:
            return
        kind = demux.classify(data)
        if kind == demux.ZRTP and self.zrtp is not None:
            if self.remote is None or self.remote[1] == 0:
                self.remote = addr
            now = self.endpoint.loop.now()
            self.policy.zrtp_packet(now, hello=data[16:24] == b"Hello   ")  # RFC 6189 §5: type at 12 + 4
            self.zrtp.receive_datagram(data, now)
            self.pump_zrtp()
        elif kind in (demux.RTP, demux.RTCP) and self.stream is not None:
            self.stream.deliver(data, addr)
        else:
            self.ignored_datagrams += 1  # STUN without ICE, DTLS, noise: dropped and counted

    def _hand_socket_to_audio_thread(self):
        """Once the keys are in place the audio thread reads the RTP port itself, once per period, and
        the control loop stops waking for every packet (half the phone's CPU in a call). What is not
        media (ZRTP after SecureState: Conf2ACK retransmissions, GoClear, Ping) comes back here."""
        loop = self.endpoint.loop
        loop.remove_reader(self.sock)

        def on_other(data, addr):  # runs on the audio thread
            loop.call_soon_threadsafe(lambda: self._dispatch_datagram(data, addr))

        self.stream.read_socket(on_other)

    def _on_rtcp_readable(self):
        """RTCP from a peer without rtcp-mux arrives on our RTP port + 1."""
        _drain(self.rtcp_sock, self._dispatch_rtcp)

    def _dispatch_rtcp(self, data, addr):
        if self.stream is not None and demux.classify(data) == demux.RTCP:
            self.stream.deliver(data, addr)
        else:
            self.ignored_datagrams += 1

    def pump_zrtp(self):
        """Handle the engine's events, then send what it queued: new keys are in place before the Confirm2 or
        Conf2ACK that lets the peer switch leaves (RFC 6189 §4.6), so no packet of a re-key is lost."""
        from firmware.zrtp import engine as zrtp_engine

        if self.zrtp is None:
            return
        now = self.endpoint.loop.now()
        while True:
            event = self.zrtp.next_event()
            if event is None:
                break
            if isinstance(event, zrtp_engine.Secure):
                self.policy.zrtp_secure(event, now)
            elif isinstance(event, zrtp_engine.CacheUpdated):
                self.endpoint.save_zrtp_cache()
            elif isinstance(event, zrtp_engine.ReceiveKeys):
                self.policy.zrtp_receive_keys((event.receive_profile, event.receive_key, event.receive_salt), now)
            elif isinstance(event, zrtp_engine.Alarm):
                self.policy.zrtp_alarm(event.kind, event.reason, now)
            elif isinstance(event, zrtp_engine.Failed):
                # The policy says what it means for the call (a fallback, the end of a secure_only call, or
                # nothing when the call already went on without ZRTP: then it is not worth an alarm).
                log.warning("ZRTP failed (%s): %s", event.kind, event.reason)
                self.policy.zrtp_failed(event.kind, event.reason, now)
        self.pump_policy()
        if self.remote is not None:
            for datagram in self.zrtp.datagrams_to_send(now):
                try:
                    self.sock.sendto(datagram, self.remote)
                except (OSError, ValueError, TypeError) as exc:  # the SDP check keeps odd addresses out
                    log.debug("ZRTP send failed: %s", exc)
        else:
            self.zrtp.datagrams_to_send(now)  # nowhere to send yet; Hello is retransmitted anyway
        self.zrtp_timer.rearm()

    def _on_secure(self, event, rekey):
        now = self.endpoint.loop.now()
        peer_zid = event.peer_zid if isinstance(event.peer_zid, str) else hex_id(event.peer_zid)
        s = self.summary
        s.secure = True
        s.sas = event.sas
        s.sas_type = event.sas_type
        if rekey and s.zrtp is not None:
            s.zrtp["rekeys"] = s.zrtp.get("rekeys", 0) + 1
            log.info(
                "call re-keyed by a new ZRTP exchange: %s SAS %s verified=%s", _suite(event), event.sas, event.verified
            )
            self.endpoint.emit("secure", self, event)
            return
        self.secure_at = now
        s.zrtp = {
            "key_agreement": event.key_agreement,
            "cipher": event.cipher,
            "hash": event.hash,
            "auth_tag": event.auth_tag,
            "verified": bool(event.verified),
            "cache_mismatch": bool(event.cache_mismatch),
            "peer_zid": peer_zid,
            "secure_ms": round((now - self.started_at) * 1000.0, 1),
        }
        log.info(
            "call secure: %s SAS %s verified=%s cache_mismatch=%s",
            _suite(event),
            event.sas,
            event.verified,
            event.cache_mismatch,
        )
        self.endpoint.emit("secure", self, event)

    def confirm_sas(self):
        if self.zrtp is not None and self.secure_at is not None:
            self.zrtp.confirm_sas(self.endpoint.loop.now())
            self.pump_zrtp()
            self.endpoint.save_zrtp_cache()
            if self.summary.zrtp is not None:
                self.summary.zrtp["sas_confirmed"] = True

    def reject_sas(self):
        if self.zrtp is not None:
            self.zrtp.reject_sas(self.endpoint.loop.now())
            self.pump_zrtp()
            self.endpoint.save_zrtp_cache()

    def close(self):
        if self.ended:
            return
        self.ended = True
        if self.zrtp_timer is not None:
            self.zrtp_timer.cancel()
        self.policy_timer.cancel()
        if self._sampler is not None:
            self._sampler.cancel()
        if self.stream is not None:
            self.stream.stop()
            stats = self.stream.stats()
            for key in self.summary.rtp:
                self.summary.rtp[key] = int(stats.get(key, 0))
            self.summary.rtp["lost"] += self.lost_tail  # a dead peer's silent tail (issue 11)
            for key in ("jitter_ms", "playout_delay_ms", "underruns", "concealed", "rtt_ms", "dtmf_received"):
                if stats.get(key) is not None:
                    self.summary.extra_rtp[key] = stats[key]
            log.info("call media: %s", {k: stats.get(k) for k in sorted(stats)})
        # Datagrams on our media ports that were neither ours to key nor media (STUN without ICE, noise).
        self.summary.extra_rtp["ignored"] = self.ignored_datagrams
        for sock in (self.sock, self.rtcp_sock):
            if sock is not None:
                self.endpoint.loop.remove_reader(sock)
                sock.close()


def _drain(sock, handle):
    """Hand every datagram waiting on a non-blocking socket to handle(data, addr), at most a bounded
    number per wake-up so one busy socket cannot starve the loop."""
    for _ in range(MAX_DATAGRAMS_PER_READ):
        try:
            data, addr = sock.recvfrom(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # ICMP port unreachable from a peer that went away: keep going
            continue
        handle(data, addr)


def _ssrc(rng):
    return int.from_bytes(rng(4), "big")


def hex_id(data):
    import binascii

    return binascii.hexlify(data).decode()


def _suite(secure):
    """The algorithms of a ZRTP Secure event for the log: key agreement/cipher/hash/auth tag."""
    return "{}/{}/{}/{}".format(secure.key_agreement, secure.cipher, secure.hash, secure.auth_tag)
