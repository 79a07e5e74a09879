"""What every test module shares: require_tool(), the one way a test asks for a program it needs.

A missing peer or tool FAILS the test with the package to install (DESIGN.md: a test never skips itself into a
green run; `make test` installs every package the suite uses).
"""

import shutil

import pytest

SYSTEM_PATHS = "/usr/sbin:/usr/bin:/sbin:/bin"


def require_tool(binary, package=None):
    """The path of `binary`, or a failed test naming the Debian package that provides it."""
    path = shutil.which(binary) or shutil.which(binary, path=SYSTEM_PATHS)
    if path is None:
        message = "{} is not installed (Debian package {}; `make test` installs it)".format(binary, package or binary)
        pytest.fail(message, pytrace=False)
    return path
