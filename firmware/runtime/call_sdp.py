"""The SDP side of one call's media (RFC 3264 offer/answer; RFC 4568 SDES keys; RFC 6189 §8.1 a=zrtp-hash).
Host-only (the shell).

Apart from call_media.py because it is what the call says and hears in SDP: our offers and answers,
their o= versions (RFC 3264 §8), the peer's description taken in (codec, address, rtcp-mux, keys), and a
moved media address followed; the sockets, the ZRTP engine and the audio stream stay in call_media.py.
A mixin of CallMedia, on its state; it tells the call policy (firmware.call) what each description
carried, and the policy decides.
"""

from firmware import sdp
from firmware.errors import RemoteProtocolError
from firmware.sdp.description import canonical_codec


class CallSdp:
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
        redundancy = self.endpoint.settings.media.redundancy
        return self._versioned(
            lambda version: sdp.build_offer(
                codecs, address, port, rtcp_mux=True, session_version=version, redundancy=redundancy, **kwargs
            )
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
        redundancy = self.endpoint.settings.media.redundancy
        text, codec = self._answer_versioned(offer, codecs, address, port, redundancy=redundancy, **kwargs)
        self._use_remote(remote, codec)
        # RFC 2198: RED only when the offer has it for the codec chosen (and then our answer has it too).
        self.red_payload_type = sdp.red_payload_type(remote.codecs, codec) if redundancy else None
        return text

    def _answer_versioned(self, offer, codecs, address, port, **kwargs):
        """(our answer to `offer`, as _versioned() numbers it; the codec it chose)."""
        chosen = []

        def build(version):
            description, codec = sdp.answer_offer(offer, codecs, address, port, session_version=version, **kwargs)
            chosen.append(codec)
            return description

        text = self._versioned(build)
        return text, chosen[-1]

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
        # RFC 2198: RED only when we offered it and the answer kept it for the codec chosen.
        redundant = self.endpoint.settings.media.redundancy
        self.red_payload_type = sdp.red_payload_type(remote.codecs, ours[0]) if redundant else None

    def answer_reinvite(self, offer_bytes):
        """Our answer to a re-INVITE's offer (hold, resume, new address); the policy raises the alarm when the
        offer drops the call's keying. RemoteProtocolError(488) when the offer cannot be taken.

        The answer keeps the call's keying: our a=zrtp-hash, or the a=crypto line in force (new SDES keys
        in a re-INVITE are not taken).
        """
        offer = sdp.parse_sdp(offer_bytes)
        remote = sdp.remote_media(offer)
        codecs, address, port, kwargs = self._sdp_common(remote.address)
        if self.codec is not None:
            # The running stream's encoder, decoder and clock were built for its codec: the answer keeps it
            # even where our preference order would pick another the offer also lists, and an offer without
            # it gets 488, which leaves the session as it was (RFC 3261 §14.2), instead of a mute call.
            codecs = [self.codec.name]
        if self.sdes_line is not None:
            kwargs["crypto_lines"] = [self.sdes_line]
        # The stream keeps its payload types: RED stays in the answer only while the call uses it.
        redundancy = self.red_payload_type is not None
        answer, codec = self._answer_versioned(offer, codecs, address, port, redundancy=redundancy, **kwargs)
        self._follow_payload_types(codec, remote.telephone_event)
        self.policy.reinvite(remote.zrtp_hash, bool(remote.crypto_lines), remote.direction, self.endpoint.loop.now())
        self._follow(remote)
        self._keep_redundancy_only_if_kept(remote)
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
                redundancy=self.red_payload_type if self.red_payload_type is not None else False,
                payload_types=self._payload_types_in_use(),
                **kwargs,
            )
        )

    def _payload_types_in_use(self):
        """The numbers the call's stream sends and expects: a peer that offered Opus as 96 must not be
        re-offered 111, or the audio it sends after its answer would be a format our stream drops."""
        numbers = {}
        if self.codec is not None:
            numbers[canonical_codec(self.codec.name)] = self.codec.payload_type
        if self.telephone_event is not None:
            numbers["telephone-event"] = self.telephone_event
        return numbers

    def accept_reanswer(self, answer_bytes, on_hold):
        """The peer's answer to our re-INVITE: follow a moved media address; tell the policy about hold."""
        if answer_bytes:
            remote = sdp.remote_media(sdp.parse_sdp(answer_bytes))
            self._follow(remote)
            self._keep_redundancy_only_if_kept(remote)
        self.policy.hold(on_hold, self.endpoint.loop.now())
        self.pump_policy()

    def _follow_payload_types(self, codec, telephone_event):
        """An offer may number the same codec anew (a PBX re-anchoring the call to another phone): the
        answer keeps the offerer's numbers (RFC 3264 §6.1), so the stream sends and expects them from now on
        (one attribute store each: the media thread's next packet uses the new number)."""
        if self.codec is not None and codec.payload_type != self.codec.payload_type:
            self.codec = codec
            if self.stream is not None:
                self.stream.payload_type = codec.payload_type
        if telephone_event != self.telephone_event and self.stream is not None:
            self.stream.telephone_event_pt = telephone_event  # None: DTMF goes in-band, as answered
        self.telephone_event = telephone_event

    def _keep_redundancy_only_if_kept(self, remote):
        """RFC 2198 is used only while both SDPs list red for the call's codec (RFC 3264 §8: a new offer or
        answer replaces the old). A PBX that re-anchors the call to a phone without RED re-INVITEs without
        it: redundant packets (their own payload type) would then be audio that phone cannot play."""
        if self.red_payload_type is None or self.codec is None:
            return
        if sdp.red_payload_type(remote.codecs, self.codec) is None:
            self.red_payload_type = None
            if self.stream is not None:
                self.stream.red_payload_type = None  # one attribute store: the media thread's next frame is plain

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
