"""`make bench`: print figures, never pass/fail (DESIGN.md, "Performance is measured").

Every module in tools/bench/ other than this one has a `run()` that prints its own section. Run one
section with `python -m tools.bench NAME`.
"""

import importlib
import pkgutil
import sys

import tools.bench


def main(argv):
    names = argv or sorted(m.name for m in pkgutil.iter_modules(tools.bench.__path__) if m.name != "__main__")
    for name in names:
        module = importlib.import_module("tools.bench." + name)
        print("== {} ==".format(name))
        sys.stdout.flush()
        try:
            module.run()
        except Exception as exc:  # one failing section must not hide the others' figures
            print("  (section failed: {}: {})".format(type(exc).__name__, exc))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
