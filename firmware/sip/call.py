"""One call's INVITE dialog state (RFC 3261 §13-§15), its states and transitions as data (h11-style).

The UA moves a call only through `Call.advance(happening)`; TRANSITIONS is the whole state machine, so
a move the table does not allow is a bug in the UA (LocalProtocolError), never silently a new state.
The state values are the strings callers have always read from `Call.state`.

    UAC: new -send-invite-> calling -provisional-> early
         calling/early -send-cancel-> cancelling
         calling/early/cancelling -accepted (2xx)-> confirmed   (a 2xx that crossed our CANCEL is
                                                                  confirmed, then ended with BYE, §9.1)
    UAS: new -receive-invite-> incoming -send-2xx-> answered -receive-ack-> confirmed
    both: confirmed -send-bye-> terminating;   any state -end-> ended (failure, rejection, BYE, CANCEL)

API
---
NEW, CALLING, EARLY, CANCELLING, INCOMING, ANSWERED, CONFIRMED, TERMINATING, ENDED   (states)
SEND_INVITE, PROVISIONAL, SEND_CANCEL, ACCEPTED, RECEIVE_INVITE, SEND_2XX, RECEIVE_ACK, SEND_BYE, END
UAC, UAS   (roles)
TRANSITIONS: {(role, state): {happening: next state}}
next_state(role, state, happening) -> state, or LocalProtocolError
Call(call_id, role): `id`, `state`, `role`, `local_sdp`, `remote_sdp`, `remote_uri`, `dialog`,
    `established` (read-only for the UA's callers); advance(happening).
"""

from firmware.errors import LocalProtocolError

UAC = "uac"
UAS = "uas"

NEW = "new"
CALLING = "calling"  # INVITE sent, nothing but 100 back
EARLY = "early"  # a 1xx above 100 came back
CANCELLING = "cancelling"  # CANCEL sent (§9.1), waiting for the INVITE's final response
INCOMING = "incoming"  # INVITE received, not answered yet
ANSWERED = "answered"  # our 2xx sent, waiting for the ACK (§13.3.1.4)
CONFIRMED = "confirmed"  # the dialog is up: ACK sent (UAC) or received (UAS)
TERMINATING = "terminating"  # our BYE sent (§15.1.1)
ENDED = "ended"
STATES = (NEW, CALLING, EARLY, CANCELLING, INCOMING, ANSWERED, CONFIRMED, TERMINATING, ENDED)

SEND_INVITE = "send-invite"
PROVISIONAL = "provisional"
SEND_CANCEL = "send-cancel"
ACCEPTED = "accepted"
RECEIVE_INVITE = "receive-invite"
SEND_2XX = "send-2xx"
RECEIVE_ACK = "receive-ack"
SEND_BYE = "send-bye"
END = "end"

TRANSITIONS = {
    (UAC, NEW): {SEND_INVITE: CALLING, END: ENDED},
    (UAC, CALLING): {PROVISIONAL: EARLY, SEND_CANCEL: CANCELLING, ACCEPTED: CONFIRMED, END: ENDED},
    (UAC, EARLY): {SEND_CANCEL: CANCELLING, ACCEPTED: CONFIRMED, END: ENDED},
    (UAC, CANCELLING): {ACCEPTED: CONFIRMED, END: ENDED},
    (UAC, CONFIRMED): {SEND_BYE: TERMINATING, END: ENDED},
    (UAC, TERMINATING): {END: ENDED},
    (UAC, ENDED): {END: ENDED},
    (UAS, NEW): {RECEIVE_INVITE: INCOMING, END: ENDED},
    (UAS, INCOMING): {SEND_2XX: ANSWERED, END: ENDED},
    (UAS, ANSWERED): {RECEIVE_ACK: CONFIRMED, END: ENDED},
    (UAS, CONFIRMED): {SEND_BYE: TERMINATING, END: ENDED},
    (UAS, TERMINATING): {END: ENDED},
    (UAS, ENDED): {END: ENDED},
}


def next_state(role, state, happening):
    allowed = TRANSITIONS.get((role, state))
    if allowed is None or happening not in allowed:
        raise LocalProtocolError("call: {} not allowed in {} state {}".format(happening, role, state))
    return allowed[happening]


class Call:
    """One call. Read-only for callers: `id`, `state`, `role` ("uac"/"uas"), `local_sdp`, `remote_sdp`,
    `remote_uri`, `dialog`, `established` (bool)."""

    __slots__ = (
        "id",
        "role",
        "state",
        "dialog",
        "invite",
        "invite_tx",
        "server_tx",
        "local_tag",
        "remote_uri",
        "local_sdp",
        "remote_sdp",
        "provisional",
        "cancel_requested",
        "cancel_deadline",
        "ack_data",
        "ack_dest",
        "peer",
        "ok_data",
        "ok_cseq",
        "ok_interval",
        "ok_next",
        "ok_give_up",
        "bye_after_ack",
        "reinvite_tx",
        "reinvite_server",
        "established",
        "session_interval",
        "session_refresher",
        "session_refresh_at",
        "ring_deadline",
        "session_expire_at",
        "early_dialogs",
        "rseq_seen",
        "early_sdp",
        "rseq_sent",
        "reliable_data",
        "reliable_rseq",
        "reliable_interval",
        "reliable_next",
        "reliable_give_up",
        "early_offer",
    )

    def advance(self, happening):
        """Move along TRANSITIONS; anything else is a bug in the UA, not the peer's doing."""
        self.state = next_state(self.role, self.state, happening)

    def __init__(self, call_id, role):
        self.id = call_id
        self.role = role
        self.state = NEW
        self.dialog = None
        self.invite = None
        self.invite_tx = None
        self.server_tx = None
        self.local_tag = None
        self.remote_uri = None
        self.local_sdp = b""
        self.remote_sdp = b""
        self.provisional = False
        self.cancel_requested = False
        self.cancel_deadline = None
        self.ack_data = None
        self.ack_dest = None
        self.peer = None
        self.ok_data = None
        self.ok_cseq = None
        self.ok_interval = None
        self.ok_next = None
        self.ok_give_up = None
        self.bye_after_ack = False
        self.reinvite_tx = None
        self.reinvite_server = None
        self.established = False
        self.session_interval = None
        self.session_refresher = None
        self.session_refresh_at = None
        self.ring_deadline = None
        # RFC 4028 §10: when we, not the refresher, end a session nobody refreshed.
        self.session_expire_at = None
        # RFC 3262 as UAC: early dialogs by To tag (for PRACK), the last RSeq seen in each, the answer
        # a reliable provisional response carried.
        self.early_dialogs = {}
        self.rseq_seen = {}
        self.early_sdp = b""
        # RFC 3262 as UAS: the last RSeq sent, and the reliable provisional response awaiting its PRACK.
        self.rseq_sent = None
        self.reliable_data = None
        self.reliable_rseq = None
        self.reliable_interval = None
        self.reliable_next = None
        self.reliable_give_up = None
        # RFC 3262 §5, a late-offer INVITE: None, "sent" (our offer went in a reliable 183) or "answered"
        # (the PRACK carried the answer).
        self.early_offer = None
