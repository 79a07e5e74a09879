"""SRTP and SRTCP crypto contexts (RFC 3711; AES-192/256 profiles from RFC 6188).

API:
    SrtpContext(profile, master_key, master_salt, replay_window=128, max_streams=16,
                rtcp_tag_length=None)
        profile: one of PROFILES: "AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32",
                 "AES_192_CM_HMAC_SHA1_80", "AES_192_CM_HMAC_SHA1_32",
                 "AES_256_CM_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_32"
        master_key: 16, 24 or 32 octets to match the profile; master_salt: 14 octets.
        rtcp_tag_length: SRTCP tag octets; default 10 for every profile (RFC 4568 §6.2 and libsrtp:
                 the _32 profiles keep an 80-bit tag on SRTCP).
        Use one context per direction: a sending one (protect, protect_rtcp) and a receiving one
        (unprotect, unprotect_rtcp). A context serves every SSRC keyed with its master key, keeping
        per-SSRC state (rollover counter, replay window) for at most `max_streams` SSRCs (the oldest
        is forgotten beyond that).

    .protect(rtp) -> bytes            RTP packet (header + payload) -> SRTP packet (+ tag)
    .unprotect(srtp) -> bytes         SRTP -> RTP packet; raises RemoteProtocolError for a malformed
                                      packet, a failed tag check (counts .auth_failures) or a replayed
                                      or too old packet (counts .replays). State only changes for
                                      packets that authenticate.
    .protect_rtcp(rtcp) -> bytes      compound RTCP -> SRTCP (encrypted, E flag, 31-bit index, tag)
    .unprotect_rtcp(srtcp) -> bytes   SRTCP -> RTCP; same errors and counters as unprotect. With a _32
                                      profile a 32-bit SRTCP tag is accepted too (and then expected),
                                      as Linphone sends one with AES_256_CM_HMAC_SHA1_32
    .auth_failures, .replays          ints
    .rollover_counter(ssrc) -> int or None   the ROC this context holds for `ssrc`

    PROFILES: {name: (cipher_key_length, rtp_tag_length)}
    SUPPORTED_PROFILES: names in our preference order (strongest first).
    zrtp_profile(cipher, auth_tag) -> profile name for ZRTP's negotiated "AES1"/"AES3" and "HS32"/"HS80"
        (RFC 6189 §5.1.3, §5.1.4); LocalProtocolError for anything else.
    context_from_params(params) -> SrtpContext    params: (profile, master_key, master_salt) or
        (profile, master_key, master_salt, rtcp_tag_length): the immutable snapshot MediaStream takes.

Rollover counter: estimated per RFC 3711 §3.3.1 (Appendix A) from the highest index seen; a packet
whose estimate would fall before the stream's first packet is dropped as too old. Replay window:
§3.3.2, a bitmask of `replay_window` (>= 64) indices behind the highest authenticated index.
Tags are compared in constant time.
"""

from firmware import crypto
from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.srtp import kdf

PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": (16, 10),
    "AES_CM_128_HMAC_SHA1_32": (16, 4),
    "AES_192_CM_HMAC_SHA1_80": (24, 10),
    "AES_192_CM_HMAC_SHA1_32": (24, 4),
    "AES_256_CM_HMAC_SHA1_80": (32, 10),
    "AES_256_CM_HMAC_SHA1_32": (32, 4),
}

SUPPORTED_PROFILES = (
    "AES_256_CM_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_80",
    "AES_256_CM_HMAC_SHA1_32",
    "AES_CM_128_HMAC_SHA1_32",
    "AES_192_CM_HMAC_SHA1_80",
    "AES_192_CM_HMAC_SHA1_32",
)

_ZRTP_PROFILES = {
    ("AES1", "HS32"): "AES_CM_128_HMAC_SHA1_32",
    ("AES1", "HS80"): "AES_CM_128_HMAC_SHA1_80",
    ("AES3", "HS32"): "AES_256_CM_HMAC_SHA1_32",
    ("AES3", "HS80"): "AES_256_CM_HMAC_SHA1_80",
}


def zrtp_profile(cipher, auth_tag):
    profile = _ZRTP_PROFILES.get((cipher, auth_tag))
    if profile is None:
        raise LocalProtocolError("no SRTP profile for ZRTP {}/{}".format(cipher, auth_tag))
    return profile


def context_from_params(params):
    if len(params) == 4:
        return SrtpContext(params[0], params[1], params[2], rtcp_tag_length=params[3])
    if len(params) != 3:
        raise LocalProtocolError("SRTP parameters are (profile, key, salt[, rtcp_tag_length])")
    return SrtpContext(params[0], params[1], params[2])


_SRTCP_E_FLAG = 0x80000000
_INDEX_MASK_48 = (1 << 48) - 1


_BATCH_PACKETS = 8  # keystreams computed ahead per AES call (packets come in index order, mostly)
_BLOCK_SUFFIXES = [j.to_bytes(2, "big") for j in range(256)]  # counter values in the IV's low 16 bits
_BLOCK_SUFFIX_LISTS = {}  # blocks -> [b"", suffix 0, ..., suffix blocks-1], made when first needed


class _Keys:
    """Session keys of one direction of one kind (SRTP or SRTCP).

    The AES-CTR keystream of a packet depends only on the keys, the SSRC and the packet index (RFC 3711
    §4.1.1), never on the data, so it is computed ahead: one AES-ECB call makes the keystreams of the next
    _BATCH_PACKETS indices, and a packet then costs a dictionary look-up and an XOR. The IV's low 16 bits
    are zero, so a packet's counter blocks are its IV's first 14 octets and a 16-bit block counter.
    """

    __slots__ = ("cipher", "salt_shifted", "mac", "_ecb", "_streams", "_stream_length")

    def __init__(self, master_key, master_salt, cipher_key_length, rtcp):
        cipher_key, auth_key, salt = kdf.session_keys(master_key, master_salt, cipher_key_length, rtcp)
        self.cipher = crypto.AesCtrKey(cipher_key)
        self.salt_shifted = int.from_bytes(salt, "big") << 16
        self.mac = crypto.HmacKey("sha1", auth_key)
        self._ecb = getattr(self.cipher, "_ecb", None)  # None without `cryptography` (MicroPython)
        self._streams = {}
        self._stream_length = 0

    def crypt(self, ssrc, index, data):
        size = len(data)
        if self._ecb is None or not size or size > 4096:
            # RFC 3711 §4.1.1: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16)
            iv = (self.salt_shifted ^ (ssrc << 64) ^ (index << 16)).to_bytes(16, "big")
            return self.cipher.crypt(iv, data)
        streams = self._streams
        stream = streams.pop((ssrc, index), None)
        if stream is None or len(stream) < size:
            stream = self._compute_ahead(ssrc, index, size)
        mixed = int.from_bytes(data, "big") ^ int.from_bytes(stream[:size], "big")
        return mixed.to_bytes(size, "big")

    def _compute_ahead(self, ssrc, index, size):
        blocks = (max(size, self._stream_length) + 15) // 16
        self._stream_length = blocks * 16
        # prefix.join([b"", s0, s1, ...]) is prefix + s0 + prefix + s1 + ...: a packet's counter blocks in
        # one call, instead of a concatenation per block.
        suffixes = _BLOCK_SUFFIX_LISTS.get(blocks)
        if suffixes is None:  # at most 256 lists: a packet's data is at most 4096 octets here
            suffixes = _BLOCK_SUFFIX_LISTS[blocks] = [b""] + _BLOCK_SUFFIXES[:blocks]
        base = self.salt_shifted ^ (ssrc << 64)
        counters = [
            (base ^ (((index + ahead) & _INDEX_MASK_48) << 16)).to_bytes(16, "big")[:14].join(suffixes)
            for ahead in range(_BATCH_PACKETS)
        ]
        keystream = self._ecb.update(b"".join(counters))
        length = self._stream_length
        streams = self._streams
        if len(streams) > 4 * _BATCH_PACKETS:  # bounded: indices that never came (loss, a new SSRC)
            streams.clear()
        for ahead in range(1, _BATCH_PACKETS):
            streams[(ssrc, (index + ahead) & _INDEX_MASK_48)] = keystream[ahead * length : (ahead + 1) * length]
        return keystream[:length]


class _Window:
    """Replay state of one SSRC: the highest authenticated index and a bitmask behind it."""

    __slots__ = ("highest", "mask")

    def __init__(self, index):
        self.highest = index
        self.mask = 1


def _rtp_header_length(data):
    first = data[0]
    if first >> 6 != 2:
        raise RemoteProtocolError("SRTP packet is not RTP version 2")
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if offset + 4 > len(data):
            raise RemoteProtocolError("SRTP header extension runs past the end of the packet")
        offset += 4 + 4 * ((data[offset + 2] << 8) | data[offset + 3])
    if offset > len(data):
        raise RemoteProtocolError("SRTP header runs past the end of the packet")
    return offset


def _estimate_index(window, sequence):
    """RFC 3711 §3.3.1: the 48-bit index of `sequence` given the highest index so far."""
    if window is None:
        return sequence
    roc = window.highest >> 16
    s_l = window.highest & 0xFFFF
    if s_l < 32768:
        v = roc - 1 if sequence - s_l > 32768 else roc
    else:
        v = roc + 1 if s_l - 32768 > sequence else roc
    if v < 0:
        return -1
    return ((v << 16) | sequence) & _INDEX_MASK_48


class SrtpContext:
    __slots__ = (
        "profile",
        "tag_length",
        "rtcp_tag_length",
        "replay_window",
        "max_streams",
        "_rtp",
        "_rtcp",
        "_rtp_windows",
        "_rtcp_windows",
        "_order",
        "_rtcp_order",
        "_rtcp_tx_index",
        "auth_failures",
        "replays",
    )

    def __init__(self, profile, master_key, master_salt, replay_window=128, max_streams=16, rtcp_tag_length=None):
        if profile not in PROFILES:
            raise LocalProtocolError("unknown SRTP profile {}".format(profile))
        cipher_key_length, tag_length = PROFILES[profile]
        if len(master_key) != cipher_key_length:
            raise LocalProtocolError("{} needs a {}-octet master key".format(profile, cipher_key_length))
        if len(master_salt) != kdf.SALT_LENGTH:
            raise LocalProtocolError("SRTP master salt must be 14 octets")
        if replay_window < 64:
            raise LocalProtocolError("SRTP replay window must be at least 64 (RFC 3711 §3.3.2)")
        self.profile = profile
        self.tag_length = tag_length
        self.rtcp_tag_length = 10 if rtcp_tag_length is None else rtcp_tag_length
        self.replay_window = replay_window
        self.max_streams = max_streams
        self._rtp = _Keys(master_key, master_salt, cipher_key_length, False)
        self._rtcp = _Keys(master_key, master_salt, cipher_key_length, True)
        self._rtp_windows = {}
        self._rtcp_windows = {}
        self._order = []
        self._rtcp_order = []
        self._rtcp_tx_index = {}
        self.auth_failures = 0
        self.replays = 0

    def rollover_counter(self, ssrc):
        window = self._rtp_windows.get(ssrc)
        return None if window is None else window.highest >> 16

    # -- bookkeeping -----------------------------------------------------------------------------

    def _remember(self, windows, order, ssrc, index):
        window = windows.get(ssrc)
        if window is None:
            if len(order) >= self.max_streams:
                oldest = order.pop(0)
                windows.pop(oldest, None)
            windows[ssrc] = _Window(index)
            order.append(ssrc)
            return
        delta = index - window.highest
        if delta > 0:
            window.mask = (
                ((window.mask << delta) | 1) & ((1 << self.replay_window) - 1) if delta < self.replay_window else 1
            )
            window.highest = index
        else:
            window.mask |= 1 << -delta

    def _check_replay(self, window, index):
        if window is None:
            return
        delta = index - window.highest
        if delta > 0:
            return
        if -delta >= self.replay_window:
            self.replays += 1
            raise RemoteProtocolError("SRTP packet too old for the replay window")
        if (window.mask >> -delta) & 1:
            self.replays += 1
            raise RemoteProtocolError("SRTP packet replayed")

    # -- SRTP ------------------------------------------------------------------------------------

    def _rtp_index(self, packet):
        """(SSRC, its replay window or None, the packet's index estimated from its sequence number and the
        window's highest index, RFC 3711 §3.3.1 and Appendix A)."""
        sequence = (packet[2] << 8) | packet[3]
        ssrc = int.from_bytes(packet[8:12], "big")
        window = self._rtp_windows.get(ssrc)
        return ssrc, window, _estimate_index(window, sequence)

    def protect(self, rtp):
        if len(rtp) < 12:
            raise LocalProtocolError("RTP packet shorter than its header")
        header_length = _rtp_header_length(rtp)
        ssrc, window, index = self._rtp_index(rtp)
        if index < 0:
            raise LocalProtocolError("RTP sequence number goes back before the stream's start")
        keys = self._rtp
        body = rtp[:header_length] + keys.crypt(ssrc, index, rtp[header_length:])
        tag = keys.mac.digest(body, (index >> 16).to_bytes(4, "big"))
        if window is None or index > window.highest:
            self._remember(self._rtp_windows, self._order, ssrc, index)
        return body + tag[: self.tag_length]

    def unprotect(self, srtp):
        tag_length = self.tag_length
        if len(srtp) < 12 + tag_length:
            raise RemoteProtocolError("SRTP packet shorter than header and tag")
        body = srtp[: len(srtp) - tag_length]
        header_length = _rtp_header_length(body)
        ssrc, window, index = self._rtp_index(srtp)
        if index < 0:
            self.replays += 1
            raise RemoteProtocolError("SRTP packet from before the stream's first packet")
        self._check_replay(window, index)
        keys = self._rtp
        expected = keys.mac.digest(body, (index >> 16).to_bytes(4, "big"))[:tag_length]
        if not crypto.constant_time_equal(expected, bytes(srtp[len(srtp) - tag_length :])):
            self.auth_failures += 1
            raise RemoteProtocolError("SRTP authentication failed")
        self._remember(self._rtp_windows, self._order, ssrc, index)
        return bytes(body[:header_length]) + keys.crypt(ssrc, index, bytes(body[header_length:]))

    # -- SRTCP (RFC 3711 §3.4) -------------------------------------------------------------------

    def protect_rtcp(self, rtcp):
        if len(rtcp) < 8 or rtcp[0] >> 6 != 2:
            raise LocalProtocolError("not an RTCP packet")
        ssrc = int.from_bytes(rtcp[4:8], "big")
        index = self._rtcp_tx_index.get(ssrc, 0)
        if ssrc not in self._rtcp_tx_index and len(self._rtcp_tx_index) >= self.max_streams:
            self._rtcp_tx_index.clear()
        self._rtcp_tx_index[ssrc] = (index + 1) & 0x7FFFFFFF
        keys = self._rtcp
        body = rtcp[:8] + keys.crypt(ssrc, index, rtcp[8:]) + (_SRTCP_E_FLAG | index).to_bytes(4, "big")
        return body + keys.mac.digest(body)[: self.rtcp_tag_length]

    def unprotect_rtcp(self, srtcp):
        if len(srtcp) < 8 + 4 + 4:
            raise RemoteProtocolError("SRTCP packet shorter than header, index and tag")
        if srtcp[0] >> 6 != 2:
            raise RemoteProtocolError("SRTCP packet is not RTCP version 2")
        result = self._unprotect_rtcp_with(srtcp, self.rtcp_tag_length)
        if result is None and self.tag_length != self.rtcp_tag_length:
            # A _32 profile: RFC 4568/libsrtp keep 80 bits on SRTCP, but some peers (Linphone with
            # AES_256_CM_HMAC_SHA1_32, measured) use the 32-bit tag there too. Accept it and keep it:
            # it is still this key's HMAC, as strong as the profile's SRTP tag.
            result = self._unprotect_rtcp_with(srtcp, self.tag_length)
            if result is not None:
                self.rtcp_tag_length = self.tag_length
        if result is None:
            self.auth_failures += 1
            raise RemoteProtocolError("SRTCP authentication failed")
        return result

    def _unprotect_rtcp_with(self, srtcp, tag_length):
        """The RTCP packet, None if the tag does not verify; RemoteProtocolError if malformed/replayed."""
        if len(srtcp) < 8 + 4 + tag_length:
            return None
        body = bytes(srtcp[: len(srtcp) - tag_length])
        trailer = int.from_bytes(body[-4:], "big")
        index = trailer & 0x7FFFFFFF
        ssrc = int.from_bytes(body[4:8], "big")
        keys = self._rtcp
        expected = keys.mac.digest(body)[:tag_length]
        if not crypto.constant_time_equal(expected, bytes(srtcp[len(srtcp) - tag_length :])):
            return None
        self._check_replay(self._rtcp_windows.get(ssrc), index)
        self._remember(self._rtcp_windows, self._rtcp_order, ssrc, index)
        payload = body[8:-4]
        if trailer & _SRTCP_E_FLAG:
            payload = keys.crypt(ssrc, index, payload)
        return body[:8] + payload
