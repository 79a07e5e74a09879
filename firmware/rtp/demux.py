"""Demultiplexing one UDP port by the first octet (RFC 7983 §7, RFC 5761 §4 for rtcp-mux).

API:
    classify(datagram) -> one of STUN, ZRTP, DTLS, TURN_CHANNEL, RTP, RTCP, UNKNOWN (strings)

    first octet   0..3     STUN   (RFC 5389)
                 16..19    ZRTP   (RFC 6189: first octet 0x10, and the magic cookie "ZRTP" at offset 4)
                 20..63    DTLS
                 64..79    TURN_CHANNEL
                128..191   RTP, or RTCP when the second octet is 192..223 (packet types 200-204 et al.)
    anything else (including a 16..19 datagram without the ZRTP cookie, and empty input) is UNKNOWN.
"""

STUN = "stun"
ZRTP = "zrtp"
DTLS = "dtls"
TURN_CHANNEL = "turn"
RTP = "rtp"
RTCP = "rtcp"
UNKNOWN = "unknown"


def classify(datagram):
    if not datagram:
        return UNKNOWN
    first = datagram[0]
    if 128 <= first <= 191:
        if len(datagram) >= 2 and 192 <= datagram[1] <= 223:
            return RTCP
        return RTP
    if first <= 3:
        return STUN
    if 16 <= first <= 19:
        return ZRTP if datagram[4:8] == b"ZRTP" else UNKNOWN
    if 20 <= first <= 63:
        return DTLS
    if 64 <= first <= 79:
        return TURN_CHANNEL
    return UNKNOWN
