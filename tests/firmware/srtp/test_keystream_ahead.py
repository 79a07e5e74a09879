"""Keystreams computed ahead (firmware/srtp/context.py _Keys): whatever order, size, gaps and SSRCs the
packets come in, every packet is what libsrtp makes or accepts."""

import os
import random

import pylibsrtp

from firmware.srtp.context import SrtpContext
from tests.firmware.srtp.test_differential import _libsrtp, _rtp

PROFILE = ("AES_CM_128_HMAC_SHA1_80", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)


def test_sizes_gaps_reordering_and_interleaved_ssrcs_match_libsrtp():
    rng = random.Random(11)
    key, salt = os.urandom(16), os.urandom(14)
    name, profile = PROFILE
    theirs_out = _libsrtp(profile, key, salt, outbound=True)
    ours_in = SrtpContext(name, key, salt)
    ours_out = SrtpContext(name, key, salt)
    theirs_in = _libsrtp(profile, key, salt, outbound=False)
    sequences = {0x01020304: 65500, 0x0A0B0C0D: 10}
    packets = []
    for n in range(600):
        ssrc = rng.choice(sorted(sequences))
        sequences[ssrc] += rng.choice((1, 1, 1, 2, 5, 40))  # gaps: lost packets never come
        size = rng.choice((160, 160, 1, 15, 16, 17, 320, 1000, 1300))  # pylibsrtp: 1500 octets at most
        packets.append(_rtp(sequences[ssrc], n * 160, ssrc, bytes(rng.getrandbits(8) for _ in range(size))))
    for plain in packets:
        assert theirs_in.unprotect(ours_out.protect(plain)) == plain
    protected = [theirs_out.protect(plain) for plain in packets]
    order = list(range(len(packets)))
    for i in range(0, len(order) - 3, 3):  # swap neighbours: reordering within the replay window
        if rng.random() < 0.5:
            order[i], order[i + 1] = order[i + 1], order[i]
    for i in order:
        assert ours_in.unprotect(protected[i]) == packets[i]
