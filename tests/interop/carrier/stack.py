"""A carrier stack started by the test: kamailio (registrar with digest auth, proxy) and rtpengine (Debian's
`rtpengine-daemon`, userspace forwarding only) relaying every call's media, as providers and PBX clusters
carry calls across NAT. Everything listens on loopback; every process is ours, ended by its PID.

    with Carrier(tmp_path, port=18060, users=[("alice", "alicepw"), ("bob", "bobpw")]) as carrier:
        ...                                # phones register with 127.0.0.1:18060 and call by AOR
        carrier.relays[0].calls()          # call ids rtpengine is relaying
        carrier.relays[0].query(call_id)   # its per-party view: addresses, ports, packet counts
        carrier.relays[0].sdp_exchanges()  # every SDP it was given and what it gave back (its log)

kamailio calls rtpengine_offer() on every INVITE with SDP and rtpengine_answer() on the reply with SDP
(the module in Debian's main `kamailio` package), rtpengine_delete() on BYE. With `reanchor=True` a
second rtpengine on another loopback address (127.0.0.2) takes every re-INVITE: the first relay drops
the call, and both phones are told a new media address and port mid-call, as when a carrier moves a
call to another media server. A phone that does not follow loses the audio.

Facts about Debian's rtpengine 10.5 found here:
- It reads /etc/rtpengine/rtpengine.conf unless given --config-file=none; that file's fixed control
  ports (2223-2225) would clash between instances.
- Plain RTP/AVP calls are passed through: unknown attributes such as a=zrtp-hash are kept (moved right
  after the m= line), ZRTP packets are forwarded untouched (its log calls them "invalid header version").
- SDES (RTP/SAVP with a=crypto): it reads the keys and sets up its own SRTP contexts (it could decrypt),
  passes the chosen key on, adds a=crypto lines of its own for suites the offerer did not offer, and
  drops the base64 padding of the keys unless told "pad-crypto".
- kamailio's block_media("directional") blocks only the sender of the current request (without
  "directional" the whole call); the ng command "unblock media" with that from-tag lets it through again.
"""

import os
import re
import socket
import subprocess
import time

from tests.interop.sip.driver import Kamailio, require
from tests.waiting import stop_process

# rtpengine's control protocol ("ng"): bencoded dictionaries over UDP, each behind a cookie.


def bencode(value):
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        return b"d" + b"".join(bencode(k) + bencode(value[k]) for k in sorted(value)) + b"e"
    raise TypeError(type(value))


def bdecode(data):
    value, end = _bdecode(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes after bencoded value")
    return value


def _bdecode(data, i):
    kind = data[i : i + 1]
    if kind == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1 : end]), end + 1
    if kind == b"l":
        items, i = [], i + 1
        while data[i : i + 1] != b"e":
            item, i = _bdecode(data, i)
            items.append(item)
        return items, i + 1
    if kind == b"d":
        items, i = {}, i + 1
        while data[i : i + 1] != b"e":
            key, i = _bdecode(data, i)
            items[key if isinstance(key, str) else key.decode(errors="replace")], i = _bdecode(data, i)
        return items, i + 1
    colon = data.index(b":", i)
    length = int(data[i:colon])
    raw = data[colon + 1 : colon + 1 + length]
    try:
        return raw.decode(), colon + 1 + length
    except UnicodeDecodeError:
        return raw, colon + 1 + length


class Rtpengine:
    """rtpengine in the foreground, userspace only (--table=-1: no kernel forwarding module), media ports
    in [port_min, port_max] on `address`, its ng control socket on 127.0.0.1:`ng_port`."""

    def __init__(self, workdir, ng_port, port_min, port_max, address="127.0.0.1"):
        self.workdir = os.path.abspath(str(workdir))
        os.makedirs(self.workdir, exist_ok=True)
        self.ng_port = ng_port
        self.port_min, self.port_max = port_min, port_max
        self.address = address
        self.log_path = os.path.join(self.workdir, "rtpengine.log")
        binary = require("rtpengine")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                binary,
                # Not Debian's /etc/rtpengine/rtpengine.conf (its fixed control ports would clash).
                "--config-file=none",
                "--foreground",
                "--log-stderr",
                "--no-log-timestamps",
                "--table=-1",
                "--interface={}".format(address),
                "--listen-ng=127.0.0.1:{}".format(ng_port),
                "--port-min={}".format(port_min),
                "--port-max={}".format(port_max),
                "--delete-delay=0",
                "--num-threads=2",
                # Level 7 logs each ng command and rtpengine's reply in full: the SDP on both sides.
                "--log-level=7",
                "--max-log-line-length=0",
                "--pidfile={}".format(os.path.join(self.workdir, "rtpengine.pid")),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
        )
        try:
            self._wait_ready(10.0)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("rtpengine exited with {}:\n{}".format(self.proc.returncode, self.log()[-3000:]))
            try:
                if self.command({"command": "ping"}, timeout=0.3).get("result") == "pong":
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("rtpengine never answered ping:\n" + self.log()[-3000:])

    def command(self, message, timeout=2.0):
        """Send one ng command (a dict), return rtpengine's answer (a dict)."""
        cookie = os.urandom(6).hex().encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(cookie + b" " + bencode(message), ("127.0.0.1", self.ng_port))
            while True:
                data = sock.recv(65535)
                head, _, body = data.partition(b" ")
                if head == cookie:
                    return bdecode(body)

    def calls(self):
        return list(self.command({"command": "list"}).get("calls", []))

    def query(self, call_id):
        answer = self.command({"command": "query", "call-id": call_id})
        if answer.get("result") != "ok":
            raise AssertionError("rtpengine query {}: {}".format(call_id, answer))
        return answer

    def parties(self, call_id):
        """Per party (tag): {"media": "IP:port" it advertised, "learned": where its packets come from,
        "relay_address"/"relay_port": rtpengine's address and port facing it, "from_party": packets rtpengine
        received from it (ZRTP, RTP: all of them), "protocol": its media protocol, "crypto": the SRTP suite
        rtpengine itself uses with it or None}, from the RTP stream of its first medium."""
        tags = self.query(call_id)["tags"]
        out = {}
        for tag, party in tags.items():
            media = party["medias"][0]
            stream = media["streams"][0]
            endpoint = stream.get("endpoint", {})
            advertised = stream.get("advertised endpoint", endpoint)
            out[tag] = {
                "media": "{}:{}".format(advertised.get("address"), advertised.get("port")),
                "learned": "{}:{}".format(endpoint.get("address"), endpoint.get("port")),
                "relay_port": stream["local port"],
                "relay_address": stream.get("local address"),
                "from_party": stream["stats"]["packets"],
                "protocol": media.get("protocol"),
                "crypto": media.get("crypto suite"),
            }
        return out

    def unblock_media(self, call_id, tag):
        """Forward the media from party `tag` again (after kamailio's rtpengine_block_media())."""
        answer = self.command({"command": "unblock media", "call-id": call_id, "from-tag": tag})
        if answer.get("result") != "ok":
            raise AssertionError("rtpengine unblock media: {}".format(answer))

    def log(self):
        self._log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def sdp_exchanges(self):
        """[(command, SDP rtpengine was given, SDP it gave back)] for every offer and answer, in order, from
        its level-7 log: 'Dump for 'offer' from ...: { ..., "sdp": "v=0 ... ", ... }' and 'Response dump'."""
        given, out = {}, []
        pattern = re.compile(
            r"(Response dump|Dump) for '(offer|answer)' (?:from|to) \S+: "
            r"\{[^\n]*?\"sdp\": \"([^\"]*)\""
        )
        for kind, command, sdp in pattern.findall(self.log()):
            if kind == "Dump":
                given[command] = sdp
            else:
                out.append((command, given.pop(command, None), sdp))
        return out

    def stop(self):
        stop_process(self.proc)
        self._log.close()


FLAGS = "replace-origin replace-session-connection"

# kamailio.cfg text for Kamailio(hooks=...): rtpengine's set 0 anchors every call; with re-anchoring, set 1
# takes every re-INVITE after set 0 has dropped the call (a move to another media server).
RELAY_HOOKS = {
    "modules": """loadmodule "rtpengine.so"
{socks}modparam("rtpengine", "rtpengine_tout_ms", 2000)
""",
    "initial": "route(MEDIA);",
    "in_dialog": "route(MEDIA);",
    "routes": """
route[MEDIA] {{
    if (is_method("BYE")) {{
        {delete}
        return;
    }}
    if (is_method("INVITE") && has_body("application/sdp")) {{
{reanchor_request}        if (!rtpengine_offer("{flags}")) {{
            sl_send_reply("503", "Media relay unavailable");
            exit;
        }}
{after_offer}        t_on_reply("MEDIA_REPLY");
        return;
    }}
    if (is_method("ACK") && has_body("application/sdp")) {{
        rtpengine_answer("{flags}");
    }}
}}

onreply_route[MEDIA_REPLY] {{
    if (has_body("application/sdp")) {{
{reanchor_reply}        rtpengine_answer("{flags}");
    }}
}}
""",
}

# A re-INVITE leaves relay 0 (which forgets the call at once) for relay 1; flag 7 marks the transaction so
# that its reply goes to relay 1 too.
REANCHOR_REQUEST = """        if (has_totag()) {
            set_rtpengine_set("0");
            rtpengine_delete();
            set_rtpengine_set("1");
            setflag(7);
        }
"""
REANCHOR_REPLY = """        if (isflagset(7)) {
            set_rtpengine_set("1");
        }
"""

BLOCK_MOVER = """        if (has_totag()) {
            block_media("directional");
        }
"""


class Carrier:
    """kamailio on 127.0.0.1:`port` (usrloc in memory, digest auth for REGISTER and INVITE) with one
    rtpengine (ng on port + 2, media ports media_ports[0]..+99 on 127.0.0.1), and with `reanchor` a
    second one (ng on port + 3, media ports +100..+199 on 127.0.0.2) for every re-INVITE."""

    def __init__(
        self,
        tmp_path,
        port,
        users,
        media_ports=18100,
        reanchor=False,
        pad_crypto=False,
        block_mover=False,
        database="text",
    ):
        """pad_crypto: rtpengine's "pad-crypto" flag. By default rtpengine passes SDES keys on without base64
        padding (RFC 4568 allows it); linphone 5.1 then decodes a 46-byte AES-256 key as 45 bytes and
        drops every packet, so a carrier serving such phones sets the flag.
        block_mover (with reanchor): the new relay forwards nothing from the phone whose re-INVITE moved
        the call until the test calls relays[1].unblock_media(); the other phone then hears nothing from
        the new address, so it can only find it in the SDP (not by latching onto arriving media).
        database: kamailio's subscriber and location tables, "text" (db_text) or "sqlite" (Kamailio's)."""
        if block_mover and not reanchor:
            raise ValueError("block_mover needs reanchor")
        self.port = port
        self.proxy = "127.0.0.1:{}".format(port)
        self.relays = []
        self.kamailio = None
        try:
            self.relays.append(Rtpengine(tmp_path / "rtpengine-a", port + 2, media_ports, media_ports + 99))
            sock = 'modparam("rtpengine", "rtpengine_sock", "{} == udp:127.0.0.1:{}")\n'
            socks = sock.format(0, port + 2)
            if reanchor:
                self.relays.append(
                    Rtpengine(
                        tmp_path / "rtpengine-b", port + 3, media_ports + 100, media_ports + 199, address="127.0.0.2"
                    )
                )
                socks += sock.format(1, port + 3)
            delete = "rtpengine_delete();"
            if reanchor:
                delete = 'set_rtpengine_set("0"); rtpengine_delete(); set_rtpengine_set("1"); rtpengine_delete();'
            flags = FLAGS + (" pad-crypto" if pad_crypto else "")
            fill = dict(socks=socks, flags=flags, delete=delete, reanchor_request="", reanchor_reply="", after_offer="")
            if reanchor:
                fill.update(reanchor_request=REANCHOR_REQUEST, reanchor_reply=REANCHOR_REPLY)
            if block_mover:
                fill.update(after_offer=BLOCK_MOVER)
            hooks = {name: text.format(**fill) for name, text in RELAY_HOOKS.items()}
            kamailio_dir = tmp_path / "kamailio"
            kamailio_dir.mkdir()
            self.kamailio = Kamailio(kamailio_dir, port, users, hooks=hooks, database=database)
        except BaseException:
            self.stop()
            raise

    def log(self):
        return self.kamailio.log() if self.kamailio else ""

    def stop(self):
        if self.kamailio is not None:
            self.kamailio.stop()
        for relay in self.relays:
            relay.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
