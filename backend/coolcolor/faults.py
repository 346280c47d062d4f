"""Named fault-injection points, so crash tests place a kill -9 at an *event* instead of after a sleep.

A test or bench arms a point through the environment of the process it starts::

    COOLCOLOR_FAULT="mid_write:3"          # the 3rd time mid_write is hit, SIGKILL this process
    COOLCOLOR_FAULT="frame_written:1:pause,startup:2"

Each entry is ``point:count[:action]``; ``count`` counts hits of that point in *this* process, from 1.
Actions: ``kill`` (default) sends SIGKILL to the process itself — no cleanup of any kind runs, as
with ``kill -9`` from outside; ``pause`` writes one line to stderr and blocks the calling thread until
the file named by ``COOLCOLOR_FAULT_RESUME`` exists (or forever, until killed, when it is unset).

The code calls ``faults.hit("point")`` at each point. With ``COOLCOLOR_FAULT`` unset (production)
``hit`` returns after one comparison: the variable is read once, at import.

A process the test does not start itself gets the same value from the one it does: a Ray driver sends
its ``COOLCOLOR_FAULT`` (``current()``) with each task, and the worker ``arm``s it — the actors were
started by the cluster, before the test armed anything. Each process counts its own hits; a worker that
was killed and restarted counts from 1 again.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

from coolcolor.errors import CoolColorError

ENV = "COOLCOLOR_FAULT"
RESUME_ENV = "COOLCOLOR_FAULT_RESUME"

#: Every point the code calls, and where. A point not listed here is refused when armed (typos).
POINTS: dict[str, str] = {
    "startup": "daemon start-up: journal replayed, connection file written, the model still loading",
    "mid_step": "inside a denoising step, after the scheduler step and before progress is reported",
    "mid_write": "inside an atomic file write, after the temporary file is fsynced and before the rename",
    "journal_commit": "inside a journal write transaction, before COMMIT",
    "frame_written": "after a frame's file is written and frame_done has been called (journaled by the daemon)",
    "train_step": "after an optimizer step of coolcolor train, before the step is logged or checkpointed",
    "window_first_written": "colorize_segment (local, Ray worker, farm task): a window's first ab file is written, "
                            "the window's other frames not yet",
}
ACTIONS = ("kill", "pause")


def parse(value: str) -> dict[str, tuple[int, str]]:
    """``"point:count[:action],..."`` -> {point: (count, action)}; a CoolColorError names a bad entry."""
    armed: dict[str, tuple[int, str]] = {}
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) not in (2, 3):
            raise CoolColorError(f"{ENV}: {entry!r} is not point:count[:action]")
        point, count_text, action = parts[0], parts[1], parts[2] if len(parts) == 3 else "kill"
        if point not in POINTS:
            raise CoolColorError(f"{ENV}: unknown point {point!r} (known: {', '.join(POINTS)})")
        if not count_text.isdigit() or int(count_text) < 1:
            raise CoolColorError(f"{ENV}: count {count_text!r} of {point} must be a whole number >= 1")
        if action not in ACTIONS:
            raise CoolColorError(f"{ENV}: unknown action {action!r} of {point} (known: {', '.join(ACTIONS)})")
        armed[point] = (int(count_text), action)
    return armed


def spec(point: str, count: int, action: str = "kill") -> str:
    """The ``COOLCOLOR_FAULT`` value that arms one point (checked, for tests and benches)."""
    value = f"{point}:{count}:{action}"
    parse(value)
    return value


_RAW = os.environ.get(ENV) or None  # read once, at import
_armed: dict[str, tuple[int, str]] | None = None
_hits: Counter[str] = Counter()
_lock = threading.Lock()


def current() -> str:
    """The ``COOLCOLOR_FAULT`` value of this process's environment now ("" when unset): what a driver
    hands to the workers it sends tasks to."""
    return os.environ.get(ENV, "")


def arm(value: str) -> None:
    """Arm this process with ``value`` (the ``COOLCOLOR_FAULT`` grammar) in place of what its environment
    held at import: a Ray worker, with the value its driver sent. The same value again keeps the counts of
    hits; another value starts them afresh; "" disarms. A malformed value raises CoolColorError."""
    global _RAW, _armed
    raw = value or None
    with _lock:
        if raw == _RAW:
            return
        armed = parse(raw) if raw else None
        _RAW, _armed = raw, armed
        _hits.clear()


def hit(point: str) -> None:
    """Mark that ``point`` was reached; fires the armed action at the armed count. Free when unarmed.

    A malformed ``COOLCOLOR_FAULT`` raises CoolColorError at the first hit (in the daemon: during
    start-up, reported as one line), not at import, where no command could report it."""
    if _RAW is None:
        return
    _fire(point)


def _fire(point: str) -> None:
    global _armed
    with _lock:
        if _armed is None:
            _armed = parse(_RAW or "")
        if point not in _armed:
            return
        _hits[point] += 1
        n = _hits[point]
    count, action = _armed[point]
    if n != count:
        return
    _say(f"coolcolor fault: {action} at {point} #{n} (pid {os.getpid()})")
    if action == "kill":
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
        os._exit(137)  # pragma: no cover - only where SIGKILL does not exist
    resume = os.environ.get(RESUME_ENV)
    while resume is None or not os.path.exists(resume):
        time.sleep(0.02)


def _say(line: str) -> None:
    """One unbuffered line on stderr (the logging handlers may be mid-write in another thread)."""
    try:
        os.write(2, (line + "\n").encode())
    except OSError:  # pragma: no cover
        pass
