"""RTCP for the real-time audio loop (RFC 3550 §6): sender/receiver reports, SDES CNAME and BYE out,
and the reports the peer sends in (round-trip time, BYE). Host-only.

Apart from media.py because RTCP runs on its own schedule (every RTCP_INTERVAL, and BYE from the
control thread once the loop stopped) and has its own rules (RFC 3550 §6.4.1 for the round-trip time,
§6.6 for BYE, RFC 5761 for rtcp-mux, RFC 3711 §3.4 for SRTCP). A mixin of MediaStream, on its state.
"""

import logging

from firmware.rtp import rtcp

log = logging.getLogger("sotto.media")

_NTP_EPOCH_OFFSET = 2208988800


def ntp_timestamp(wall):
    """Seconds since the Unix epoch as a 64-bit NTP timestamp (RFC 3550 §4)."""
    seconds = int(wall)
    return ((seconds + _NTP_EPOCH_OFFSET) << 32) | int((wall - seconds) * 4294967296.0)


class Rtcp:
    __slots__ = ()

    def _receive_rtcp(self, datagram, addr, arrival):
        crypto = self._crypto
        if crypto is not None:
            datagram = self._unprotect(crypto, datagram, True)
            if crypto.rx.rtcp_tag_length != crypto.tx.rtcp_tag_length and crypto.rx.profile == crypto.tx.profile:
                crypto.tx.rtcp_tag_length = crypto.rx.rtcp_tag_length  # answer in the peer's SRTCP tag size
        elif self._keys_required:
            return
        reports = rtcp.parse_compound(datagram)
        self.authentic += 1
        for report in reports:
            if isinstance(report, rtcp.SenderReport):
                if self._reception is not None:
                    self._reception.note_sender_report(report.ntp, arrival)
                self._note_blocks(report.blocks, arrival)
            elif isinstance(report, rtcp.ReceiverReport):
                self._note_blocks(report.blocks, arrival)
            elif isinstance(report, rtcp.Bye):
                if not self.bye:
                    self.bye = True
                    self.events.append(("bye",))

    def _note_blocks(self, blocks, arrival):
        # RFC 3550 §6.4.1: A is the arrival time of the report (not when this thread got to it).
        arrival_wall = self._wallclock() - (self._clock() - arrival)
        for block in blocks:
            if block.ssrc == self.ssrc:
                rtt = rtcp.round_trip_seconds(block, ntp_timestamp(arrival_wall))
                if rtt is not None:
                    self._rtt = rtt

    def _send_rtcp(self, now):
        blocks = []
        if self._reception is not None and self._remote_ssrc is not None:
            blocks.append(self._reception.report_block(self._remote_ssrc, now))
        if self.sent:
            report = rtcp.build_sr(
                self.ssrc, ntp_timestamp(self._wallclock()), self._timestamp, self.sent, self.sent_octets, blocks
            )
        else:
            report = rtcp.build_rr(self.ssrc, blocks)
        self._send_compound(report + rtcp.build_sdes_cname(self.ssrc, self.cname))

    def _send_bye(self):
        """RFC 3550 §6.6: a last report and BYE (sent from the control thread once the loop stopped)."""
        try:
            report = (
                rtcp.build_rr(self.ssrc)
                if not self.sent
                else rtcp.build_sr(
                    self.ssrc, ntp_timestamp(self._wallclock()), self._timestamp, self.sent, self.sent_octets
                )
            )
            self._send_compound(report + rtcp.build_bye(self.ssrc))
        except Exception:  # hanging up must never fail on a last courtesy packet
            log.exception("sending RTCP BYE failed")

    def _send_compound(self, compound):
        remote = self._remote
        if remote is None:
            return
        crypto = self._crypto
        if crypto is None and self._keys_required:
            return
        if crypto is not None:
            compound = crypto.tx.protect_rtcp(compound)
        target = remote if self.rtcp_mux else (remote[0], remote[1] + 1)
        try:
            self.sock.sendto(compound, target)
        except OSError:
            self.send_errors += 1
