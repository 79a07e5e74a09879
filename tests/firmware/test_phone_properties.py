"""Property tests: any sequence of events the board and the session can produce keeps the phone sane."""

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import phone as P
from firmware import screens

keys = st.sampled_from(list(P.DIAL_KEYS) + list(P.NAMED_KEYS)).map(P.KeyPressed)
inputs = st.one_of(
    keys,
    st.booleans().map(P.TrustPressed),
    st.booleans().map(P.Hook),
)
call_events = st.one_of(
    st.builds(
        P.CallIncoming,
        st.sampled_from(["sip:a@b", "sip:carol@10.0.0.3:5070"]),
        st.one_of(st.none(), st.text(max_size=30)),
    ),
    st.just(P.CallRinging()),
    st.just(P.CallAnswered()),
    st.builds(
        P.CallSecure,
        st.sampled_from(["ab3d", "adroitness tambourine", "paperweight Wilmington"]),
        st.sampled_from(["B32", "B256"]),
        st.booleans(),
        st.booleans(),
        st.none(),
        st.sampled_from([None, "00112233445566778899aabb", "ffeeddccbbaa998877665544"]),
    ),
    st.sampled_from(["cache-mismatch", "zrtp-hash-mismatch", "downgrade", "goclear", "not-secure"]).map(P.CallAlarm),
    st.builds(P.CallEnded, st.text(max_size=40), st.one_of(st.none(), st.integers(100, 699))),
    st.just(P.Registered()),
    st.builds(P.RegistrationFailed, st.text(max_size=20)),
    st.just(P.NetworkDown()),
    st.just(P.NetworkUp()),
    st.builds(P.AudioDeviceMissing, st.text(max_size=20)),
    st.just(P.AudioDeviceOk()),
    st.just(P.OurZid("0123456789abcdef01234567")),
)
steps = st.lists(st.tuples(st.floats(0, 30, allow_nan=False), st.one_of(inputs, call_events)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    steps,
    st.booleans(),
    st.dictionaries(st.text("0123456789*", min_size=1, max_size=4), st.just("sip:x@y"), max_size=3),
)
def test_any_event_sequence_keeps_the_phone_consistent(sequence, secure_only, speed_dial):
    phone = P.Phone(dial_domain="example.org", secure_only=secure_only, speed_dial=speed_dial)
    now = 0.0
    for delay, event in sequence:
        # Timers first, as the runtime does, then the event.
        target = now + delay
        while True:
            timer = phone.get_timer()
            if timer is None or timer > target:
                break
            assert timer >= now - 1e-9, "a timer in the past"
            now = max(now, timer)
            phone.handle_timer(now)
        now = target
        phone.handle(event, now)
        assert phone.state in P.STATES
        assert len(phone.history) <= P.HISTORY_LIMIT
        assert len(phone.unresolved) <= P.UNRESOLVED_LIMIT
        assert len(phone._commands) <= P.COMMAND_QUEUE_LIMIT
        screen = phone.screen(now)
        for cols, rows in ((16, 2), (20, 4)):
            rendered = screens.render_lcd(screen, cols, rows)
            assert len(rendered) == rows and all(len(r) == cols for r in rendered)
        for x, y, scale, text, _ in screens.oled_layout(screen):
            assert x + screens.text_width(text, scale) <= screens.OLED_WIDTH
            assert y + 7 * scale <= screens.OLED_HEIGHT
        if phone.state == "verified":
            assert phone.verified
        if phone.state == "alarm":
            assert screen.alert
        if phone.secure_only and phone.state == "alarm":
            assert phone.alarm_reason == "cache-mismatch"
        while phone.next_command() is not None:
            pass


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["confirm", "reject", "alarm"]), min_size=1, max_size=10))
def test_a_long_press_always_hangs_up_and_a_short_press_in_secure_always_confirms(actions):
    phone = P.Phone(dial_domain="d")
    now = 0.0
    for action in actions:
        now += 10.0
        phone.handle_timer(now)
        for key in "1#":
            phone.handle(P.KeyPressed(key), now)
        phone.handle(P.CallAnswered(), now + 0.1)
        if action == "alarm":
            phone.handle(P.CallSecure("ab3d", cache_mismatch=True, peer_zid="aa" * 12), now + 0.2)
            assert phone.state == "alarm"
        else:
            phone.handle(P.CallSecure("ab3d", peer_zid="bb" * 12), now + 0.2)
        while phone.next_command() is not None:
            pass
        phone.handle(P.TrustPressed(action == "reject"), now + 1.0)
        commands = []
        while True:
            command = phone.next_command()
            if command is None:
                break
            commands.append(repr(command))
        if action == "reject":
            assert commands[:2] == ["RejectSas()", "Hangup()"] and phone.state == "ended"
        else:
            assert commands[0] == "ConfirmSas()" and phone.state == "verified"
            phone.handle(P.CallEnded("bye"), now + 2.0)
        phone.handle_timer(now + 9.0)


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=40),
    st.lists(st.tuples(st.floats(0, 2, allow_nan=False), st.sampled_from(list("0123456789*#") + ["erase", "tick"]))),
)
def test_multi_tap_text_stays_bounded_and_every_erase_takes_a_whole_character(start, steps):
    from firmware.phone.text_entry import TextEntry, without_last_character

    entry = TextEntry(start, 32)
    now = 0.0
    for delay, step in steps:
        now += delay
        before = entry.shown()
        if step == "erase":
            pending = entry.pending() is not None
            entry.erase()
            # the pending letter, else the last character with whatever was attached to it
            assert entry.shown() == (entry.text if pending else without_last_character(before))
        elif step == "tick":
            entry.handle_timer(now)
            assert entry.shown() == before
        else:
            entry.key(step, now)
        assert len(entry.text) <= 32 and len(entry.shown()) <= 32
        assert entry.get_timer() is None or entry.get_timer() > now or step == "erase"
    assert len(entry.value()) <= 32


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 2, allow_nan=False), st.sampled_from(list(P.DIAL_KEYS) + ["back", "menu"]))))
def test_any_keys_in_the_contacts_menu_keep_the_book_valid(presses):
    from firmware.phone import contacts as C

    phone = P.Phone(dial_domain="pbx", contacts=[{"name": "Zoë", "uri": "sip:zoe@z"}])
    now = 0.0
    for key in "**#5":
        phone.handle(P.KeyPressed(key), now)
    for delay, key in presses:
        now += delay
        timer = phone.get_timer()
        if timer is not None and timer <= now:
            phone.handle_timer(timer)
        phone.handle(P.KeyPressed(key), now)
        phone.screen(now)
        for contact in phone.contacts:
            assert C.is_name(contact["name"]) and C.is_uri(contact["uri"])
        assert len({C.aor_key(c["uri"]) for c in phone.contacts}) == len(phone.contacts)
