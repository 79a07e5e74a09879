"""The `sotto` command (contract in issue 2; automation relies on it, so extend it, never break it).

    sotto call URI [options]   place one call; when it ends print ONE JSON summary object on stdout
    sotto answer [options]     wait for one incoming call, answer it; same summary
    sotto run [options]        the phone itself (board from config or --board; default sim)

Exit codes: 0 when the result is "completed", 1 otherwise, 2 for bad arguments or configuration (one
clear line on stderr, never a traceback).
"""

import argparse
import json
import logging
import os
import sys

from firmware import config as configuration
from firmware.errors import ConfigError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A bad command line: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line ("sotto: error: ...") and exit code 2."""

    def error(self, message):
        raise UsageError(message)


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of seconds, got {!r}".format(text)) from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError("expected a positive number of seconds, got {!r}".format(text))
    return value


def _port(text):
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError("expected a UDP port 1-65535, got {!r}".format(text))
    return int(text)


def _host_port(text):
    try:
        configuration.host_port(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected HOST:PORT, got {!r}".format(text)) from None
    return text


def _name_list(choices, what):
    def parse(text):
        items = [item.strip() for item in text.split(",")]
        by_lower = {c.lower(): c for c in choices}
        out = []
        for item in items:
            canonical = by_lower.get(item.lower())
            if canonical is None:
                raise argparse.ArgumentTypeError(
                    "unknown {} {!r} (expected a comma-separated list from {})".format(what, item, ", ".join(choices))
                )
            if canonical in out:
                raise argparse.ArgumentTypeError("{} {!r} listed twice".format(what, item))
            out.append(canonical)
        return out

    return parse


def _existing_wav(text):
    """A WAV file the microphone can play: checked now, so a bad file is a usage error, not a dead call."""
    import wave

    from audio.codecs import SAMPLE_RATES
    from audio.resample import check_rates
    from audio.wavfile import read_wav

    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError("no such WAV file: {!r}".format(text))
    try:
        rate, _pcm = read_wav(text)
        # Every codec's rate, since the codec is only known once the call is negotiated.
        for codec_rate in sorted(set(SAMPLE_RATES.values())):
            check_rates(rate, codec_rate)
    except (ValueError, EOFError, wave.Error) as exc:
        raise argparse.ArgumentTypeError("unusable WAV file {!r}: {}".format(text, exc)) from None
    except OSError as exc:
        raise argparse.ArgumentTypeError("cannot read {!r}: {}".format(text, exc.strerror or exc)) from None
    return text


def _at_action(text):
    from firmware.runtime.actions import parse_at

    try:
        action = parse_at(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("--at {!r}: {}".format(text, exc)) from None
    if action.name == "transfer":
        check_call_uri(action.argument)
    return action


def _writable_target(text):
    directory = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError("directory does not exist for {!r}".format(text))
    return text


def check_call_uri(text):
    """The target of `sotto call`: a sip:, sips: or tel: URI with something to reach."""
    from firmware.sip.uri import parse_uri  # the SIP engine's own URI grammar

    try:
        uri = parse_uri(text)
    except Exception:  # noqa: BLE001 - any parse problem is the same usage error
        raise UsageError("not a SIP URI: {!r} (expected e.g. sip:bob@127.0.0.1:5072)".format(text)) from None
    if uri.scheme in ("sip", "sips") and not uri.host:
        raise UsageError("SIP URI without a host: {!r}".format(text))
    return text


def _add_call_options(parser):
    parser.add_argument("--config", metavar="FILE", help="TOML configuration (default: the embedded default)")
    parser.add_argument(
        "--listen", metavar="HOST:PORT", type=_host_port, help="local SIP address, UDP (default 127.0.0.1:5060)"
    )
    parser.add_argument("--rtp-port", metavar="N", type=_port, help="local RTP port")
    parser.add_argument(
        "--play",
        metavar="WAV",
        type=_existing_wav,
        help="microphone from a WAV file (any rate, resampled; looped), paced in real time",
    )
    parser.add_argument(
        "--record", metavar="WAV", type=_writable_target, help="what the far end sent, decoded, written as WAV"
    )
    parser.add_argument(
        "--duration",
        metavar="S",
        type=_positive_float,
        help='hang up S seconds after the media is up (after "secure" when encrypted)',
    )
    parser.add_argument("--timeout", metavar="S", type=_positive_float, help="give up after S seconds in all")
    parser.add_argument("--encryption", choices=configuration.ENCRYPTIONS, help="default zrtp")
    parser.add_argument(
        "--secure-only", action="store_true", default=None, help="end the call if it does not become secure"
    )
    parser.add_argument("--confirm-sas", action="store_true", help="press the trust button as soon as the SAS is shown")
    parser.add_argument(
        "--codecs",
        metavar="LIST",
        type=_name_list(configuration.CODECS, "codec"),
        help="preference order, e.g. PCMU,PCMA,G722,opus",
    )
    zrtp_lists = (
        ("--zrtp-key-agreements", configuration.ZRTP_KEY_AGREEMENTS, "key agreement", "X255,DH3k"),
        ("--zrtp-ciphers", configuration.ZRTP_CIPHERS, "cipher", "AES3,AES1"),
        ("--zrtp-hashes", configuration.ZRTP_HASHES, "hash", "S384,S256"),
        ("--zrtp-auth-tags", configuration.ZRTP_AUTH_TAGS, "auth tag", "HS32,HS80"),
        ("--zrtp-sas", configuration.ZRTP_SAS, "SAS type", "B256,B32"),
    )
    for flag, choices, what, example in zrtp_lists:
        parser.add_argument(
            flag,
            metavar="LIST",
            type=_name_list(choices, "ZRTP " + what),
            help="ZRTP names in preference order, e.g. " + example,
        )
    parser.add_argument("--cache", metavar="PATH", help="ZRTP cache file (created if missing)")
    parser.add_argument("--register", metavar="AOR", help="register with digest auth, call/answer through it")
    parser.add_argument("--password", metavar="P", help="password for --register")
    parser.add_argument("--proxy", metavar="HOST:PORT", type=_host_port, help="outbound proxy for --register")
    parser.add_argument(
        "--public-address",
        metavar="HOST[:PORT]",
        help="address (and RTP port) to advertise in SDP, e.g. a static NAT mapping or a relay",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("SOTTO_LOG", "warning"),
        choices=("debug", "info", "warning", "error"),
        help="log verbosity on stderr",
    )


def build_parser():
    parser = _Parser(prog="sotto", description="Sotto: a secure SIP/ZRTP desk phone.")
    commands = parser.add_subparsers(dest="command", metavar="{call,answer,run}")
    commands.required = True
    call = commands.add_parser("call", help="place one call and print a JSON summary")
    call.add_argument("uri", metavar="URI", help="whom to call, e.g. sip:bob@127.0.0.1:5072")
    _add_call_options(call)
    answer = commands.add_parser("answer", help="wait for one incoming call, answer it, print a JSON summary")
    _add_call_options(answer)
    for sub in (call, answer):
        sub.add_argument(
            "--at",
            metavar="T:ACTION",
            type=_at_action,
            action="append",
            help="T seconds after media up: hold, resume, 'dtmf DIGITS', 'transfer URI', confirm-sas, "
            "reject-sas or hangup (repeatable)",
        )
        sub.add_argument(
            "--follow-transfer",
            action="store_true",
            help="when the peer transfers us (REFER), call the target (with Replaces if attended), report the "
            "outcome to the peer and go on with the new call (or, if it fails, with the original one); default: "
            "decline with 603",
        )
    run = commands.add_parser("run", help="the phone itself (board from config or --board; default sim)")
    _add_call_options(run)
    run.add_argument("--board", metavar="NAME", help="board name (file in boards/) or a board TOML path")
    run.add_argument("--script", metavar="FILE", type=_existing_file, help="scripted input for the sim board")
    run.add_argument(
        "--display-log", metavar="FILE", type=_writable_target, help="write every display frame as a JSON line"
    )
    run.add_argument("--display-png", metavar="DIR", help="write every display frame as a 128x64 PNG")
    run.add_argument("--dial-domain", metavar="HOST[:PORT]", help="dialled digits call sip:DIGITS@HOST[:PORT]")
    for sub in (call, answer, run):
        sub.error = parser.error
    return parser


def _existing_file(text):
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError("no such file: {!r}".format(text))
    return text


def settings_from(args, config=None):
    """Merge the configuration file (or `config`: the provisioned one) with the command line; the
    command line wins."""
    if config is None:
        config = configuration.load(args.config)
    if args.listen:
        config.sip.listen = args.listen
    if args.rtp_port:
        config.media.rtp_port = args.rtp_port
    if args.encryption:
        config.media.encryption = args.encryption
    if args.secure_only:
        config.zrtp.secure_only = True
    if args.codecs:
        config.media.codecs = args.codecs
    for flag, key in (
        ("zrtp_key_agreements", "key_agreements"),
        ("zrtp_ciphers", "ciphers"),
        ("zrtp_hashes", "hashes"),
        ("zrtp_auth_tags", "auth_tags"),
        ("zrtp_sas", "sas"),
    ):
        value = getattr(args, flag)
        if value:
            setattr(config.zrtp, key, value)
    if args.cache:
        config.zrtp.cache = args.cache
    if args.register:
        if not args.register or not configuration.is_sip_uri(args.register):
            raise UsageError(
                "--register: expected an address of record like sip:alice@example.org, got {!r}".format(args.register)
            )
        config.account.uri = args.register
        config.account.password = args.password or ""
    elif args.password:
        raise UsageError("--password needs --register")
    if args.proxy:
        if not args.register and not config.account.uri:
            raise UsageError("--proxy needs --register (or account.uri in the configuration)")
        config.account.proxy = args.proxy
    if getattr(args, "board", None):
        config.board.name = args.board
    if getattr(args, "dial_domain", None):
        if not configuration.is_host_optional_port(args.dial_domain):
            raise UsageError("--dial-domain: expected HOST or HOST:PORT, got {!r}".format(args.dial_domain))
        config.dial.domain = args.dial_domain
    if args.public_address and not configuration.is_host_optional_port(args.public_address):
        raise UsageError("--public-address: expected HOST or HOST:PORT, got {!r}".format(args.public_address))
    configuration.recheck(config)  # the options get the bounds a file gets (length, no control characters)
    return config


def setup_logging(level):
    """Log to stderr in a journald-friendly form: "<priority>name: message", no timestamps."""
    priorities = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    class JournalFormatter(logging.Formatter):
        def format(self, record):
            return "<{}>{}: {}".format(priorities.get(record.levelno, 6), record.name, record.getMessage())

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))


def _error(exc, code):
    """One line on stderr, never a traceback; `code` is the exit status (EXIT_USAGE for a bad argument or
    configuration, EXIT_FAILED when the phone could not start)."""
    label = "configuration error" if isinstance(exc, ConfigError) else "error"
    print("sotto: {}: {}".format(label, exc), file=sys.stderr)
    return code


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "call":
            check_call_uri(args.uri)
        settings = settings_from(args)
    except UsageError as exc:
        return _error(exc, EXIT_USAGE)
    except ConfigError as exc:
        return _error(exc, EXIT_USAGE)
    setup_logging(args.log_level)
    from firmware.runtime.endpoint import StartupError

    try:
        if args.command == "run":
            from firmware.runtime.phone_run import run_phone
            from firmware.runtime.provisioned import provisioned_run

            # With a provisioning server: the files kept from last time merged in now, the server's at
            # boot and daily while the phone runs (README "Provisioning an office").
            return run_phone(settings, args, provisioning=provisioned_run(settings, args, settings_from))
        from firmware.runtime.single_call import run_single_call

        summary = run_single_call(settings, args)
    except ConfigError as exc:
        return _error(exc, EXIT_USAGE)
    except StartupError as exc:
        return _error(exc, EXIT_FAILED)
    print(json.dumps(summary.to_json()))
    sys.stdout.flush()
    if getattr(summary, "stopped_by_signal", False):
        return EXIT_OK  # SIGTERM/SIGINT: hung up politely, which is a clean exit
    return EXIT_OK if summary.result == "completed" else EXIT_FAILED
