"""Helpers for the daemon's tests and benchmarks: a real daemon in a real child process (so kill -9
is real), and small gray image sequences to feed it. Not used by the daemon itself."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import coolcolor
import coolcolor_protocol

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self


def write_gray_sequence(folder: str, count: int = 5, size: int = 64, first: int = 1, name: str = "gray",
                        seed: int = 0) -> str:
    """``count`` 8-bit gray PNGs (a moving disc over a gradient); returns the ``%04d`` pattern."""
    import cv2
    import numpy as np

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = rng.uniform(size * 0.3, size * 0.7, 2)
    for i in range(count):
        d = np.hypot(x - cx - 2 * i, y - cy) / (size / 5)
        img = np.where(d < 1, 0.85 - 0.3 * d**2, 0.2 + 0.5 * y / size)
        cv2.imwrite(os.path.join(folder, f"{name}.{first + i:04d}.png"), (img * 255).astype(np.uint8))
    return os.path.join(folder, f"{name}.%04d.png")


#: The kill points a crash test or bench spreads its kill -9s over (see ``coolcolor.faults``).
KILL_POINTS = ("startup", "mid_step", "mid_write", "journal_commit", "frame_written")


def kill_at_event(rng: random.Random, point: str, steps: int, budget: int) -> str:
    """A ``COOLCOLOR_FAULT`` value that surely fires in a daemon resuming a job (``window`` 1) with frames
    left, after finishing at most ``budget`` more frames — so a planned series of kills never runs out
    of work, on any machine. What each point's count means, per daemon process:
    startup: once per start; mid_step: ``steps`` hits per frame; mid_write: the "running" manifest,
    then one ab file per frame; journal_commit: the start-up replay, the job start, then one per frame;
    frame_written: one per frame (journaled just before)."""
    from coolcolor import faults

    counts = {"startup": 1, "mid_step": steps * (budget + 1), "mid_write": budget + 2,
              "journal_commit": budget + 2, "frame_written": budget}
    if counts[point] < 1:
        raise ValueError(f"{point} finishes a frame before it fires; it needs a budget >= 1")
    return faults.spec(point, rng.randint(1, counts[point]))


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child Python that imports this checkout's coolcolor and protocol."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOLCOLOR_FAULT")}  # armed only on purpose
    roots = [os.path.dirname(os.path.dirname(coolcolor.__file__)),
             os.path.dirname(os.path.dirname(coolcolor_protocol.__file__))]
    env["PYTHONPATH"] = os.pathsep.join(roots + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra or {})
    return env


class DaemonProcess:
    """``python -m coolcolor.daemon serve --tiny-model`` in a child process, with its own state."""

    def __init__(self, workdir: str, *, args: tuple[str, ...] = (), tiny: bool = True):
        self.workdir = workdir
        self.state_dir = os.path.join(workdir, "state")
        self.connection_file = os.path.join(workdir, "runtime", "daemon.json")
        self.log_path = os.path.join(workdir, "daemon.log")
        self.args = tuple(args)
        self.tiny = tiny
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "coolcolor.daemon", "serve", "--state-dir", self.state_dir,
               "--connection-file", self.connection_file, *self.args]
        return cmd + (["--tiny-model"] if self.tiny else [])

    def launch(self, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start the child and return at once (``start`` also waits until it answers)."""
        os.makedirs(self.workdir, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed with it
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=child_env(env))
        log.close()
        self.starts += 1
        return self.proc

    def run_to_fault(self, fault: str, timeout: float = 240.0) -> int:
        """Start with ``COOLCOLOR_FAULT=fault`` (see ``coolcolor.faults``) and wait for the child to exit;
        returns its exit code (``-SIGKILL`` when a kill point fired). The job in the journal resumes by
        itself, so the fault fires at an event of the work, never after a guessed delay."""
        proc = self.launch({"COOLCOLOR_FAULT": fault})
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"fault {fault} did not fire within {timeout} s:\n{self.log()}") from None

    def start(self, timeout: float = 240.0, wait_model: bool = True, env: dict[str, str] | None = None) -> Self:
        proc = self.launch(env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {proc.returncode}:\n{self.log()}")
            info = self._info()
            if info and info.get("pid") == proc.pid:
                if not wait_model:
                    return self
                try:
                    with self.client(timeout=5) as c:
                        state = c.hello()["model"]["state"]
                except coolcolor_protocol.DaemonUnavailable:
                    continue
                if state == "ready":
                    return self
                if state == "failed":
                    raise RuntimeError(f"model failed to load:\n{self.log()}")
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"daemon did not come up in {timeout} s:\n{self.log()}")

    def _info(self) -> dict[str, Any] | None:
        try:
            return coolcolor_protocol.read_connection_file(self.connection_file)
        except coolcolor_protocol.ProtocolError:
            return None

    def client(self, **kwargs: Any) -> coolcolor_protocol.Client:
        return coolcolor_protocol.Client(self.connection_file, **kwargs)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the daemon."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (graceful); SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.proc.returncode)

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(20)
