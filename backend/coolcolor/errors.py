"""Errors a user can act on. Each message names the problem (which file, which field, what was
expected), so that the CLI, the daemon and the plugins can show it as is."""

import os


class CoolColorError(Exception):
    """Base class for every error that is reported to the user instead of crashing."""


class InputError(CoolColorError, ValueError):
    """Bad input: wrong shape, dtype, range, missing frame, out-of-range keyframe, …"""


class CheckpointError(CoolColorError):
    """A model folder that is missing parts or is not of the expected layout."""


def describe_os_error(exc: OSError) -> str:
    """``No space left on device: /out/ab.0003.exr`` rather than ``[Errno 28] No space … '/out/ab.0003.exr'``."""
    if exc.strerror and exc.filename is not None:
        target = os.fsdecode(exc.filename)
        if exc.filename2 is not None:
            target += f" -> {os.fsdecode(exc.filename2)}"
        return f"{exc.strerror}: {target}"
    return str(exc) or type(exc).__name__
