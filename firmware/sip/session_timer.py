"""RFC 4028 session timers: who refreshes a session, and when. Sans-I/O, pure functions on headers.

A session with a timer is refreshed by one side (the "refresher") with a re-INVITE carrying the same
SDP every interval/2 seconds (§10). The other side ends it with a BYE when no refresh arrives by
interval - min(32, interval/3) seconds after the last one (§10): CallEnded reason "session expired".

API
---
MIN_SESSION_EXPIRES = 90 (§4: the smallest interval we accept; smaller ones get 422 with Min-SE)
SUPPORTED_EXTENSIONS = ("timer",)   the option tags we put in Supported
TOO_SMALL   what negotiate() returns for an interval under MIN_SESSION_EXPIRES
negotiate(request, minimum=MIN_SESSION_EXPIRES) -> None (no Session-Expires), TOO_SMALL, or (interval, "uac"/"uas")
    §9 as UAS: the refresher the UAC asked for, "uac" only when it supports "timer".
refresher_interval_from_2xx(response) -> interval or None
    §7.2 as UAC: a 2xx that makes us ("uac") the refresher, with an acceptable interval.
add_to_2xx(headers, interval, refresher)   §9: Session-Expires, and Require: timer when "uac" refreshes
add_to_refresh(headers, interval)          §7.4: the refresh re-INVITE names us (the UAC) refresher
next_refresh(now, interval) -> when the refresher sends its next refresh (§10: half the interval)
expiry(now, interval) -> when the non-refresher gives up on the session and sends BYE (§10)
from_2xx(response, minimum=MIN_SESSION_EXPIRES) -> (interval, "uac"/"uas") or None
    §7.2 as UAC: the timer the 2xx settled on
"""

from firmware.errors import RemoteProtocolError
from firmware.sip.headers import parse_int_header

MIN_SESSION_EXPIRES = 90
SUPPORTED_EXTENSIONS = ("timer",)
TOO_SMALL = "too small"


def next_refresh(now, interval):
    return now + interval / 2.0


def expiry(now, interval):
    return now + interval - min(32.0, interval / 3.0)


def from_2xx(response, minimum=MIN_SESSION_EXPIRES):
    value = response.headers.get("Session-Expires")
    if value is None:
        return None
    interval_text, _, params = value.partition(";")
    try:
        interval = parse_int_header(interval_text, "Session-Expires")
    except RemoteProtocolError:
        return None  # a broken optional header in a 2xx: the call goes on without a timer
    if interval < minimum:
        return None
    # §7.2: a 2xx without refresher=... leaves the refreshing to the UAS (us only when we said so).
    return interval, "uac" if "refresher=uac" in params.replace(" ", "").lower() else "uas"


def negotiate(request, minimum=MIN_SESSION_EXPIRES):
    value = request.headers.get("Session-Expires")
    if value is None:
        return None
    interval_text, _, param_text = value.partition(";")
    interval = parse_int_header(interval_text, "Session-Expires")
    if interval < minimum:
        return TOO_SMALL
    refresher = None
    for item in param_text.split(";"):
        name, _, param_value = item.partition("=")
        if name.strip().lower() == "refresher":
            refresher = param_value.strip().lower()
    supported = [opt.lower() for opt in request.headers.get_all("Supported") + request.headers.get_all("Require")]
    if refresher not in ("uac", "uas"):
        refresher = "uac" if "timer" in supported else "uas"
    if refresher == "uac" and "timer" not in supported:
        refresher = "uas"  # §9: a UAC that does not support timers cannot be made to refresh
    return (interval, refresher)


def refresher_interval_from_2xx(response, minimum=MIN_SESSION_EXPIRES):
    outcome = from_2xx(response, minimum)
    return outcome[0] if outcome is not None and outcome[1] == "uac" else None


def add_to_2xx(headers, interval, refresher):
    headers.add("Session-Expires", "{};refresher={}".format(interval, refresher))
    if refresher == "uac":
        headers.add("Require", "timer")


def add_to_refresh(headers, interval):
    headers.add("Supported", ", ".join(SUPPORTED_EXTENSIONS))
    headers.add("Session-Expires", "{};refresher=uac".format(interval))
