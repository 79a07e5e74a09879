from tests.interop.carrier import figures


def pytest_terminal_summary(terminalreporter):
    if not figures.RESULTS:
        return
    terminalreporter.write_sep("=", "carrier figures (measured, not asserted)")
    for name, lines in figures.RESULTS:
        for line in lines:
            terminalreporter.write_line("{}: {}".format(name, line))
