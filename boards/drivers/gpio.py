"""The one module that imports RPi.GPIO (DESIGN.md): on a Pi 3/4/Zero 2 it is the RPi.GPIO package, on a
Pi 5 the rpi-lgpio package provides the same module. Every driver takes the module as an argument, so
tests hand them a strict fake instead (tests/boards/fakes.py)."""

from firmware.errors import ConfigError


def import_gpio(library):
    """The GPIO module for a board's `gpio` setting ("RPi.GPIO" or "rpi-lgpio")."""
    if library not in ("RPi.GPIO", "rpi-lgpio"):
        raise ConfigError("board", "gpio", "RPi.GPIO or rpi-lgpio for a hardware board, not {!r}".format(library))
    try:
        import RPi.GPIO as gpio  # rpi-lgpio installs this same module name on a Pi 5
    except ImportError:
        package = "rpi-lgpio" if library == "rpi-lgpio" else "RPi.GPIO"
        raise ConfigError(
            "board", "gpio", "the {} package installed (apt: python3-rpi-lgpio or python3-rpi.gpio)".format(package)
        ) from None
    return gpio


def prepare(gpio):
    """Select BCM numbering (board files are converted to BCM) before any driver sets a pin up."""
    gpio.setwarnings(False)
    gpio.setmode(gpio.BCM)
