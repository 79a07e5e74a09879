"""An I2C device on an injected smbus2-like bus (MicroPython-portable: no imports, no f-strings).

The bus needs two methods, as smbus2.SMBus has them: write_i2c_block_data(address, register, data) for
at most 32 bytes (the SMBus block limit) and write_byte(address, value). A device that does not answer
(the kernel's NACK errors) raises DeviceNotFoundError, which is an OSError.
"""

SMBUS_BLOCK = 32  # SMBus block writes carry at most 32 bytes (SMBus 2.0 section 5.5.7)
# errno values of a device that does not answer: EREMOTEIO (Linux i2c-dev's NACK), ENXIO, ENODEV. Numbers,
# because MicroPython's errno module lacks EREMOTEIO.
NO_ANSWER = (121, 6, 19)


class DeviceNotFoundError(OSError):
    """Nothing answers at the display's I2C address."""


class I2cDevice:
    def __init__(self, bus, address):
        if not isinstance(address, int) or not 0x08 <= address <= 0x77:
            raise ValueError("not a 7-bit I2C address: {!r}".format(address))
        self.bus = bus
        self.address = address

    def write(self, control, data):
        """Write `data` after the control byte `control`, in SMBus blocks (each block repeats the control
        byte, which is how SSD1306 and SH1106 take a long command or data stream over I2C)."""
        for start in range(0, len(data), SMBUS_BLOCK):
            self._answered(self.bus.write_i2c_block_data, control, list(data[start : start + SMBUS_BLOCK]))

    def write_byte(self, value):
        self._answered(self.bus.write_byte, value)

    def _answered(self, method, *args):
        try:
            method(self.address, *args)
        except OSError as exc:
            if exc.args and exc.args[0] in NO_ANSWER:
                raise DeviceNotFoundError(
                    exc.args[0], "no I2C device answers at address 0x{:02X}".format(self.address)
                ) from None
            raise
