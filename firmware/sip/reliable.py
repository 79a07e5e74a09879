"""Reliable provisional responses (RFC 3262, "100rel"): the header rules, pure functions. Sans-I/O.

As UAS, a provisional response to an INVITE with Require: 100rel is sent reliably: it carries
Require: 100rel and an RSeq, is retransmitted (T1, doubling) until a PRACK with the matching RAck
arrives, and the INVITE gets a 5xx when none arrives within 64*T1 (§3). As UAC, a reliable provisional
response is answered with a PRACK carrying RAck "<RSeq> <CSeq number> <method>"; one with an RSeq not
one higher than the last one of its dialog is a retransmission or out of order, and is dropped (§4).

API
---
OPTION_TAG = "100rel"
required(message) -> bool        Require lists 100rel (in an INVITE: the UAC wants reliable 1xx; in a
                                 1xx: this one is reliable, §4)
supported(message) -> bool       Supported (or Require) lists 100rel: the UAC can take reliable 1xx
POLICIES = ("required", "supported")  when a UAS sends its 1xx reliably: only when the INVITE requires it,
                                 or whenever it supports it (§3: "MAY")
send_reliably(invite, policy) -> bool
rseq_of(response) -> int or None an RSeq in 1..2**32-1 (§7.1), None when missing or malformed
first_rseq(rng) -> int           §3: the first RSeq, random in 1..2**31-1
parse_rack(value) -> (rseq, cseq number, method)  RemoteProtocolError when malformed (§7.2)
format_rack(rseq, cseq, method) -> str
accept(last_rseq, rseq) -> bool  §4: a new reliable provisional response (first, or exactly one higher)
"""

from firmware.digits import decimal_or_none
from firmware.errors import RemoteProtocolError
from firmware.sip.headers import is_token

OPTION_TAG = "100rel"
MAX_RSEQ = 2**32 - 1  # §7.1: RSeq is a 32-bit unsigned number
POLICIES = ("required", "supported")


def required(message):
    return any(tag.lower() == OPTION_TAG for tag in message.headers.get_all("Require"))


def supported(message):
    return required(message) or any(tag.lower() == OPTION_TAG for tag in message.headers.get_all("Supported"))


def send_reliably(invite, policy):
    """RFC 3262 §3: a provisional response MUST be reliable when the INVITE has Require: 100rel, and MAY be
    when it only has Supported: 100rel; `policy` "supported" takes that option."""
    if policy not in POLICIES:
        raise ValueError(policy)
    return required(invite) or (policy == "supported" and supported(invite))


def rseq_of(response):
    values = response.headers.get_all("RSeq")
    if len(values) != 1:
        return None
    return decimal_or_none(values[0].strip(), MAX_RSEQ, minimum=1)


def first_rseq(rng):
    data = rng(4)
    value = ((data[0] & 0x7F) << 24) | (data[1] << 16) | (data[2] << 8) | data[3]
    return value or 1


def parse_rack(value):
    if value is None:
        raise RemoteProtocolError("PRACK without RAck")
    parts = value.split()
    if len(parts) != 3:
        raise RemoteProtocolError("bad RAck")
    rseq = decimal_or_none(parts[0], MAX_RSEQ, minimum=1)
    cseq = decimal_or_none(parts[1], MAX_RSEQ)
    if rseq is None or cseq is None or not is_token(parts[2]):
        raise RemoteProtocolError("bad RAck")
    return rseq, cseq, parts[2]


def format_rack(rseq, cseq, method):
    return "{} {} {}".format(rseq, cseq, method)


def accept(last_rseq, rseq):
    return last_rseq is None or rseq == last_rseq + 1
