"""The call layer's fallback branches (firmware/call.py) against real peers, with `sotto call`/`sotto answer`
in their default encryption (ZRTP):

- a peer without ZRTP (sipp answering plain G.711 with a media port of the test's that never sends a
  Hello; baresip without media encryption): the media starts in the clear at once, "not secure: peer has
  no ZRTP", and the peer really hears us (and we it);
- linphone with media_encryption=none: it still answers our ZRTP Hello, so the call goes secure;
- baresip with SDES (mediaenc=srtp, srtp-mand) calling, and called with srtp-mand: SDES, audio both ways;
- a peer that advertised ZRTP but whose exchange fails (a relay in the test drops every ZRTP packet but
  Hello and HelloACK): clear after at most 3 s of withheld audio, with the alarm;
- --secure-only ends each such call, and nothing is ever sent in the clear.

Each side plays its own tone (Sotto 440 Hz, the peer 1000 Hz); what each heard is measured.

Ports (the carrier range 18000-18499): Sotto SIP 18310 / RTP 18312, a second Sotto 18360 / 18362, sipp
18320 with its media at 18322, baresip 18330 / RTP 18340-18349, linphone 18350 / 18352, relay 18370/18372.
"""

import pathlib
import subprocess

import pytest

from firmware.rtp.red import parse_red
from firmware.sdp.description import RED_DYNAMIC
from tests.interop import sotto
from tests.interop.carrier.peers import RTP, ZRTP, Baresip, MediaRelay, PlainRtpPeer, zrtp_message_type
from tests.interop.carrier.test_carrier import linphone_packets_received
from tests.interop.carrier.tones import tone_levels, write_tone
from tests.interop.linphone import Linphone
from tests.interop.sip.driver import require
from tests.waiting import wait_udp_bound

pytestmark = pytest.mark.interop

SCENARIOS = pathlib.Path(__file__).resolve().parents[1] / "scenarios"
SOTTO_SIP, SOTTO_RTP = 18310, 18312
SOTTO2_SIP, SOTTO2_RTP = 18360, 18362
SIPP_SIP, SIPP_MEDIA = 18320, 18322
BARESIP_SIP, BARESIP_RTP = 18330, (18340, 18349)
LINPHONE_SIP, LINPHONE_RTP = 18350, 18352
RELAY_A, RELAY_B = 18370, 18372
SOTTO_TONE, PEER_TONE = 440, 1000
NOT_SECURE_NO_ZRTP = "not secure: peer has no ZRTP"


def sotto_args(tmp_path, *extra, sip=SOTTO_SIP, rtp=SOTTO_RTP, name="alice"):
    tone = write_tone(tmp_path / "sotto-tone.wav", SOTTO_TONE, 20)
    return [
        "--listen",
        "127.0.0.1:{}".format(sip),
        "--rtp-port",
        str(rtp),
        "--play",
        str(tone),
        "--record",
        str(tmp_path / (name + "-heard.wav")),
        "--cache",
        str(tmp_path / (name + ".cache")),
        *extra,
    ]


def wait_udp_port(port, process, timeout=15.0):
    def alive():
        assert process.poll() is None, process.communicate()

    wait_udp_bound(port, timeout, "the phone's port", alive)


def finish(process, timeout=60):
    try:
        return sotto.finish(process, timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def heard_tone(recording, frequency, min_windows=5, level=2000):
    """The recording carries `frequency` in at least `min_windows` 0.2 s windows."""
    loud = [t for t, a in tone_levels(recording, frequency) if a > level]
    assert len(loud) >= min_windows, (
        "{} Hz not heard in {}".format(frequency, recording),
        [(round(t, 1), round(a)) for t, a in tone_levels(recording, frequency)][:40],
    )


def assert_clear_with_alarm(summary, alarm=NOT_SECURE_NO_ZRTP):
    assert summary["result"] == "completed", summary
    assert summary["encryption"] == "none" and summary["secure"] is False, summary
    assert any(a.startswith(alarm) for a in summary.get("alarms", [])), summary
    assert summary["rtp"]["sent"] > 50 and summary["rtp"]["received"] > 50, summary


# -- a peer without ZRTP -----------------------------------------------------------------------------------


def _sipp_plain(tmp_path):
    return subprocess.Popen(
        [
            require("sipp"),
            "-sf",
            str(SCENARIOS / "uas_plain_g711.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(SIPP_SIP),
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "40",
            "-set",
            "mport",
            str(SIPP_MEDIA),
            "-trace_err",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _call_sipp_plain(tmp_path, *extra):
    peer = PlainRtpPeer(SIPP_MEDIA, tone_hz=PEER_TONE)
    sipp = _sipp_plain(tmp_path)
    try:
        wait_udp_port(SIPP_SIP, sipp)
        process = sotto.start(
            ["call", "sip:plain@127.0.0.1:{}".format(SIPP_SIP)] + sotto_args(tmp_path, "--timeout", "30", *extra),
            tmp_path / "alice",
        )
        rc, summary, err = finish(process)
        try:
            sipp_out = sipp.communicate(timeout=15)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            sipp.kill()
            sipp_out = sipp.communicate()[0].decode(errors="replace")
    finally:
        if sipp.poll() is None:
            sipp.kill()
            sipp.wait(10)
        peer.stop()
    return rc, summary, err, peer, sipp.returncode, sipp_out


def test_call_to_sipp_without_zrtp_is_clear_at_once_and_heard(tmp_path):
    rc, summary, err, peer, sipp_rc, sipp_out = _call_sipp_plain(tmp_path, "--duration", "3")
    assert rc == 0 and sipp_rc == 0, (summary, err[-3000:], sipp_out[-2000:])
    assert_clear_with_alarm(summary)
    # Audio from the first second: the first clear RTP packet came right after the first datagram (the
    # Hello that a late ZRTP peer would answer), not after a wait for ZRTP.
    first = peer.received[0][0]
    first_rtp = peer.of(RTP)[0][0]
    assert first_rtp - first < 0.5, (first_rtp - first, [k for _, k, _ in peer.received[:10]])
    assert len([t for t, _ in peer.of(RTP) if t - first_rtp < 1.0]) > 40
    # The peer (which never sent ZRTP) heard our tone, and we heard its tone.
    heard_tone(peer.write_heard(tmp_path / "peer-heard.wav"), SOTTO_TONE, min_windows=10)
    heard_tone(tmp_path / "alice-heard.wav", PEER_TONE, min_windows=10)


def _baresip(tmp_path, mediaenc=None):
    tone = write_tone(tmp_path / "peer-tone.wav", PEER_TONE, 30)
    return Baresip(tmp_path / "carol", BARESIP_SIP, BARESIP_RTP, play=tone, mediaenc=mediaenc)


def _sotto_calls_baresip(tmp_path, mediaenc, *extra):
    carol = _baresip(tmp_path, mediaenc).start("-t", "40")
    try:
        process = sotto.start(["call", carol.uri] + sotto_args(tmp_path, "--timeout", "30", *extra), tmp_path / "alice")
        rc, summary, err = finish(process)
    finally:
        carol.stop()
    return rc, summary, err, carol


def _baresip_calls_sotto(tmp_path, mediaenc, *extra):
    process = sotto.start(["answer"] + sotto_args(tmp_path, "--timeout", "30", *extra), tmp_path / "alice")
    carol = None
    try:
        wait_udp_port(SOTTO_SIP, process)
        carol = _baresip(tmp_path, mediaenc).start("-e", "/dial sip:alice@127.0.0.1:{}".format(SOTTO_SIP))
        rc, summary, err = finish(process)
    finally:
        if carol is not None:
            carol.stop()
        if process.poll() is None:
            process.kill()
            process.wait(10)
    return rc, summary, err, carol


BARESIP_DIRECTIONS = {"sotto_calls": _sotto_calls_baresip, "baresip_calls": _baresip_calls_sotto}


@pytest.mark.parametrize("direction", sorted(BARESIP_DIRECTIONS))
def test_baresip_without_media_encryption_is_clear_at_once_and_heard(tmp_path, direction):
    rc, summary, err, carol = BARESIP_DIRECTIONS[direction](tmp_path, None, "--duration", "3")
    assert rc == 0, (summary, err[-3000:], carol.log()[-3000:])
    assert_clear_with_alarm(summary)
    heard_tone(carol.heard(), SOTTO_TONE, min_windows=8)
    heard_tone(tmp_path / "alice-heard.wav", PEER_TONE, min_windows=8)


# A default Sotto's offer carries a=zrtp-hash and no a=crypto: baresip with srtp-mand refuses it (488) and
# Sotto offers again with SDES; baresip with plain mediaenc=srtp (best effort) takes the plain offer and the
# call is clear, so Sotto calling it with SDES is not covered here (not there yet).
@pytest.mark.parametrize(
    "direction,mediaenc", [("baresip_calls", "srtp"), ("baresip_calls", "srtp-mand"), ("sotto_calls", "srtp-mand")]
)
def test_baresip_with_sdes_gets_sdes_and_audio_both_ways(tmp_path, direction, mediaenc):
    rc, summary, err, carol = BARESIP_DIRECTIONS[direction](tmp_path, mediaenc, "--duration", "3")
    assert rc == 0, (summary, err[-3000:], carol.log()[-3000:])
    assert summary["result"] == "completed" and summary["encryption"] == "sdes", summary
    # baresip 1.0 opens each call with one 16-byte RTCP APP "PING" in the clear (a NAT pinhole opener, not
    # SRTCP): it fails Sotto's check, and nothing else does.
    assert summary["rtp"]["received"] > 50 and summary["rtp"]["auth_failures"] <= 1, summary
    heard_tone(carol.heard(), SOTTO_TONE, min_windows=8)
    heard_tone(tmp_path / "alice-heard.wav", PEER_TONE, min_windows=8)


# -- linphone with its encryption off ---------------------------------------------------------------------


def _linphone(tmp_path, auto_answer):
    return Linphone(
        tmp_path / "bob", LINPHONE_SIP, LINPHONE_RTP, user="bob", auto_answer=auto_answer, media_encryption="none"
    )


@pytest.mark.parametrize("direction", ["sotto_calls", "linphone_calls"])
def test_linphone_with_encryption_off_answers_our_hello_and_goes_secure(tmp_path, direction):
    """linphone with media_encryption=none still runs ZRTP. Called with our a=zrtp-hash, it answers with
    its own and the exchange runs as usual. Calling, its offer has no a=zrtp-hash, so Sotto starts the media
    in the clear at once ("not secure: peer has no ZRTP"), and linphone answers our Hello all the same: the
    call goes secure (the policy's late-Hello branch). Either way: ZRTP-secure on both sides with the same
    SAS, audio both ways."""
    tone = write_tone(tmp_path / "peer-tone.wav", PEER_TONE, 30)
    with _linphone(tmp_path, auto_answer=direction == "sotto_calls") as bob:
        bob.command("play {}".format(tone))
        bob.command("record {}".format(tmp_path / "bob-heard.wav"))
        if direction == "sotto_calls":
            process = sotto.start(
                ["call", bob.uri] + sotto_args(tmp_path, "--duration", "4", "--timeout", "30"), tmp_path / "alice"
            )
        else:
            process = sotto.start(
                ["answer"] + sotto_args(tmp_path, "--duration", "4", "--timeout", "30"), tmp_path / "alice"
            )
            wait_udp_port(SOTTO_SIP, process)
            bob.command("call sip:alice@127.0.0.1:{}".format(SOTTO_SIP))
        rc, summary, err = finish(process)
        assert rc == 0, (summary, err[-3000:], bob.console()[-2000:])
        received = linphone_packets_received(bob)
        token = bob.auth_token(timeout=5)
    assert summary["result"] == "completed", summary
    assert summary["encryption"] == "zrtp" and summary["secure"] is True, summary
    assert summary["sas"] == token, (summary, token)
    # linphone with encryption off sends its first packets in the clear until its ZRTP completes; the few
    # still in flight when Sotto's keys are in place fail the SRTP check (0 to 3 measured; logged: 172-byte
    # clear PCMU packets with sequence numbers under 10, no SRTP tag). Fewer than the
    # call layer's "peer stopped encrypting" count (firmware/call.py STOPPED_ENCRYPTING_FAILURES), and no
    # alarm at all: the call is secure and stays so.
    assert summary["rtp"]["received"] > 100 and summary["rtp"]["auth_failures"] < 10, summary
    assert not [a for a in summary.get("alarms", []) if "encrypting" in a or "auth" in a], summary
    if direction == "linphone_calls":
        assert any(a.startswith(NOT_SECURE_NO_ZRTP) for a in summary["alarms"]), summary
    assert received > 100, received
    heard_tone(tmp_path / "alice-heard.wav", PEER_TONE, min_windows=10)
    heard_tone(tmp_path / "bob-heard.wav", SOTTO_TONE, min_windows=10)


# -- ZRTP advertised, but the exchange fails --------------------------------------------------------------


def _drop_zrtp_after_hello(direction, datagram):
    """Hello and HelloACK pass; Commit, DHPart1/2, Confirm1/2, Conf2ACK and the rest are dropped."""
    from tests.interop.carrier.peers import classify

    return classify(datagram) == ZRTP and zrtp_message_type(datagram) not in ("Hello   ", "HelloACK")


def _sotto_pair_through_failing_relay(tmp_path, *extra):
    relay = MediaRelay(RELAY_A, SOTTO_RTP, RELAY_B, SOTTO2_RTP, drop=_drop_zrtp_after_hello)
    bob = sotto.start(
        ["answer"]
        + sotto_args(
            tmp_path,
            "--timeout",
            "30",
            "--public-address",
            "127.0.0.1:{}".format(RELAY_B),
            *extra,
            sip=SOTTO2_SIP,
            rtp=SOTTO2_RTP,
            name="bob",
        ),
        tmp_path / "bob",
    )
    try:
        wait_udp_port(SOTTO2_SIP, bob)
        alice = sotto.start(
            ["call", "sip:bob@127.0.0.1:{}".format(SOTTO2_SIP)]
            + sotto_args(
                tmp_path,
                "--timeout",
                "30",
                "--duration",
                "6",
                "--public-address",
                "127.0.0.1:{}".format(RELAY_A),
                *extra,
            ),
            tmp_path / "alice",
        )
        caller = finish(alice)
        callee = finish(bob)
    finally:
        if bob.poll() is None:
            bob.kill()
            bob.wait(10)
        relay.stop()
    return caller, callee, relay


def _clear_pcmu(datagram):
    pt = datagram[1] & 0x7F
    if pt == 0:
        return len(datagram) == 172
    if pt != RED_DYNAMIC["PCMU"]:
        return False
    primary_pt, primary, blocks = parse_red(datagram[12:])
    return primary_pt == 0 and len(primary) == 160 and all(b[0] == 0 and len(b[2]) == 160 for b in blocks)


def test_zrtp_exchange_that_fails_falls_back_to_clear_within_3_s(tmp_path):
    (rc, caller, err), (rc2, callee, err2), relay = _sotto_pair_through_failing_relay(tmp_path)
    assert rc == 0 and rc2 == 0, (caller, err[-3000:], callee, err2[-3000:])
    assert relay.of("a>b", ZRTP, dropped=True) and relay.of("b>a", ZRTP, dropped=True), "no ZRTP was dropped"
    for summary in (caller, callee):
        assert summary["result"] == "completed", summary
        assert summary["encryption"] == "none" and summary["secure"] is False, summary
        assert any(a.startswith("not secure") or a.startswith("ZRTP failed") for a in summary["alarms"]), summary
        assert summary["rtp"]["received"] > 50, summary
    for direction in ("a>b", "b>a"):
        first_hello = relay.of(direction, ZRTP)[0][0]
        first_rtp = relay.of(direction, RTP)[0][0]
        # At most 3 s of withheld audio (the call layer's ZRTP_FALLBACK), plus scheduling slack.
        assert first_rtp - first_hello <= 3.3, (direction, first_rtp - first_hello)
        # And what went through is audio in the clear, with no SRTP tag: PCMU in RFC 2198 RED (both Sottos
        # offer it) whose blocks are exactly 160-octet frames, or plain PCMU, 172-byte packets.
        assert all(_clear_pcmu(d) for _, d in relay.of(direction, RTP)[:50]), direction
    heard_tone(tmp_path / "alice-heard.wav", SOTTO_TONE, min_windows=8)
    heard_tone(tmp_path / "bob-heard.wav", SOTTO_TONE, min_windows=8)


# -- --secure-only ends each such call ---------------------------------------------------------------------


def test_secure_only_ends_the_call_to_sipp_without_sending_clear_audio(tmp_path):
    rc, summary, err, peer, _sipp_rc, _out = _call_sipp_plain(tmp_path, "--secure-only", "--duration", "30")
    assert rc == 1 and summary["result"] == "failed", (summary, err[-2000:])
    assert summary["secure"] is False and summary["rtp"]["sent"] == 0, summary
    assert peer.of(RTP) == [], "clear audio reached the peer"


@pytest.mark.parametrize("mediaenc", [None, "srtp"])
def test_secure_only_ends_the_call_to_baresip(tmp_path, mediaenc):
    rc, summary, err, carol = _sotto_calls_baresip(tmp_path, mediaenc, "--secure-only", "--duration", "30")
    assert rc == 1 and summary["result"] == "failed", (summary, err[-2000:], carol.log()[-2000:])
    assert summary["secure"] is False and summary["rtp"]["sent"] == 0, summary


def test_secure_only_ends_an_sdes_call_from_baresip(tmp_path):
    rc, summary, err, carol = _baresip_calls_sotto(tmp_path, "srtp-mand", "--secure-only", "--duration", "30")
    assert rc == 1 and summary["result"] == "failed", (summary, err[-2000:], carol.log()[-2000:])
    assert summary["secure"] is False and summary["rtp"]["sent"] == 0, summary


def test_secure_only_ends_the_call_whose_zrtp_exchange_fails(tmp_path):
    (rc, caller, err), (rc2, callee, err2), relay = _sotto_pair_through_failing_relay(tmp_path, "--secure-only")
    for code, summary in ((rc, caller), (rc2, callee)):
        assert code == 1 and summary["result"] == "failed" and summary["secure"] is False, summary
    assert relay.of("a>b", RTP) == [] and relay.of("b>a", RTP) == [], "clear audio went through"
