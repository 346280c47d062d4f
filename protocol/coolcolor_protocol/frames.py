"""Frame-number ideas shared by the daemon, the video engine and both plugins.

Standard library only, Python 3.9+: the plugins import it inside the host's Python.
"""

from __future__ import annotations

from collections.abc import Iterable


class KeyframeOutsideRange(ValueError):
    """Keyframes that are not frames of the job's range (each caller wraps it in its own error)."""


def frame_runs(frames: Iterable[int]) -> list[list[int]]:
    """Frame numbers → sorted inclusive ``[first, last]`` runs of consecutive frames: [1,2,3,7] → [[1,3],[7,7]]."""
    runs: list[list[int]] = []
    for f in sorted(set(frames)):
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    return runs


def runs_text(frames: Iterable[int], limit: int = 8) -> str:
    """[1,2,3,7,9,10] → "1-3, 7, 9-10" (at most ``limit`` runs, then "…"): frame lists in messages."""
    runs = frame_runs(frames)
    text = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit]]
    return ", ".join(text) + (", …" if len(runs) > limit else "")


def check_keyframes_in_range(keyframes: Iterable[int], first: int, last: int, what: str = "keyframe(s)") -> None:
    """Raise ``KeyframeOutsideRange`` naming every keyframe outside ``first``..``last`` (inclusive). ``what``
    names the frames in the message (a host's reference frame is checked the same way)."""
    outside = sorted({k for k in keyframes if not first <= k <= last})
    if outside:
        raise KeyframeOutsideRange(f"{what} {', '.join(map(str, outside))} outside the frame range {first}-{last}")
