"""Provisioning server for tests and small offices: `python -m tools.provision COMMAND`.

Commands:
    keygen --private FILE --public FILE
            a new Ed25519 key pair (PEM): the private key (mode 0600) stays with whoever signs, the public
            key goes on every phone's boot partition as sotto-provisioning.pub
    sign DIR --key PRIVATE
            check and sign every file in DIR (a <mac>.toml, common.toml, a firmware tarball): writes
            FILE.sig next to each FILE. A .toml file must carry `serial = N` and only what a server may
            set; a broken one is refused before it is signed.
    serve DIR [--bind 127.0.0.1] [--port 0] (--cert CERT --cert-key KEY | --self-signed CERTFILE | --http)
            serve DIR over HTTPS until stopped: with your certificate, or with a new self-signed one for
            127.0.0.1/localhost written to CERTFILE (give that file to the phones as provisioning.ca),
            or plain http (a lab only: the phone then needs provisioning.allow_http). Prints one line,
            "serving URL", once it listens.

Exit codes: 0 ok, 2 bad arguments, a missing or bad key, or a file that cannot be signed (one line, no
traceback).
"""

import argparse
import datetime
import functools
import http.server
import ipaddress
import os
import ssl
import sys

from firmware import config as configuration
from firmware.errors import ConfigError
from firmware.provisioning import document as doc
from firmware.provisioning import merge as merging
from firmware.runtime.storage import atomic_write, read_bytes
from firmware.validation import parse_toml


class ToolError(Exception):
    pass


def keygen(private_path, public_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if os.path.exists(private_path):
        raise ToolError("{} exists: not overwriting a signing key".format(private_path))
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write(private_path, private_pem, mode=0o600)
    atomic_write(public_path, public_pem, mode=0o644)


def load_private_key(path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        raw = read_bytes(path, limit=4096)
    except (OSError, ValueError) as exc:
        raise ToolError("cannot read the key {}: {}".format(path, exc)) from None
    if raw is None:
        raise ToolError("no key file {}".format(path))
    try:
        key = load_pem_private_key(raw, password=None)
    except (ValueError, TypeError):
        raise ToolError("{}: not an unencrypted PEM private key".format(path)) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ToolError("{}: not an Ed25519 key".format(path))
    return key


def _parse(text):
    try:
        return parse_toml(text, "provisioned file")
    except ConfigError as exc:
        raise ValueError(exc.expected) from None


def check_file(name, body):
    """What the phone will check, before signing: a .toml file is a valid provisioned document whose
    settings pass the configuration schema on their own."""
    if not name.endswith(".toml"):
        return
    try:
        document = doc.read_document(name, body, b"\0" * doc.SIGNATURE_BYTES, lambda m, s: True, _parse)
        configuration.validate(merging.merge({}, document), name)
    except (doc.ProvisioningRefused, ConfigError) as exc:
        raise ToolError(str(exc)) from None


def refuse_private_keys(directory):
    """A served directory must never hold a private key (the signing key made with `keygen` in the wrong
    place, a server key): everything in it is readable by anyone who can reach the server."""
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        if b"PRIVATE KEY-----" in head:
            raise ToolError("{}: a private key in the served directory; move it out first".format(path))


def sign_directory(directory, key_path):
    refuse_private_keys(directory)
    key = load_private_key(key_path)
    signed = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.endswith(".sig") or name.startswith(".") or not os.path.isfile(path):
            continue
        if not doc.is_file_name(name):
            raise ToolError("{}: not a plain file name a phone can ask for".format(name))
        body = read_bytes(path)
        if name.endswith(".toml") and len(body) > doc.MAX_DOCUMENT_BYTES:
            raise ToolError("{}: more than the {} bytes a phone reads".format(name, doc.MAX_DOCUMENT_BYTES))
        check_file(name, body)
        atomic_write(path + ".sig", key.sign(doc.signed_message(name, body)), mode=0o644)
        signed.append(name)
    return signed


def self_signed_certificate(cert_path, key_path, hosts=("127.0.0.1", "localhost", "::1")):
    """A self-signed certificate (also its own CA) for `hosts`, valid for a year, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sotto provisioning (self-signed)")])
    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    atomic_write(
        key_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        mode=0o600,
    )


class _Handler(http.server.SimpleHTTPRequestHandler):
    quiet = False

    def list_directory(self, path):  # a phone needs its files, nobody needs the list of MACs
        self.send_error(404)
        return None

    def log_message(self, fmt, *args):
        if not self.quiet:
            sys.stderr.write("provision: %s %s\n" % (self.address_string(), fmt % args))


class _QuietHandler(_Handler):
    quiet = True


def make_server(directory, bind="127.0.0.1", port=0, cert=None, cert_key=None, quiet=False):
    """An HTTP(S) server for `directory` (not started): serve_forever() it on a thread. quiet: no access log."""
    handler = functools.partial(_QuietHandler if quiet else _Handler, directory=directory)
    server_class = http.server.ThreadingHTTPServer
    if ":" in bind:

        class V6(server_class):
            address_family = __import__("socket").AF_INET6

        server_class = V6
    server = server_class((bind, port), handler)
    scheme = "http"
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, cert_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    host = "[{}]".format(bind) if ":" in bind else bind
    server.url = "{}://{}:{}/".format(scheme, host, server.server_address[1])
    return server


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m tools.provision", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("keygen", help="a new Ed25519 signing key pair")
    p.add_argument("--private", required=True)
    p.add_argument("--public", required=True)
    p = sub.add_parser("sign", help="sign every file of a directory")
    p.add_argument("directory")
    p.add_argument("--key", required=True, help="the Ed25519 private key (PEM)")
    p = sub.add_parser("serve", help="serve a directory over HTTPS")
    p.add_argument("directory")
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert", help="the server's certificate chain (PEM)")
    p.add_argument("--cert-key", help="its private key (PEM)")
    p.add_argument("--self-signed", metavar="CERTFILE", help="make a self-signed certificate, write it here")
    p.add_argument("--http", action="store_true", help="plain http (a lab only)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "keygen":
            keygen(args.private, args.public)
            print("wrote {} (keep it secret) and {} (for the phones' boot partition)".format(args.private, args.public))
        elif args.command == "sign":
            if not os.path.isdir(args.directory):
                raise ToolError("{}: not a directory".format(args.directory))
            for name in sign_directory(args.directory, args.key):
                print("signed {}".format(name))
        else:
            return serve(args)
    except ToolError as exc:
        print("provision: error: {}".format(exc), file=sys.stderr)
        return 2
    return 0


def serve(args):
    if not os.path.isdir(args.directory):
        raise ToolError("{}: not a directory".format(args.directory))
    refuse_private_keys(args.directory)
    modes = [bool(args.cert), bool(args.self_signed), args.http]
    if sum(modes) != 1:
        raise ToolError("serve needs exactly one of --cert (with --cert-key), --self-signed CERTFILE, --http")
    if not 0 <= args.port < 65536:
        raise ToolError("--port: expected 0 to 65535")
    cert, cert_key = args.cert, args.cert_key
    if args.cert and not args.cert_key:
        raise ToolError("--cert needs --cert-key")
    if args.self_signed:
        cert = args.self_signed
        cert_key = args.self_signed + ".key"
        self_signed_certificate(cert, cert_key)
    try:
        server = make_server(args.directory, args.bind, args.port, cert, cert_key)
    except (OSError, ssl.SSLError) as exc:
        raise ToolError("cannot serve on {}:{}: {}".format(args.bind, args.port, exc)) from None
    print("serving {}".format(server.url), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
