"""A seeded mutator of real SIP messages for the network fuzz (issue 11).

Beyond byte flips it aims at what byte-level fuzzers miss (the `a=ptime:²` crash): Unicode digits that
str.isdigit() accepts and int() refuses or reads differently (superscripts, subscripts, circled digits,
Arabic-Indic, Devanagari, fullwidth, mathematical bold), control characters that str.strip() removes
(\\x1c-\\x1f, \\x85, U+2028), overlong and otherwise invalid UTF-8, and huge or odd numbers in every
numeric field (Content-Length, CSeq, Max-Forwards, Expires, ports, payload types, ptime, rates).

    fuzz = Mutator(seed, phone_port, our_port)
    data = fuzz.next()       # one datagram; fuzz.kinds counts the templates used
"""

import random
import re

UNICODE_DIGITS = (
    "⁰¹²³⁴⁵⁶⁷⁸⁹",  # superscripts: isdigit() is true, int() raises
    "₀₁₂₃₄₅₆₇₈₉",  # subscripts
    "⓪①②③④⑤⑥⑦⑧⑨",  # circled
    "٠١٢٣٤٥٦٧٨٩",  # Arabic-Indic: int() accepts them
    "۰۱۲۳۴۵۶۷۸۹",  # extended Arabic-Indic
    "०१२३४५६७८९",  # Devanagari
    "０１２３４５６７８９",  # fullwidth
    "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗",  # mathematical bold
)
CONTROLS = [bytes([c]) for c in list(range(0, 32)) + [127]] + [
    "\x85".encode(),
    "\u2028".encode(),
    "\u2029".encode(),
    "\u00a0".encode(),
    "\ufeff".encode(),
    "\u200b".encode(),
]
BAD_UTF8 = (
    b"\xc0\xaf",
    b"\xc0\x80",
    b"\xe0\x80\xaf",
    b"\xf0\x80\x80\xaf",
    b"\xc1\xbf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xff",
    b"\xfe\xff",
    b"\x80",
    b"\xc3",
    b"\xf8\x88\x80\x80\x80",
)
HUGE_NUMBERS = (
    b"70000000000000",
    b"18446744073709551616",
    b"9" * 400,
    b"-1",
    b"0",
    b"1e9",
    b"0x10",
    b"+5",
    b"4294967296",
    b"2147483648",
    b"65536",
    b"99999",
    b"00000000000000000020",
    b"1_000",
    b" 20",
    b"20 ",
)
DIGIT_RUN = re.compile(rb"[0-9]+")

SDP = (
    "v=0\r\no=fuzz {n} {n} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {rtp} RTP/AVP 0 8 9 96 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1;maxplaybackrate=16000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=maxptime:60\r\na=rtcp-mux\r\n"
    "a=rtcp:{rtcp} IN IP4 127.0.0.1\r\na=zrtp-hash:1.10 {hash}\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32\r\n"
    "a=sendrecv\r\n"
)

REQUEST = (
    "{method} sip:{user}@127.0.0.1:{port} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{me};rport;branch=z9hG4bKfz{n}\r\n"
    "Max-Forwards: 70\r\n"
    'From: "Fuzz {n}" <sip:fuzz@127.0.0.1:{me}>;tag=f{n}\r\n'
    "To: <sip:{user}@127.0.0.1:{port}>{to_tag}\r\n"
    "Call-ID: fz{n}@127.0.0.1\r\n"
    "CSeq: {cseq} {method}\r\n"
    "Contact: <sip:fuzz@127.0.0.1:{me}>;expires=3600\r\n"
    "{extra}"
    "Content-Length: {length}\r\n\r\n"
)

RESPONSE = (
    "SIP/2.0 {status} {reason}\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKnone{n};rport\r\n"
    "From: <sip:sotto@127.0.0.1:{port}>;tag=s{n}\r\n"
    "To: <sip:fuzz@127.0.0.1:{me}>;tag=t{n}\r\n"
    "Call-ID: gone{n}@127.0.0.1\r\n"
    "CSeq: {cseq} {method}\r\n"
    "Contact: <sip:fuzz@127.0.0.1:{me}>\r\n"
    "{extra}"
    "Content-Length: {length}\r\n\r\n"
)

# (name, weight, method, extra headers, body kind)
TEMPLATES = (
    (
        "INVITE",
        30,
        "INVITE",
        "Content-Type: application/sdp\r\nAllow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n"
        "Supported: replaces, timer\r\nSession-Expires: 1800\r\nUser-Agent: fuzz\r\n",
        "sdp",
    ),
    ("re-INVITE", 6, "INVITE", "Content-Type: application/sdp\r\n", "sdp-dialog"),
    ("OPTIONS", 10, "OPTIONS", "Accept: application/sdp\r\n", ""),
    (
        "REGISTER",
        6,
        "REGISTER",
        'Expires: 3600\r\nAuthorization: Digest username="fuzz", realm="x", '
        'nonce="abc", uri="sip:127.0.0.1", response="0123456789abcdef0123456789abcdef", qop=auth, nc=00000001, '
        'cnonce="x"\r\n',
        "",
    ),
    ("BYE", 6, "BYE", 'Reason: SIP;cause=200;text="bye"\r\n', "dialog"),
    ("CANCEL", 4, "CANCEL", "", ""),
    ("ACK", 4, "ACK", "", "dialog"),
    ("INFO", 4, "INFO", "Content-Type: application/dtmf-relay\r\n", "dtmf"),
    (
        "NOTIFY",
        3,
        "NOTIFY",
        "Event: refer;id=1\r\nSubscription-State: active;expires=60\r\nContent-Type: message/sipfrag\r\n",
        "sipfrag",
    ),
    ("REFER", 3, "REFER", "Refer-To: <sip:carol@127.0.0.1:9>\r\nReferred-By: <sip:fuzz@127.0.0.1>\r\n", "dialog"),
    (
        "INVITE-Replaces",
        3,
        "INVITE",
        "Content-Type: application/sdp\r\nReplaces: fuzzcall@127.0.0.1;to-tag=a1;from-tag=b2\r\nRequire: replaces\r\n",
        "sdp",
    ),
    (
        "REFER-Replaces",
        2,
        "REFER",
        "Refer-To: <sip:carol@127.0.0.1:9?Replaces=fuzzcall%40127.0.0.1%3Bto-tag%3Da1%3Bfrom-tag%3Db2>\r\n",
        "dialog",
    ),
    ("UPDATE", 2, "UPDATE", "Content-Type: application/sdp\r\n", "sdp-dialog"),
    ("MESSAGE", 2, "MESSAGE", "Content-Type: text/plain\r\n", "text"),
    ("SUBSCRIBE", 2, "SUBSCRIBE", "Event: presence\r\nExpires: 60\r\n", ""),
    ("PRACK", 1, "PRACK", "RAck: 1 1 INVITE\r\n", "dialog"),
    ("response", 8, None, "", ""),
    ("raw", 3, None, "", ""),
)


class Mutator:
    def __init__(self, seed, port, me, rtp_port=40000):
        self.rand = random.Random(seed)
        self.port = port
        self.me = me
        self.rtp_port = rtp_port
        self.n = 0
        self.kinds = {}
        self._names = [t[0] for t in TEMPLATES]
        self._weights = [t[1] for t in TEMPLATES]
        self._by_name = {t[0]: t for t in TEMPLATES}

    # -- well-formed material -----------------------------------------------------------------------
    def _body(self, kind):
        r = self.rand
        if kind.startswith("sdp"):
            return SDP.format(
                n=self.n,
                rtp=self.rtp_port,
                rtcp=self.rtp_port + 1,
                hash="".join(r.choice("0123456789abcdef") for _ in range(64)),
            )
        if kind == "dtmf":
            return "Signal={}\r\nDuration=160\r\n".format(r.choice("0123456789*#ABCD"))
        if kind == "sipfrag":
            return "SIP/2.0 200 OK\r\n"
        if kind == "text":
            return "hello {}".format(self.n)
        return ""

    def _template(self, name):
        r = self.rand
        n = self.n
        _, _, method, extra, body_kind = self._by_name[name]
        if name == "raw":
            choice = r.randrange(4)
            if choice == 0:
                return bytes(r.randrange(256) for _ in range(r.randrange(1, 1400)))
            if choice == 1:
                return r.choice((b"\r\n\r\n", b"\r\n", b"", b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)))
            if choice == 2:
                return ("SIP/2.0 " * r.randrange(1, 200)).encode()
            return b"INVITE " + b"A" * r.randrange(1, 65000)
        if name == "response":
            status, reason = r.choice(
                (
                    (100, "Trying"),
                    (180, "Ringing"),
                    (200, "OK"),
                    (401, "Unauthorized"),
                    (407, "Proxy Authentication Required"),
                    (486, "Busy Here"),
                    (503, "Service Unavailable"),
                )
            )
            method = r.choice(("INVITE", "REGISTER", "BYE", "OPTIONS", "CANCEL"))
            extra = ""
            if status in (401, 407):
                extra = '{}: Digest realm="x", nonce="{}", qop="auth", algorithm=MD5\r\n'.format(
                    "WWW-Authenticate" if status == 401 else "Proxy-Authenticate", n
                )
            if status == 503:
                extra = "Retry-After: 5\r\n"
            body = SDP.format(n=n, rtp=self.rtp_port, rtcp=self.rtp_port + 1, hash="0" * 64) if status == 200 else ""
            if body:
                extra += "Content-Type: application/sdp\r\n"
            head = RESPONSE.format(
                status=status,
                reason=reason,
                port=self.port,
                me=self.me,
                n=n,
                cseq=1,
                method=method,
                extra=extra,
                length=len(body.encode()),
            )
            return (head + body).encode()
        body = self._body(body_kind)
        to_tag = ";tag=t{}".format(n) if body_kind in ("dialog", "sdp-dialog") else ""
        head = REQUEST.format(
            method=method,
            user=r.choice(("sotto", "100", "alice", "x")),
            port=self.port,
            me=self.me,
            n=n,
            to_tag=to_tag,
            cseq=r.choice((1, 2, 101)),
            extra=extra,
            length=len(body.encode()),
        )
        return (head + body).encode()

    # -- mutations ------------------------------------------------------------------------------------
    def _unicode_digits(self, data):
        r = self.rand
        digits = r.choice(UNICODE_DIGITS)
        runs = list(DIGIT_RUN.finditer(data))
        if runs and r.random() < 0.8:
            run = r.choice(runs)
            if r.random() < 0.5:  # all of the run
                new = "".join(digits[int(ch)] for ch in run.group().decode()).encode()
            else:  # one digit in it, or one appended
                new = run.group() + digits[r.randrange(10)].encode()
            return data[: run.start()] + new + data[run.end() :]
        at = r.randrange(len(data) + 1)
        return data[:at] + digits[r.randrange(10)].encode() + data[at:]

    def _control(self, data):
        r = self.rand
        ctl = r.choice(CONTROLS)
        lines = [m.start() for m in re.finditer(rb"\r\n", data)]
        if lines and r.random() < 0.6:
            at = r.choice(lines)  # at a line end, where strip() would hide it
        else:
            at = r.randrange(len(data) + 1)
        return data[:at] + ctl + data[at:]

    def _bad_utf8(self, data):
        at = self.rand.randrange(len(data) + 1)
        return data[:at] + self.rand.choice(BAD_UTF8) + data[at:]

    def _huge_number(self, data):
        runs = list(DIGIT_RUN.finditer(data))
        if not runs:
            return data
        run = self.rand.choice(runs)
        return data[: run.start()] + self.rand.choice(HUGE_NUMBERS) + data[run.end() :]

    def _bytes(self, data):
        r = self.rand
        data = bytearray(data)
        for _ in range(r.randrange(1, 5)):
            if not data:
                break
            at = r.randrange(len(data))
            if r.random() < 0.5:
                data[at] = r.randrange(256)
            else:
                data[at] ^= 1 << r.randrange(8)
        return bytes(data)

    def _lines(self, data):
        r = self.rand
        lines = data.split(b"\r\n")
        i = r.randrange(len(lines))
        op = r.randrange(8)
        if op == 0:
            lines.insert(i, lines[i])  # a duplicated header (two Max-Forwards, two Content-Length...)
        elif op == 1:
            del lines[i]
        elif op == 2:
            j = r.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 3:
            lines[i : i + 1] = [lines[i]] * r.randrange(2, 300)
        elif op == 4:
            lines[i] = lines[i] + b"x" * r.randrange(100, 9000)
        elif op == 5:
            return b"\n".join(lines) if r.random() < 0.5 else b"\r".join(lines)
        elif op == 6:
            lines.insert(i, b" folded continuation")
        else:
            return data[: r.randrange(len(data) + 1)]  # truncated
        return b"\r\n".join(lines)

    def _content_length(self, data):
        value = self.rand.choice((b"0", b"1", b"99999", b"-5", b"4294967296", b"20\x1d", "²".encode(), b""))
        return re.sub(rb"Content-Length: [^\r\n]*", b"Content-Length: " + value, data, count=1)

    MUTATIONS = ("_unicode_digits", "_control", "_bad_utf8", "_huge_number", "_bytes", "_lines", "_content_length")

    def next(self):
        self.n += 1
        name = self.rand.choices(self._names, self._weights)[0]
        self.kinds[name] = self.kinds.get(name, 0) + 1
        data = self._template(name)
        if name == "raw" or not data:
            return data
        for _ in range(self.rand.choice((1, 1, 1, 2, 2, 3))):
            data = getattr(self, self.rand.choice(self.MUTATIONS))(data)
        return data[:65507]  # the largest UDP payload over IPv4
