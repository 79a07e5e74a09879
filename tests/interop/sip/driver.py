"""Helpers for SIP-level interop tests: a UserAgent on the production SIP transport driven by the
production Loop (built as runtime/endpoint.py builds it), and a kamailio registrar configured in the
test's tmp dir (../shared/INTEROP.md)."""

import os
import subprocess
import time

from firmware.runtime.loop import Loop
from firmware.runtime.sip_transport import SipTransport
from firmware.sdp import build_offer
from firmware.sip.useragent import UserAgent
from tests.conftest import require_tool
from tests.waiting import stop_process, wait_tcp_listening, wait_udp_bound

KAMAILIO_MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"


def require(binary):
    return require_tool(binary, {"sipp": "sip-tester"}.get(binary))


def offer(port, version=1):
    return build_offer(["PCMU", "PCMA"], "127.0.0.1", port, session_version=version).to_bytes()


def pump_until(drivers, predicate, timeout):
    """Pump several Drivers in turn until predicate() holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for driver in drivers:
            driver.pump_once(0.005)
        if predicate():
            return True
    return False


class Driver:
    """A UserAgent on a real socket, pumped in real time; events are collected in `events`.

    The transport is the phone's: SipTransport on its own Loop with on_error, exactly as
    runtime/endpoint.py builds it, so TCP/TLS connects, handshakes and writes never block and failures
    reach the UserAgent the way they do in the phone (ua.transport_error). `transport_errors` lists the
    addresses on_error reported; `on_transport_error(addr)` may be set to watch them too.
    """

    def __init__(self, port=0, transport="udp", transport_kwargs=None, **ua_kwargs):
        self.loop = Loop()
        self.transport_errors = []
        self.on_transport_error = None
        self.transport = SipTransport(
            transport,
            ("127.0.0.1", port),
            self.loop,
            on_message=self._on_message,
            on_error=self._on_error,
            **(transport_kwargs or {}),
        )
        self.address = self.transport.local_address
        self.ua = UserAgent(self.address, os.urandom, transport=transport, **ua_kwargs)
        self.events = []
        self.sent = []
        self.received = []

    def now(self):
        return self.loop.now()

    def _on_message(self, data, addr):
        self.received.append(data)
        self.ua.receive_datagram(data, addr, self.loop.now())

    def _on_error(self, addr):
        # As Endpoint._on_sip_error: every target failed after send() had queued the message.
        self.transport_errors.append(addr)
        self.ua.transport_error(addr, self.loop.now())
        if self.on_transport_error is not None:
            self.on_transport_error(addr)

    def pump_once(self, max_wait=0.02):
        now = self.loop.now()
        timer = self.ua.get_timer()
        if timer is not None and timer <= now:
            self.ua.handle_timer(now)
        for data, addr in self.ua.datagrams_to_send(now):
            self.sent.append(data)
            if not self.transport.send(data, addr):
                self.ua.transport_error(addr, self.loop.now())
        while True:
            event = self.ua.next_event()
            if event is None:
                break
            self.events.append(event)
            self.on_event(event)
        timer = self.ua.get_timer()
        wait = max_wait if timer is None else max(0.0, min(max_wait, timer - self.loop.now()))
        self.loop.run_once(wait)

    def on_event(self, event):
        """Override or replace to react to events (answer calls, ...)."""

    def run_until(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump_once()
            if predicate():
                self.pump_once(0)
                return True
        return False

    def run(self, seconds):
        self.run_until(lambda: False, seconds)

    def of(self, cls):
        return [e for e in self.events if isinstance(e, cls)]

    def close(self):
        self.transport.close()
        self.loop.close()


KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
disable_tcp={disable_tcp}
auto_aliases=no
alias="127.0.0.1:{port}"
mpath="{modules}"
{tls_config}loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "{db_module}"
loadmodule "auth.so"
loadmodule "auth_db.so"
{usrloc_params}
modparam("registrar", "min_expires", {min_expires})
modparam("registrar", "max_expires", 3600)
modparam("auth", "algorithm", "{algorithm}")
modparam("auth_db", "db_url", "{db_url}")
modparam("auth_db", "calculate_ha1", 1)
modparam("auth_db", "password_column", "password")
modparam("auth_db", "load_credentials", "")
{hook_modules}

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (is_method("REGISTER")) {{
        if (!www_authorize("$td", "subscriber")) {{ www_challenge("$td", "1"); exit; }}
        consume_credentials();
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            # linphone's Contact is a GRUU (RFC 5627) without a port: resolve it from its registration.
            if ($(ru{{uri.param,gr}}) != "") {{ lookup("location"); }}
            {hook_in_dialog}
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    if (is_method("INVITE")) {{
        if (!proxy_authorize("$fd", "subscriber")) {{ proxy_challenge("$fd", "1"); exit; }}
        consume_credentials();
        record_route();
        {hook_initial}
    }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    t_relay();
}}
{hook_routes}
"""


KAMAILIO_SQLITE_SCHEMA = "/usr/share/kamailio/db_sqlite"


def sqlite_subscribers(path, users):
    """An SQLite database made with Debian's kamailio schema scripts (version table, auth_db's subscriber,
    usrloc's location), holding `users` [(name, password)] in the 127.0.0.1 domain. Returns its path."""
    import sqlite3

    scripts = [os.path.join(KAMAILIO_SQLITE_SCHEMA, name) for name in ("standard-create.sql", "auth_db-create.sql")]
    scripts.append(os.path.join(KAMAILIO_SQLITE_SCHEMA, "usrloc-create.sql"))
    for script in scripts:
        if not os.path.exists(script):
            import pytest

            pytest.fail(
                "{} is missing (Debian package kamailio-sqlite-modules; `make test` installs it)".format(script),
                pytrace=False,
            )
    db = sqlite3.connect(str(path))
    try:
        for script in scripts:
            with open(script) as f:
                db.executescript(f.read())
        db.executemany(
            "INSERT INTO subscriber (username, domain, password) VALUES (?, '127.0.0.1', ?)",
            [(user, password) for user, password in users],
        )
        db.commit()
    finally:
        db.close()
    return path


class Kamailio:
    """kamailio in the foreground as registrar (+ a proxy for calls), users in a db_text table."""

    # Where a test may add to the configuration (kamailio.cfg text, empty by default): "modules" after the
    # module parameters, "initial" for a new INVITE after record_route(), "in_dialog" for an in-dialog
    # request before it is relayed, "routes" after the request route (route[...], onreply_route[...]).
    HOOKS = ("modules", "initial", "in_dialog", "routes")

    def __init__(
        self,
        tmp_path,
        port,
        users,
        algorithm="MD5",
        min_expires=10,
        tcp=False,
        tls=None,
        hooks=None,
        database="text",
    ):
        """tls: (certificate PEM path, key PEM path) to also listen for TLS on port + 1.
        hooks: {name: kamailio.cfg text} for the names in HOOKS (e.g. a media relay's calls).
        database: "text" (db_text files, usrloc in memory) or "sqlite" (Debian's kamailio-sqlite-modules:
        the subscriber table and usrloc's location table in an SQLite file, `self.db_path`, made from the
        package's own schema scripts)."""
        hooks = dict(hooks or {})
        unknown = set(hooks) - set(self.HOOKS)
        if unknown:
            raise ValueError("unknown kamailio hooks: {}".format(sorted(unknown)))
        if database not in ("text", "sqlite"):
            raise ValueError("database: text or sqlite, not {!r}".format(database))
        self.port = port
        self.tmp_path = tmp_path
        self.db_path = None
        if database == "sqlite":
            self.db_path = sqlite_subscribers(tmp_path / "kamailio.sqlite", users)
            # sqlite://HOST/PATH: an empty host, then the absolute path with its own leading slash.
            db_module, db_url = "db_sqlite.so", "sqlite:///{}".format(os.path.abspath(str(self.db_path)))
            # usrloc writes every binding through to the location table (db_mode 1, RFC 3261 §10.3 kept
            # in a real database), so the test can read what the registrar holds.
            usrloc_params = 'modparam("usrloc", "db_mode", 1)\nmodparam("usrloc", "db_url", "{}")'.format(db_url)
        else:
            db = tmp_path / "db"
            db.mkdir()
            (db / "version").write_text("table_name(str) table_version(int)\nsubscriber:7\nlocation:9\n")
            rows = "".join(
                "{}:{}:127.0.0.1:{}::\n".format(i + 1, user, password) for i, (user, password) in enumerate(users)
            )
            (db / "subscriber").write_text(
                "id(int,auto) username(str) domain(str) password(str) ha1(str,null) ha1b(str,null)\n" + rows
            )
            db_module, db_url = "db_text.so", "text://{}".format(db)
            usrloc_params = 'modparam("usrloc", "db_mode", 0)'
        cfg = tmp_path / "kamailio.cfg"
        cfg.write_text(
            KAMAILIO_CFG.format(
                port=port,
                modules=KAMAILIO_MODULES,
                db_module=db_module,
                db_url=db_url,
                usrloc_params=usrloc_params,
                algorithm=algorithm,
                min_expires=min_expires,
                disable_tcp="no" if tcp or tls else "yes",
                tls_config=self._tls_config(tmp_path, tls) if tls else "",
                **{"hook_" + name: hooks.get(name, "") for name in self.HOOKS},
            )
        )
        self.log_path = tmp_path / "kamailio.log"
        run = tmp_path / "run"
        run.mkdir()
        binary = require("kamailio")
        check = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise AssertionError("kamailio rejected its config:\n" + check.stdout + check.stderr)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [
                binary,
                "-f",
                str(cfg),
                "-DD",
                "-E",
                "-l",
                "udp:127.0.0.1:{}".format(port),
                *(["-l", "tcp:127.0.0.1:{}".format(port)] if tcp else []),
                *(["-l", "tls:127.0.0.1:{}".format(port + 1)] if tls else []),
                "-Y",
                str(run),
                "-P",
                str(run / "kamailio.pid"),
                "-w",
                str(run),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

        def alive():
            if self.proc.poll() is not None:
                raise AssertionError("kamailio exited:\n" + self.log())

        wait_udp_bound(port, 15, "kamailio", alive, host="127.0.0.1")
        if tcp:
            wait_tcp_listening(port, 15, "kamailio's TCP", alive)
        if tls:
            wait_tcp_listening(port + 1, 15, "kamailio's TLS", alive)

    @staticmethod
    def _tls_config(tmp_path, tls):
        cert, key = tls
        tls_cfg = tmp_path / "tls.cfg"
        tls_cfg.write_text(
            "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n"
            "private_key = {}\ncertificate = {}\n\n"
            "[client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n".format(key, cert)
        )
        return 'enable_tls=yes\nloadmodule "tls.so"\nmodparam("tls", "config", "{}")\n'.format(tls_cfg)

    def log(self):
        self._log.flush()
        return self.log_path.read_text()

    def stop(self):
        stop_process(self.proc)
        self._log.close()


class Dnsmasq:
    """dnsmasq answering only the records given, on 127.0.0.1:`port` (for RFC 3263 tests)."""

    def __init__(self, port, records):
        binary = require("dnsmasq")
        args = [
            binary,
            "-k",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--port={}".format(port),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--pid-file=",
            "--log-facility=-",
        ]
        if os.geteuid() == 0:
            args.append("--user=root")
        self.proc = subprocess.Popen(args + list(records), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def alive():
            if self.proc.poll() is not None:
                raise AssertionError("dnsmasq exited with {}".format(self.proc.returncode))

        wait_udp_bound(port, 10, "dnsmasq", alive, host="127.0.0.1")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)
