"""Argument types and help-text helpers shared by every sub-command's parser (``coolcolor.cli`` and the
``cli.py`` of each package), kept apart from ``coolcolor.cli`` so that sub-commands never import the
top-level entry point they are registered by.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``low``…``high`` (no upper bound when ``high`` is None)."""
    wanted = f"an integer ≥ {low}" if high is None else f"an integer in {low}…{high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0 (timeouts, seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def plain_text(doc: str | None) -> str:
    """A module docstring as ``--help`` text: reStructuredText's double back-quotes and ``::`` go."""
    text = re.sub(r"``(.+?)``", r"\1", doc or "")
    return re.sub(r"::(?=\s*$)", ":", text, flags=re.MULTILINE)


def one_line(text: object) -> str:
    """A message as one line: a multi-line library error keeps its lines, joined by ' | '."""
    return " | ".join(part.strip() for part in str(text).splitlines() if part.strip())
