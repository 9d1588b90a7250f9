"""Errors that stop a run with one clear message (the CLI prints them without a traceback)."""


class InterpflowError(Exception):
    """Base class: a problem the user can fix, described in the message."""


class ConfigError(InterpflowError):
    """The configuration or an input named by it is invalid."""


class EndpointError(InterpflowError):
    """An API endpoint kept failing (down, overloaded, too slow) after every retry."""
