"""SIP and SDP costs per message on this machine (`make bench`, or `python -m tools.bench sip`)."""

import time

from firmware.sdp import answer_offer, build_offer, parse_sdp
from firmware.sip.auth import compute_response
from firmware.sip.message import check_request, parse_message
from firmware.sip.useragent import UserAgent

SDP = build_offer(["PCMU", "PCMA", "G722", "opus"], "192.0.2.10", 40000, zrtp_hash="1.10 " + "ab" * 32).to_bytes()

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKproxy1;received=192.0.2.1\r\n"
    b"Record-Route: <sip:192.0.2.1;lr>\r\n"
    b"Max-Forwards: 69\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.10:5060>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE\r\n"
    b"User-Agent: Sotto\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)
OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport=5060\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:bob@192.0.2.4>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _per_call(func, seconds=0.3):
    count = 0
    start = time.perf_counter()
    while True:
        for _ in range(100):
            func()
        count += 100
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / count


def _report(name, seconds):
    print("  {:<52} {:8.1f} us".format(name, seconds * 1e6))


def run():
    invite = parse_message(INVITE)
    ok = parse_message(OK)

    def parse_invite_fully():
        msg = parse_message(INVITE)
        check_request(msg)
        return msg.top_via, msg.from_addr, msg.to_addr, msg.cseq

    _report("parse INVITE with SDP ({} bytes)".format(len(INVITE)), _per_call(lambda: parse_message(INVITE)))
    _report("parse + check INVITE (Via, From, To, CSeq parsed)", _per_call(parse_invite_fully))
    _report("serialize INVITE", _per_call(invite.to_bytes))
    _report("parse 200 OK ({} bytes)".format(len(OK)), _per_call(lambda: parse_message(OK)))
    _report("serialize 200 OK", _per_call(ok.to_bytes))
    _report("parse SDP offer ({} bytes)".format(len(SDP)), _per_call(lambda: parse_sdp(SDP)))
    _report("answer SDP offer", _per_call(lambda: answer_offer(SDP, ["PCMA", "PCMU"], "192.0.2.4", 5000)))
    _report(
        "digest response SHA-256 qop=auth",
        _per_call(lambda: compute_response("SHA-256", "alice", "r", "pw", "REGISTER", "sip:r", "n", 1, "c", "auth")),
    )
    counter = [0]

    def rng(n):
        counter[0] += 1
        return counter[0].to_bytes(8, "big")[:n].rjust(n, b"\0")

    def ua_takes_invite():
        ua = UserAgent(("192.0.2.4", 5060), rng)
        ua.receive_datagram(INVITE, ("192.0.2.1", 5060), 0.0)
        ua.datagrams_to_send(0.0)
        ua.next_event()

    _report("UserAgent: new UA, INVITE in, 100 Trying out, event", _per_call(ua_takes_invite))


if __name__ == "__main__":
    run()
