"""Figures the carrier tests measure (the fleet's setup latency and CPU per call): printed by the test and
repeated by conftest.py in pytest's terminal summary, so a plain `make test` shows them. Never asserted."""

RESULTS = []  # (test name, [lines])


def record(name, lines):
    RESULTS.append((name, list(lines)))
    for line in lines:
        print("{}: {}".format(name, line))
