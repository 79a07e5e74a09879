"""Sotto: firmware for a secure desk phone (SIP, ZRTP, SRTP) on a Raspberry Pi."""
