"""The call state machine of firmware/sip/call.py: the transition table is the whole machine, and the UA
moves calls only along it (RFC 3261 §9.1, §13, §15)."""

import pytest

from firmware.errors import LocalProtocolError
from firmware.sip import call as c
from firmware.sip.call import Call, next_state


def _walk(role, happenings):
    call = Call("id", role)
    seen = [call.state]
    for happening in happenings:
        call.advance(happening)
        seen.append(call.state)
    return seen


def test_uac_call_answered_then_hung_up():
    assert _walk(c.UAC, [c.SEND_INVITE, c.PROVISIONAL, c.ACCEPTED, c.SEND_BYE, c.END]) == [
        "new",
        "calling",
        "early",
        "confirmed",
        "terminating",
        "ended",
    ]


def test_uac_2xx_crossing_cancel_is_confirmed_so_it_can_be_ended_with_bye():
    # §9.1: a 2xx may still arrive after our CANCEL; the dialog it creates must be ended with BYE.
    assert _walk(c.UAC, [c.SEND_INVITE, c.SEND_CANCEL, c.ACCEPTED, c.SEND_BYE]) == [
        "new",
        "calling",
        "cancelling",
        "confirmed",
        "terminating",
    ]


def test_uas_call_answered_acked_then_hung_up():
    assert _walk(c.UAS, [c.RECEIVE_INVITE, c.SEND_2XX, c.RECEIVE_ACK, c.SEND_BYE, c.END]) == [
        "new",
        "incoming",
        "answered",
        "confirmed",
        "terminating",
        "ended",
    ]


@pytest.mark.parametrize("role", [c.UAC, c.UAS])
@pytest.mark.parametrize("state", c.STATES)
def test_every_state_of_a_role_can_end(role, state):
    if (role, state) not in c.TRANSITIONS:
        return  # a state of the other role; covered by test_each_role_has_only_its_states
    assert next_state(role, state, c.END) == c.ENDED


def test_each_role_has_only_its_states():
    uac = {state for role, state in c.TRANSITIONS if role == c.UAC}
    uas = {state for role, state in c.TRANSITIONS if role == c.UAS}
    assert uac == {"new", "calling", "early", "cancelling", "confirmed", "terminating", "ended"}
    assert uas == {"new", "incoming", "answered", "confirmed", "terminating", "ended"}
    for targets in c.TRANSITIONS.values():
        for target in targets.values():
            assert target in c.STATES


@pytest.mark.parametrize(
    "role, state, happening",
    [
        (c.UAC, c.NEW, c.ACCEPTED),  # a 2xx for an INVITE never sent
        (c.UAC, c.CONFIRMED, c.SEND_CANCEL),  # §9.1: CANCEL has no effect once answered
        (c.UAC, c.CANCELLING, c.SEND_CANCEL),  # one CANCEL per INVITE
        (c.UAC, c.ENDED, c.SEND_BYE),
        (c.UAS, c.INCOMING, c.SEND_BYE),  # an unanswered call is rejected, not BYEd
        (c.UAS, c.ANSWERED, c.SEND_2XX),  # answered twice
        (c.UAS, c.CONFIRMED, c.RECEIVE_ACK),  # a second ACK moves nothing
        (c.UAS, c.NEW, c.SEND_INVITE),  # a UAS never sends the initial INVITE
        (c.UAC, c.NEW, c.RECEIVE_INVITE),
    ],
)
def test_moves_outside_the_table_are_refused(role, state, happening):
    with pytest.raises(LocalProtocolError):
        next_state(role, state, happening)
    call = Call("id", role)
    call.state = state
    with pytest.raises(LocalProtocolError):
        call.advance(happening)
    assert call.state == state


def test_ua_moves_calls_only_through_the_table():
    # No bare state strings assigned in the UA any more: every move goes through Call.advance.
    import firmware.sip.indialog as indialog
    import firmware.sip.invite_client as invite_client
    import firmware.sip.invite_server as invite_server
    import firmware.sip.useragent as useragent

    for module in (useragent, invite_client, invite_server, indialog):
        with open(module.__file__) as f:
            source = f.read()
        assert "call.state = " not in source and '.state = "' not in source, module.__name__
