"""The phone: the application state machine a person holds (sans-I/O, MicroPython-clean).

The package: events (what the board and the session feed in), commands (what comes out), states (the
vocabulary: state names, keys, limits, alarm reasons), machine (Phone, with its mixins keys, two_calls and
desk_handlers), desk, contacts, menu, and views (the screen of each state, built from the read-only view
model Phone.view(now)). Everything is re-exported here, so
`from firmware import phone as P; P.Phone, P.CallSecure, P.ALARM_...` is the one way in.

Phone is fed input events from the board (keys, the trust button, the hook switch) and call events that
the session maps from SIP, media and ZRTP, each with the current monotonic time: `handle(event, now)`.
It asks for a wake-up with `get_timer()` (an absolute time or None) and `handle_timer(now)`. What it wants
done comes out as commands from `next_command()` (Dial, Answer, Hangup, ConfirmSas...). What it shows is
`screen()` (a firmware.screens.Screen) and its state name is `state`.

States (automation waits on these names):
  idle      nothing going on
  dialing   collecting digits; '#' sends, the trust button erases one digit (a long press clears),
            DIAL_TIMEOUT seconds without a key abandon the number
  calling   our INVITE is out (ringing shown once the far end rings)
  ringing   an incoming call: lift the handset (hook off) or press any key to answer
  in-call   media up, not (yet) secure
  secure    SRTP keys agreed by ZRTP, SAS shown large: read it aloud, press the trust button to confirm
  verified  the SAS was confirmed, now or on an earlier call (the ZRTP cache's V flag)
  alarm     a security event: cache mismatch (the peer's key changed), a=zrtp-hash mismatch, a downgrade
            during the call, GoClear, or a call that did not become secure. Loud screen and tone. A
            cache mismatch shows the SAS: a short press confirms it (the deferred cache update, RFC 6189
            section 4.6.1.1), a long press ends the call. The ZRTP engine keeps reporting the mismatch on
            every call until it is confirmed; the phone also remembers (bounded) peers with an unresolved
            alarm and raises it again on their next call that is not verified.
  ended     the call is over: reason and duration, back to idle after ENDED_HOLD seconds
  menu      our ZID fingerprint, call history, reset trust for a peer, settings (do not disturb, call
            forward: firmware.phone.desk), contacts with their trust marks (firmware.phone.contacts);
            names are typed by multi-tap (firmware.phone.text_entry: the same key within 1 s cycles its
            letters, a timeout or another key commits, '*' erases, '#' saves). The menu key on the ended
            screen opens it on the name of that call's number ("save number")
  error     no call possible: registration failed, no network, no audio device
  call-waiting  in a call, a second call rings: its caller is shown, a soft tone is mixed into the
            earpiece (not the ringer). `hold` answers it and holds the first call; `back` refuses it
            (486 Busy Here, a missed call); `hangup` ends the first call and the waiting one then rings.
  held      our only call is on hold (the `hold` key in a call, or the other call ended): `hold` or
            lifting the handset resumes it, `hangup` ends it. A Yealink/Snom does the same: the held
            call is not put through by itself when the call in front ends. The keypad dials a second
            call as on idle (hold, then dial); abandoning it, or its failing, shows the held call again.
  conference  the two calls mixed locally (`conference` with one call held): each leg hears us and the
            other leg. Each leg keeps its own ZRTP session and SAS; the screen shows each leg's mark and
            says "secure" only when both legs are. A trust press confirms the leg marked '>' (the first
            whose SAS is not confirmed); a long press ends that leg. `hangup` ends both, `conference`
            or `hold` splits them again (the other leg held).

Two calls: with one call up and another held, `hold` swaps them, `conference` joins them, `transfer`
connects the held call's far end with the front call's (attended transfer: Transfer(call, to); the
session ends both calls when it succeeded), `hangup` ends the one in front (the held one is then shown
`held`). A configured forward on busy wins over call waiting. The state shown is the front call's own (in-call,
secure, ...) with "held: NAME" on its screen. Call events name their call (`call`, the session's key); the
phone's commands Hold/Resume/Busy name theirs, and Focus(call) tells the session which call Hangup,
ConfirmSas, RejectSas and SendDtmf are for. Phone(call_waiting=False): one call at a time, as before.

Trust button: short press = "the SAS matched" (ConfirmSas); long press (>= 2 s, timed by the driver) =
"the SAS did NOT match": RejectSas (the session marks the peer untrusted) and Hangup. With secure_only a
call that cannot become secure is ended (an alarm that is not about the SAS, or a CallNotSecure verdict
from the call layer, firmware.call, which alone decides when a call is not going to be secure).

Keys (KeyPressed.key): '0'-'9', '*', '#' and the named keys in NAMED_KEYS (hold and conference: two
calls). In a call digits, '*' and '#' are sent as DTMF. The keypad-only menu code is '**#'; speed dial
entries are dialed like numbers (the digits, then '#'); '#' on its own redials the last number.

Desk features: do not disturb answers an incoming call Reject(486) and forward always Forward(uri, 302)
before it rings; forward on no answer fires after DeskSettings.no_answer_seconds of ringing; the session
asks busy_forward() before it answers a second INVITE 486. MessageSummary (RFC 3842) lights the message
LED (MessageLight) and shows the count on idle; the voicemail key dials [phone] voicemail or the
Message-Account. TrustMarks gives each contact's mark from the ZRTP cache.

After the phone issues Hangup / Reject / RejectSas it shows `ended` at once; a CallEnded for that call
arriving later is ignored (CallEnded only acts in calling, ringing and the call states).
"""

# The package's names, re-exported: the one way in for the session, the device driver and the tests.
from firmware.phone.commands import *  # noqa: F403
from firmware.phone.conditions import *  # noqa: F403
from firmware.phone.desk_events import *  # noqa: F403
from firmware.phone.events import *  # noqa: F403
from firmware.phone.machine import Phone  # noqa: F401
from firmware.phone.states import *  # noqa: F403
from firmware.phone.views import ALARM_TEXT, ALARM_TITLE, Leg, ViewModel, display_uri, format_duration, zid_fingerprint  # noqa: F401
