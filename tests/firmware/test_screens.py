"""Golden frames: what every state shows on the 128x64 OLED and on 16x2 / 20x4 character LCDs.

Plain tests: also run under MicroPython. The golden data below was reviewed by eye; a change to a screen
must update it here on purpose.
"""

from firmware import font5x7
from firmware import phone as P
from firmware import screens as S

MICROPYTHON = True

PEER = "00112233445566778899aabb"


def in_call(now=1.0):
    phone = P.Phone()
    phone.handle(P.CallIncoming("sip:bob@10.0.0.2"), 0.0)
    phone.handle(P.Hook(off=True), now)
    return phone


def every_state():
    """(name, screen) for every state of the phone, reached through its events."""
    out = []
    phone = P.Phone(dial_domain="example.org", identity="sip:alice@example.org")
    out.append(("idle", phone.screen(0.0)))
    phone = P.Phone(dial_domain="d")
    for key in "42":
        phone.handle(P.KeyPressed(key), 0.0)
    out.append(("dialing", phone.screen(0.0)))
    phone = P.Phone(dial_domain="10.0.0.2")
    for key in "42#":
        phone.handle(P.KeyPressed(key), 0.0)
    phone.handle(P.CallRinging(), 0.1)
    out.append(("calling", phone.screen(0.1)))
    phone = P.Phone()
    phone.handle(P.CallIncoming("sip:bob@10.0.0.2", "Bob"), 0.0)
    out.append(("ringing", phone.screen(0.0)))
    phone = in_call()
    out.append(("in-call", phone.screen(13.5)))
    phone.handle(P.CallSecure("ab3d", "B32", peer_zid=PEER), 1.2)
    out.append(("secure", phone.screen(2.0)))
    other = in_call()
    other.handle(P.CallSecure("adroitness tambourine", "B256", peer_zid=PEER), 1.2)
    out.append(("secure-b256", other.screen(2.0)))
    phone.handle(P.TrustPressed(False), 3.0)
    out.append(("verified", phone.screen(75.0)))
    other = in_call()
    other.handle(P.CallSecure("ab3d", "B32", cache_mismatch=True, peer_zid=PEER), 1.2)
    out.append(("alarm-cache", other.screen(2.0)))
    other = in_call()
    other.handle(P.CallAlarm("not-secure"), 1.2)
    out.append(("alarm-not-secure", other.screen(2.0)))
    phone.handle(P.CallEnded("remote hung up"), 126.0)
    out.append(("ended", phone.screen(126.0)))
    phone = P.Phone()
    phone.handle(P.KeyPressed("menu"), 0.0)
    out.append(("menu", phone.screen(0.0)))
    for name, event in (
        ("error-registration", P.RegistrationFailed("403 Forbidden")),
        ("error-network", P.NetworkDown()),
        ("error-audio", P.AudioDeviceMissing("plughw:1")),
    ):
        phone = P.Phone()
        phone.handle(event, 0.0)
        out.append((name, phone.screen(0.0)))
    # two calls (issue 15)
    phone = in_call()
    phone.handle(P.CallSecure("ab3d", "B32", verified=True, peer_zid=PEER), 1.2)
    phone.handle(P.CallIncoming("sip:carol@10.0.0.3", "Carol", call="c2"), 5.0)
    out.append(("call-waiting", phone.screen(5.0)))
    phone.handle(P.KeyPressed("hold"), 6.0)
    phone.handle(P.KeyPressed("conference"), 7.0)
    out.append(("conference", phone.screen(8.0)))
    phone.handle(P.KeyPressed("conference"), 9.0)
    phone.handle(P.KeyPressed("hangup"), 10.0)
    out.append(("held", phone.screen(70.0)))
    return out


GOLDEN = (
    (
        "idle",
        [
            (1, 0, 1, "Sotto", False),
            (1, 11, 1, "Ready", False),
            (1, 20, 1, "alice@example.org", False),
            (1, 29, 1, "dial, # to call", False),
        ],
        ["Sotto           ", "Ready           "],
        [
            "Sotto               ",
            "Ready               ",
            "alice@example.org   ",
            "dial, # to call     ",
        ],
    ),
    (
        "dialing",
        [
            (1, 0, 1, "Dial", False),
            (1, 11, 1, "42_", False),
            (1, 20, 1, "# call  trust: del", False),
        ],
        ["Dial            ", "42_             "],
        [
            "Dial                ",
            "42_                 ",
            "# call  trust: del  ",
            "                    ",
        ],
    ),
    (
        "calling",
        [
            (1, 0, 1, "Calling", False),
            (1, 11, 1, "42@10.0.0.2", False),
            (1, 20, 1, "ringing...", False),
        ],
        ["Calling         ", "42@10.0.0.2     "],
        [
            "Calling             ",
            "42@10.0.0.2         ",
            "ringing...          ",
            "                    ",
        ],
    ),
    (
        "ringing",
        [
            (1, 0, 1, "Incoming call", False),
            (1, 11, 1, "Bob", False),
            (1, 20, 1, "lift or key: answer", False),
            (1, 29, 1, "hangup: decline", False),
        ],
        ["Incoming call   ", "Bob             "],
        [
            "Incoming call       ",
            "Bob                 ",
            "lift or key: answer ",
            "hangup: decline     ",
        ],
    ),
    (
        "in-call",
        [
            (1, 0, 1, "In call", False),
            (1, 11, 1, "bob@10.0.0.2", False),
            (1, 20, 1, "00:12", False),
            (1, 29, 1, "not secure yet", False),
        ],
        ["In call         ", "bob@10.0.0.2    "],
        [
            "In call             ",
            "bob@10.0.0.2        ",
            "00:12               ",
            "not secure yet      ",
        ],
    ),
    (
        "secure",
        [
            (1, 0, 1, "Compare SAS", False),
            (29, 11, 3, "ab3d", False),
            (1, 35, 1, "read it aloud,", False),
            (1, 44, 1, "press to confirm", False),
        ],
        ["Compare SAS     ", "      ab3d      "],
        [
            "Compare SAS         ",
            "        ab3d        ",
            "read it aloud,      ",
            "press to confirm    ",
        ],
    ),
    (
        "secure-b256",
        [
            (1, 0, 1, "Compare SAS", False),
            (5, 11, 2, "adroitness", False),
            (5, 28, 2, "tambourine", False),
            (1, 45, 1, "read it aloud,", False),
            (1, 54, 1, "press to confirm", False),
        ],
        ["   adroitness   ", "   tambourine   "],
        [
            "Compare SAS         ",
            "     adroitness     ",
            "     tambourine     ",
            "read it aloud,      ",
        ],
    ),
    (
        "verified",
        [
            (1, 0, 1, "Verified", False),
            (1, 11, 1, "bob@10.0.0.2", False),
            (1, 20, 1, "01:14", False),
            (1, 29, 1, "SAS ab3d", False),
        ],
        ["Verified        ", "bob@10.0.0.2    "],
        [
            "Verified            ",
            "bob@10.0.0.2        ",
            "01:14               ",
            "SAS ab3d            ",
        ],
    ),
    (
        "alarm-cache",
        [
            (1, 1, 1, "KEY CHANGED", True),
            (29, 11, 3, "ab3d", False),
            (1, 35, 1, "peer key changed", False),
            (1, 44, 1, "same SAS? press;", False),
            (1, 53, 1, "hold 2s: hang up", False),
        ],
        [" !KEY CHANGED!  ", "      ab3d      "],
        [
            "   !KEY CHANGED!    ",
            "        ab3d        ",
            "peer key changed    ",
            "same SAS? press;    ",
        ],
    ),
    (
        "alarm-not-secure",
        [
            (1, 1, 1, "NOT SECURE", True),
            (1, 11, 1, "not encrypted!", False),
            (1, 20, 1, "bob@10.0.0.2", False),
            (1, 29, 1, "press: silence", False),
        ],
        ["  !NOT SECURE!  ", "not encrypted!  "],
        [
            "    !NOT SECURE!    ",
            "not encrypted!      ",
            "bob@10.0.0.2        ",
            "press: silence      ",
        ],
    ),
    (
        "ended",
        [
            (1, 0, 1, "Call ended", False),
            (1, 11, 1, "remote hung up", False),
            (1, 20, 1, "02:05", False),
        ],
        ["Call ended      ", "remote hung up  "],
        [
            "Call ended          ",
            "remote hung up      ",
            "02:05               ",
            "                    ",
        ],
    ),
    (
        "menu",
        [
            (1, 0, 1, "Menu", False),
            (1, 11, 1, "1 Our ZID", False),
            (1, 20, 1, "2 History", False),
            (1, 29, 1, "3 Reset trust", False),
            (1, 38, 1, "* back", False),
            (1, 47, 1, "4 Settings 5 Contacts", False),
        ],
        ["Menu            ", "1 Our ZID       "],
        [
            "Menu                ",
            "1 Our ZID           ",
            "2 History           ",
            "3 Reset trust       ",
        ],
    ),
    (
        "error-registration",
        [
            (1, 1, 1, "Not registered", True),
            (1, 11, 1, "403 Forbidden", False),
            (1, 20, 1, "calls by IP only", False),
        ],
        ["!Not registered!", "403 Forbidden   "],
        [
            "  !Not registered!  ",
            "403 Forbidden       ",
            "calls by IP only    ",
            "                    ",
        ],
    ),
    (
        "error-network",
        [
            (1, 1, 1, "No network", True),
            (1, 11, 1, "calls impossible", False),
        ],
        ["  !No network!  ", "calls impossible"],
        [
            "    !No network!    ",
            "calls impossible    ",
            "                    ",
            "                    ",
        ],
    ),
    (
        "error-audio",
        [
            (1, 1, 1, "No audio device", True),
            (1, 11, 1, "plughw:1", False),
            (1, 20, 1, "calls impossible", False),
        ],
        ["!No audio device", "plughw:1        "],
        [
            " !No audio device!  ",
            "plughw:1            ",
            "calls impossible    ",
            "                    ",
        ],
    ),
    (
        "call-waiting",
        [
            (1, 0, 1, "Call waiting", False),
            (1, 11, 1, "Carol", False),
            (1, 20, 1, "hold=take back=busy", False),
            (1, 29, 1, "verified: bob@10.0.0.", False),
        ],
        ["Call waiting    ", "Carol           "],
        ["Call waiting        ", "Carol               ", "hold=take back=busy ", "verified: bob@10.0.0"],
    ),
    (
        "conference",
        [
            (1, 0, 1, "Conference", False),
            (1, 11, 1, "NOT all secure", False),
            (1, 20, 1, " not secure: Carol", False),
            (1, 29, 1, " verified: bob@10.0.0", False),
        ],
        ["Conference      ", "NOT all secure  "],
        ["Conference          ", "NOT all secure      ", " not secure: Carol  ", " verified: bob@10.0."],
    ),
    (
        "held",
        [
            (1, 0, 1, "On hold", False),
            (1, 11, 1, "bob@10.0.0.2", False),
            (1, 20, 1, "01:09", False),
            (1, 29, 1, "hold: resume", False),
        ],
        ["On hold         ", "bob@10.0.0.2    "],
        ["On hold             ", "bob@10.0.0.2        ", "01:09               ", "hold: resume        "],
    ),
)


def test_golden_frames_cover_every_state():
    names = [g[0] for g in GOLDEN]
    for state in P.STATES:
        assert any(name.split("-")[0] == state.split("-")[0] for name in names), state
    assert [name for name, _ in every_state()] == names


def test_golden_oled_layouts():
    for (name, screen), golden in zip(every_state(), GOLDEN):
        assert golden[0] == name
        assert [list(op) for op in S.oled_layout(screen)] == [list(op) for op in golden[1]], name


def test_golden_lcd_16x2():
    for (name, screen), golden in zip(every_state(), GOLDEN):
        assert S.render_lcd(screen, 16, 2) == golden[2], name


def test_golden_lcd_20x4():
    for (name, screen), golden in zip(every_state(), GOLDEN):
        rows = S.render_lcd(screen, 20, 4)
        assert rows == golden[3], name
        assert [len(row) for row in rows] == [20, 20, 20, 20]


def test_every_oled_operation_stays_on_the_display():
    for name, screen in every_state():
        for x, y, scale, text, _ in S.oled_layout(screen):
            assert x >= 0 and y >= 0, name
            assert x + S.text_width(text, scale) <= S.OLED_WIDTH, name
            assert y + font5x7.GLYPH_HEIGHT * scale <= S.OLED_HEIGHT, name


def test_the_sas_is_drawn_three_times_larger_than_text():
    fb = S.new_framebuffer()
    S.draw_text(fb, 0, 0, "A", 3)
    rows = S.framebuffer_rows(fb, 0, 0, 15, 21)
    assert rows[0] == "...#########..."
    assert rows[3] == "###.........###"
    assert rows[9] == "###############"
    assert rows[20] == "###.........###"
    fb = S.render_oled(P.Phone().screen(0.0))
    assert len(fb) == 1024


def test_rendered_frame_pixels():
    screen = S.Screen("Ti", ["x"], big="AB")
    fb = S.render_oled(screen)
    # Title "T" at (1, 0): its top row is five lit pixels.
    assert S.framebuffer_rows(fb, 0, 0, 7, 2) == [".#####.", "...#..."]
    # The rule under the title spans the whole width.
    assert S.framebuffer_rows(fb, 0, S.TITLE_RULE_Y, 128, 1) == ["#" * 128]
    # "AB" at scale 3 is centred: (128 - 33) // 2 = 47.
    assert S.oled_layout(screen)[1] == (47, 11, 3, "AB", False)
    assert S.get_pixel(fb, 47 + 3, 11) and not S.get_pixel(fb, 46, 11 + 9)
    # SSD1306 page order: pixel (x, y) is bit y % 8 of byte (y // 8) * 128 + x.
    assert fb[2 * 128 + 47] & (1 << (20 - 16))
    assert not fb[2 * 128 + 46] & (1 << (20 - 16))


def test_alert_screens_are_inverted_and_framed():
    fb = S.render_oled(S.Screen("A", [], alert=True))
    row0 = S.framebuffer_rows(fb, 0, 0, 128, 1)[0]
    assert row0 == "#" * 128
    # The 'A' of the title is dark on the lit band: its top row (y=1) has three dark pixels.
    assert S.framebuffer_rows(fb, 0, 1, 8, 1) == ["##...###"]
    assert S.framebuffer_rows(fb, 0, 63, 128, 1) == ["#" * 128]
    assert S.get_pixel(fb, 0, 40) and S.get_pixel(fb, 127, 40)


def test_long_text_is_cut_to_the_display():
    screen = S.Screen("t" * 40, ["x" * 40] * 10)
    ops = S.oled_layout(screen)
    assert len(ops[0][3]) == 21
    assert len(ops) == 1 + 6  # rows at y = 11, 20, 29, 38, 47, 56
    assert S.render_lcd(screen, 16, 2) == ["t" * 16, "x" * 16]


def test_b256_words_too_long_for_scale_two_fall_back_to_scale_one():
    ops = S.oled_layout(S.Screen("t", [], big="paperweightss x"))
    assert ops[1][2] == 1


def test_text_lines_keep_the_full_text():
    screen = S.Screen("Compare SAS", ["a very long line that no display can show whole"], big="two words")
    assert S.text_lines(screen) == ["Compare SAS", "two", "words", "a very long line that no display can show whole"]


def test_screen_equality():
    assert S.Screen("a", ["b"], big="c") == S.Screen("a", ("b",), big="c")
    assert S.Screen("a", ["b"]) != S.Screen("a", ["b"], alert=True)


def test_font_has_every_printable_character_in_five_by_seven():
    for code in range(32, 127):
        rows = font5x7.GLYPHS[chr(code)]
        assert len(rows) == 7
        for row in rows:
            assert 0 <= row < 32
    assert font5x7.glyph("\u00e9") == font5x7.GLYPHS["?"]
    for line in font5x7._PICTURES.split("\n"):
        parts = line.split()
        if parts:
            assert len(parts) == 8 and all(len(p) == 5 for p in parts[1:]), line
