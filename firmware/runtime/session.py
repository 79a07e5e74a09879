"""The glue: one SIP endpoint, its calls (RTP socket, ZRTP engine, SRTP media), and the two front ends
(`sotto call/answer` and `sotto run`).

Everything here runs on the Loop's thread, except the audio loop inside MediaStream. The sans-I/O
engines (UserAgent, ZrtpEngine, Phone) are pumped the same way: feed input with `now`, send what they
want sent, re-arm their one timer, then drain their events.
"""

import logging
import os
import signal
import socket
import time

from audio.codecs import SAMPLE_RATES
from firmware import call as policy
from firmware import config as configuration
from firmware import sdp
from firmware.errors import ConfigError, LocalProtocolError, RemoteProtocolError
from firmware.rtp import demux
from firmware.runtime.loop import Loop
from firmware.runtime.summary import Summary
from firmware.sip import events as sip_events

log = logging.getLogger("sotto.session")

# After a hang-up, how long we keep pumping for the BYE transaction to finish.
HANGUP_GRACE = 3.0
MAX_DATAGRAMS_PER_READ = 64


class StartupError(Exception):
    """The phone could not start (a port in use, no audio device...): one line, exit 1."""


class EngineTimer:
    """Keeps one Loop timer armed at a sans-I/O engine's `get_timer()` deadline."""

    def __init__(self, loop, engine, after_fire):
        self._loop = loop
        self._engine = engine
        self._after_fire = after_fire
        self._handle = None
        self._when = None

    def rearm(self):
        when = self._engine.get_timer()
        if when == self._when:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._when = when
        self._handle = None if when is None else self._loop.call_at(when, self._fire)

    def _fire(self):
        self._handle = None
        self._when = None
        self._engine.handle_timer(self._loop.now())
        self._after_fire()

    def cancel(self):
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._when = None


def _bind_udp(host, port, what):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError("cannot bind {} to {}:{}: {}".format(what, host, port, exc.strerror)) from None
    sock.setblocking(False)
    return sock


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
        self.offer_sdes = offer_sdes or settings_encryption(endpoint) == "sdes"
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
        self._sampler = None
        # What the media may do (clear, SDES, ZRTP), when to give up on ZRTP, alarms, liveness: one policy.
        self.policy = policy.CallPolicy(self.encryption, settings.zrtp.secure_only,
                                        settings.media.inactivity_timeout)
        self.policy_timer = EngineTimer(endpoint.loop, self.policy, self.pump_policy)
        if self.encryption == "zrtp":
            from firmware.zrtp.engine import Preferences, ZrtpEngine

            z = settings.zrtp
            prefs = Preferences(hashes=z.hashes, ciphers=z.ciphers, auth_tags=z.auth_tags,
                                key_agreements=z.key_agreements, sas_types=z.sas)
            cache = endpoint.zrtp_cache()
            self.zrtp = ZrtpEngine(cache.zid, cache, prefs, endpoint.rng, ssrc=_ssrc(endpoint.rng),
                                   peer_uri=peer_uri, wall_time=int(time.time()))
            self.zrtp_timer = EngineTimer(endpoint.loop, self.zrtp, self.pump_zrtp)
        endpoint.loop.add_reader(self.sock, self._on_readable)
        if self.rtcp_sock is not None:
            endpoint.loop.add_reader(self.rtcp_sock, self._on_rtcp_readable)

    # -- SDP ----------------------------------------------------------------------------------------
    def _sdp_common(self):
        settings = self.endpoint.settings
        address, port = self.endpoint.advertised_media(self.local_port)
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
        return sdp.build_offer(codecs, address, port, rtcp_mux=True, **kwargs).to_bytes()

    def answer(self, offer_bytes):
        """Our SDP answer to the peer's offer; RemoteProtocolError(488) when we cannot take it."""
        offer = sdp.parse_sdp(offer_bytes)
        remote = sdp.remote_media(offer)
        codecs, address, port, kwargs = self._sdp_common()
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
        answer, codec = sdp.answer_offer(offer, codecs, address, port, **kwargs)
        self._use_remote(remote, codec)
        return answer.to_bytes()

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
        codecs, address, port, kwargs = self._sdp_common()
        if self.sdes_line is not None:
            kwargs["crypto_lines"] = [self.sdes_line]
        answer, _codec = sdp.answer_offer(offer, codecs, address, port, **kwargs)
        self.policy.reinvite(remote.zrtp_hash, bool(remote.crypto_lines), remote.direction,
                             self.endpoint.loop.now())
        if remote.port and self.stream is not None:
            self.stream.set_remote((remote.address, remote.port))
        self.pump_policy()
        return answer.to_bytes()

    def reoffer(self, direction):
        """A re-INVITE offer for hold ("sendonly", RFC 3264 §8.4) or resume ("sendrecv"), keeping the call's
        keying (our a=zrtp-hash, the a=crypto line in force) so the peer sees no downgrade."""
        codecs, address, port, kwargs = self._sdp_common()
        if self.sdes_line is not None:
            kwargs["crypto_lines"] = [self.sdes_line]
        self._sdp_version += 1  # RFC 3264 §8: a new offer in the session has the next o= version
        return sdp.build_offer([self.codec.name] if self.codec else codecs, address, port, direction=direction,
                               rtcp_mux=self.rtcp_mux, session_version=self._sdp_version, **kwargs).to_bytes()

    def accept_reanswer(self, answer_bytes, on_hold):
        """The peer's answer to our re-INVITE: follow a moved media address; tell the policy about hold."""
        if answer_bytes:
            remote = sdp.remote_media(sdp.parse_sdp(answer_bytes))
            if remote.port and self.stream is not None:
                self.stream.set_remote((remote.address, remote.port))
        self.policy.hold(on_hold, self.endpoint.loop.now())
        self.pump_policy()

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
        self.stream = MediaStream(self.sock, self.codec.name, self.codec.payload_type, self.telephone_event,
                                  source, sink, self.endpoint.rng, remote=self.remote, rtcp_mux=self.rtcp_mux,
                                  keys_required=True)
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
            self.policy.zrtp_packet(now)
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
                log.warning("ZRTP failed (%s): %s", event.kind, event.reason)
                self.summary.alarms.append("ZRTP failed: {}".format(event.reason))
                self.policy.zrtp_failed(event.kind, event.reason, now)
        self.pump_policy()
        if self.remote is not None:
            for datagram in self.zrtp.datagrams_to_send(now):
                try:
                    self.sock.sendto(datagram, self.remote)
                except OSError as exc:
                    log.debug("ZRTP send failed: %s", exc)
        else:
            self.zrtp.datagrams_to_send(now)  # nowhere to send yet; Hello is retransmitted anyway
        self.zrtp_timer.rearm()

    def _on_secure(self, event, rekey):
        now = self.endpoint.loop.now()
        peer_zid = event.peer_zid if isinstance(event.peer_zid, str) else _hex(event.peer_zid)
        s = self.summary
        s.secure = True
        s.sas = event.sas
        s.sas_type = event.sas_type
        if rekey and s.zrtp is not None:
            s.zrtp["rekeys"] = s.zrtp.get("rekeys", 0) + 1
            log.info("call re-keyed by a new ZRTP exchange: %s/%s/%s/%s SAS %s verified=%s", event.key_agreement,
                     event.cipher, event.hash, event.auth_tag, event.sas, event.verified)
            self.endpoint.emit("secure", self, event)
            return
        self.secure_at = now
        s.zrtp = {"key_agreement": event.key_agreement, "cipher": event.cipher, "hash": event.hash,
                  "auth_tag": event.auth_tag, "verified": bool(event.verified),
                  "cache_mismatch": bool(event.cache_mismatch), "peer_zid": peer_zid,
                  "secure_ms": round((now - self.started_at) * 1000.0, 1)}
        log.info("call secure: %s/%s/%s/%s SAS %s verified=%s cache_mismatch=%s", event.key_agreement,
                 event.cipher, event.hash, event.auth_tag, event.sas, event.verified, event.cache_mismatch)
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


def settings_encryption(endpoint):
    return endpoint.settings.media.encryption


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


def _hex(data):
    import binascii

    return binascii.hexlify(data).decode()


KEEPALIVE_INTERVAL = 30.0
NETWORK_CHECK_INTERVAL = 5.0  # s between route checks while the registration has failed


def _is_ip_literal(host):
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return True
    except (OSError, ValueError):
        return False


def _open_sip_transport(settings, local_address, loop, on_message, on_error):
    from firmware.runtime.sip_transport import SipTransport, client_tls_context

    account = settings.account
    tls_context = None
    if account.transport == "tls":
        try:
            tls_context = client_tls_context(pinned_cert=account.tls_certificate or None)
        except (OSError, ValueError) as exc:
            raise ConfigError(settings.source, "account.tls_certificate",
                              "a readable PEM certificate ({})".format(exc)) from None
    try:
        # With the writer hooks and on_error, TCP/TLS connects and handshakes never block the loop; a
        # target that fails is replaced by the next RFC 3263 one, and when all fail on_error says so.
        return SipTransport(account.transport, local_address, on_message=on_message, add_reader=loop.add_reader,
                            remove_reader=loop.remove_reader, add_writer=loop.add_writer,
                            remove_writer=loop.remove_writer, call_later=loop.call_later, clock=loop.now,
                            on_error=on_error, tls_context=tls_context)
    except OSError as exc:
        raise StartupError("cannot bind SIP ({}) to {}:{}: {}".format(account.transport, local_address[0],
                                                                     local_address[1], exc.strerror)) from None


class Endpoint:
    """One SIP identity on one local address: the SIP socket, the UserAgent and the ZRTP cache.

    Listeners registered with `listen(callback)` get `callback(kind, call_media, payload)` for:
    ("sip", None, sip event), ("secure", CallMedia, zrtp Secure), ("alarm", CallMedia, reason),
    ("zrtp-failed", CallMedia, reason).
    """

    def __init__(self, loop, settings, rng=os.urandom, public_address=None):
        from firmware.sip.useragent import UserAgent

        self.loop = loop
        self.settings = settings
        self.rng = rng
        host, port = configuration.host_port(settings.sip.listen)
        self.media_host = host
        self.public_address = public_address
        self._rtp_port = settings.media.rtp_port
        account = settings.account
        proxy = configuration.host_port(account.proxy) if account.proxy else None
        self.transport = _open_sip_transport(settings, (host, port), loop, self._on_sip_message, self._on_sip_error)
        self.ua = UserAgent((host, port), rng, transport=account.transport, aor=account.uri or None,
                            password=account.password or None, display_name=account.display_name or None,
                            outbound_proxy=proxy)
        self.ua_timer = EngineTimer(loop, self.ua, self.pump)
        self._listeners = []
        self._cache = None
        self._store = None
        self.cache_problem = None
        self._pumping = False
        self._keepalive = loop.call_later(KEEPALIVE_INTERVAL, self._send_keepalive)
        self._route_lost = False
        self._network_watch = loop.call_later(NETWORK_CHECK_INTERVAL, self._watch_network)
        self._warm_up()

    def _warm_up(self):
        """Load the media and ZRTP machinery and the cache now, not while the first call is being set up
        (on a cold start that costs a couple of hundred milliseconds of call set-up time)."""
        import firmware.runtime.media  # noqa: F401
        import firmware.srtp.sdes  # noqa: F401

        if self.settings.media.encryption == "zrtp":
            import firmware.zrtp.engine  # noqa: F401

            self.zrtp_cache()

    def listen(self, callback):
        self._listeners.append(callback)

    def emit(self, kind, call, payload):
        for callback in list(self._listeners):
            callback(kind, call, payload)

    # -- ports and addresses --------------------------------------------------------------------------
    def next_rtp_port(self):
        """The configured RTP port for the first call, then any free port (0)."""
        port, self._rtp_port = self._rtp_port, 0
        return port

    def advertised_media(self, local_port):
        """(address, port) for our SDP: the local ones, or --public-address (a NAT mapping, a relay)."""
        if not self.public_address:
            return self.media_host, local_port
        if ":" in self.public_address and not self.public_address.startswith("["):
            host, port = configuration.host_port(self.public_address)
            return host, port
        return self.public_address, local_port

    # -- ZRTP cache -----------------------------------------------------------------------------------
    def zrtp_cache(self):
        if self._cache is None:
            from firmware.runtime.zrtp_store import ZrtpStore

            self._store = ZrtpStore(self.settings.cache_path, rng=self.rng)
            try:
                self._cache = self._store.load()
            except OSError as exc:
                raise StartupError("cannot open the ZRTP cache {}: {}".format(self.settings.cache_path,
                                                                              exc.strerror or exc)) from None
            # A corrupt cache was moved aside (the store logged it at ERROR); front ends report it too.
            self.cache_problem = self._store.problem
        return self._cache

    def save_zrtp_cache(self):
        if self._cache is not None:
            try:
                self._store.save_if_dirty(self._cache)
            except OSError as exc:  # a full or read-only disk must not end the call; say it loudly
                log.error("could not save the ZRTP cache %s: %s", self._store.path, exc)

    # -- SIP ------------------------------------------------------------------------------------------
    def _on_sip_message(self, data, addr):
        self.ua.receive_datagram(data, addr[:2], self.loop.now())
        self.pump()

    def _on_sip_error(self, addr):
        """Every transport target for `addr` failed after send() had queued a message: the UserAgent
        fails the transaction at once (503) instead of waiting for Timer B/F."""
        log.warning("SIP transport to %s failed", addr[0])
        self.ua.transport_error(addr, self.loop.now())
        self.pump()

    def _send_keepalive(self):
        """RFC 5626 §4.4.1: CRLF pings keep TCP/TLS connections (and their NAT bindings) open."""
        self.transport.keepalive()
        self._keepalive = self.loop.call_later(KEEPALIVE_INTERVAL, self._send_keepalive)

    def _watch_network(self):
        """While the registration has failed, look every few seconds whether the registrar has a route
        again (an interface came back, DHCP gave an address): then register at once instead of
        waiting out the back-off (issue 11). A route that was never lost changes nothing, so a
        registrar that refuses us is not hammered."""
        from firmware.runtime.sip_transport import route_available
        from firmware.sip import registration

        hop = self.ua.registration_next_hop
        if self.ua.registration_state == registration.FAILED and hop is not None and _is_ip_literal(hop[0]):
            if not route_available(hop):
                self._route_lost = True
            elif self._route_lost:
                self._route_lost = False
                log.warning("SIP: the route to %s is back; registering again", hop[0])
                self.ua.network_up(self.loop.now())
                self.pump()
        self._network_watch = self.loop.call_later(NETWORK_CHECK_INTERVAL, self._watch_network)

    def pump(self):
        """Send what the UserAgent wants sent, hand its events out, re-arm its timer.

        Listeners may issue commands while handling an event; the loop below sends what those produce
        (a nested pump() call just returns, the outer one carries on).
        """
        if self._pumping:
            return
        self._pumping = True
        try:
            while True:
                now = self.loop.now()
                for data, addr in self.ua.datagrams_to_send(now):
                    self._send_sip(data, addr)
                event = self.ua.next_event()
                if event is None:
                    break
                self.emit("sip", None, event)
            self.ua_timer.rearm()
        finally:
            self._pumping = False

    def _send_sip(self, data, addr):
        # The transport resolves host names per RFC 3263 and opens TCP/TLS connections as needed.
        if not self.transport.send(data, addr):
            log.warning("SIP send to %s failed", addr[0])
            self.ua.transport_error(addr, self.loop.now())

    def close(self):
        self.ua_timer.cancel()
        self._keepalive.cancel()
        self._network_watch.cancel()
        self.transport.close()


# Final SIP statuses that mean "the person or their phone declined", as opposed to a failure.
REJECTIONS = (403, 404, 410, 480, 486, 600, 603, 604)


class CallController:
    """What every front end does with one call at a time: place it, answer it, follow re-INVITEs,
    hang it up. Subclasses decide what the events mean for them (a summary, a phone screen)."""

    def __init__(self, endpoint, settings, audio):
        self.endpoint = endpoint
        self.loop = endpoint.loop
        self.ua = endpoint.ua
        self.settings = settings
        self.audio = audio
        self.call_id = None
        self.media = None
        self.summary = None
        self.hanging_up = False
        self._target = None
        endpoint.listen(self.on_event)

    # -- commands ---------------------------------------------------------------------------------
    def new_summary(self):
        """The record of the next call (the phone keeps one per call; `sotto call` only ever has one)."""
        return Summary(self.settings.media.encryption)

    def place(self, uri, offer_sdes=False):
        self.summary = self.new_summary()
        self.hanging_up = False
        self._target = uri
        self.media = CallMedia(self.endpoint, self.summary, uri, offer_sdes=offer_sdes)
        self.call_id = self.ua.invite(uri, self.media.offer(), self.loop.now())
        self.endpoint.pump()

    def _retry_with_sdes(self, event):
        """A phone without ZRTP that insists on SRTP (SDES mandatory) refuses a ZRTP-only offer with 488 (RFC
        3261 §21.4.26). Every peer gets a working call: offer again, ZRTP and SDES together (RFC 4568)."""
        if (event.status != 488 or self.media is None or self.media.offer_sdes or self.media.encryption != "zrtp"
                or self.settings.zrtp.secure_only):
            return False
        log.warning("the peer refused our ZRTP offer (488): offering SDES-SRTP as well")
        self.media.close()
        self.call_id = None
        summary = self.summary
        self.place(self._target, offer_sdes=True)
        self.summary = summary
        self.media.summary = summary
        return True

    def take_incoming(self, event):
        """Adopt an incoming call and prepare our answer; False (and the call refused) if we cannot."""
        now = self.loop.now()
        self.summary = self.new_summary()
        self.hanging_up = False
        self.call_id = event.call_id
        self.media = CallMedia(self.endpoint, self.summary, str(event.from_uri))
        try:
            self._answer_sdp = self.media.answer(event.sdp)
        except RemoteProtocolError as exc:
            self.ua.reject(event.call_id, exc.status if exc.status >= 400 else 488, now)
            self.call_over("failed", "cannot answer the offer: {}".format(exc), exc.status)
            return False
        return True

    def answer(self):
        now = self.loop.now()
        self.ua.answer(self.call_id, self._answer_sdp, now)
        self.summary.sip_status = 200
        self.endpoint.pump()
        self._start_media()

    def hangup(self, result=None, reason=None):
        """End the call politely (BYE, CANCEL or a decline); the summary keeps the first reason."""
        if result is not None and self.summary is not None:
            self.summary.finish(result, reason)
        if self.call_id is None or self.hanging_up:
            return
        self.hanging_up = True
        call_id = self.call_id
        try:
            self.ua.hangup(call_id, self.loop.now())
        except LocalProtocolError:
            self.call_over(result or "completed", reason or "hung up")
            return
        self.endpoint.pump()
        self.loop.call_later(HANGUP_GRACE, lambda: self._hangup_grace_over(call_id))

    def _hangup_grace_over(self, call_id):
        if self.call_id == call_id:
            self.call_over("failed", "the peer did not confirm the hang-up")

    # -- events -----------------------------------------------------------------------------------
    def on_event(self, kind, media, payload):
        if kind == "sip":
            self._on_sip(payload)
        elif media is not None and media is not self.media:
            return
        elif kind == "secure":
            self.on_secure(payload)
        elif kind == "not-secure":
            self.on_not_secure(payload)
        elif kind == "alarm":
            self.on_alarm(payload)
        elif kind == "end":
            self.hangup(payload.result, payload.reason)

    def _on_sip(self, event):
        e = sip_events
        if isinstance(event, e.IncomingCall):
            if self.call_id is not None:
                self.ua.reject(event.call_id, 486, self.loop.now())  # one call at a time: Busy Here
            else:
                self.on_incoming(event)
            return
        if isinstance(event, (e.Registered, e.RegistrationFailed, e.Unregistered)):
            self.on_registration(event)
            return
        if getattr(event, "call_id", None) != self.call_id or self.call_id is None:
            return
        if isinstance(event, e.CallRinging):
            self.on_ringing()
        elif isinstance(event, e.CallAnswered):
            try:
                self.media.accept_answer(event.sdp)
            except RemoteProtocolError as exc:
                self.hangup("failed", "unusable SDP answer: {}".format(exc))
                return
            self.summary.sip_status = 200
            self._start_media()
        elif isinstance(event, e.CallFailed):
            if self._retry_with_sdes(event):
                return
            result = "rejected" if event.status in REJECTIONS else "failed"
            self.call_over(result, event.reason or "call failed", event.status)
        elif isinstance(event, e.CallEnded):
            if self.summary.sip_status == 0 and event.sip_status:
                self.summary.sip_status = event.sip_status
            if self.media is None or self.media.media_up_at is None:
                self.call_over("failed", event.reason, event.sip_status)
            else:
                self.call_over(*self.media.policy.result_of_hangup(event.reason))
        elif isinstance(event, e.ReinviteReceived):
            self._on_reinvite(event)
        elif isinstance(event, e.ReferReceived):
            self.on_refer(event)
        elif isinstance(event, (e.ReinviteAnswered, e.ReinviteFailed, e.ReferProgress)):
            self.on_own_request_outcome(event)

    def _start_media(self):
        self.on_media_starting()
        try:
            self.media.start(self.audio)
        except StartupError as exc:
            self.hangup("failed", str(exc))
            self.on_audio_missing(str(exc))
            return
        self.on_media_up()
        self.media.open_policy()

    def _on_reinvite(self, event):
        """A re-INVITE (hold, resume, new address); the call policy judges what it does to the keying."""
        now = self.loop.now()
        try:
            answer = self.media.answer_reinvite(event.sdp)
        except RemoteProtocolError as exc:
            self.ua.reject_reinvite(event.call_id, 488, now)
            log.warning("re-INVITE refused: %s", exc)
            return
        self.ua.answer_reinvite(event.call_id, answer, now)

    def call_over(self, result, reason, status=None):
        if self.summary is not None:
            self.summary.finish(result, reason, status)
        if self.media is not None:
            self.media.close()
        self.call_id = None
        self.on_call_over()

    def end_for_transfer(self):
        """Leave the current call for a transfer (BYE, which also ends the REFER subscription); the
        CallEnded that follows belongs to a call we no longer follow."""
        self.summary.finish("completed", "transferred")
        try:
            self.ua.hangup(self.call_id, self.loop.now())
        except LocalProtocolError:
            pass
        self.endpoint.pump()
        self.media.close()
        self.call_id = None
        self.media = None

    # -- hooks for the front ends -----------------------------------------------------------------
    def on_refer(self, event):
        """A blind transfer (RFC 3515). `sotto call/answer` place exactly one call, so they decline it."""
        log.info("transfer to %s requested; declined (one call per run)", event.target)
        self.ua.notify_refer(event.call_id, 603, self.loop.now())
        self.endpoint.pump()

    def on_incoming(self, event):
        self.ua.reject(event.call_id, 486, self.loop.now())

    def on_own_request_outcome(self, event):
        """How our own re-INVITE or REFER went (ReinviteAnswered, ReinviteFailed, ReferProgress)."""

    def on_registration(self, event):
        pass

    def on_ringing(self):
        pass

    def on_media_starting(self):
        pass

    def on_media_up(self):
        pass

    def on_secure(self, event):
        pass

    def on_not_secure(self, event):
        """firmware.call.NotSecure: the call goes on without end-to-end keys (already logged, in the summary)."""

    def on_alarm(self, event):
        """firmware.call.Alarm (already logged, in the summary)."""

    def on_audio_missing(self, why):
        pass

    def on_call_over(self):
        pass


class SingleCall(CallController):
    """`sotto call URI` / `sotto answer`: one call from start to summary (issue 2 contract)."""

    def __init__(self, endpoint, mode, settings, args, audio):
        CallController.__init__(self, endpoint, settings, audio)
        from firmware.runtime.actions import InCallActions

        self.mode = mode  # "call" or "answer"
        self.args = args
        self.actions = InCallActions(self, getattr(args, "at", None) or [])
        self.summary = Summary(settings.media.encryption)
        self.done = False
        self.registered = False
        self.stopped_by_signal = False
        self._duration_timer = None
        self._unregistering = False
        self._began = False

    def start(self):
        if self.endpoint.cache_problem:
            self.summary.alarms.append(self.endpoint.cache_problem)
        if self.settings.account.uri:
            self.ua.register(self.loop.now())
            self.endpoint.pump()
        else:
            self._begin()

    def new_summary(self):
        return self.summary

    def _begin(self):
        self._began = True
        if self.mode == "call":
            self.place(self.args.uri)

    def on_registration(self, event):
        e = sip_events
        if isinstance(event, e.Registered):
            self.registered = self.summary.registered = True
            if not self._began and not self.done:
                self._begin()
        elif isinstance(event, e.RegistrationFailed):
            if not self._began:
                self.registered = self.summary.registered = False
                self.summary.finish("failed", "registration failed: {}".format(event.reason), event.status)
                self.done = True
        elif isinstance(event, e.Unregistered):
            self._unregistering = False

    def on_incoming(self, event):
        if self.mode != "answer" or self.done or not self._began:
            self.ua.reject(event.call_id, 486, self.loop.now())
            return
        if self.take_incoming(event):
            self.ua.ringing(event.call_id, self.loop.now())
            self.answer()

    def on_media_up(self):
        if self.settings.media.encryption == "sdes":
            self._arm_duration()
        self.actions.media_up()

    def on_own_request_outcome(self, event):
        e = sip_events
        if isinstance(event, e.ReinviteAnswered):
            self.actions.reinvite_answered(event.sdp)
        elif isinstance(event, e.ReinviteFailed):
            self.actions.reinvite_failed(event.status)
        elif isinstance(event, e.ReferProgress):
            self.actions.refer_progress(event.status, event.final)

    def on_secure(self, event):
        if self.args.confirm_sas and self.media.secure_at is not None:
            self.media.confirm_sas()
        self._arm_duration()

    def _arm_duration(self):
        if self.args.duration and self._duration_timer is None:
            self._duration_timer = self.loop.call_later(
                self.args.duration, lambda: self.hangup("completed", "duration reached"))

    def on_not_secure(self, event):
        self._arm_duration()  # not secure is loud (the call layer said so) but the call goes on

    def on_call_over(self):
        self.actions.cancel()
        self.summary.actions = self.actions.records
        self.done = True

    def on_signal(self):
        """SIGTERM/SIGINT: hang up politely; the summary is still printed."""
        self.stopped_by_signal = True
        if self.call_id is not None:
            up = self.media is not None and self.media.media_up_at is not None
            self.hangup("completed" if up else "failed", "stopped by signal")
        else:
            self.summary.finish("failed", "stopped by signal")
            self.done = True

    def unregister(self):
        if not self.registered:
            return
        self._unregistering = True
        try:
            self.ua.unregister(self.loop.now())
        except LocalProtocolError:
            return
        self.endpoint.pump()
        self.loop.run(until=lambda: not self._unregistering, timeout=2.0)


def run_single_call(settings, args):
    """`sotto call` and `sotto answer`: returns the Summary."""
    if settings.zrtp.secure_only and settings.media.encryption == "none":
        raise ConfigError("command line", "--secure-only", "--encryption zrtp or sdes (a plain call is never secure)")
    loop = Loop()
    try:
        endpoint = Endpoint(loop, settings, public_address=args.public_address or settings.sip.public_address or None)
    except StartupError:
        loop.close()
        raise
    runner = SingleCall(endpoint, args.command, settings, args, AudioPlan(play=args.play, record=args.record))
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, runner.on_signal)
    try:
        runner.start()
        finished = loop.run(until=lambda: runner.done, timeout=args.timeout)
        if not finished:
            runner.summary.finish("timeout", "gave up after {:g} s".format(args.timeout))
            runner.hangup()
            loop.run(until=lambda: runner.done, timeout=HANGUP_GRACE)
            if runner.media is not None:
                runner.media.close()
        runner.unregister()
    finally:
        endpoint.save_zrtp_cache()
        endpoint.close()
        loop.close()
    runner.summary.stopped_by_signal = runner.stopped_by_signal
    return runner.summary


# -- the phone itself (`sotto run`) -----------------------------------------------------------------

ECHO_NUMBER = "*43"
ECHO_USER = "echo"


class EchoAudio:
    """The echo test line's audio: what arrives is played back to the caller 20 ms periods later."""

    def open(self, codec):
        import collections

        from audio import wavfile

        rate = SAMPLE_RATES[codec]
        frames = collections.deque(maxlen=50)  # at most 1 s of echo delay

        class EchoSink(wavfile.NullSink):
            def write(self, pcm):
                frames.append(pcm)

        class EchoSource(wavfile.SilentSource):
            def read(self):
                silence = wavfile.SilentSource.read(self)
                return frames.popleft() if frames else silence

        return EchoSource(rate), EchoSink(rate)


class EchoLine(CallController):
    """A second Sotto on loopback that answers every call and echoes the audio, so that `make run` shows
    a secure call, the SAS and the trust button on one machine with no server. It confirms the SAS by
    itself (it is a test line, not a person), so the caller's trust press makes the next call verified.
    """

    def on_incoming(self, event):
        if self.take_incoming(event):
            self.ua.ringing(event.call_id, self.loop.now())
            self.answer()

    def on_secure(self, event):
        self.media.confirm_sas()


class PhoneCalls(CallController):
    """`sotto run`: the Phone state machine and its device, driving calls through the endpoint."""

    def __init__(self, endpoint, settings, audio, history):
        from firmware import phone as P

        CallController.__init__(self, endpoint, settings, audio)
        self.P = P
        self.history = history  # device.HistoryStore
        self.volume = None  # the phone's, once bound
        self.muted = False
        self.driver = None
        self._incoming = None
        self._tone_player = None  # a tone outside a call (ring, ringback): media.TonePlayer

    def bind(self, driver):
        self.driver = driver
        self.volume = driver.phone.volume
        self.muted = driver.phone.muted

    def feed(self, event):
        self.driver.feed(event, self.loop.now())

    # -- phone commands -> the call ---------------------------------------------------------------
    def dispatch(self, command, now):
        P = self.P
        if isinstance(command, P.Dial):
            if self.call_id is None:
                self.place(command.uri)
        elif isinstance(command, P.Answer):
            if self.call_id is not None and self._incoming is not None:
                self._incoming = None
                self.answer()
        elif isinstance(command, P.Reject):
            if self.call_id is not None:
                self.ua.reject(self.call_id, command.status, now)
                self.endpoint.pump()
                self.call_over("rejected", "declined")
        elif isinstance(command, P.Hangup):
            self.hangup("completed", "hung up")
        elif isinstance(command, P.ConfirmSas):
            if self.media is not None:
                self.media.confirm_sas()
        elif isinstance(command, P.RejectSas):
            if self.media is not None:
                self.media.reject_sas()
        elif isinstance(command, P.SendDtmf):
            if self.media is not None and self.media.stream is not None:
                self.media.stream.send_dtmf(command.digit)
        elif isinstance(command, P.ResetTrust):
            self._reset_trust(command.peer_zid)
        elif isinstance(command, P.SaveHistory):
            try:
                self.history.save(command.entries)
            except OSError as exc:
                log.error("could not save the call history %s: %s", self.history.path, exc)
        elif isinstance(command, P.PlayTone):
            self._tone(command.name)
        elif isinstance(command, P.StopTone):
            self._tone(None)
        elif isinstance(command, P.SetVolume):
            self.volume = command.level
            self._apply_audio_settings()
        elif isinstance(command, P.SetMute):
            self.muted = command.muted
            self._apply_audio_settings()

    def _apply_audio_settings(self):
        """Volume and mute live on the phone; each call's stream takes them over when it starts."""
        from audio.gain import volume_gain

        if self.media is not None and self.media.stream is not None:
            self.media.stream.set_volume(volume_gain(self.volume))
            self.media.stream.set_mute(self.muted)

    def _tone(self, name):
        """PlayTone/StopTone: in a call the stream mixes the tone in; outside one (the ring, ringback
        while the far end rings) a TonePlayer plays it on the speaker until the media takes over."""
        from audio import tones
        from firmware.runtime.media import TonePlayer

        cadence = {"ringback": tones.RINGBACK, "alarm": tones.ERROR, "ring": tones.RING}.get(name)
        self.stop_tone_player()
        if self.media is not None and self.media.stream is not None:
            self.media.stream.set_tone(cadence)
            return
        if cadence is None:
            return
        try:
            sink = self.audio.open_speaker()
        except StartupError as exc:
            log.warning("tone %s not played: %s", name, exc)
            return
        self._tone_player = TonePlayer(sink, cadence)
        self._tone_player.start()

    def stop_tone_player(self):
        player, self._tone_player = self._tone_player, None
        if player is not None:
            player.stop()
            player.sink.close()

    def on_media_starting(self):
        self.stop_tone_player()  # the call's stream needs the speaker

    def _reset_trust(self, peer_zid):
        import binascii

        cache = self.endpoint.zrtp_cache()
        try:
            cache.reset(binascii.unhexlify(peer_zid))
        except (ValueError, TypeError, binascii.Error):
            log.warning("reset trust: not a ZID: %r", peer_zid)
            return
        self.endpoint.save_zrtp_cache()

    # -- call events -> the phone -----------------------------------------------------------------
    def on_registration(self, event):
        e = sip_events
        if isinstance(event, e.Registered):
            self.feed(self.P.Registered())
        elif isinstance(event, e.RegistrationFailed):
            self.feed(self.P.RegistrationFailed(event.reason))

    def on_incoming(self, event):
        if self.take_incoming(event):
            self._incoming = event
            self.ua.ringing(event.call_id, self.loop.now())
            self.endpoint.pump()
            self.feed(self.P.CallIncoming(str(event.from_uri), event.from_display))

    def on_ringing(self):
        self.feed(self.P.CallRinging())

    def on_media_up(self):
        self._apply_audio_settings()
        self.feed(self.P.CallAnswered())

    def on_secure(self, event):
        peer_zid = event.peer_zid if isinstance(event.peer_zid, str) else _hex(event.peer_zid)
        algorithms = " ".join((event.key_agreement, event.cipher, event.hash, event.auth_tag))
        self.feed(self.P.CallSecure(event.sas, event.sas_type, bool(event.verified), bool(event.cache_mismatch),
                                    algorithms, peer_zid))

    def on_not_secure(self, event):
        if self.call_id is not None:
            self.feed(self.P.CallNotSecure(event.kind, event.reason))

    def on_alarm(self, event):
        # The call layer's alarm kinds are the phone's ALARM_* names.
        if self.call_id is not None:
            self.feed(self.P.CallAlarm(event.kind))

    def on_audio_missing(self, why):
        self.feed(self.P.AudioDeviceMissing(why))

    def on_refer(self, event):
        """Blind transfer: leave this call and let the phone call the target (it shows "calling")."""
        log.info("call transferred to %s", event.target)
        self.end_for_transfer()
        self.feed(self.P.TransferTo(event.target))

    def on_call_over(self):
        summary = self.summary
        self._incoming = None
        if self.driver is not None and summary is not None:
            self.feed(self.P.CallEnded(summary.reason or "call ended", summary.sip_status or None))


def run_phone(settings, args):
    """`sotto run`: the phone on its board until the script quits, the user quits, or a signal."""
    from boards.schema import load_board
    from firmware.runtime import sdnotify
    from firmware.runtime.device import HistoryStore, PhoneDriver, open_device, phone_from_config
    from firmware.runtime.storage import ensure_private_dir

    board = load_board(settings.board.name)
    history = HistoryStore(ensure_private_dir(settings.data_dir))
    if board.is_simulated:
        audio = AudioPlan(play=args.play, record=args.record)
    else:
        audio = AudioPlan(devices=(board.capture, board.playback))
    loop = Loop()
    endpoint = Endpoint(loop, settings, public_address=args.public_address or settings.sip.public_address or None)
    closers = [endpoint.close, loop.close]
    try:
        extra_speed_dial = {}
        if board.is_simulated and not settings.account.uri:
            echo = _start_echo_line(loop, settings)
            closers.insert(0, echo.endpoint.close)
            extra_speed_dial[ECHO_NUMBER] = "sip:{}@{}".format(ECHO_USER, echo.endpoint.settings.sip.listen)
        calls = PhoneCalls(endpoint, settings, audio, history)
        closers.insert(0, calls.stop_tone_player)
        cache = endpoint.zrtp_cache() if settings.media.encryption == "zrtp" else None
        phone = phone_from_config(settings, history=history.load(),
                                  extra_speed_dial=extra_speed_dial,
                                  our_zid=_hex(cache.zid) if cache is not None else None,
                                  wall_offset=time.time() - loop.now())
        device = open_device(board, script=args.script, display_log=args.display_log, display_png=args.display_png)
        closers.insert(0, device.close)
        driver = PhoneDriver(phone, device, calls.dispatch)
        calls.bind(driver)
        driver_timer = EngineTimer(loop, _DriverClock(driver), lambda: None)
        if device.fileno() is not None:
            def on_keys():
                device.on_readable(loop.now())
                driver.tick(loop.now())
                driver_timer.rearm()

            loop.add_reader(device.fileno(), on_keys)
        stopping = []

        def on_signal():
            sdnotify.sd_notify(sdnotify.STOPPING)
            stopping.append(True)
            calls.hangup("completed", "stopped by signal")

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal)
        driver.start(loop.now())
        if endpoint.cache_problem:
            from firmware import phone as P

            driver.feed(P.TrustCacheLost(endpoint.cache_problem), loop.now())
        if settings.account.uri:
            endpoint.ua.register(loop.now())
            endpoint.pump()
        sdnotify.sd_notify(sdnotify.READY)  # systemd (Type=notify): we listen now
        sdnotify.keep_alive(loop)  # WATCHDOG=1 from the loop's own timers: a stuck loop gets restarted

        def step():
            driver_timer.rearm()
            return device.finished or (stopping and calls.call_id is None)

        loop.run(until=step)
        if calls.call_id is not None:
            calls.hangup("completed", "phone stopped")
            loop.run(until=lambda: calls.call_id is None, timeout=HANGUP_GRACE)
        if settings.account.uri and endpoint.ua.registered:
            endpoint.ua.unregister(loop.now())
            endpoint.pump()
            loop.run(until=lambda: not endpoint.ua.registered, timeout=2.0)
        endpoint.save_zrtp_cache()
        return device.exit_code if device.finished and device.exit_code is not None else 0
    finally:
        for close in closers:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing one part must not keep the others open
                log.exception("closing failed")


class _DriverClock:
    """Adapts PhoneDriver (timers of the phone and of the device) to EngineTimer."""

    def __init__(self, driver):
        self.driver = driver

    def get_timer(self):
        return self.driver.get_timer()

    def handle_timer(self, now):
        self.driver.tick(now)


def _start_echo_line(loop, settings):
    """The echo test line on the next free loopback port, with its own ZRTP cache in the data dir."""
    import copy

    host, _port = configuration.host_port(settings.sip.listen)
    echo_settings = copy.deepcopy(settings)
    echo_settings.account.uri = ""
    echo_settings.account.password = ""
    echo_settings.media.rtp_port = 0
    echo_settings.zrtp.cache = os.path.join(settings.data_dir, "echo-zrtp-cache")
    probe = _bind_udp(host, 0, "SIP")
    echo_settings.sip.listen = "{}:{}".format(host, probe.getsockname()[1])
    probe.close()
    endpoint = Endpoint(loop, echo_settings)
    return EchoLine(endpoint, echo_settings, EchoAudio())

