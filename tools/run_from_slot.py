"""sotto.service's ExecStart: the `sotto` command from the firmware slot /opt/sotto-ab/current points to
when the service starts (the venv in /opt/sotto is shared by both slots).

    /opt/sotto/.venv/bin/python /opt/sotto-ab/current/tools/run_from_slot.py run --config FILE

The slot's directory is resolved once, here: an update switches `current` while this phone runs, and a
module imported later (several are imported on first use) must come from the same slot as the rest, not
from the new one. Children started with this Python get the same slot through PYTHONPATH.
"""

import os
import sys

SLOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def main(argv=None):
    sys.path[0] = SLOT  # instead of this script's own directory (tools/)
    os.environ["PYTHONPATH"] = SLOT
    from firmware.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
