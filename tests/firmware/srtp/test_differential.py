"""Our SRTP/SRTCP against libsrtp (pylibsrtp) in both directions, across the 65535 -> 0 sequence wrap."""

import os
import struct

import pylibsrtp
import pytest

from firmware.errors import RemoteProtocolError
from firmware.srtp.context import SrtpContext

LIBSRTP_PROFILES = [
    ("AES_CM_128_HMAC_SHA1_80", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80),
    ("AES_CM_128_HMAC_SHA1_32", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32),
]


def _libsrtp(profile, key, salt, outbound):
    direction = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    policy = pylibsrtp.Policy(key=key + salt, ssrc_type=direction, srtp_profile=profile)
    return pylibsrtp.Session(policy)


def _rtp(seq, ts, ssrc, payload, marker=False, csrcs=(), extension=None):
    first = 0x80 | len(csrcs) | (0x10 if extension else 0)
    header = struct.pack("!BBHII", first, 0x80 * marker, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    header += b"".join(struct.pack("!I", c) for c in csrcs)
    if extension:
        header += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    return header + payload


def _rtcp_sr(ssrc, n):
    body = struct.pack("!IIIII", 0x12345678, n, n * 160, n, n * 100)
    return struct.pack("!BBHI", 0x80, 200, (len(body) + 4) // 4, ssrc) + body


@pytest.mark.parametrize("name,profile", LIBSRTP_PROFILES)
def test_ours_to_libsrtp_across_the_wrap(name, profile):
    key, salt = os.urandom(16), os.urandom(14)
    ours = SrtpContext(name, key, salt)
    theirs = _libsrtp(profile, key, salt, outbound=False)
    ssrc = 0x11223344
    for i in range(40):
        seq = 65520 + i
        payload = os.urandom(1 + (i * 37) % 300)
        extension = os.urandom(8) if i % 7 == 3 else None
        plain = _rtp(seq, 1000 + 160 * i, ssrc, payload, marker=i == 0, csrcs=(7,) * (i % 3), extension=extension)
        protected = ours.protect(plain)
        assert theirs.unprotect(protected) == plain
    assert ours.rollover_counter(ssrc) == 1
    for n in range(5):
        rtcp = _rtcp_sr(ssrc, n)
        assert theirs.unprotect_rtcp(ours.protect_rtcp(rtcp)) == rtcp


@pytest.mark.parametrize("name,profile", LIBSRTP_PROFILES)
def test_libsrtp_to_ours_across_the_wrap_with_reordering(name, profile):
    key, salt = os.urandom(16), os.urandom(14)
    theirs = _libsrtp(profile, key, salt, outbound=True)
    ours = SrtpContext(name, key, salt)
    ssrc = 0xCAFEBABE
    packets = []
    for i in range(60):
        seq = 65500 + i
        plain = _rtp(seq, 160 * i, ssrc, os.urandom(160))
        packets.append((plain, theirs.protect(plain)))
    # Deliver with local reordering (swap neighbours) across the wrap.
    order = list(range(len(packets)))
    for j in range(1, len(order) - 1, 5):
        order[j], order[j + 1] = order[j + 1], order[j]
    for j in order:
        plain, protected = packets[j]
        assert ours.unprotect(protected) == plain
    assert ours.rollover_counter(ssrc) == 1
    with pytest.raises(RemoteProtocolError):
        ours.unprotect(packets[40][1])
    assert ours.replays == 1
    for n in range(5):
        rtcp = _rtcp_sr(ssrc, n)
        assert ours.unprotect_rtcp(theirs.protect_rtcp(rtcp)) == rtcp
    srtcp = theirs.protect_rtcp(_rtcp_sr(ssrc, 9))
    ours.unprotect_rtcp(srtcp)
    with pytest.raises(RemoteProtocolError):
        ours.unprotect_rtcp(srtcp)
    assert ours.replays == 2


def test_long_run_crosses_several_wraps_both_ways():
    key, salt = os.urandom(16), os.urandom(14)
    ours_tx = SrtpContext("AES_CM_128_HMAC_SHA1_80", key, salt)
    theirs_rx = _libsrtp(pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, key, salt, outbound=False)
    theirs_tx = _libsrtp(pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, key, salt, outbound=True)
    ours_rx = SrtpContext("AES_CM_128_HMAC_SHA1_80", key, salt)
    payload = bytes(range(160))
    for i in range(0, 3 * 65536 + 200, 97):
        plain = _rtp(i, i * 160, 5, payload)
        assert theirs_rx.unprotect(ours_tx.protect(plain)) == plain
        assert ours_rx.unprotect(theirs_tx.protect(plain)) == plain
    assert ours_rx.rollover_counter(5) == 3
