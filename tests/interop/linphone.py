"""Drive linphone-cli (`linphonec`, whose ZRTP is bzrtp) headless, for interop tests.

    with Linphone(tmp_path / "bob", sip_port=17060, rtp_port=17070, auto_answer=True,
                  zrtp_key_agreements=["X255"]) as bob:
        ...                                 # place a call to bob.uri from Sotto
        sas = bob.auth_token(timeout=10)    # "4jw5" or "standard:guitarist", from linphone's console
        bob.algorithms()                    # {"cipher": "AES1", "key_agreement": "DH3k", ...} from its log
        bob.command("zrtp-set-verified")    # what the user does after comparing the SAS
        bob.previously_verified()           # True/False from "SAS is XXXX previously verified yes|no"

What it does (facts from ../shared/INTEROP.md): each instance gets its own HOME (so its own ZID cache
at $HOME/.linphone-zidcache and its own database directory, without which linphonec opens no SIP
socket), an rc file written from the arguments, stdin from a FIFO held open by us (EOF on stdin makes
linphonec quit), the console (stdout+stderr) in `console.txt` and the level-6 log in `linphone.log`
inside `workdir`. stop() sends "quit" and then ends the process by its PID (SIGTERM, then SIGKILL) -
never by name.

Arguments:
    workdir            a directory of its own (created)
    sip_port, rtp_port UDP ports on 127.0.0.1 (tests use their assigned range)
    user               the user part of its contact, sip:USER@127.0.0.1:SIP_PORT
    auto_answer        start with -a
    media_encryption   "zrtp" (default), "srtp", "dtls" or "none"; mandatory when not "none"
    zrtp_key_agreements, zrtp_ciphers, zrtp_hashes, zrtp_auth_tags, zrtp_sas
                       lists of ZRTP 4-character names (DH3k, X255, AES3, S384, HS32, B256, ...) in
                       preference order, or None for linphone's defaults (S256 | AES1,AES3 | HS80,HS32 |
                       DH3k,Mult | B32)
    codecs             audio codecs to enable, by MIME name (default PCMU only)
    debug_log          True (default): the level-6 log in linphone.log (log() and algorithms() read it);
                       False: no -d/-l, as a user runs it (the CPU bench: level 6 costs linphonec CPU)
"""

import os
import re
import signal
import subprocess

from tests.conftest import require_tool
from tests.waiting import WaitTimeout, wait_udp_bound, wait_until

_SUITE_PREFIX = {
    "zrtp_key_agreements_suites": "MS_ZRTP_KEY_AGREEMENT_",
    "zrtp_cipher_suites": "MS_ZRTP_CIPHER_",
    "zrtp_hash_suites": "MS_ZRTP_HASH_",
    "zrtp_auth_suites": "MS_ZRTP_AUTHTAG_",
    "zrtp_sas_suites": "MS_ZRTP_SAS_",
}
_CODEC_RATES = {"PCMU": 8000, "PCMA": 8000, "G722": 8000, "opus": 48000}
# RFC 7587: Opus is always "opus/48000/2" in SDP; with channels=1 linphone treats it as an unknown
# payload format and falls back to a 6 kbit/s stream.
_CODEC_CHANNELS = {"opus": 2}
_LOG_NAMES = {
    "AES-128": "AES1",
    "AES-256": "AES3",
    "DHM-3072": "DH3k",
    "DHM-2048": "DH2k",
    "ECDH-255": "X255",
    "X25519": "X255",
    "ECDH-448": "X448",
    "X448": "X448",
    "SHA-256": "S256",
    "SHA-384": "S384",
    "HMAC-SHA1-80": "HS80",
    "HMAC-SHA1-32": "HS32",
    "Base32": "B32",
    "PGP-WordList": "B256",
}


def _suite_name(prefix, name):
    if prefix.endswith("KEY_AGREEMENT_"):
        name = name.upper()
    return prefix + name


class Linphone:
    def __init__(
        self,
        workdir,
        sip_port,
        rtp_port,
        user="linphone",
        auto_answer=False,
        media_encryption="zrtp",
        zrtp_key_agreements=None,
        zrtp_ciphers=None,
        zrtp_hashes=None,
        zrtp_auth_tags=None,
        zrtp_sas=None,
        codecs=("PCMU",),
        encryption_mandatory=None,
        debug_log=True,
    ):
        self.workdir = os.path.abspath(str(workdir))
        self.sip_port = sip_port
        self.rtp_port = rtp_port
        self.user = user
        self.auto_answer = auto_answer
        self.media_encryption = media_encryption
        # None: mandatory unless media_encryption is "none"; False lets a call without keys go on.
        self.encryption_mandatory = media_encryption != "none" if encryption_mandatory is None else encryption_mandatory
        self.suites = {
            "zrtp_key_agreements_suites": zrtp_key_agreements,
            "zrtp_cipher_suites": zrtp_ciphers,
            "zrtp_hash_suites": zrtp_hashes,
            "zrtp_auth_suites": zrtp_auth_tags,
            "zrtp_sas_suites": zrtp_sas,
        }
        self.codecs = list(codecs)
        self.debug_log = debug_log
        self.home = os.path.join(self.workdir, "home")
        self.rc_path = os.path.join(self.workdir, "linphonerc")
        self.fifo_path = os.path.join(self.workdir, "stdin.fifo")
        self.console_path = os.path.join(self.workdir, "console.txt")
        self.log_path = os.path.join(self.workdir, "linphone.log")
        self.process = None
        self._fifo = None
        self._console = None

    @property
    def uri(self):
        return "sip:{}@127.0.0.1:{}".format(self.user, self.sip_port)

    @property
    def zid_cache_path(self):
        return os.path.join(self.home, ".linphone-zidcache")

    def rc_text(self):
        db_dir = os.path.join(self.home, ".local", "share", "linphone")
        lines = [
            "[sip]",
            "sip_port={}".format(self.sip_port),
            "sip_tcp_port=0",
            "sip_tls_port=0",
            "bind_address=127.0.0.1",
            "ipv6_migration_done=1",
            "use_ipv6=0",
            "contact={}".format(self.uri),
            "guess_hostname=0",
            "media_encryption={}".format(self.media_encryption),
            "media_encryption_mandatory={}".format(1 if self.encryption_mandatory else 0),
        ]
        for key, names in self.suites.items():
            if names:
                prefix = _SUITE_PREFIX[key]
                lines.append("{}={}".format(key, ",".join(_suite_name(prefix, n) for n in names)))
        lines += [
            "[rtp]",
            "audio_rtp_port={}".format(self.rtp_port),
            "bind_address=127.0.0.1",
            "[sound]",
            "echocancellation=0",
            "[storage]",
            "uri={}".format(os.path.join(db_dir, "linphone.db")),
            "[misc]",
            "add_missing_audio_codecs=0",
        ]
        for index, codec in enumerate(self.codecs):
            lines += [
                "[audio_codec_{}]".format(index),
                "mime={}".format(codec),
                "rate={}".format(_CODEC_RATES.get(codec, 8000)),
                "channels={}".format(_CODEC_CHANNELS.get(codec, 1)),
                "enabled=1",
            ]
        return "\n".join(lines) + "\n"

    def start(self, timeout=15.0):
        os.makedirs(os.path.join(self.home, ".local", "share", "linphone"), exist_ok=True)
        with open(self.rc_path, "w") as f:
            f.write(self.rc_text())
        if not os.path.exists(self.fifo_path):
            os.mkfifo(self.fifo_path)
        args = [require_tool("linphonec", "linphone-cli"), "-c", self.rc_path]
        if self.debug_log:
            args += ["-d", "6", "-l", self.log_path]
        if self.auto_answer:
            args.append("-a")
        env = dict(os.environ, HOME=self.home)
        self._console = open(self.console_path, "wb")
        # Open the FIFO read end for the child first (non-blocking), then our write end.
        reader = os.open(self.fifo_path, os.O_RDONLY | os.O_NONBLOCK)
        self._fifo = os.open(self.fifo_path, os.O_WRONLY)
        os.set_blocking(reader, True)
        self.process = subprocess.Popen(
            args,
            stdin=reader,
            stdout=self._console,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
            start_new_session=True,
        )
        os.close(reader)
        self.command("soundcard use files")
        self._wait_listening(timeout)
        return self

    def _wait_listening(self, timeout):
        def alive():
            if self.process.poll() is not None:
                raise RuntimeError("linphonec exited early:\n" + self.console())

        try:
            wait_udp_bound(self.sip_port, timeout, "linphonec's SIP port", alive)
        except WaitTimeout as exc:
            raise WaitTimeout("{}; console:\n{}".format(exc, self.console())) from None

    def command(self, line):
        os.write(self._fifo, (line + "\n").encode())

    def console(self):
        try:
            with open(self.console_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern, timeout=10.0, source="console", start=0):
        """Wait until `pattern` (a regex) appears in the console (or "log") after offset `start`."""
        regex = re.compile(pattern)

        def found():
            return regex.search(self.console() if source == "console" else self.log(), start)

        def alive():
            if self.process.poll() is not None and not found():
                raise RuntimeError("linphonec exited; console:\n" + self.console()[-3000:])

        try:
            return wait_until(found, timeout, "linphonec to print {!r}".format(pattern), alive)
        except WaitTimeout as exc:
            raise WaitTimeout("{}; console:\n{}".format(exc, self.console()[-3000:])) from None

    def register(self, user, password, proxy, timeout=10.0):
        """Register as sip:USER@127.0.0.1 through `proxy` ("host:port"), and wait until linphonec says so."""
        self.command("register sip:{}@127.0.0.1 sip:{} {}".format(user, proxy, password))

        def registered():
            if "registered, identity=sip:{}@127.0.0.1".format(user) in self.console():
                return True
            self.command("status register")  # linphonec prints its registration state when asked
            return False

        try:
            wait_until(registered, timeout, "linphone to register as {}".format(user), interval=0.3)
        except WaitTimeout as exc:
            raise WaitTimeout("{}:\n{}".format(exc, self.console()[-2000:])) from None

    def auth_token(self, timeout=10.0, start=0):
        """The SAS as linphone shows it ("auth token is XXXX"): B32 as 4 characters, B256 as "word:word"."""
        return self.wait_for(r"auth token is ([^\s.]+(?: [^\s.]+)?)\.", timeout, "console", start).group(1)

    def algorithms(self, timeout=10.0, start=0):
        """The negotiated algorithms from the log (after offset `start`), as ZRTP 4-character names."""
        match = self.wait_for(
            r"Cipher: (\S+) - KeyAgreement: (\S+) - Hash: (\S+) - AuthTag: (\S+) - Sas Rendering: "
            r"(\S+)",
            timeout,
            "log",
            start,
        )
        keys = ("cipher", "key_agreement", "hash", "auth_tag", "sas")
        return {k: _LOG_NAMES.get(v, v) for k, v in zip(keys, match.groups())}

    def previously_verified(self, timeout=10.0, start=0):
        match = self.wait_for(r"SAS is \S+ previously verified (yes|no)", timeout, "log", start)
        return match.group(1) == "yes"

    def stop(self, timeout=5.0):
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.command("quit")
            except OSError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.kill(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout)
        if self._fifo is not None:
            os.close(self._fifo)
            self._fifo = None
        if self._console is not None:
            self._console.close()
            self._console = None
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
