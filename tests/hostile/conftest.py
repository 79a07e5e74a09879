from tests.hostile import totals


def pytest_terminal_summary(terminalreporter):
    if not totals.RESULTS:
        return
    terminalreporter.write_sep("=", "hostile-input totals")
    for name, figures in totals.RESULTS:
        terminalreporter.write_line("{}: {}".format(name, ", ".join("{}={}".format(k, v) for k, v in figures.items())))
