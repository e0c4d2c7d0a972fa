"""Errors a user can fix: the command line prints their message on one line and exits 2."""


class SfbdError(Exception):
    """A problem with the user's input or run directory, with a message saying what to do."""


class ConfigError(SfbdError):
    """Invalid configuration: unknown key, wrong type, value out of range."""


class DataError(SfbdError):
    """Unusable data: missing file, wrong shape, non-finite values."""
