"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for one audio stream.

Two modules, re-exported here (callers write `from firmware import sdp` or `from firmware.sdp import
...`): description.py parses and writes one session description (peer input: every bound and check);
offer_answer.py builds our offers and answers and reads what the peer asks for. Each module's
docstring gives its API.
"""

from firmware.sdp.description import (  # noqa: F401
    CODECS,
    DIRECTIONS,
    Codec,
    Connection,
    MediaDescription,
    Origin,
    SessionDescription,
    parse_sdp,
)
from firmware.sdp.offer_answer import (  # noqa: F401
    RemoteMedia,
    answer_offer,
    build_offer,
    red_payload_type,
    remote_media,
    reverse_direction,
    same_session,
)
