"""Calls through a carrier stack: kamailio (registrar, digest auth, proxy) with rtpengine relaying the media
(tests/interop/carrier/stack.py). Both phones register by address of record and call each other through it.

- ZRTP end to end with linphone-cli (bzrtp), both directions: the SAS is equal on both sides, the relay
  forwarded every packet of the call (its own counters) yet holds no keys (plain RTP/AVP to it, no crypto
  suite), and the SDP it rewrote still carries each side's a=zrtp-hash unchanged, pointing at its ports.
- SDES through it: Sotto --encryption sdes with linphone media_encryption=srtp, and Sotto with Sotto.

Ports (the carrier range 18000-18499): kamailio 18060, rtpengine ng 18062/18063 and media 18100-18299,
linphone SIP 18070 / RTP 18074, Sotto SIP 18080 / 18082, RTP 18084 / 18088.
"""

import re
import socket
import time

import pytest

from tests.interop import sotto
from tests.interop.carrier.stack import Carrier
from tests.interop.carrier.tones import write_tone
from tests.interop.linphone import Linphone
from tests.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.interop

KAMAILIO_PORT = 18060
MEDIA_PORTS = 18100
LINPHONE_SIP, LINPHONE_RTP = 18070, 18074
SOTTO_SIP, SOTTO_RTP = 18080, 18084
SOTTO2_SIP, SOTTO2_RTP = 18082, 18088
USERS = [("alice", "alicepw"), ("bob", "bobpw"), ("carol", "carolpw")]


@pytest.fixture
def carrier(tmp_path):
    stack = Carrier(tmp_path, KAMAILIO_PORT, USERS, media_ports=MEDIA_PORTS)
    yield stack
    stack.stop()


def account(carrier, user, password, sip_port, rtp_port):
    return [
        "--register",
        "sip:{}@127.0.0.1".format(user),
        "--password",
        password,
        "--proxy",
        carrier.proxy,
        "--listen",
        "127.0.0.1:{}".format(sip_port),
        "--rtp-port",
        str(rtp_port),
    ]


def wait_registered(carrier, user, timeout=10.0):
    """Until kamailio knows a binding for sip:USER@127.0.0.1: an OPTIONS to the address of record is
    answered 404 by the registrar while there is none, and relayed to the phone once there is."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.3)
        port = sock.getsockname()[1]
        probes = [0]

        def bound():
            probes[0] += 1
            n = probes[0]
            request = (
                "OPTIONS sip:{user}@127.0.0.1 SIP/2.0\r\n"
                "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-probe{n}\r\n"
                "Max-Forwards: 5\r\nFrom: <sip:probe@127.0.0.1>;tag=probe\r\nTo: <sip:{user}@127.0.0.1>\r\n"
                "Call-ID: probe-{n}@127.0.0.1\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ).format(user=user, port=port, n=n)
            sock.sendto(request.encode(), ("127.0.0.1", carrier.port))
            try:
                return int(sock.recv(65535).split(b" ", 2)[1]) != 404
            except (TimeoutError, ValueError, IndexError):
                return False

        try:
            wait_until(bound, timeout, "a binding for {} at kamailio".format(user), interval=0.2)
        except WaitTimeout:
            raise AssertionError("{} never registered with kamailio:\n{}".format(user, carrier.log()[-2000:])) from None


def linphone_packets_received(phone):
    """Packets that passed linphone's SRTP unprotect in the whole call: oRTP's statistics, logged whenever
    a stream stops (a hold restarts it, the counts go on); the last ones once the call ended."""
    phone.wait_for(r"Call \d+ with \S+ ended", timeout=10)
    phone.wait_for(r"ortp-message-received\s+\d+ packets", timeout=10, source="log")
    return int(re.findall(r"ortp-message-received\s+(\d+) packets", phone.log())[-1])


def relayed_call(relay, timeout=10.0):
    """The one call the relay carries (its call id), once its answer went through."""

    def answered():
        calls = relay.calls()
        return calls if calls and len(relay.query(calls[0])["tags"]) == 2 else None

    try:
        calls = wait_until(answered, timeout, "rtpengine to carry a call", interval=0.1)
    except WaitTimeout:
        raise AssertionError("rtpengine never carried a call:\n" + relay.log()[-3000:]) from None
    assert len(calls) == 1, calls
    return calls[0]


def parties_after_a_while(relay, timeout=10.0):
    """The relay's view of the one call through it, once media has flowed through it for 2.5 s (not a
    wait: the counts checked afterwards are of those seconds of media)."""
    call_id = relayed_call(relay, timeout)
    time.sleep(2.5)
    return relay.parties(call_id)


def completed(process, carrier, timeout=40):
    """The summary of a sotto that must end with exit code 0 (else the carrier's log goes with the failure)."""
    rc, summary, err = sotto.finish(process, timeout=timeout)
    assert rc == 0, (summary, err[-3000:], carrier.log()[-2000:])
    return summary


def sdp_value(sdp, pattern):
    match = re.search(pattern, sdp or "", re.M)
    return match.group(1) if match else None


def check_relayed_sdp(relay, offerer_port, answerer_port):
    """Each SDP went through rtpengine: the port now is one of its own, every a=zrtp-hash is unchanged."""
    exchanges = relay.sdp_exchanges()
    assert [e[0] for e in exchanges][:2] == ["offer", "answer"], exchanges
    for (command, given, returned), port in zip(exchanges[:2], (offerer_port, answerer_port)):
        assert int(sdp_value(given, r"^m=audio (\d+)")) == port, (command, given)
        relay_port = int(sdp_value(returned, r"^m=audio (\d+)"))
        assert relay.port_min <= relay_port <= relay.port_max, (command, returned)
        assert sdp_value(returned, r"^c=IN IP4 (\S+)") == relay.address
        hash_given = sdp_value(given, r"^a=zrtp-hash:(.+?)\s*$")
        assert hash_given is not None, (command, given)
        assert sdp_value(returned, r"^a=zrtp-hash:(.+?)\s*$") == hash_given, (command, returned)
    return exchanges


def check_relay_counters(parties, sotto_port, peer_port):
    """rtpengine relayed the media both ways between the two phones' own ports, as plain RTP/AVP: it
    negotiated no SRTP of its own, so it never had a key (ZRTP keys are agreed inside the media)."""
    by_media = {p["media"]: p for p in parties.values()}
    assert set(by_media) == {"127.0.0.1:{}".format(sotto_port), "127.0.0.1:{}".format(peer_port)}, parties
    for party in parties.values():
        assert party["protocol"] == "RTP/AVP" and party["crypto"] is None, parties
        # About 50 packets a second each way, ZRTP and SRTP alike: 2 s of call is at least 60.
        assert party["from_party"] > 60, parties


@pytest.mark.parametrize("direction", ["sotto_calls", "linphone_calls"])
def test_zrtp_end_to_end_with_linphone_through_kamailio_and_rtpengine(carrier, tmp_path, direction):
    relay = carrier.relays[0]
    tone = write_tone(tmp_path / "tone.wav", 440, 10)
    with Linphone(tmp_path / "bob", LINPHONE_SIP, LINPHONE_RTP, user="bob", auto_answer=True) as bob:
        bob.register("bob", "bobpw", carrier.proxy)
        args = account(carrier, "alice", "alicepw", SOTTO_SIP, SOTTO_RTP) + [
            "--duration",
            "4",
            "--timeout",
            "40",
            "--cache",
            str(tmp_path / "alice.cache"),
            "--play",
            str(tone),
        ]
        command = ["call", "sip:bob@127.0.0.1"] if direction == "sotto_calls" else ["answer"]
        with sotto.running(command + args, tmp_path / "alice") as process:
            if direction == "linphone_calls":
                wait_registered(carrier, "alice")
                bob.command("call sip:alice@127.0.0.1")
            token = bob.auth_token(timeout=20)
            bob.command("play {}".format(tone))
            parties = parties_after_a_while(relay)
            summary = completed(process, carrier)
        algorithms = bob.algorithms()
        linphone_received = linphone_packets_received(bob)
        bob_log = bob.log()
    assert summary["result"] == "completed" and summary["registered"] is True, summary
    assert summary["encryption"] == "zrtp" and summary["secure"] is True, summary
    assert summary["sas"] == token.replace(":", " "), (summary, token)
    ours = summary["zrtp"]
    assert (ours["key_agreement"], ours["cipher"], ours["hash"], ours["auth_tag"], summary["sas_type"]) == (
        algorithms["key_agreement"],
        algorithms["cipher"],
        algorithms["hash"],
        algorithms["auth_tag"],
        algorithms["sas"],
    ), (summary, algorithms)
    # Every SRTP packet linphone sent through the relay authenticated with the keys agreed end to end.
    assert summary["rtp"]["received"] > 100 and summary["rtp"]["auth_failures"] == 0, summary
    assert summary["rtp"]["sent"] > 100 and linphone_received > 100, (summary, linphone_received)

    offerer, answerer = (SOTTO_RTP, LINPHONE_RTP) if direction == "sotto_calls" else (LINPHONE_RTP, SOTTO_RTP)
    exchanges = check_relayed_sdp(relay, offerer, answerer)
    check_relay_counters(parties, SOTTO_RTP, LINPHONE_RTP)
    # linphone itself was told the relay's port, not Sotto's.
    to_linphone = exchanges[0][2] if direction == "sotto_calls" else exchanges[1][2]
    relay_port_for_linphone = sdp_value(to_linphone, r"^m=audio (\d+)")
    assert re.search(r"m=audio {} RTP/AVP".format(relay_port_for_linphone), bob_log), "linphone saw another SDP"
    assert "m=audio {} ".format(SOTTO_RTP) not in bob_log


def test_sdes_with_linphone_through_kamailio_and_rtpengine(tmp_path):
    # rtpengine must pad the SDES keys it passes on for linphone (stack.Carrier's pad_crypto): the test
    # below between two Sottos keeps rtpengine's default, unpadded keys.
    carrier = Carrier(tmp_path, KAMAILIO_PORT, USERS, media_ports=MEDIA_PORTS, pad_crypto=True)
    try:
        _sdes_with_linphone(carrier, tmp_path)
    finally:
        carrier.stop()


def _sdes_with_linphone(carrier, tmp_path):
    relay = carrier.relays[0]
    tone = write_tone(tmp_path / "tone.wav", 440, 10)
    with Linphone(
        tmp_path / "bob", LINPHONE_SIP, LINPHONE_RTP, user="bob", auto_answer=True, media_encryption="srtp"
    ) as bob:
        bob.register("bob", "bobpw", carrier.proxy)
        args = account(carrier, "alice", "alicepw", SOTTO_SIP, SOTTO_RTP) + [
            "--encryption",
            "sdes",
            "--duration",
            "4",
            "--timeout",
            "40",
            "--play",
            str(tone),
        ]
        with sotto.running(["call", "sip:bob@127.0.0.1"] + args, tmp_path / "alice") as process:
            bob.wait_for(r"Media streams established", timeout=20)
            bob.command("play {}".format(tone))
            parties = parties_after_a_while(relay, timeout=20)
            summary = completed(process, carrier)
        linphone_received = linphone_packets_received(bob)
    assert summary["result"] == "completed" and summary["encryption"] == "sdes" and summary["secure"], summary
    assert summary["rtp"]["received"] > 100 and summary["rtp"]["auth_failures"] == 0, summary
    assert summary["rtp"]["sent"] > 100 and linphone_received > 100, (summary, linphone_received)
    by_media = {p["media"]: p for p in parties.values()}
    assert set(by_media) == {"127.0.0.1:{}".format(SOTTO_RTP), "127.0.0.1:{}".format(LINPHONE_RTP)}, parties
    for party in parties.values():
        assert party["from_party"] > 60, parties
    for command, given, returned in relay.sdp_exchanges()[:2]:
        assert "RTP/SAVP" in given and "a=crypto:" in given, (command, given)
        assert "RTP/SAVP" in returned and "a=crypto:" in returned, (command, returned)


def test_sdes_sotto_to_sotto_through_kamailio_and_rtpengine(carrier, tmp_path):
    relay = carrier.relays[0]
    bob = sotto.start(
        ["answer"]
        + account(carrier, "bob", "bobpw", SOTTO2_SIP, SOTTO2_RTP)
        + ["--encryption", "sdes", "--timeout", "40"],
        tmp_path / "bob",
    )
    alice = None
    try:
        wait_registered(carrier, "bob")
        alice = sotto.start(
            ["call", "sip:bob@127.0.0.1"]
            + account(carrier, "alice", "alicepw", SOTTO_SIP, SOTTO_RTP)
            + ["--encryption", "sdes", "--duration", "4", "--timeout", "40"],
            tmp_path / "alice",
        )
        parties = parties_after_a_while(relay, timeout=20)
        caller = completed(alice, carrier)
        rc, callee, err = sotto.finish(bob, timeout=40)
        assert rc == 0, (callee, err[-3000:])
    finally:
        for process in (alice, bob):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
    for summary in (caller, callee):
        assert summary["result"] == "completed" and summary["encryption"] == "sdes" and summary["secure"], summary
        assert summary["rtp"]["received"] > 100 and summary["rtp"]["auth_failures"] == 0, summary
    by_media = {p["media"]: p for p in parties.values()}
    assert set(by_media) == {"127.0.0.1:{}".format(SOTTO_RTP), "127.0.0.1:{}".format(SOTTO2_RTP)}, parties
    # Both Sottos used their first choice, AES-256, although rtpengine handed each the other's key without
    # base64 padding (46 bytes: 62 characters instead of 64 with "=="); it holds the keys (SDES).
    (_, offer_given, offer_relayed), (_, answer_given, answer_relayed) = relay.sdp_exchanges()[:2]
    for sdp in (offer_relayed, answer_relayed):
        key = sdp_value(sdp, r"^a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:(\S+)")
        assert key is not None and len(key) == 62, sdp
    assert sdp_value(answer_given, r"^a=crypto:(\d+) ") == "1", answer_given
