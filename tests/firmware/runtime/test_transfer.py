"""The transferee's reports (firmware/runtime/transfer.py) between two real UserAgents on the fake clock:
the new call's progress reaches the transferor as sipfrag NOTIFYs (RFC 3515 §2.4.4-§2.4.5), the final one
terminates the subscription, and the old dialog is left behind."""

from firmware.runtime.transfer import LEAVE_GRACE, Transferee
from firmware.sdp import build_offer
from firmware.sip import events
from firmware.sip.useragent import UserAgent
from tests.firmware.sip.netsim import Network, counter_rng

A = ("127.0.0.1", 5061)
B = ("127.0.0.1", 5062)


class _Loop:
    """Just what Transferee uses of the Loop: now() and call_later(), on the network's clock."""

    def __init__(self, net):
        self.net = net
        self.later = []

    def now(self):
        return self.net.now

    def call_later(self, delay, callback):
        self.later.append((self.net.now + delay, callback))

    def run_due(self):
        due = [item for item in self.later if item[0] <= self.net.now]
        self.later = [item for item in self.later if item[0] > self.net.now]
        for _, callback in due:
            callback()


def _referred(keep_old=False):
    net = Network(0.01)
    alice = UserAgent(A, counter_rng("a"), aor="sip:alice@127.0.0.1:5061")
    bob = UserAgent(B, counter_rng("b"), aor="sip:bob@127.0.0.1:5062")
    net.add(A, alice)
    net.add(B, bob)
    sdp = build_offer(["PCMU"], "127.0.0.1", 4000).to_bytes()
    call = alice.invite("sip:bob@127.0.0.1:5062", sdp, net.now)
    assert net.run_until(lambda: net.find(B, events.IncomingCall), 1)
    bob.answer(call, sdp, net.now)
    assert net.run_until(lambda: bob.calls[call].state == "confirmed", 2)
    alice.refer(call, "sip:carol@127.0.0.1:5063", net.now)
    assert net.run_until(lambda: net.find(B, events.ReferReceived), 1)
    net.run(0.5)
    loop = _Loop(net)
    transferee = Transferee(bob, loop, net.pump, net.find(B, events.ReferReceived)[0], keep_old=keep_old)
    transferee.new_call = "new-call"
    return net, alice, bob, call, loop, transferee


def _progress(net):
    return [(p.status, p.final) for p in net.find(A, events.ReferProgress)]


def test_ringing_then_answered_reaches_the_transferor_and_the_old_dialog_ends():
    net, alice, bob, call, loop, transferee = _referred()
    transferee.observe(events.CallRinging("another-call", 180, b""))  # not the new call: nothing said
    transferee.observe(events.CallRinging("new-call", 180, b""))
    transferee.observe(events.CallRinging("new-call", 180, b""))  # the same status once only
    net.run(0.5)
    assert _progress(net) == [(202, False), (100, False), (180, False)]
    transferee.observe(events.CallAnswered("new-call", b""))
    net.run(0.5)
    assert _progress(net)[-1] == (200, True)
    target = "sip:carol@127.0.0.1:5063"
    assert transferee.record == {"role": "transferee", "target": target, "attended": False, "status": 200}
    final = net.sent(src=B, line_prefix="NOTIFY")[-1]["data"]
    assert b"Subscription-State: terminated;reason=noresource\r\n" in final and final.endswith(b"SIP/2.0 200 OK\r\n")
    transferee.observe(events.CallEnded("new-call", "remote hangup", 200, True))  # after the end: nothing more
    net.run(0.5)
    assert len(net.sent(src=B, line_prefix="NOTIFY")) == 3
    # The transferor did not hang up its leg: after LEAVE_GRACE the transferee does (BYE).
    net.run(LEAVE_GRACE)
    loop.run_due()
    net.run(1)
    assert net.find(A, events.CallEnded) == [events.CallEnded(call, "remote hangup", 200, True)]


def test_a_failed_transfer_is_reported_and_the_old_dialog_ended_at_once():
    net, alice, bob, call, loop, transferee = _referred()
    transferee.observe(events.CallFailed("new-call", 486, "busy"))
    net.run(0.5)
    assert _progress(net)[-1] == (486, True) and transferee.record["status"] == 486
    assert net.find(A, events.CallEnded)[0].by_remote is True


def test_a_failed_transfer_keeps_the_old_dialog_when_the_front_end_takes_the_call_back():
    """keep_old (a front end that parked the call, CallController.leave_for_transfer): the transferor hears
    the failure in the final NOTIFY (RFC 3515 §2.4.5) and the call it referred stays up (RFC 5589 §6.1:
    it may take it off hold); nothing ends it later either."""
    net, alice, bob, call, loop, transferee = _referred(keep_old=True)
    transferee.observe(events.CallRinging("new-call", 180, b""))
    transferee.observe(events.CallFailed("new-call", 486, "busy"))
    net.run(0.5)
    assert _progress(net)[-2:] == [(180, False), (486, True)]
    final = net.sent(src=B, line_prefix="NOTIFY")[-1]["data"]
    assert b"Subscription-State: terminated;reason=noresource\r\n" in final and final.endswith(
        b"SIP/2.0 486 Busy Here\r\n"
    )
    net.run(LEAVE_GRACE + 1)
    loop.run_due()
    net.run(1)
    assert net.find(A, events.CallEnded) == [] and net.find(B, events.CallEnded) == []
    assert alice.calls[call].state == "confirmed" and bob.calls[call].state == "confirmed"
    # The call goes on in that dialog: bob can still re-INVITE it (it is a live dialog, not a leftover).
    bob.reinvite(call, build_offer(["PCMU"], "127.0.0.1", 4002).to_bytes(), net.now)
    assert net.run_until(lambda: net.find(A, events.ReinviteReceived), 1)


def test_a_transfer_still_open_when_the_front_end_stops_is_reported_and_the_old_dialog_ended():
    net, alice, bob, call, loop, transferee = _referred(keep_old=True)
    transferee.leave_now()  # the run ends (a signal, --timeout) while the new call still rings
    net.run(0.5)
    assert _progress(net)[-1] == (487, True) and transferee.record["status"] == 487
    assert net.find(A, events.CallEnded)[0].by_remote is True


def test_a_summary_takes_the_old_legs_media_back_after_a_failed_transfer():
    from firmware.runtime.summary import Summary

    summary = Summary("zrtp")
    summary.codec, summary.secure, summary.sas, summary.sas_type = "PCMU", True, "ab12", "B32"
    summary.zrtp = {"verified": False}
    old = summary.new_leg()
    assert (summary.codec, summary.secure, summary.sas, summary.zrtp) == (None, False, None, None)
    summary.codec = "opus"  # the new call got that far
    summary.resume_leg(old)
    out = summary.to_json()
    assert (out["codec"], out["secure"], out["sas"], out["sas_type"]) == ("PCMU", True, "ab12", "B32")
    assert out["zrtp"] == {"verified": False}


def test_a_transferor_that_already_left_is_not_an_error():
    net, alice, bob, call, loop, transferee = _referred()
    alice.hangup(call, net.now)
    net.run(1)
    transferee.observe(events.CallAnswered("new-call", b""))  # no dialog to NOTIFY in: logged, no raise
    net.run(LEAVE_GRACE + 1)
    loop.run_due()
    assert transferee.status == 200 and call not in bob.calls


def _transferor_and_outcomes(statuses):
    """alice (Transferor) refers bob, who reports `statuses` as sipfrags: every outcome alice saw."""
    from firmware.runtime.transfer import Transferor

    net = Network(0.01)
    alice = UserAgent(A, counter_rng("a"), aor="sip:alice@127.0.0.1:5061")
    bob = UserAgent(B, counter_rng("b"), aor="sip:bob@127.0.0.1:5062")
    net.add(A, alice)
    net.add(B, bob)
    sdp = build_offer(["PCMU"], "127.0.0.1", 4000).to_bytes()
    call = alice.invite("sip:bob@127.0.0.1:5062", sdp, net.now)
    assert net.run_until(lambda: net.find(B, events.IncomingCall), 1)
    bob.answer(call, sdp, net.now)
    assert net.run_until(lambda: alice.calls[call].state == "confirmed", 2)
    transferor = Transferor(alice, call, "sip:carol@127.0.0.1:5063", net.now)
    net.run(0.5)
    for status in statuses:
        bob.notify_refer(call, status, net.now)
        net.run(0.5)
    outcomes = [transferor.progress(e) for e in net.events[A]]
    return transferor, [o for o in outcomes if o is not None]


def test_the_transferor_follows_the_sipfrags_to_the_outcome():
    transferor, outcomes = _transferor_and_outcomes([180, 200])
    assert outcomes == ["accepted: 202", "accepted: 100", "accepted: 180", "ok"] and transferor.done
    transferor, outcomes = _transferor_and_outcomes([486])
    assert outcomes[-1] == "failed: 486" and transferor.result == "failed: 486"
    transferor, outcomes = _transferor_and_outcomes([])
    assert outcomes == ["accepted: 202", "accepted: 100"] and not transferor.done
