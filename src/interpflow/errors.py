"""Errors that stop a run with one clear message (the CLI prints them without a traceback)."""

import sys
from contextlib import contextmanager


class InterpflowError(Exception):
    """Base class: a problem the user can fix, described in the message."""


class ConfigError(InterpflowError):
    """The configuration or an input named by it is invalid."""


class EndpointError(InterpflowError):
    """An API endpoint kept failing (down, overloaded, too slow) after every retry."""


class JudgeError(InterpflowError):
    """The judge's replies could not be read often enough for its scores to mean anything."""


class ArtifactError(InterpflowError):
    """An artifact the workflow wrote cannot be read: damaged (a truncated copy, a full disk) or not
    what its name says. `path` is the file; the message names it and what went wrong."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        # Deleting it would not do: Snakemake 9 rebuilds a missing intermediate file only when
        # something after it must run. --forcerun rebuilds it and everything made from it.
        super().__init__(f"{self.path} is damaged or of the wrong kind ({reason}); rebuild it and what was made from "
                         f"it: your snakemake command again with `--forcerun {self.path}`")


@contextmanager
def config_errors_stop_the_run():
    """Around the checks the Snakefile runs when it is parsed: a ConfigError ends Snakemake with its
    message alone. Snakemake would print it under the file and line that raised it, which reads like
    a crash in the workflow rather than a setting to fix."""
    try:
        yield
    except ConfigError as err:
        sys.exit(f"interpflow: the run did not start: {err}\n")
