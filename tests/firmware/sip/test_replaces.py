"""Replaces (RFC 3891) and attended transfer (RFC 5589 §7) on the fake clock: the header, its place in a
Refer-To URI, the target's matching rules (§3) and the whole three-party flow between three UAs."""

from firmware.errors import LocalProtocolError, RemoteProtocolError
from firmware.sdp import build_offer
from firmware.sip import events
from firmware.sip.replaces import (
    Replaces,
    parse_local_replaces,
    parse_replaces,
    refer_to_value,
    split_refer_to,
)
from firmware.sip.uri import parse_name_addr, parse_uri
from firmware.sip.useragent import UserAgent
from tests.firmware.sip.netsim import Network, counter_rng
from tests.portable import raises

MICROPYTHON = True

A = ("127.0.0.1", 5061)
B = ("127.0.0.1", 5062)
C = ("127.0.0.1", 5063)
X = ("127.0.0.1", 5070)  # a raw sender: records what it is answered


def _sdp(port):
    return build_offer(["PCMU"], "127.0.0.1", port).to_bytes()


def _trio():
    net = Network(0.01)
    alice = UserAgent(A, counter_rng("a"), aor="sip:alice@127.0.0.1:5061")
    bob = UserAgent(B, counter_rng("b"), aor="sip:bob@127.0.0.1:5062")
    carol = UserAgent(C, counter_rng("c"), aor="sip:carol@127.0.0.1:5063")
    net.add(A, alice)
    net.add(B, bob)
    net.add(C, carol)
    net.add_sink(X)
    return net, alice, bob, carol


def _connect(net, caller, callee, callee_addr, uri, port):
    """caller calls callee, who answers: the call id once both sides are confirmed."""
    seen = len(net.find(callee_addr, events.IncomingCall))
    call = caller.invite(uri, _sdp(port), net.now)
    assert net.run_until(lambda: len(net.find(callee_addr, events.IncomingCall)) > seen, 1)
    callee.answer(call, _sdp(port + 2), net.now)
    assert net.run_until(lambda: callee.calls[call].state == "confirmed", 2)
    assert caller.calls[call].state == "confirmed"
    return call


def test_replaces_header_round_trips_and_refuses_what_the_grammar_refuses():
    r = parse_replaces("98732@sip.example.com ; from-tag = r33th4x0r;to-tag=ff87ff ; early-only")
    assert (r.call_id, r.to_tag, r.from_tag, r.early_only) == ("98732@sip.example.com", "ff87ff", "r33th4x0r", True)
    assert str(r) == "98732@sip.example.com;to-tag=ff87ff;from-tag=r33th4x0r;early-only"
    assert parse_replaces(str(r)) == r
    assert parse_replaces("abc;to-tag=1;from-tag=2;x=y").early_only is False  # generic-param ignored
    for bad in (
        "",
        "abc",  # §6.1: to-tag and from-tag are both required
        "abc;to-tag=1",
        "abc;from-tag=2",
        "abc;to-tag=1;to-tag=3;from-tag=2",
        "abc;to-tag;from-tag=2",
        "a b;to-tag=1;from-tag=2",
        "a@b@c;to-tag=1;from-tag=2",
        ";to-tag=1;from-tag=2",
        "abc;to-tag=1;from-tag=\x01",
        "abc;to-tag=1;;from-tag=2",
        "x" * 600 + ";to-tag=1;from-tag=2",
    ):
        exc = raises(RemoteProtocolError, parse_replaces, bad)
        assert exc.status == 400, bad
    assert str(raises(LocalProtocolError, parse_local_replaces, "abc")).startswith("bad Replaces")


def test_replaces_rides_escaped_in_a_refer_to_uri():
    target = parse_uri("sip:carol@127.0.0.1:5063;transport=udp")
    value = refer_to_value(target, Replaces("12@h", "t1", "f2"))
    # §6.1 example: the ';', '=' and '@' of the header are escaped inside the URI.
    assert value == "<sip:carol@127.0.0.1:5063;transport=udp?Replaces=12%40h%3Bto-tag%3Dt1%3Bfrom-tag%3Df2>"
    uri, replaces = split_refer_to(parse_name_addr(value).uri)
    assert str(uri) == "sip:carol@127.0.0.1:5063;transport=udp" and replaces == "12@h;to-tag=t1;from-tag=f2"
    plain, replaces = split_refer_to(parse_uri("sip:carol@h?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2"))
    assert str(plain) == "sip:carol@h" and replaces == "abc;to-tag=1;from-tag=2"
    assert split_refer_to(parse_uri("sip:carol@h")) == (parse_uri("sip:carol@h"), None)
    for bad in ("sip:c@h?Replaces=abc", "sip:c@h?Replaces=a%3Bto-tag%3D1%3Bfrom-tag%3D2&Replaces=b"):
        assert raises(RemoteProtocolError, split_refer_to, parse_uri(bad)).status == 400


def test_attended_transfer_between_three_user_agents():
    """Alice talks to Bob and to Carol, then joins them (RFC 5589 §7.1): REFER to Bob naming Carol's
    dialog; Bob's INVITE with Replaces takes the place of Alice's leg at Carol, who hangs that leg up."""
    net, alice, bob, carol = _trio()
    to_bob = _connect(net, alice, bob, B, "sip:bob@127.0.0.1:5062", 4000)
    to_carol = _connect(net, alice, carol, C, "sip:carol@127.0.0.1:5063", 4100)
    alice.refer(to_bob, None, net.now, replaces=to_carol)
    assert net.run_until(lambda: net.find(B, events.ReferReceived), 1)
    refer = net.find(B, events.ReferReceived)[0]
    assert refer.target == "sip:carol@127.0.0.1:5063"  # Carol's Contact, the remote target of that leg
    dialog = alice.calls[to_carol].dialog
    assert refer.replaces == "{};to-tag={};from-tag={}".format(to_carol, dialog.remote_tag, dialog.local_tag)
    new_call = bob.invite(refer.target, _sdp(4200), net.now, replaces=refer.replaces)
    net.pump()
    invite = net.sent(src=B, line_prefix="INVITE")[-1]["data"]
    assert b"\r\nReplaces: " + refer.replaces.encode() + b"\r\n" in invite
    assert b"\r\nRequire: replaces\r\n" in invite
    assert net.run_until(lambda: net.find(C, events.IncomingCall)[1:], 1)
    incoming = net.find(C, events.IncomingCall)[-1]
    assert incoming.call_id == new_call and incoming.replaces == to_carol
    carol.answer(new_call, _sdp(4300), net.now)
    carol.hangup(to_carol, net.now)  # the replaced dialog ends with BYE (§3)
    assert net.run_until(lambda: net.find(B, events.CallAnswered), 1)
    bob.notify_refer(to_bob, 200, net.now)
    assert net.run_until(lambda: [p for p in net.find(A, events.ReferProgress) if p.final], 1)
    progress = [(p.status, p.final) for p in net.find(A, events.ReferProgress)]
    assert progress[0] == (202, False) and (100, False) in progress and progress[-1] == (200, True), progress
    notify = net.sent(src=B, line_prefix="NOTIFY")[-1]["data"]
    assert b"Subscription-State: terminated;reason=noresource" in notify and notify.endswith(b"SIP/2.0 200 OK\r\n")
    net.run(1)
    assert net.find(A, events.CallEnded)[0] == events.CallEnded(to_carol, "remote hangup", 200, True)
    assert carol.calls[new_call].state == "confirmed" and bob.calls[new_call].state == "confirmed"
    assert alice.calls[to_bob].state == "confirmed"  # the transferor hangs up its leg itself


def _raw_invite(call_id, replaces_lines, port=5063):
    head = (
        "INVITE sip:carol@127.0.0.1:{port} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{cid}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:x@127.0.0.1:5070>;tag=xt{cid}\r\n"
        "To: <sip:carol@127.0.0.1:{port}>\r\n"
        "Call-ID: {cid}\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:x@127.0.0.1:5070>\r\n"
    ).format(port=port, cid=call_id)
    return (
        head + "".join("Replaces: " + line + "\r\n" for line in replaces_lines) + "Content-Length: 0\r\n\r\n"
    ).encode()


def _answer_to(net, call_id):
    for entry in net.log:
        if entry["src"] == C and entry["method"] == "INVITE" and b"Call-ID: " + call_id.encode() in entry["data"]:
            if not entry["line"].startswith("SIP/2.0 100"):
                return int(entry["line"].split(" ")[1])
    return None


def test_the_target_refuses_replaces_it_cannot_honour():
    net, alice, bob, carol = _trio()
    call = _connect(net, alice, carol, C, "sip:carol@127.0.0.1:5063", 4000)
    dialog = carol.calls[call].dialog
    mine = "{};to-tag={};from-tag={}".format(call, dialog.local_tag, dialog.remote_tag)
    cases = (
        ("r1", ["nosuch;to-tag=1;from-tag=2"], 481),
        ("r2", [call + ";to-tag=wrong;from-tag=" + dialog.remote_tag], 481),
        ("r3", [call + ";to-tag=" + dialog.local_tag + ";from-tag=wrong"], 481),
        ("r4", [mine + ";early-only"], 486),  # §3: early-only and the dialog is confirmed
        ("r5", ["garbage"], 400),
        ("r6", [mine, mine], 400),  # §3: more than one Replaces
        ("r7", [call + ";to-tag=" + dialog.local_tag], 400),
    )
    for cid, lines, status in cases:
        net.send_raw(_raw_invite(cid, lines), X, C)
        net.run(0.2)
        assert _answer_to(net, cid) == status, (cid, net.log[-1]["line"])
    assert not net.find(C, events.IncomingCall)[1:]  # none of them rang
    assert carol.calls[call].state == "confirmed"  # nor touched the call
    alice.hangup(call, net.now)
    net.run(1)
    net.send_raw(_raw_invite("r8", [mine]), X, C)
    net.run(0.2)
    assert _answer_to(net, "r8") == 603  # §3: the dialog it names has ended


def test_an_unanswered_incoming_call_cannot_be_replaced_but_our_own_early_one_can():
    net, alice, bob, carol = _trio()
    ringing = alice.invite("sip:carol@127.0.0.1:5063", _sdp(4000), net.now)
    assert net.run_until(lambda: net.find(C, events.IncomingCall), 1)
    carol.ringing(ringing, net.now)
    net.run(0.1)
    tag = carol.calls[ringing].local_tag
    from_tag = alice.calls[ringing].local_tag
    net.send_raw(_raw_invite("e1", [ringing + ";to-tag=" + tag + ";from-tag=" + from_tag]), X, C)
    net.run(0.2)
    assert _answer_to(net, "e1") == 481  # §3: an early dialog this UA did not start
    # At Alice the same dialog is one she started: a Replaces naming it is taken (early-only allowed).
    raw = _raw_invite("e2", [ringing + ";to-tag=" + from_tag + ";from-tag=" + tag + ";early-only"], port=5061)
    net.send_raw(raw, X, A)
    net.run(0.2)
    assert [e.replaces for e in net.find(A, events.IncomingCall)] == [ringing]


def test_refer_with_a_broken_replaces_in_refer_to_gets_400_and_no_transfer():
    net, alice, bob, _carol = _trio()
    call = _connect(net, alice, bob, B, "sip:bob@127.0.0.1:5062", 4000)
    net.drop = lambda entry: entry["method"] == "REFER" and entry["src"] == A
    alice.refer(call, "sip:carol@127.0.0.1:5063", net.now)
    net.pump()
    net.drop = None
    refer = net.sent(src=A, line_prefix="REFER")[-1]["data"]
    broken = refer.replace(b"<sip:carol@127.0.0.1:5063>", b"<sip:carol@127.0.0.1:5063?Replaces=abc%3Bto-tag%3D1>")
    assert broken != refer
    net.send_raw(broken, A, B)
    net.run(1)
    assert not net.find(B, events.ReferReceived)
    assert [(p.status, p.final) for p in net.find(A, events.ReferProgress)] == [(400, True)]
    assert str(raises(LocalProtocolError, alice.refer, call, None, net.now, call)).startswith("refer(replaces=)")
    assert str(raises(LocalProtocolError, alice.refer, call, None, net.now)) == "refer() needs a target URI"
    assert str(raises(LocalProtocolError, alice.invite, "sip:c@h", b"", net.now, "abc")).startswith("bad Replaces")
