"""The core of provisioning: signature binding, serials, what a server may set, the merge, the schedule."""

import tomllib

import pytest

from firmware.provisioning import document as doc
from firmware.provisioning import merge as merging
from firmware.provisioning.schedule import Schedule


def parse(text):
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(str(exc)) from None


def fake_signer():
    """A stand-in for Ed25519 in unit tests: the 'signature' is the message's first 64 bytes padded.
    The real key is tested in tests/firmware/runtime/test_provisioning.py."""

    def sign(message):
        return (message[-32:] + message[:32]).ljust(64, b"\0")[:64]

    def verify(message, signature):
        return sign(message) == signature

    return sign, verify


def test_mac_names_follow_the_desk_phone_convention():
    assert doc.mac_name("B8:27:EB:12:34:56") == "b827eb123456.toml"
    assert doc.mac_name("b8-27-eb-12-34-56") == "b827eb123456.toml"
    with pytest.raises(ValueError):
        doc.mac_name("b8:27:eb:12:34")
    with pytest.raises(ValueError):
        doc.mac_name("../../etc/passwd")


def test_the_signature_covers_the_file_name():
    body = b'serial = 1\n[account]\nuri = "sip:a@x"\n'
    assert doc.signed_message("a.toml", body) != doc.signed_message("b.toml", body)
    with pytest.raises(ValueError):
        doc.signed_message("../x.toml", body)


def test_a_document_is_read_only_when_signed():
    sign, verify = fake_signer()
    body = b'serial = 3\n[account]\nuri = "sip:a@x"\npassword = "pw"\n'
    good = sign(doc.signed_message("a.toml", body))
    document = doc.read_document("a.toml", body, good, verify, parse)
    assert document.serial == 3
    assert document.settings == {"account": {"uri": "sip:a@x", "password": "pw"}}
    assert "pw" not in repr(document)
    with pytest.raises(doc.ProvisioningRefused, match="unsigned"):
        doc.read_document("a.toml", body, None, verify, parse)
    with pytest.raises(doc.ProvisioningRefused, match="bad signature"):
        doc.read_document("b.toml", body, good, verify, parse)  # another phone's file
    with pytest.raises(doc.ProvisioningRefused, match="bad signature"):
        doc.read_document("a.toml", body[:-5], good, verify, parse)  # truncated
    with pytest.raises(doc.ProvisioningRefused, match="63 bytes"):
        doc.read_document("a.toml", body, good[:63], verify, parse)


def test_the_parser_never_sees_unsigned_bytes():
    seen = []
    with pytest.raises(doc.ProvisioningRefused):
        doc.read_document("a.toml", b"serial = 1", b"x" * 64, lambda m, s: False, seen.append)
    assert seen == []


@pytest.mark.parametrize(
    "body, expected",
    [
        (b"[account]\nuri = 'sip:a@x'\n", "serial"),
        (b"serial = 0\n", "serial"),
        (b"serial = true\n", "serial"),
        (b"serial = 1\n[data]\ndir = '/tmp/evil'\n", "data: not something a server may set"),
        (b"serial = 1\n[provisioning]\nurl = 'https://evil/'\n", "provisioning: not something"),
        (b"serial = 1\n[board]\nname = 'x'\n", "board: not something"),
        (b"serial = 1\n[zrtp]\ncache = '/tmp/x'\n", "zrtp.cache: not something"),
        (b"serial = 1\n[phone]\ncontacts_file = '/etc/shadow'\n", "phone.contacts_file: not something"),
        (b"serial = 1\naccount = 3\n", "expected a table"),
        (b"serial = 1\n[firmware]\nversion = '2'\n", "firmware"),
        (b"serial = 1\n[firmware]\nversion = '2'\nfile = '../x.tar'\n", "plain file name"),
        (b"serial = [1\n", "not valid TOML"),
        (b"serial = 1\n\xff\n", "UTF-8"),
    ],
)
def test_bad_documents_are_refused_with_a_reason(body, expected):
    sign, verify = fake_signer()
    with pytest.raises(doc.ProvisioningRefused, match=expected):
        doc.read_document("a.toml", body, sign(doc.signed_message("a.toml", body)), verify, parse)


def test_an_office_sets_the_voicemail_number_and_call_waiting():
    body = b"serial = 3\n[phone]\nvoicemail = '*97'\ncall_waiting = false\n"
    sign, verify = fake_signer()
    document = doc.read_document("a.toml", body, sign(doc.signed_message("a.toml", body)), verify, parse)
    assert document.settings == {"phone": {"voicemail": "*97", "call_waiting": False}}


def test_older_serials_are_refused():
    sign, verify = fake_signer()

    def read(serial, extra=b""):
        body = b"serial = %d\n" % serial + extra
        return doc.read_document("a.toml", body, sign(doc.signed_message("a.toml", body)), verify, parse)

    new = read(5)
    doc.check_not_older(new, None)
    doc.check_not_older(new, (5, new.body))  # the same file again
    doc.check_not_older(read(6), (5, new.body))
    with pytest.raises(doc.ProvisioningRefused, match="older"):
        doc.check_not_older(read(4), (5, new.body))
    with pytest.raises(doc.ProvisioningRefused, match="without a new serial"):
        doc.check_not_older(read(5, b"[dial]\ndomain = 'x'\n"), (5, new.body))


def test_merge_precedence_local_then_common_then_per_mac():
    sign, verify = fake_signer()

    def read(name, body):
        return doc.read_document(name, body, sign(doc.signed_message(name, body)), verify, parse)

    local = {"account": {"uri": "sip:local@x", "display_name": "Local"}, "media": {"codecs": ["PCMU"]}}
    common = read("common.toml", b"serial = 1\n[media]\ncodecs = ['G722', 'PCMU']\n[account]\nproxy = 'p:5060'\n")
    mine = read("b827eb000001.toml", b"serial = 1\n[account]\nuri = 'sip:me@x'\npassword = 'pw'\n")
    merged = merging.merge(local, common, mine)
    assert merged["account"] == {"uri": "sip:me@x", "display_name": "Local", "proxy": "p:5060", "password": "pw"}
    assert merged["media"] == {"codecs": ["G722", "PCMU"]}
    assert local["account"]["uri"] == "sip:local@x"  # the inputs are not changed
    assert merging.account_of(merged) != merging.account_of(local)


def test_schedule_daily_with_jitter_and_backoff():
    values = iter(range(1000))
    rng = lambda n: bytes([next(values) % 256]) * n  # noqa: E731
    schedule = Schedule(100.0, rng, interval=86400.0)
    assert schedule.get_timer() == 100.0  # at boot: at once
    first = schedule.failed(100.0)
    second = schedule.failed(first)
    assert 160.0 <= first <= 175.0
    assert 120.0 <= second - first <= 150.0  # doubled
    for _ in range(20):
        last = schedule.failed(0.0)
    assert last <= 3600.0 * 1.25
    daily = schedule.succeeded(1000.0)
    assert 1000.0 + 86400.0 <= daily < 1000.0 + 86400.0 + 3600.0
    assert schedule.failures == 0
