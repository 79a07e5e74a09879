"""The error types of Sotto.

Peer input can only ever raise RemoteProtocolError (DESIGN.md "Rules"): the SIP engine turns it into a
response, the media path drops the packet and counts it. Misuse of an API by our own code raises
LocalProtocolError. Configuration and command-line problems raise ConfigError, which the CLI prints as
one line and exit code 2.
"""


class SottoError(Exception):
    """Base class of every error Sotto raises on purpose."""


class RemoteProtocolError(SottoError):
    """Something a peer sent is malformed or breaks a protocol rule.

    `status` is the SIP response code that best answers it (400 unless the parser knows better);
    non-SIP parsers leave the default.
    """

    def __init__(self, message, status=400):
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self):
        return self.message


class LocalProtocolError(SottoError):
    """Our own code used an API the wrong way (a bug, or a command in the wrong state)."""


class ConfigError(SottoError):
    """A configuration file or command-line argument is invalid.

    Rendered as one line: "<where>: <key>: <what was expected>".
    """

    def __init__(self, where, key, expected):
        super().__init__("{}: {}: {}".format(where, key, expected))
        self.where = where
        self.key = key
        self.expected = expected
