"""Errors a user can act on. Each message names the problem (which file, which field, what was
expected), so that the CLI, the daemon and the plugins can show it as is."""


class CoolColorError(Exception):
    """Base class for every error that is reported to the user instead of crashing."""


class InputError(CoolColorError, ValueError):
    """Bad input: wrong shape, dtype, range, missing frame, out-of-range keyframe, …"""


class CheckpointError(CoolColorError):
    """A model folder that is missing parts or is not of the expected layout."""
