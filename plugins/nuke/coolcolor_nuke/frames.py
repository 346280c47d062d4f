"""Frame lists as the artist types them ("1001, 1010-1012") and as the protocol's ``have`` wants them.

Plain Python (no ``nuke``): the node keeps its keyframes and its delivered frames as text in knobs, so the lists
survive saving and re-opening the script.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Union

from coolcolor_protocol.frames import frame_runs

FrameSpec = Union[int, list[int]]  # noqa: UP007 - a runtime alias: Python 3.9 has no int | list


class FrameListError(ValueError):
    """A frame list the artist typed that is not one."""


def parse_frames(text: str) -> list[int]:
    """``"1001, 1010-1012 1020"`` → ``[1001, 1010, 1011, 1012, 1020]`` (sorted, unique)."""
    frames: set = set()
    for token in re.split(r"[,\s]+", text.strip()):
        if not token:
            continue
        m = re.fullmatch(r"(-?\d+)(?:-(-?\d+))?", token)
        if m is None:
            raise FrameListError(f"keyframes: '{token}' is not a frame number or a range like 10-12")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        if last < first:
            raise FrameListError(f"keyframes: range '{token}' ends before it starts")
        frames.update(range(first, last + 1))
    return sorted(frames)


def format_frames(frames: Iterable[int]) -> str:
    """The inverse of ``parse_frames``: runs of three or more as ``a-b``, the rest comma-separated."""
    parts: list[str] = []
    for first, last in frame_runs(frames):
        if last - first >= 2:
            parts.append(f"{first}-{last}")
        else:
            parts.extend(str(f) for f in range(first, last + 1))
    return ", ".join(parts)


def have_list(frames: Iterable[int]) -> list[FrameSpec]:
    """The protocol's ``attach.have``: single frames and ``[first, last]`` ranges (SPEC.md §5.5)."""
    return [r[0] if r[0] == r[1] else r for r in frame_runs(frames)]
