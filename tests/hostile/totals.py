"""The hostile-input suite's figures (inputs fuzzed, crashes, kills survived, tampers caught).

Each test records its counts here and prints them; conftest.py repeats them in pytest's terminal summary,
so they are visible in a plain `make test` run (no -s needed).
"""

RESULTS = []  # (test name, {figure: value}) in the order the tests ran


def record(name, **figures):
    RESULTS.append((name, dict(figures)))
    print("hostile totals: {}: {}".format(name, ", ".join("{}={}".format(k, v) for k, v in figures.items())))
