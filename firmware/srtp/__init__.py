"""SRTP and SRTCP (RFC 3711, RFC 6188) and SDES keying (RFC 4568).

See firmware.srtp.context (SrtpContext), firmware.srtp.kdf and firmware.srtp.sdes.
"""
