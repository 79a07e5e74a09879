"""python -m tools.image --base BASE --out OUT [--config FILE] [--board NAME] [--source DIR] [--dist DIR]

Exit codes: 0 done; 2 bad arguments, a BASE that is not a Raspberry Pi OS-like image (MBR, FAT boot,
ext4 root), a bad configuration or an unknown board, with one line on stderr and no OUT written;
1 when a tool (mtools, e2fsprogs) fails on the way.
"""

import argparse
import os
import sys

from firmware.errors import ConfigError
from tools.image import payload
from tools.image.build import build
from tools.image.fat import ImageToolError
from tools.image.partitions import BaseImageError

PROG = "sotto-image"


def _fail(code, message):
    print("{}: {}".format(PROG, message), file=sys.stderr)
    return code


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description="Turn a Raspberry Pi OS Lite image into a Sotto desk phone image (offline)."
    )
    parser.add_argument("--base", required=True, help="Raspberry Pi OS Lite .img (never modified)")
    parser.add_argument("--out", required=True, help="the image to write")
    parser.add_argument("--config", help="phone configuration (TOML) to put on the boot partition")
    parser.add_argument(
        "--board", help="board name for the configuration template ({})".format(", ".join(payload.available_boards()))
    )
    parser.add_argument(
        "--source", default=payload.REPO_ROOT, help="the Sotto tree to install (default: this checkout)"
    )
    parser.add_argument(
        "--dist",
        help="the device environment to carry (python -m tools.image.deviceenv makes "
        "it; `make image` passes it): without it first boot has nothing to install",
    )
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.source, "firmware", "__init__.py")):
        return _fail(2, "{}: not a Sotto tree (no firmware/__init__.py)".format(args.source))

    config_bytes = None
    if args.board is not None and args.board not in payload.available_boards():
        return _fail(2, "unknown board {!r} (known: {})".format(args.board, ", ".join(payload.available_boards())))
    try:
        if args.board is not None:
            from boards.schema import load_board

            load_board(args.board)  # a broken board file is refused now, not on the phone
        if args.config is not None:
            try:
                with open(args.config, "rb") as f:
                    config_bytes = f.read()
            except OSError as exc:
                return _fail(2, "{}: {}".format(args.config, exc.strerror or exc))
            try:
                text = config_bytes.decode("utf-8")
            except UnicodeDecodeError:
                return _fail(2, "{}: not UTF-8 text".format(args.config))
            payload.validate_config_text(text, args.config)
            if args.board is not None:
                # CONFIG and BOARD together: the board goes into the configuration unless it names another.
                import tomllib

                named = tomllib.loads(text).get("board")
                if named is None:
                    config_bytes = (text.rstrip("\n") + '\n\n[board]\nname = "{}"\n'.format(args.board)).encode()
                elif named.get("name") != args.board:
                    return _fail(
                        2,
                        "{} sets [board] name = {!r}, not {!r}: give one of them".format(
                            args.config, named.get("name"), args.board
                        ),
                    )
        if args.dist is not None and not os.path.isfile(os.path.join(args.dist, "MANIFEST")):
            return _fail(2, "{}: not a device environment (no MANIFEST)".format(args.dist))
        build(args.base, args.out, config_bytes, args.board, args.source, args.dist)
    except (BaseImageError, ConfigError) as exc:
        return _fail(2, str(exc))
    except ImageToolError as exc:
        return _fail(1, str(exc))
    except OSError as exc:
        return _fail(1, "{}: {}".format(exc.filename or "", exc.strerror or exc))
    print("{}: wrote {}".format(PROG, args.out), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
