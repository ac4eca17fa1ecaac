"""Errors a user can act on. The scripts print them as one line and exit non-zero (see `cli.run`)."""


class HousenumError(Exception):
    """Base class: the message alone must tell the user what was received and what was expected."""


class DataError(HousenumError):
    """Input data is missing, truncated, corrupt or of the wrong shape."""


class NetworkError(HousenumError):
    """A download could not be made (no network, server error after retries)."""
