"""SIP dialogs (RFC 3261 §12): identifiers, route set, remote target, CSeq; in-dialog requests (§12.2).

API
---
Dialog(call_id, local_tag, remote_tag, local_uri, remote_uri, remote_target, route_set, local_seq,
       remote_seq, secure=False)
    local_uri / remote_uri: the From / To values (uri.NameAddr without tags are fine; tags are added);
    remote_target: uri.Uri from the peer's Contact; route_set: list of route values (str, in the order
    to put them in Route headers); local_seq: last CSeq we used; remote_seq: last CSeq seen or None.
Dialog.from_uac_response(request, response) -> Dialog   (§12.1.2: route set = Record-Route reversed)
Dialog.from_uas_request(request, local_tag, local_seq) -> Dialog   (§12.1.1: Record-Route in order)
dialog.id -> (call_id, local_tag, remote_tag)
dialog.next_cseq() -> int (increments local_seq)
dialog.request_target() -> (request_uri, routes) per §12.2.1.1: loose routing (first route has ;lr):
    Request-URI = remote target, Route = route set; strict routing: Request-URI = first route,
    Route = rest of the route set + remote target.
dialog.check_remote_cseq(number) -> bool: False (answer 500) when lower than or equal to the last one
    seen (§12.2.2); updates remote_seq otherwise (ACK and CANCEL are not checked by callers).
dialog.update_target(contact_value) -> refresh the remote target from a Contact value (target refresh).
"""

from firmware.errors import RemoteProtocolError
from firmware.sip.uri import parse_name_addr


def _contact_uri(message):
    contacts = message.headers.get_all("Contact")
    if len(contacts) != 1:
        raise RemoteProtocolError("dialog-creating message needs exactly one Contact")
    contact = parse_name_addr(contacts[0])
    if contact.uri is None:
        raise RemoteProtocolError("wildcard Contact in a dialog")
    return contact.uri


class Dialog:
    __slots__ = (
        "call_id",
        "local_tag",
        "remote_tag",
        "local_uri",
        "remote_uri",
        "remote_target",
        "route_set",
        "local_seq",
        "remote_seq",
        "secure",
    )

    def __init__(
        self,
        call_id,
        local_tag,
        remote_tag,
        local_uri,
        remote_uri,
        remote_target,
        route_set,
        local_seq,
        remote_seq,
        secure=False,
    ):
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.secure = secure

    @property
    def id(self):
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uac_response(cls, request, response):
        route_set = list(reversed(response.headers.get_all("Record-Route")))
        local = request.from_addr.copy()
        remote = response.to_addr.copy()
        return cls(
            request.call_id,
            local.tag,
            remote.tag,
            local,
            remote,
            _contact_uri(response),
            route_set,
            request.cseq[0],
            None,
            request.uri.scheme == "sips",
        )

    @classmethod
    def from_uas_request(cls, request, local_tag, local_seq):
        local = request.to_addr.copy()
        local.set_param("tag", local_tag)
        remote = request.from_addr.copy()
        return cls(
            request.call_id,
            local_tag,
            remote.tag,
            local,
            remote,
            _contact_uri(request),
            list(request.headers.get_all("Record-Route")),
            local_seq,
            request.cseq[0],
            request.uri.scheme == "sips",
        )

    def next_cseq(self):
        self.local_seq += 1
        return self.local_seq

    def request_target(self):
        if not self.route_set:
            return self.remote_target.copy(), []
        first = parse_name_addr(self.route_set[0])
        if first.uri is not None and first.uri.param("lr") is not None:
            return self.remote_target.copy(), list(self.route_set)
        # Strict router (§12.2.1.1): it gets the Request-URI, the remote target goes last in Route.
        routes = list(self.route_set[1:])
        routes.append("<" + str(self.remote_target) + ">")
        return first.uri.copy(), routes

    def check_remote_cseq(self, number):
        if self.remote_seq is not None and number <= self.remote_seq:
            return False
        self.remote_seq = number
        return True

    def update_target(self, contact_value):
        contact = parse_name_addr(contact_value)
        if contact.uri is not None:
            self.remote_target = contact.uri
