"""A tiny test runner for MicroPython, which has no unittest or pytest.

    micropython tests/micropython/runner.py tests.zrtp.test_messages [more modules]

Imports each module, calls every top-level function whose name starts with "test_", prints one line per
failure and a closing "N passed, N failed" line; the exit code is 1 when anything failed.
"""

import sys


def run_module(name):
    passed = failed = 0
    module = __import__(name)
    for part in name.split(".")[1:]:
        module = getattr(module, part)
    for attr in sorted(dir(module)):
        if not attr.startswith("test_"):
            continue
        func = getattr(module, attr)
        if not callable(func):
            continue
        try:
            func()
            passed += 1
        except Exception as exc:  # report every failure, then go on
            failed += 1
            print("FAIL {}.{}: {}: {}".format(name, attr, type(exc).__name__, exc))
            sys.print_exception(exc) if hasattr(sys, "print_exception") else None
    return passed, failed


def main(names):
    total_passed = total_failed = 0
    for name in names:
        try:
            passed, failed = run_module(name)
        except Exception as exc:
            print("ERROR importing {}: {}: {}".format(name, type(exc).__name__, exc))
            passed, failed = 0, 1
        total_passed += passed
        total_failed += failed
    print("{} passed, {} failed".format(total_passed, total_failed))
    if total_passed == 0 or total_failed:
        sys.exit(1)


main(sys.argv[1:])
