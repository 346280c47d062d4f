"""Test harness around the fake Resolve: gray media on disk, a timeline of clips, and running the real
"CoolColor Colorize" script with a driver standing in for the artist and Resolve's event loop."""

from __future__ import annotations

import runpy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fakes.resolve import FakeResolve, FakeTimeline, FakeTimelineItem
from fakes.resolve.ui import FakeUIDispatcher

ROOT = Path(__file__).resolve().parents[3]
PLUGIN_DIR = ROOT / "plugins" / "davinci_resolve"
SCRIPT = PLUGIN_DIR / "CoolColor Colorize.py"


def gray_sequence(folder: Path, first: int, count: int, name: str = "plate", size: int = 64, seed: int = 0) -> str:
    """``count`` gray PNGs numbered from ``first``; returns the printf pattern."""
    from coolcolor.daemon.testing import write_gray_sequence

    return write_gray_sequence(str(folder), count=count, size=size, first=first, name=name, seed=seed)


def sequence_clip(app: FakeResolve, pattern: str, first: int, count: int, name: str = "plate", **props: Any):
    """A media-pool clip for an image sequence as Resolve shows it: File Path ``plate.[1001-1010].png``."""
    width = len(pattern.split("%0")[1].split("d")[0]) and int(pattern.split("%0")[1].split("d")[0])
    shown = pattern.replace(f"%0{width}d", f"[{first:0{width}d}-{first + count - 1:0{width}d}]")
    base = {"File Path": shown, "Type": "Video", "Frames": count, "FPS": "24", "Start": first,
            "End": first + count - 1, "Resolution": "64x64"}
    base.update(props)
    return app.media_item(name, **base)


def place(timeline: FakeTimeline, mpi: Any, *, frames: int, left: int, duration: int, track: int = 1,
          start: int | None = None, **kw: Any) -> FakeTimelineItem:
    """The clip on the timeline using media frames [left, left + duration) of ``frames``."""
    return timeline.add_clip(mpi, track=track, start=start, duration=duration, left_offset=left,
                             right_offset=frames - left - duration, **kw)


def run_script(app: FakeResolve, driver: Callable[[FakeUIDispatcher], None]) -> dict[str, Any]:
    """Run the installed entry script the way Resolve does (its globals injected), with ``driver`` as the
    event loop. Returns the script's globals (``COOLCOLOR_CONTROLLER`` is the dialog's controller)."""
    app.ui.driver = driver
    if str(PLUGIN_DIR) not in sys.path:
        sys.path.insert(0, str(PLUGIN_DIR))
    return runpy.run_path(str(SCRIPT), init_globals=app.script_globals(), run_name="__main__")


def status_text(disp: FakeUIDispatcher) -> str:
    return str(disp.item("Status").Text)


def tick_until(disp: FakeUIDispatcher, done: Callable[[], bool], timeout: float = 240.0,
               what: str = "the jobs to finish") -> None:
    """Fire the dialog's timer until ``done()``; the timeout only bounds a hang (never asserted as speed)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; status: {status_text(disp)!r}; "
                                 f"progress: {disp.item('Progress').Text!r}")
        disp.tick()
        time.sleep(0.05)


def controller() -> Any:
    """The open dialog's controller (``coolcolor_resolve.dialog.ACTIVE``)."""
    from coolcolor_resolve import dialog

    return dialog.ACTIVE
