"""SAS rendering (RFC 6189 §5.1.6, §4.5.2).

API:
- SAS_TYPES: ("B32", "B256").
- sas_value(hash_name, s0, kdf_context) -> the 4-byte sasvalue (leftmost 32 bits of
  KDF(s0, "SAS", KDF_Context, 256)).
- render(sas_type, sasvalue) -> str: B32 gives 4 characters from the z-base-32 alphabet (the leftmost
  20 bits); B256 gives two PGP words separated by one space ("standard guitarist").
"""

from firmware.errors import LocalProtocolError
from firmware.zrtp import kdf as _kdf
from firmware.zrtp.sas_words import EVEN_WORDS, ODD_WORDS

SAS_TYPES = ("B32", "B256")
B32_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"


def sas_value(hash_name, s0, kdf_context):
    return _kdf.kdf(hash_name, s0, b"SAS", kdf_context, 32)[:4]


def render_b32(sasvalue):
    bits = (sasvalue[0] << 24) | (sasvalue[1] << 16) | (sasvalue[2] << 8) | sasvalue[3]
    out = []
    for shift in (27, 22, 17, 12):
        out.append(B32_ALPHABET[(bits >> shift) & 31])
    return "".join(out)


def render_b256(sasvalue):
    return "{} {}".format(EVEN_WORDS[sasvalue[0]], ODD_WORDS[sasvalue[1]])


def render(sas_type, sasvalue):
    if len(sasvalue) < 4:
        raise LocalProtocolError("sasvalue must be 4 bytes")
    if sas_type == "B32":
        return render_b32(sasvalue)
    if sas_type == "B256":
        return render_b256(sasvalue)
    raise LocalProtocolError("unsupported SAS type {}".format(sas_type))
