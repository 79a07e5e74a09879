"""Provisioning against the real server command (`python -m tools.provision serve`, HTTPS with its
self-signed certificate pinned as provisioning.ca), with the real Ed25519 key files, on the real Loop."""

import os
import socket
import threading
import time

import pytest

from firmware import config as configuration
from firmware.errors import ConfigError
from firmware.provisioning import document as doc
from firmware.runtime import provisioning as prov
from firmware.runtime.loop import Loop
from tests.fixtures.provisioning import Server, keygen, provision

MAC = "b8:27:eb:00:00:01"
MAC_FILE = "b827eb000001.toml"


@pytest.fixture
def office(tmp_path):
    """A served directory with a signing key; the phone's local settings pin its public key and CA."""
    served = tmp_path / "served"
    served.mkdir()
    private, public = keygen(tmp_path)
    server = Server(served, tmp_path)
    yield Office(tmp_path, served, private, public, server)
    server.stop()


class Office:
    def __init__(self, tmp_path, served, private, public, server):
        self.tmp_path, self.served, self.private, self.public, self.server = tmp_path, served, private, public, server

    def publish(self, name, text, sign=True):
        (self.served / name).write_text(text)
        if sign:
            provision("sign", self.served, "--key", self.private)

    def local(self, url=None, **extra):
        data = {
            "account": {"display_name": "Desk 1"},
            "media": {"codecs": ["PCMU"]},
            "data": {"dir": str(self.tmp_path / "data")},
            "provisioning": dict(
                url=url or self.server.url, public_key=self.public, ca=self.server.ca, mac=MAC, **extra
            ),
        }
        return data, configuration.validate(data, "local.toml")


class Phone:
    """A Provisioner on a Loop, recording what it hands out."""

    def __init__(self, local_data, settings):
        self.loop = Loop()
        self.configs = []
        self.refusals = []
        self.provisioner = prov.Provisioner(
            self.loop,
            settings,
            local_data,
            on_config=lambda config, changed: self.configs.append((config, changed)),
            on_refused=self.refusals.append,
        )

    def round(self, timeout=20.0):
        rounds = self.provisioner.rounds
        self.provisioner.fetch_now()
        assert self.loop.run(until=lambda: self.provisioner.rounds > rounds, timeout=timeout), "no fetch round ended"

    def close(self):
        self.provisioner.close()
        self.loop.close()


MINE = 'serial = {serial}\n[account]\nuri = "sip:desk1@office.example"\npassword = "{password}"\n'
COMMON = 'serial = 1\n[media]\ncodecs = ["G722", "PCMU"]\n[account]\nproxy = "127.0.0.1:5060"\n'


def test_per_mac_over_common_over_local_and_kept_across_restarts(office):
    office.publish(MAC_FILE, MINE.format(serial=1, password="s3cret"), sign=False)
    office.publish("common.toml", COMMON)
    data, settings = office.local()
    phone = Phone(data, settings)
    try:
        assert phone.provisioner.config.account.uri == ""  # nothing kept yet: the local file alone
        phone.round()
        assert phone.refusals == []
        ((config, account_changed),) = phone.configs
        assert account_changed
        assert config.account.uri == "sip:desk1@office.example"
        assert config.account.password == "s3cret"  # a secret may come from provisioning
        assert config.account.proxy == "127.0.0.1:5060"  # common
        assert config.account.display_name == "Desk 1"  # local, not overridden
        assert config.media.codecs == ["G722", "PCMU"]  # common over local
        assert office.server.requests()[:2] == ["/" + MAC_FILE, "/" + MAC_FILE + ".sig"]
        phone.round()  # the same files again: nothing new
        assert len(phone.configs) == 1
    finally:
        phone.close()
    office.server.stop()  # a restart without the server: the kept, re-verified files apply
    again = Phone(data, settings)
    try:
        assert again.provisioner.config.account.password == "s3cret"
        again.round()
        assert again.provisioner.config.account.password == "s3cret"
        assert any("not fetched" in r for r in again.refusals)
    finally:
        again.close()
    kept = os.path.join(settings.data_dir, "provisioning", MAC_FILE)
    assert os.stat(kept).st_mode & 0o777 == 0o600  # it holds a SIP password


def _accepted_then(office, change):
    """Serve a good per-MAC file, let the phone take it, apply `change`, fetch again: (phone, refusals)."""
    office.publish(MAC_FILE, MINE.format(serial=2, password="good"))
    data, settings = office.local()
    phone = Phone(data, settings)
    phone.round()
    assert phone.provisioner.config.account.password == "good", phone.refusals
    change()
    phone.round()
    return phone


def _expect_kept(phone, reason):
    try:
        assert phone.provisioner.config.account.password == "good"
        assert len(phone.configs) == 1
        assert phone.refusals, "nothing refused"
        assert reason in phone.refusals[-1], phone.refusals
        assert "\n" not in phone.refusals[-1]  # one line, for the display and the journal
        assert phone.provisioner.schedule.failures == 1  # retried soon, not in a day
    finally:
        phone.close()


def test_a_bad_signature_is_refused_and_the_configuration_kept(office):
    def tamper():
        office.publish(MAC_FILE, MINE.format(serial=3, password="evil"), sign=False)  # the old .sig stays

    _expect_kept(_accepted_then(office, tamper), "bad signature")


def test_an_unsigned_file_is_refused(office):
    def unsign():
        office.publish(MAC_FILE, MINE.format(serial=3, password="evil"), sign=False)
        os.unlink(office.served / (MAC_FILE + ".sig"))

    _expect_kept(_accepted_then(office, unsign), "unsigned")


def test_a_file_signed_with_another_key_is_refused(office):
    def resign():
        other_private, _ = keygen(office.tmp_path, "attacker")
        office.publish(MAC_FILE, MINE.format(serial=3, password="evil"), sign=False)
        provision("sign", office.served, "--key", other_private)

    _expect_kept(_accepted_then(office, resign), "bad signature")


def test_a_truncated_file_is_refused(office):
    def truncate():
        office.publish(MAC_FILE, MINE.format(serial=3, password="longer-password"))
        path = office.served / MAC_FILE
        path.write_bytes(path.read_bytes()[:-10])

    _expect_kept(_accepted_then(office, truncate), "bad signature")


def test_a_replayed_older_file_is_refused(office):
    old_body = MINE.format(serial=1, password="old")

    def replay():
        # A validly signed, older file (captured earlier): signed now with the right key, serial 1 < 2.
        office.publish(MAC_FILE, old_body)

    _expect_kept(_accepted_then(office, replay), "older than the 2 in use")


def test_another_phones_file_is_refused(office):
    other = "b827eb000002.toml"

    def swap():
        office.publish(other, MINE.format(serial=9, password="bobs"))
        (office.served / MAC_FILE).write_bytes((office.served / other).read_bytes())
        (office.served / (MAC_FILE + ".sig")).write_bytes((office.served / (other + ".sig")).read_bytes())

    _expect_kept(_accepted_then(office, swap), "bad signature")


def test_a_huge_file_is_refused_after_a_bounded_read(office):
    def grow():
        office.publish(MAC_FILE, MINE.format(serial=3, password="x") + "#" * (20 * 1024 * 1024), sign=False)

    _expect_kept(_accepted_then(office, grow), "more than the {}".format(doc.MAX_DOCUMENT_BYTES))


def test_a_settings_error_is_refused_whole(office):
    def typo():
        office.publish(MAC_FILE, MINE.format(serial=3, password="new"), sign=False)
        office.publish("common.toml", 'serial = 1\n[media]\ncodecs = ["G729"]\n', sign=False)
        # sign refuses the broken common file before signing anything after it; sign the good one alone
        from tools import provision as tool

        key = tool.load_private_key(office.private)
        for name in (MAC_FILE, "common.toml"):
            body = (office.served / name).read_bytes()
            (office.served / (name + ".sig")).write_bytes(key.sign(doc.signed_message(name, body)))

    _expect_kept(_accepted_then(office, typo), "media.codecs")


def test_server_down_keeps_the_configuration_and_retries(office):
    def down():
        office.server.stop()

    phone = _accepted_then(office, down)
    assert phone.provisioner.schedule.get_timer() - phone.loop.now() < 100.0
    _expect_kept(phone, "not fetched")


def test_fetching_never_blocks_the_loop(office):
    """A server that accepts the connection and never answers: the loop keeps its timers on time."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    data, settings = office.local(url="https://127.0.0.1:{}/".format(listener.getsockname()[1]))
    phone = Phone(data, settings)
    ticks = []

    def tick():
        ticks.append(time.monotonic())
        phone.loop.call_later(0.02, tick)

    try:
        phone.loop.call_soon_threadsafe(tick)
        phone.provisioner.fetch_now()
        phone.loop.run(timeout=1.0)
        assert phone.provisioner.rounds == 0  # still waiting for the server
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        assert len(ticks) > 20 and max(gaps) < 0.5, gaps
    finally:
        phone.close()
        listener.close()
        for conn, _addr in accepted:
            conn.close()


def test_the_server_certificate_is_verified(office, tmp_path):
    office.publish(MAC_FILE, MINE.format(serial=1, password="pw"))
    data, _ = office.local()
    other = tmp_path / "other-ca.pem"
    from tools import provision as tool

    tool.self_signed_certificate(str(other), str(tmp_path / "other-ca.key"))
    data["provisioning"]["ca"] = str(other)
    phone = Phone(data, configuration.validate(data, "local.toml"))
    try:
        phone.round()
        assert phone.configs == []
        assert "CERTIFICATE_VERIFY_FAILED" in phone.refusals[0], phone.refusals
    finally:
        phone.close()


def test_plain_http_only_when_the_configuration_says_so(office, tmp_path):
    with pytest.raises(ConfigError, match="allow_http"):
        configuration.validate({"provisioning": {"url": "http://127.0.0.1:1/"}})
    served = tmp_path / "plain"
    served.mkdir()
    server = Server(served, tmp_path, http=True)
    try:
        (served / MAC_FILE).write_text(MINE.format(serial=1, password="pw"))
        provision("sign", served, "--key", office.private)
        data, _ = office.local(url=server.url, allow_http=True)
        phone = Phone(data, configuration.validate(data, "local.toml"))
        try:
            phone.round()
            assert phone.provisioner.config.account.password == "pw", phone.refusals
        finally:
            phone.close()
    finally:
        server.stop()


def test_dhcp_option_66_from_a_dhclient_lease(tmp_path):
    lease = tmp_path / "dhclient.eth0.leases"
    lease.write_text(
        'lease {\n  interface "eth0";\n  option tftp-server-name "https://old.example/";\n}\n'
        'lease {\n  interface "eth0";\n  fixed-address 10.0.0.5;\n'
        '  option tftp-server-name "https://prov.example/sotto";\n}\n'
    )
    settings = configuration.validate({"provisioning": {"dhcp_lease": str(lease)}})
    assert prov.provisioning_url(settings) == "https://prov.example/sotto/"
    lease.write_text('lease {\n  option tftp-server-name "http://plain.example/";\n}\n')
    assert prov.provisioning_url(settings) is None  # http from DHCP needs allow_http too
    lease.write_text("lease {\n}\n")
    assert prov.provisioning_url(settings) is None


def test_a_missing_or_wrong_public_key_is_one_config_error(tmp_path):
    with pytest.raises(ConfigError, match="existing Ed25519 public key"):
        prov.load_verifier(str(tmp_path / "none.pub"))
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match="PEM"):
        prov.load_verifier(str(bad))


def test_sign_refuses_a_broken_file_in_one_line(tmp_path):
    private, _ = keygen(tmp_path)
    served = tmp_path / "served"
    served.mkdir()
    (served / "common.toml").write_text("[media]\ncodecs = ['PCMU']\n")
    result = provision("sign", served, "--key", private, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "serial" in result.stderr, result.stderr
    assert not (served / "common.toml.sig").exists()
    result = provision("keygen", "--private", private, "--public", tmp_path / "x.pub", check=False)
    assert result.returncode == 2 and "not overwriting" in result.stderr


def _firmware_tarball(path, version):
    import io
    import tarfile

    from firmware.runtime import update

    with tarfile.open(path, "w") as archive:
        for name, data in ((update.VERSION_FILE, version.encode()), ("firmware/x.py", b"X = 1\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_a_provisioned_firmware_is_downloaded_verified_and_installs_a_b(office, tmp_path):
    from firmware.runtime import update

    _firmware_tarball(office.served / "sotto-2.tar", "2")
    office.publish(MAC_FILE, MINE.format(serial=1, password="pw") + '[firmware]\nversion = "2"\nfile = "sotto-2.tar"\n')
    data, settings = office.local()
    loop = Loop()
    got = []
    provisioner = prov.Provisioner(
        loop, settings, data, firmware_version="1", on_firmware=lambda p, v: got.append((p, v))
    )
    try:
        provisioner.fetch_now()
        assert loop.run(until=lambda: got or provisioner.last_error, timeout=20.0)
        assert provisioner.last_error is None, provisioner.last_error
        ((path, version),) = got
        assert version == "2" and path == os.path.join(settings.data_dir, "update", "sotto-2.tar")
        root = str(tmp_path / "ab")
        assert update.install(root, path, provisioner.verify) == "a"
        assert update.installed_version(root) == "2"
    finally:
        provisioner.close()
        loop.close()


def test_a_tampered_firmware_is_refused_and_not_kept(office):
    _firmware_tarball(office.served / "sotto-2.tar", "2")
    office.publish(MAC_FILE, MINE.format(serial=1, password="pw") + '[firmware]\nversion = "2"\nfile = "sotto-2.tar"\n')
    _firmware_tarball(office.served / "sotto-2.tar", "2-evil")  # replaced after signing
    data, settings = office.local()
    loop = Loop()
    got = []
    provisioner = prov.Provisioner(loop, settings, data, firmware_version="1", on_firmware=lambda p, v: got.append(p))
    try:
        provisioner.fetch_now()
        assert loop.run(until=lambda: provisioner.last_error, timeout=20.0)
        assert "firmware 2 not taken" in provisioner.last_error and "bad signature" in provisioner.last_error
        assert got == []
        assert not os.path.exists(os.path.join(settings.data_dir, "update", "sotto-2.tar"))
        assert provisioner.config.account.password == "pw"  # the configuration itself was fine
    finally:
        provisioner.close()
        loop.close()


def test_a_private_key_in_the_served_directory_is_refused(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    private, _ = keygen(served)  # the signing key made in the wrong place
    (served / "common.toml").write_text("serial = 1\n")
    result = provision("sign", served, "--key", private, check=False)
    assert result.returncode == 2 and "private key in the served directory" in result.stderr
    assert not (served / "common.toml.sig").exists()
    result = provision("serve", served, "--http", check=False)
    assert result.returncode == 2 and "private key in the served directory" in result.stderr


def test_a_huge_body_without_content_length_is_read_only_to_the_bound(tmp_path):
    """A server that streams without Content-Length (HTTP/1.0, until it closes): only the bound plus one
    byte is read, then the file is refused; the server is still writing when the phone stops reading."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    sent = []

    def serve():
        while True:
            try:
                conn, _addr = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                total = 0
                try:
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
                    chunk = b"#" * 65536
                    while total < 50 * 1024 * 1024:
                        conn.sendall(chunk)
                        total += len(chunk)
                except OSError:
                    pass
                sent.append(total)

    threading.Thread(target=serve, daemon=True).start()
    url = "http://127.0.0.1:{}/".format(listener.getsockname()[1])
    try:
        with pytest.raises(doc.ProvisioningRefused, match="more than the {} bytes".format(doc.MAX_DOCUMENT_BYTES)):
            prov.fetch(url + MAC_FILE, doc.MAX_DOCUMENT_BYTES)
        deadline = time.monotonic() + 10
        while not sent and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sent and sent[0] < 50 * 1024 * 1024, sent  # the phone hung up long before the end
    finally:
        listener.close()


def _firmware_phone(office, idle=None):
    data, settings = office.local()
    loop = Loop()
    got = []
    provisioner = prov.Provisioner(
        loop, settings, data, firmware_version="1", on_firmware=lambda p, v: got.append((p, v)), idle=idle
    )
    return loop, provisioner, settings, got


def _unsafe_tarball(path, version):
    import io
    import tarfile

    from firmware.runtime import update

    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo(update.VERSION_FILE)
        info.size = len(version)
        archive.addfile(info, io.BytesIO(version.encode()))
        link = tarfile.TarInfo("firmware/evil")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/shadow"
        archive.addfile(link)


@pytest.mark.parametrize("case", ["other-version", "sha256", "unsafe-member", "not-a-tarball"])
def test_a_signed_firmware_that_is_not_the_one_named_is_refused_by_the_phone(office, case):
    """Signed by the office, but not what the signed [firmware] table names, or not installable: refused
    where the user sees it (ProvisioningRefused on the display), nothing left in the spool."""
    table = '[firmware]\nversion = "2"\nfile = "sotto-2.tar"\n'
    if case == "other-version":
        _firmware_tarball(office.served / "sotto-2.tar", "3")
        why = "holds version 3, not 2"
    elif case == "sha256":
        _firmware_tarball(office.served / "sotto-2.tar", "2")
        table += 'sha256 = "{}"\n'.format("0" * 64)
        why = "not the sha256"
    elif case == "unsafe-member":
        _unsafe_tarball(office.served / "sotto-2.tar", "2")
        why = "not a file or directory"
    else:
        (office.served / "sotto-2.tar").write_bytes(b"not a tar at all" * 100)
        why = "not a tarball"
    office.publish(MAC_FILE, MINE.format(serial=1, password="pw") + table)
    loop, provisioner, settings, got = _firmware_phone(office)
    try:
        provisioner.fetch_now()
        assert loop.run(until=lambda: provisioner.last_error, timeout=20.0)
        assert "firmware 2 not taken" in provisioner.last_error and why in provisioner.last_error
        assert got == [] and not os.path.exists(os.path.join(settings.data_dir, "update", "sotto-2.tar"))
    finally:
        provisioner.close()
        loop.close()


def test_the_sha256_in_the_signed_file_pins_the_tarball(office):
    import hashlib

    _firmware_tarball(office.served / "sotto-2.tar", "2")
    digest = hashlib.sha256((office.served / "sotto-2.tar").read_bytes()).hexdigest()
    table = '[firmware]\nversion = "2"\nfile = "sotto-2.tar"\nsha256 = "{}"\n'.format(digest)
    office.publish(MAC_FILE, MINE.format(serial=1, password="pw") + table)
    loop, provisioner, settings, got = _firmware_phone(office)
    try:
        provisioner.fetch_now()
        assert loop.run(until=lambda: got or provisioner.last_error, timeout=20.0)
        assert provisioner.last_error is None and got[0][1] == "2"
    finally:
        provisioner.close()
        loop.close()


def test_a_malformed_sha256_is_refused_by_sign_and_by_the_phone(office):
    import tomllib

    table = '[firmware]\nversion = "2"\nfile = "sotto-2.tar"\nsha256 = "ABC"\n'
    (office.served / MAC_FILE).write_text(MINE.format(serial=1, password="pw") + table)
    result = provision("sign", office.served, "--key", office.private, check=False)
    assert result.returncode == 2 and "firmware.sha256" in result.stderr and result.stderr.count("\n") == 1
    body = (office.served / MAC_FILE).read_bytes()
    with pytest.raises(doc.ProvisioningRefused, match="firmware.sha256: expected 64 lowercase hex digits"):
        doc.read_document(MAC_FILE, body, bytes(doc.SIGNATURE_BYTES), lambda m, s: True, tomllib.loads)


def test_the_firmware_download_waits_for_the_end_of_a_call(office):
    _firmware_tarball(office.served / "sotto-2.tar", "2")
    office.publish(MAC_FILE, MINE.format(serial=1, password="pw") + '[firmware]\nversion = "2"\nfile = "sotto-2.tar"\n')
    idle = [False]
    loop, provisioner, settings, got = _firmware_phone(office, idle=lambda: idle[0])
    try:
        provisioner.fetch_now()
        assert loop.run(until=lambda: provisioner.firmware_deferred is not None, timeout=20.0)
        assert provisioner.config.account.password == "pw"  # the configuration is taken at once
        provisioner.download_if_idle()  # still mid-call
        assert loop.run(until=lambda: got, timeout=1.0) is False
        assert not os.path.exists(os.path.join(settings.data_dir, "update"))
        idle[0] = True
        provisioner.download_if_idle()
        assert loop.run(until=lambda: got, timeout=20.0)
        assert got[0][1] == "2" and provisioner.firmware_deferred is None
    finally:
        provisioner.close()
        loop.close()


def test_a_version_the_installer_refused_or_rolled_back_is_not_downloaded_again(office):
    from firmware.runtime import update

    _firmware_tarball(office.served / "sotto-2.tar", "2")
    office.publish(MAC_FILE, MINE.format(serial=1, password="pw") + '[firmware]\nversion = "2"\nfile = "sotto-2.tar"\n')
    data, settings = office.local()
    spool = os.path.join(settings.data_dir, "update")
    os.makedirs(spool)
    with open(os.path.join(spool, update.RESULT_FILE), "w") as f:
        f.write("status=rolled-back\nversion=2\nmessage=firmware 2 did not start (4 tries); back to 1\n")
    loop, provisioner, settings, got = _firmware_phone(office)
    try:
        assert provisioner.firmware_refused == "2"
        provisioner.fetch_now()
        assert loop.run(until=lambda: provisioner.rounds == 1, timeout=20.0)
        assert loop.run(until=lambda: got, timeout=1.0) is False
        assert not os.path.exists(os.path.join(spool, "sotto-2.tar"))
        # The office publishes a fixed release under a new version: that one is taken.
        _firmware_tarball(office.served / "sotto-3.tar", "3")
        office.publish(
            MAC_FILE, MINE.format(serial=2, password="pw") + '[firmware]\nversion = "3"\nfile = "sotto-3.tar"\n'
        )
        provisioner.fetch_now()
        assert loop.run(until=lambda: got, timeout=20.0)
        assert got[0][1] == "3"
    finally:
        provisioner.close()
        loop.close()
