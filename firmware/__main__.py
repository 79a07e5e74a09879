"""`python -m firmware` and the `sotto` console script."""

import sys

from firmware.cli import main as _cli_main


def main():
    sys.exit(_cli_main())


if __name__ == "__main__":
    main()
