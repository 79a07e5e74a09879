"""One call's media on the shell side: the RTP/RTCP sockets, the ZRTP engine, the audio stream, and the call
policy (firmware.call) that decides what the media may do. Host-only (the shell).

The SDP offer/answer of the call is in call_sdp.py (a mixin of CallMedia); where the microphone and the
speaker are (WAV files, silence, ALSA) is audio_plan.py."""

import logging
import time

from firmware import call as policy
from firmware.rtp import demux
from firmware.runtime.audio_plan import AudioPlan  # noqa: F401 (the front ends take it from here)
from firmware.runtime.call_sdp import CallSdp
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


class CallMedia(CallSdp):
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
        self.telephone_event = None  # its payload type, from the peer's SDP
        self.red_payload_type = None  # RFC 2198 redundancy, when both SDPs have it for the codec
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
            red_payload_type=self.red_payload_type,
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
            for key in (
                "jitter_ms",
                "playout_delay_ms",
                "underruns",
                "concealed",
                "recovered",
                "rtt_ms",
                "dtmf_received",
            ):
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
