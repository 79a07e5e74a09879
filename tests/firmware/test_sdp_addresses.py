"""SDP connection addresses from a peer (host-only: the cases need lone surrogates, which MicroPython's str
cannot hold)."""

from firmware.errors import RemoteProtocolError
from firmware.sdp import parse_sdp, remote_media


def test_the_connection_address_must_be_an_ip_literal_of_its_type():
    """Issue 11: c=IN IP4 127.0.0.1\\x00 reached sock.sendto and killed the phone when the call was answered
    (TypeError), a lone surrogate too (UnicodeError), and a host name meant a DNS lookup in the media path."""
    template = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN {} {}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    for addrtype, address in (
        ("IP4", "127.0.0.1"),
        ("IP4", "0.0.0.0"),
        ("IP4", "224.2.1.1/127"),
        ("IP6", "::1"),
        ("IP6", "fe80::1:2"),
        ("IP6", "2001:db8:0:0:0:0:2:1"),
        ("IP6", "::ffff:192.0.2.1"),
    ):
        media = remote_media(parse_sdp(template.format(addrtype, address).encode()))
        assert media.address == address.split("/")[0]
    for addrtype, address in (
        ("IP4", "127.0.0.1\x00"),
        ("IP4", "127.0.0.\udc80"),
        ("IP4", "127.\U0001d7ce.0.1"),
        ("IP4", "phone.example.org"),
        ("IP4", "256.0.0.1"),
        ("IP4", "1.2.3"),
        ("IP4", "::1"),
        ("IP6", "127.0.0.1"),
        ("IP6", "1:2:3:4:5:6:7:8:9"),
        ("IP6", "1::2::3"),
        ("IP6", "g::1"),
        ("IP4", "１２７.0.0.1"),
    ):
        text = template.format(addrtype, address).encode("utf-8", "surrogatepass")
        try:
            remote_media(parse_sdp(text))
        except RemoteProtocolError:
            continue
        raise AssertionError("accepted c=IN {} {!r}".format(addrtype, address))
