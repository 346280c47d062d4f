"""The worker thread: loads the model, takes queued jobs oldest first and runs them through the video
engine's ``run_colorize_job`` — the same code path as ``coolcolor colorize``.

It never touches the socket: progress goes into a coalescing slot and frames/states into the
daemon's outbox, which the socket thread sends. Cancel and shutdown reach it through
``JobEvents.should_cancel``, which the engine polls between diffusion steps.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from coolcolor.daemon.validation import cache_key, check_job
from coolcolor.errors import InputError
from coolcolor.model.resolve import resolve_model
from coolcolor.video.job import ColorizeJob, JobCancelled, JobEvents, ab_frame_path, run_colorize_job
from coolcolor_protocol import BAD_REQUEST, INTERNAL, STORAGE_FULL, UNAVAILABLE, ProtocolError

if TYPE_CHECKING:  # pragma: no cover
    from coolcolor.daemon.server import Daemon

log = logging.getLogger("coolcolor.daemon")


class DaemonJobEvents(JobEvents):
    """The engine's callbacks for one job, turned into journal records and protocol events."""

    def __init__(self, daemon: Daemon, job_id: str, window: int):
        self.daemon = daemon
        self.job_id = job_id
        self.window = max(1, window)
        self._t0: float | None = None
        self._fraction0 = 0.0
        self.steps_after_cancel = 0
        self._last_step: tuple[int, int] | None = None
        self.frames_failed = 0

    def progress(self, frames_done: int, frames_total: int, step: int, steps_total: int) -> None:
        now = time.monotonic()
        if self.daemon.cancel_requested(self.job_id) and (frames_done, step) != self._last_step and step > 0:
            self.steps_after_cancel += 1
        self._last_step = (frames_done, step)
        total = max(1, frames_total)
        settled = frames_done + self.frames_failed  # failed frames are finished work too, for the fraction
        in_flight = min(self.window, max(0, frames_total - settled))
        fraction = min(1.0, (settled + in_flight * step / max(1, steps_total)) / total)
        if self._t0 is None:
            self._t0, self._fraction0 = now, fraction
        eta = None
        if fraction > self._fraction0 and now > self._t0:
            rate = (fraction - self._fraction0) / (now - self._t0)
            eta = round((1.0 - fraction) / rate, 1)
        self.daemon.post_progress(self.job_id, {
            "job_id": self.job_id, "state": "running", "frames_done": frames_done,
            "frames_failed": self.frames_failed, "frames_total": frames_total,
            "step": step, "steps_total": steps_total, "fraction": round(fraction, 4), "eta_s": eta,
            "queue_position": 0,
        })

    def frame_done(self, frame: int, path: str) -> None:
        self.daemon.announce_frame(self.job_id, frame, path)

    def frame_failed(self, frame: int, message: str) -> None:
        self.frames_failed += 1
        self.daemon.journal.add_failed_frame(self.job_id, frame, message)
        self.daemon.post_event(self.job_id, "error", {"job_id": self.job_id, "frame": frame, "code": INTERNAL,
                                                      "message": f"frame {frame}: {message}"})

    def should_cancel(self) -> bool:
        return self.daemon.cancel_requested(self.job_id) or self.daemon.stopping


def _copy_atomic(src: str, dst: str) -> None:
    """Copy through a temporary file in the destination folder, fsync, rename (as the engine writes)."""
    from coolcolor.video.exr import atomic_write

    def copy(tmp: str) -> None:
        shutil.copyfile(src, tmp)

    atomic_write(dst, copy)


class Worker(threading.Thread):
    def __init__(self, daemon: Daemon, model: str | None, device: str | None, dtype: str | None):
        super().__init__(name="coolcolor-worker", daemon=True)
        self.d = daemon
        self.model, self.device, self.dtype = model, device, dtype
        self.pipeline: Any = None
        self.loaded = threading.Event()  # set once loading has succeeded or failed

    def run(self) -> None:
        try:
            resolved = resolve_model(self.model, self.device, self.dtype)
            self.pipeline = resolved.load_pipeline()
            self.loaded.set()
            self.d.model_ready(dict(resolved.describe(), state="ready", resolution=self.pipeline.resolution))
        except Exception as exc:  # noqa: BLE001 - the daemon keeps answering; submits get 503 naming the cause
            log.error("model failed to load: %s", exc)
            self.d.model_failed(f"{type(exc).__name__}: {exc}")
            self.loaded.set()
            return
        while not self.d.stopping:
            job_id = self.d.next_queued(timeout=0.5)
            if job_id is not None:
                self.run_job(job_id)

    # ------------------------------------------------------------------------------------------------
    def run_job(self, job_id: str) -> None:
        d = self.d
        rec = d.journal.get(job_id)
        if rec is None or not d.job_started(job_id):
            return
        events = DaemonJobEvents(d, job_id, int(rec.spec.get("window") or 8))
        try:
            output_dir = rec.spec["output_dir"]
            if rec.cache_from:
                self._copy_from_cache(job_id, rec.cache_from, output_dir)
            job = ColorizeJob.from_dict(rec.spec)
            d.journal.clear_failed_frames(job_id)
            result = run_colorize_job(job, self.pipeline, events)
            for frame in list(result.frames_written) + list(result.frames_skipped):
                d.announce_frame(job_id, frame, ab_frame_path(output_dir, frame))
            if result.frames_failed:
                failed = sorted(result.frames_failed)
                d.job_finished(job_id, "failed", code=INTERNAL,
                               message=f"{len(failed)} frames failed (first: frame {failed[0]}: "
                               f"{result.frames_failed[failed[0]]}); the other frames are kept — submit "
                               "again with the same key to retry the missing ones")
            else:
                if rec.cache_key is None:
                    self._set_cache_key(job_id, rec.spec)
                d.job_finished(job_id, "done", cached=bool(rec.cache_from))
        except JobCancelled:
            if d.cancel_requested(job_id):
                d.job_finished(job_id, "cancelled", steps_after_cancel=events.steps_after_cancel)
            else:  # shutdown: the job stays in the queue and resumes at the next start
                d.job_finished(job_id, "queued", message="the daemon is shutting down; the job resumes when "
                               "it restarts")
        except ProtocolError as exc:
            d.job_finished(job_id, "failed", code=exc.code, message=exc.message)
        except InputError as exc:
            d.job_finished(job_id, "failed", code=BAD_REQUEST, message=str(exc))
        except OSError as exc:
            code = STORAGE_FULL if exc.errno in (errno.ENOSPC, errno.EDQUOT) else INTERNAL
            d.job_finished(job_id, "failed", code=code, message=f"{type(exc).__name__}: {exc}")
        except MemoryError as exc:
            d.job_finished(job_id, "failed", code=UNAVAILABLE, message=f"out of memory: {exc}")
        except Exception as exc:  # noqa: BLE001 - one job's crash fails that job, not the daemon
            log.error("job %s crashed:\n%s", job_id, traceback.format_exc())
            oom = "out of memory" in str(exc).lower()
            d.job_finished(job_id, "failed", code=UNAVAILABLE if oom else INTERNAL,
                           message=f"{type(exc).__name__}: {exc}")

    def _set_cache_key(self, job_id: str, spec: dict[str, Any]) -> None:
        try:
            d = self.d
            d.journal.set_cache_key(job_id, cache_key(check_job(spec, d.config.roots), d.model_info["hash"]))
        except (ProtocolError, KeyError):
            pass

    def _copy_from_cache(self, job_id: str, source_job: str, output_dir: str) -> None:
        """Copy a finished identical job's frames; the engine then finds them done (same job key) and
        only writes this job's manifest — one code path whether frames were computed or copied."""
        d = self.d
        src = d.journal.get(source_job)
        if src is None or src.state != "done":
            return
        os.makedirs(output_dir, exist_ok=True)
        for frame, path in sorted(d.journal.frames(source_job).items()):
            if d.cancel_requested(job_id) or d.stopping:
                raise JobCancelled("cancelled while copying cached frames")
            dst = ab_frame_path(output_dir, frame)
            if os.path.isfile(path) and not os.path.isfile(dst):
                _copy_atomic(path, dst)
