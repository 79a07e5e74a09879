"""G.711 against the ITU-T G.191 reference algorithm, written out here independently of audio/g711.py."""

import struct

from audio import g711

MICROPYTHON = True


def reference_ulaw_compress(sample):
    # G.191 ulaw_compress: 14-bit magnitude (one's complement for negatives), bias 33, clip 0x1FFF.
    absno = ((~sample) >> 2) + 33 if sample < 0 else (sample >> 2) + 33
    if absno > 0x1FFF:
        absno = 0x1FFF
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high_nibble = 0x0008 - segno
    low_nibble = 0x000F - ((absno >> segno) & 0x000F)
    code = (high_nibble << 4) | low_nibble
    if sample >= 0:
        code |= 0x0080
    return code


def reference_ulaw_expand(code):
    sign = -1 if code < 0x80 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 0x0007
    segment = exponent + 1
    mantissa &= 0x000F
    step = 4 << segment
    return sign * ((0x0080 << exponent) + step * mantissa + step // 2 - 4 * 33)


def reference_alaw_compress(sample):
    ix = (~sample) >> 4 if sample < 0 else sample >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if sample >= 0:
        ix |= 0x0080
    return ix ^ 0x0055


def reference_alaw_expand(code):
    ix = (code ^ 0x0055) & 0x007F
    iexp = ix >> 4
    mant = ix & 0x000F
    if iexp > 0:
        mant += 16
    mant = (mant << 4) + 0x0008
    if iexp > 1:
        mant <<= iexp - 1
    return mant if code > 127 else -mant


def test_ulaw_every_16_bit_sample_matches_reference():
    for sample in range(-32768, 32768):
        assert g711.linear_to_ulaw(sample) == reference_ulaw_compress(sample), sample
    for sample in (-32768, -32767, -1, 0, 1, 32767, -33, -32, 31, 32):
        assert g711.linear_to_ulaw(sample) == reference_ulaw_compress(sample), sample


def test_alaw_every_16_bit_sample_matches_reference():
    for sample in range(-32768, 32768):
        assert g711.linear_to_alaw(sample) == reference_alaw_compress(sample), sample
    for sample in (-32768, -32767, -1, 0, 1, 32767, -16, -17, 15, 16):
        assert g711.linear_to_alaw(sample) == reference_alaw_compress(sample), sample


def test_decoders_match_reference_for_every_code():
    for code in range(256):
        assert g711.ulaw_to_linear(code) == reference_ulaw_expand(code), code
        assert g711.alaw_to_linear(code) == reference_alaw_expand(code), code


def test_frame_encode_decode_uses_little_endian_samples():
    samples = [0, 1, -1, 1000, -1000, 32767, -32768] + [i * 200 - 16000 for i in range(153)]
    pcm = struct.pack("<%dh" % len(samples), *samples)
    ulaw = g711.encode_ulaw(pcm)
    alaw = g711.encode_alaw(pcm)
    assert len(ulaw) == len(alaw) == 160
    assert list(ulaw) == [reference_ulaw_compress(s) for s in samples]
    assert list(alaw) == [reference_alaw_compress(s) for s in samples]
    decoded = struct.unpack("<160h", g711.decode_ulaw(ulaw))
    assert list(decoded) == [reference_ulaw_expand(c) for c in ulaw]
    decoded = struct.unpack("<160h", g711.decode_alaw(alaw))
    assert list(decoded) == [reference_alaw_expand(c) for c in alaw]


def test_frame_paths_match_the_reference_for_every_sample_and_every_code():
    # The frame functions take faster paths than the per-value tables (array reads, bytes.translate on
    # CPython): the whole 16-bit range and every code, as bytes, bytearray and memoryview.
    for start in range(-32768, 32768, 4096):  # in chunks: MicroPython's heap is small
        samples = range(start, start + 4096)
        chunk = bytearray(2 * len(samples))
        for offset, sample in enumerate(samples):
            struct.pack_into("<h", chunk, 2 * offset, sample)
        assert list(g711.encode_ulaw(bytes(chunk))) == [reference_ulaw_compress(s) for s in samples]
        assert list(g711.encode_alaw(bytes(chunk))) == [reference_alaw_compress(s) for s in samples]
    codes = bytes(range(256))
    for data in (codes, bytearray(codes), memoryview(codes)):
        assert list(struct.unpack("<256h", g711.decode_ulaw(data))) == [reference_ulaw_expand(c) for c in codes]
        assert list(struct.unpack("<256h", g711.decode_alaw(data))) == [reference_alaw_expand(c) for c in codes]


def test_silence_codes():
    assert g711.linear_to_ulaw(0) == g711.ULAW_SILENCE
    assert g711.linear_to_alaw(0) == g711.ALAW_SILENCE


def test_round_trip_error_is_within_one_quantisation_step():
    for sample in range(-32000, 32000, 97):
        back = g711.ulaw_to_linear(g711.linear_to_ulaw(sample))
        assert abs(back - sample) <= max(8, abs(sample) // 16), sample
        back = g711.alaw_to_linear(g711.linear_to_alaw(sample))
        assert abs(back - sample) <= max(16, abs(sample) // 16), sample
