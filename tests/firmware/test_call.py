"""The call layer's policy on a fake clock: every fallback branch, re-keying, alarms, liveness (issues 11-13)."""

from firmware import call as C

MICROPYTHON = True

SDES_KEYS = (("AES_CM_128_HMAC_SHA1_80", b"k" * 16, b"s" * 14), ("AES_CM_128_HMAC_SHA1_80", b"K" * 16, b"S" * 14))


class FakeSecure:
    """The fields firmware.zrtp.engine.Secure carries that the call layer reads."""

    def __init__(self, tag=b"1"):
        self.send_profile = "AES_CM_128_HMAC_SHA1_80"
        self.send_key = tag * 16
        self.send_salt = tag * 14
        self.receive_profile = "AES_CM_128_HMAC_SHA1_80"
        self.receive_key = tag * 16
        self.receive_salt = tag * 14


def events(policy):
    out = []
    while True:
        event = policy.next_event()
        if event is None:
            return out
        out.append(event)


def kinds(policy):
    return [
        type(e).__name__ + ":" + str(getattr(e, "kind", getattr(e, "encryption", getattr(e, "result", ""))))
        for e in events(policy)
    ]


def started(encryption="zrtp", zrtp_hash=True, sdes_keys=None, secure_only=False, timeout=30.0, now=0.0):
    policy = C.CallPolicy(encryption, secure_only=secure_only, media_timeout=timeout)
    policy.remote_description("abc" if zrtp_hash else None, sdes_keys)
    policy.start_media(now)
    return policy


def secure_call(now=0.0):
    policy = started(now=now)
    policy.zrtp_secure(FakeSecure(), now + 0.1)
    events(policy)
    return policy


def test_a_peer_without_zrtp_gets_clear_media_at_once_and_a_loud_verdict():
    policy = started(zrtp_hash=False)
    out = events(policy)
    assert [type(e).__name__ for e in out] == ["MediaUp", "NotSecure"]
    assert out[0].encryption == "none" and out[0].tx is None and out[0].rx is None
    assert out[1].kind == C.NO_ZRTP and out[1].reason == "peer has no ZRTP"
    assert policy.encryption == "none" and not policy.secure


def test_a_late_hello_still_makes_a_clear_call_secure():
    policy = started(zrtp_hash=False)
    events(policy)
    policy.zrtp_packet(5.0)
    policy.zrtp_secure(FakeSecure(), 5.2)
    out = events(policy)
    assert [type(e).__name__ for e in out] == ["MediaUp", "Secure"]
    assert out[0].encryption == "zrtp" and out[0].rekey  # keep the clear->SRTP switch gapless
    assert not out[1].rekey
    assert policy.secure and policy.encryption == "zrtp"


def test_an_advertised_zrtp_that_fails_falls_back_to_clear_after_at_most_3_s():
    policy = started(zrtp_hash=True, now=10.0)
    assert events(policy) == []  # withheld while ZRTP keys
    assert policy.get_timer() == 10.0 + C.ZRTP_FALLBACK
    assert C.ZRTP_FALLBACK <= 3.0
    policy.handle_timer(10.0 + C.ZRTP_FALLBACK)
    out = events(policy)
    assert [type(e).__name__ for e in out] == ["MediaUp", "NotSecure"]
    assert out[0].encryption == "none" and out[1].kind == C.ZRTP_FAILED


def test_a_zrtp_error_falls_back_at_once_and_only_once():
    policy = started(zrtp_hash=True)
    policy.zrtp_failed("peer-error", "peer sent Error 0x61", 0.5)
    assert [type(e).__name__ for e in events(policy)] == ["MediaUp", "NotSecure"]
    policy.handle_timer(C.ZRTP_FALLBACK + 1)
    assert events(policy) == []


def test_sdes_offered_without_zrtp_is_used_and_said_to_reach_the_server_only():
    policy = started(zrtp_hash=False, sdes_keys=SDES_KEYS)
    out = events(policy)
    assert [type(e).__name__ for e in out] == ["MediaUp", "NotSecure"]
    assert out[0].encryption == "sdes" and out[0].tx == SDES_KEYS[0] and out[0].rx == SDES_KEYS[1]
    assert out[1].kind == C.SDES_ONLY
    assert policy.encryption == "sdes" and not policy.secure


def test_sdes_and_zrtp_both_agreed_flow_under_sdes_until_zrtp_takes_over():
    policy = started(zrtp_hash=True, sdes_keys=SDES_KEYS)
    out = events(policy)
    assert [(type(e).__name__, e.encryption) for e in out] == [("MediaUp", "sdes")]
    policy.zrtp_secure(FakeSecure(), 0.2)
    out = events(policy)
    assert out[0].encryption == "zrtp" and out[0].rekey
    # and if ZRTP never completes, the call stays under SDES, loudly
    policy = started(zrtp_hash=True, sdes_keys=SDES_KEYS)
    events(policy)
    policy.handle_timer(C.ZRTP_FALLBACK)
    out = events(policy)
    assert [type(e).__name__ for e in out] == ["NotSecure"] and out[0].kind == C.SDES_ONLY
    assert policy.encryption == "sdes"


def test_secure_only_never_releases_clear_or_sdes_media_and_ends_the_call():
    for zrtp_hash, sdes_keys, wait in (
        (False, None, C.SECURE_ONLY_WAIT),
        (True, None, C.ZRTP_FALLBACK),
        (False, SDES_KEYS, C.SECURE_ONLY_WAIT),
    ):
        policy = started(zrtp_hash=zrtp_hash, sdes_keys=sdes_keys, secure_only=True)
        assert events(policy) == []
        policy.handle_timer(wait)
        out = events(policy)
        assert [type(e).__name__ for e in out] == ["Ended"], out
        assert out[0].result == "failed" and out[0].reason.startswith("not secure: ")
        assert not policy.media_released


def test_secure_only_with_a_late_hello_waits_only_the_normal_zrtp_time():
    policy = started(zrtp_hash=False, secure_only=True)
    policy.zrtp_packet(1.0)
    assert policy.get_timer() == 1.0 + C.ZRTP_FALLBACK
    policy.zrtp_secure(FakeSecure(), 1.3)
    assert [type(e).__name__ for e in events(policy)] == ["MediaUp", "Secure"]


def test_secure_only_waits_for_a_slow_exchange_that_is_still_moving_but_not_forever():
    # A slow peer (an emulated or loaded Pi computing its DH) is still sending: each of its packets gives the
    # exchange the normal wait again, never past SECURE_ONLY_WAIT; the audio stays withheld throughout.
    policy = started(zrtp_hash=True, secure_only=True)
    assert policy.get_timer() == C.ZRTP_FALLBACK
    policy.zrtp_packet(2.5)
    assert policy.get_timer() == 2.5 + C.ZRTP_FALLBACK
    policy.handle_timer(C.ZRTP_FALLBACK)  # the old deadline passes: the call goes on
    assert events(policy) == [] and not policy.ended and not policy.media_released
    policy.zrtp_packet(C.SECURE_ONLY_WAIT - 1.0)
    assert policy.get_timer() == C.SECURE_ONLY_WAIT
    policy.zrtp_secure(FakeSecure(), C.SECURE_ONLY_WAIT - 0.5)
    assert [type(e).__name__ for e in events(policy)] == ["MediaUp", "Secure"]
    # a peer that keeps retransmitting but never completes is given up at SECURE_ONLY_WAIT
    policy = started(zrtp_hash=True, secure_only=True)
    for tick in range(1, int(C.SECURE_ONLY_WAIT) * 2 + 2):
        policy.zrtp_packet(tick * 0.5)
        policy.handle_timer(tick * 0.5)
    assert policy.get_timer() is None and policy.ended
    out = events(policy)
    assert [type(e).__name__ for e in out] == ["Ended"] and out[0].reason.startswith("not secure: ")


def test_a_peer_hanging_up_a_secure_only_call_that_never_went_secure_is_a_failure():
    policy = started(zrtp_hash=True, secure_only=True)
    assert policy.result_of_hangup("remote hangup") == ("failed", "not secure: remote hangup")
    policy.zrtp_secure(FakeSecure(), 0.3)
    assert policy.result_of_hangup("remote hangup") == ("completed", "remote hangup")


def test_encryption_off_is_clear_and_says_so():
    policy = started(encryption="none", zrtp_hash=False)
    out = events(policy)
    assert [
        (type(e).__name__, getattr(e, "kind", e.encryption if hasattr(e, "encryption") else None)) for e in out
    ] == [("MediaUp", "none"), ("NotSecure", C.ENCRYPTION_OFF)]


def test_configured_sdes_is_secure_at_once():
    policy = started(encryption="sdes", zrtp_hash=False, sdes_keys=SDES_KEYS)
    out = events(policy)
    assert [type(e).__name__ for e in out] == ["MediaUp"] and out[0].encryption == "sdes"
    assert policy.secure


def test_a_zrtp_restart_re_keys_as_an_event_not_an_alarm():
    policy = secure_call()
    policy.media_progress(100, 0, 1.0)
    policy.zrtp_packet(2.0, hello=True)  # the peer's new Hello after hold/retrieve
    policy.media_progress(110, 30, 2.9)  # failures while both sides switch keys: not the peer's fault
    policy.media_progress(110, 60, 3.5)
    assert events(policy) == []
    policy.zrtp_secure(FakeSecure(b"2"), 3.6)
    out = events(policy)
    assert [type(e).__name__ for e in out] == ["MediaUp", "Secure"]
    assert out[0].rekey and out[0].tx[1] == b"2" * 16 and out[1].rekey
    assert policy.secure


def test_a_re_keying_initiator_takes_the_new_receive_keys_first():
    policy = secure_call()
    policy.zrtp_receive_keys(("AES_CM_128_HMAC_SHA1_80", b"3" * 16, b"3" * 14), 2.0)
    out = events(policy)
    assert [type(e).__name__ for e in out] == ["ReceiveKeys"] and out[0].rx[1] == b"3" * 16
    # not before any keys exist: the first exchange's media is withheld until Secure
    policy = started(zrtp_hash=True)
    policy.zrtp_receive_keys(("p", b"k", b"s"), 0.1)
    assert events(policy) == []


def test_the_engines_alarm_and_failure_kinds_are_the_call_layers():
    from firmware.zrtp import events as Z

    for kind in Z.ALARM_KINDS:
        assert kind in (
            C.CACHE_MISMATCH,
            C.NEW_KEY_FOR_CONTACT,
            C.ZRTP_HASH_MISMATCH,
            C.GOCLEAR,
            C.UNTRUSTED_MITM,
            C.REKEY_FAILED,
        )
    assert Z.NO_ZRTP == C.NO_ZRTP
    policy = started(zrtp_hash=False, secure_only=True)
    policy.zrtp_failed(Z.NO_ZRTP, "Hello never answered", 2.0)
    out = events(policy)
    assert [type(e).__name__ for e in out] == ["Ended"]
    assert out[0].reason == "not secure: ZRTP failed: Hello never answered"


def test_a_peer_that_stops_encrypting_is_an_alarm_within_1_s_and_the_call_is_no_longer_secure():
    policy = secure_call()
    policy.media_progress(100, 0, 1.0)
    policy.zrtp_packet(1.0)  # a late Conf2ACK or Confirm retransmission is no restart: no grace
    now, failures = 1.0, 0
    while policy.secure and now < 3.0:
        now += C.MEDIA_SAMPLE
        failures += 12  # 50 packets a second, every one failing the SRTP check
        policy.media_progress(100, failures, now)
    assert not policy.secure
    assert now - 1.0 <= 1.0
    out = events(policy)
    assert [e.kind for e in out] == [C.PEER_STOPPED_ENCRYPTING]


def test_stray_failures_among_authentic_packets_are_no_stopped_encrypting_alarm_but_many_are_an_alarm():
    policy = secure_call()
    valid = 0
    for step in range(40):
        valid += 12
        policy.media_progress(valid, step, 1.0 + step * C.MEDIA_SAMPLE)
    assert policy.secure and events(policy) == []
    policy.media_progress(valid + 12, C.AUTH_FAILURE_ALARM + 1, 20.0)
    out = events(policy)
    assert [e.kind for e in out] == [C.AUTH_FAILURES]
    policy.media_progress(valid + 24, C.AUTH_FAILURE_ALARM + 30, 20.25)
    assert events(policy) == []  # said once per key


def test_secure_only_ends_the_call_on_a_downgrade_but_not_on_a_sas_alarm():
    policy = secure_call()
    policy.secure_only = True
    policy.zrtp_alarm(C.CACHE_MISMATCH, "ZRTP cache mismatch", 1.0)
    policy.zrtp_alarm(C.NEW_KEY_FOR_CONTACT, "new key for a verified contact", 1.0)
    policy.zrtp_alarm(C.REKEY_FAILED, "re-key failed, old keys kept", 1.0)
    assert [type(e).__name__ for e in events(policy)] == ["Alarm", "Alarm", "Alarm"]
    policy.reinvite(None, False, "sendrecv", 2.0)
    out = events(policy)
    assert [type(e).__name__ for e in out] == ["Alarm", "Ended"]
    assert out[0].kind == C.DOWNGRADE and out[1].reason == "not secure: downgrade: re-INVITE without ZRTP"


def test_a_re_invite_without_srtp_keys_in_an_sdes_call_is_a_downgrade():
    policy = started(encryption="sdes", zrtp_hash=False, sdes_keys=SDES_KEYS)
    events(policy)
    policy.reinvite(None, True, "sendonly", 1.0)
    assert events(policy) == []
    policy.reinvite(None, False, "sendrecv", 2.0)
    assert [e.kind for e in events(policy)] == [C.DOWNGRADE]


def test_a_dead_peer_ends_the_call_after_the_inactivity_timeout_with_the_missing_tail_counted():
    policy = secure_call()
    policy.media_progress(500, 0, 10.0)  # the last authentic packet
    policy.media_progress(500, 0, 20.0)
    assert events(policy) == []
    assert policy.get_timer() == 40.0
    policy.handle_timer(40.0)
    out = events(policy)
    assert [type(e).__name__ for e in out] == ["Ended"]
    assert out[0].result == "failed" and out[0].reason == "media timeout"
    assert out[0].lost_tail == int(30.0 / C.PACKET_INTERVAL)
    assert policy.get_timer() is None


def test_no_media_timeout_while_on_hold_and_a_fresh_one_after_resume():
    policy = secure_call()
    policy.reinvite("abc", False, "sendonly", 5.0)  # the peer holds the call
    assert policy.on_hold and policy.get_timer() is None
    policy.handle_timer(100.0)
    assert events(policy) == []
    policy.reinvite("abc", False, "sendrecv", 100.0)
    assert policy.get_timer() == 130.0
    policy.hold(True, 101.0)
    assert policy.get_timer() is None
    policy.hold(False, 200.0)
    assert policy.get_timer() == 230.0


def test_a_zero_timeout_disables_liveness():
    policy = started(zrtp_hash=False, timeout=0)
    events(policy)
    assert policy.get_timer() is None


def test_events_are_immutable_and_never_print_keys():
    event = C.MediaUp("zrtp", SDES_KEYS[0], SDES_KEYS[1])
    assert "kkkk" not in repr(event) and "encryption='zrtp'" in repr(event)
    try:
        event.encryption = "none"
    except AttributeError:
        pass
    else:
        raise AssertionError("events must be immutable")
