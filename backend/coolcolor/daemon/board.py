"""The job board (docs/architecture.md#protocol-and-daemon): the daemon's job state machine, between the transport
and an executor.

It owns the journal (written before any reply), the queue, state changes, cancel, the result cache
and event posting. It knows nothing of sockets: what clients should hear goes to an ``EventSink``
(the transport), and the work goes to an ``Executor`` (``executor.py``) through ``run(job, events)``.

A job is checked once, on arrival (``validation.check_job`` → ``CheckedJob``: the source's identity, the
resolved range, the input files, then the model's hash and the prompt's unknown words): the journal keeps it,
and the cache key, the cache copy and status are made from it; only the run opens the source again, to read it.

Dispatch: after the executor has loaded its model, the board runs ``executor.capacity`` dispatcher
threads; each claims the oldest queued job that is not running, prepares it (copies the frames of
an identical finished job — the cache), calls ``executor.run`` and records the outcome. A local
executor has capacity 1 (one job at a time, as the single worker thread always did); an executor
that can run several jobs at once gets as many dispatchers.

This module imports no torch (nor the video engine at import time), so the daemon answers ``hello``
and ``status`` from the moment its connection file exists, while the model is still loading.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, Protocol

from coolcolor.daemon.journal import JobRecord, Journal
from coolcolor.daemon.validation import CheckedJob, check_job
from coolcolor.errors import InputError
from coolcolor_protocol import (
    BAD_REQUEST,
    CONFLICT,
    INTERNAL,
    NOT_FOUND,
    STORAGE_FULL,
    UNAVAILABLE,
    ProtocolError,
)
from coolcolor_protocol.abfiles import job_output
from coolcolor_protocol.frames import frame_runs
from coolcolor_protocol.identity import request_hash

if TYPE_CHECKING:  # pragma: no cover
    from coolcolor.daemon.executor import Executor

log = logging.getLogger("coolcolor.daemon")


class EventSink(Protocol):
    """Where the board posts what subscribers of a job should hear (the transport implements it).
    Every method only hands the event over; none may block."""

    def job_event(self, job_id: str, msg_type: str, content: dict[str, Any]) -> None:
        """A ``job_state`` or ``error`` event of a job."""

    def frame_done(self, job_id: str, frame: int, path: str) -> None:
        """A frame journaled as complete on disk (announced once per job)."""

    def progress(self, job_id: str, content: dict[str, Any]) -> None:
        """The latest progress of a job (the transport may coalesce)."""


class NoListeners:
    """The sink of a board nobody listens to (before a transport is attached, or in tests)."""

    def job_event(self, job_id: str, msg_type: str, content: dict[str, Any]) -> None:
        pass

    def frame_done(self, job_id: str, frame: int, path: str) -> None:
        pass

    def progress(self, job_id: str, content: dict[str, Any]) -> None:
        pass


class BoardJobEvents:
    """The engine's ``JobEvents`` callbacks for one job, turned into journal records and board events.

    It implements every method of ``coolcolor.video.job.JobEvents`` (a test holds it to that) without
    subclassing it, so that this module needs no torch at import time.
    """

    def __init__(self, board: JobBoard, job_id: str, window: int):
        self.board = board
        self.job_id = job_id
        self.window = max(1, window)
        self._t0: float | None = None
        self._fraction0 = 0.0
        self.steps_after_cancel = 0
        self._last_step: tuple[int, int] | None = None
        self.frames_failed = 0

    def phase(self, name: str) -> None:
        pass

    def progress(self, frames_done: int, frames_total: int, step: int, steps_total: int) -> None:
        now = time.monotonic()
        if self.board.cancel_requested(self.job_id) and (frames_done, step) != self._last_step and step > 0:
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
        self.board.post_progress(self.job_id, {
            "job_id": self.job_id, "state": "running", "frames_done": frames_done,
            "frames_failed": self.frames_failed, "frames_total": frames_total,
            "step": step, "steps_total": steps_total, "fraction": round(fraction, 4), "eta_s": eta,
            "queue_position": 0,
        })

    def frame_done(self, frame: int, path: str) -> None:
        self.board.announce_frame(self.job_id, frame, path)

    def frame_failed(self, frame: int, message: str) -> None:
        self.frames_failed += 1
        self.board.frame_failed(self.job_id, frame, message)

    def should_cancel(self) -> bool:
        return self.board.cancel_requested(self.job_id) or self.board.stopping

    def waiting(self, message: str) -> None:
        log.info("job %s: %s", self.job_id, message)


def _copy_atomic(src: str, dst: str) -> None:
    """Copy through a temporary file in the destination folder, fsync, rename (as the engine writes)."""
    from coolcolor.video.exr import atomic_write

    def copy(tmp: str) -> None:
        shutil.copyfile(src, tmp)

    atomic_write(dst, copy)


class JobBoard:
    """Journal, queue, state changes, cancel, cache and events of the daemon's jobs."""

    def __init__(self, journal: Journal, sink: EventSink | None = None, *, roots: list[str] | None = None,
                 max_queued_jobs: int = 1000):
        self.journal = journal
        self.sink: EventSink = sink or NoListeners()
        self.roots = list(roots or [])
        self.max_queued_jobs = max_queued_jobs
        self.model_info: dict[str, Any] = {"state": "loading"}
        self.stopping = False
        self.loaded = threading.Event()  # set once the executor's model loaded, or failed to
        self._cv = threading.Condition()  # guards state changes, the cancel set and the running set
        self._cancel: set[str] = set()
        self._running: list[str] = []  # in the order they started
        self._last_progress: dict[str, dict[str, Any]] = {}  # latest progress per running job, for status
        self._progress_lock = threading.Lock()
        self._executor: Executor | None = None
        self._model_facts_lock = threading.Lock()  # a job's model facts are added once
        self._threads: list[threading.Thread] = []

    # ============================================================================ life cycle
    def recover(self) -> list[str]:
        """After a crash: jobs left running go back to the queue (they resume from the frames on disk)."""
        return self.journal.requeue_interrupted()

    def start(self, executor: Executor) -> None:
        """Load the executor's model on a thread of its own, then dispatch queued jobs to it."""
        self._executor = executor
        loader = threading.Thread(target=self._load_then_dispatch, name="coolcolor-worker", daemon=True)
        with self._cv:
            self._threads.append(loader)
        loader.start()

    def request_stop(self) -> None:
        """Running jobs halt at their next diffusion step and stay queued; nothing new starts."""
        with self._cv:
            self.stopping = True
            self._cv.notify_all()

    def busy(self) -> bool:
        """True while a loaded executor may still be finishing a job (the transport waits for it)."""
        return self.loaded.is_set() and any(t.is_alive() for t in list(self._threads))

    def join(self, timeout: float) -> None:
        """Wait for the dispatchers to stop (not for a model still loading: it holds no work)."""
        if not self.loaded.is_set():
            return
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._executor is not None:
            self._executor.close()

    def _load_then_dispatch(self) -> None:
        assert self._executor is not None
        try:
            info = self._executor.load()
        except Exception as exc:  # noqa: BLE001 - the daemon keeps answering; submits get 503 naming the cause
            log.error("model failed to load: %s", exc)
            self.model_info = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"}
            self.loaded.set()
            return
        self.model_info = dict(info, state="ready")
        log.info("serving model %s (path %s, hash %s) on %s in %s", info.get("name"), info.get("path"),
                 info.get("hash"), info.get("device"), info.get("dtype"))
        self.loaded.set()
        with self._cv:
            for i in range(1, max(1, int(self._executor.capacity))):
                extra = threading.Thread(target=self._dispatch, name=f"coolcolor-worker-{i}", daemon=True)
                self._threads.append(extra)
                extra.start()
        self._dispatch()

    def _dispatch(self) -> None:
        while not self.stopping:
            job_id = self._claim_next(timeout=0.5)
            if job_id is not None:
                self.run_job(job_id)

    # ============================================================================ queries
    def job(self, job_id: str) -> JobRecord:
        rec = self.journal.get(job_id)
        if rec is None:
            raise ProtocolError(NOT_FOUND, f"no job {job_id}")
        return rec

    def frames(self, job_id: str) -> dict[int, str]:
        return self.journal.frames(job_id)

    def list_jobs(self, states: list[str] | None, limit: int) -> list[JobRecord]:
        return self.journal.list_jobs(states, limit)

    def queued_count(self) -> int:
        return len(self.journal.queued())

    def running_jobs(self) -> list[str]:
        with self._cv:
            return list(self._running)

    def cancel_requested(self, job_id: str) -> bool:
        with self._cv:
            return job_id in self._cancel

    def summary(self, rec: JobRecord, *, detail: bool = False) -> dict[str, Any]:
        """A job as ``status`` and ``list_jobs`` describe it (protocol/SPEC.md)."""
        out: dict[str, Any] = {
            "job_id": rec.job_id, "key": rec.idem_key, "state": rec.state, "source": rec.spec.get("source"),
            "output_dir": rec.spec.get("output_dir"), "first": rec.spec.get("first"), "last": rec.spec.get("last"),
            "frames_total": rec.frames_total, "frames_done": self.journal.frame_count(rec.job_id),
            "cached": rec.cached, "created": rec.created, "started": rec.started, "finished": rec.finished,
            "error": {"code": rec.error_code, "message": rec.error_message} if rec.error_code else None,
            "unknown_words": self._unknown_words(rec),
        }
        if rec.state == "queued":
            queued = self.journal.queued()
            out["queue_position"] = queued.index(rec.job_id) + 1 if rec.job_id in queued else None
        elif rec.state == "running":
            out["queue_position"] = 0
            with self._progress_lock:
                last = self._last_progress.get(rec.job_id)
            if last:
                out["progress"] = {k: last.get(k) for k in ("step", "steps_total", "fraction", "eta_s")}
        if detail:
            out["job"] = rec.spec
            out["frames"] = frame_runs(self.journal.frames(rec.job_id))
            failed = self.journal.failed_frames(rec.job_id)
            out["frames_failed"] = [{"frame": f, "message": m} for f, m in failed.items()]
        return out

    def _unknown_words(self, rec: JobRecord) -> list[str]:
        """What the served model will not read of the job's prompt (issue 16): in submit replies and status,
        so the plugins can show it beside the prompt. [] until the model has loaded."""
        checked = self._with_model_facts(rec)
        return list(checked.unknown_words) if checked is not None and checked.model_hash is not None else []

    def _model_facts(self, checked: CheckedJob) -> CheckedJob:
        """The checked job with the loaded model's facts: its hash, and the prompt's words it ignores."""
        from coolcolor.model.prompt_words import unknown_words_of

        prompt = checked.spec.get("prompt") or ""
        return checked.with_model(self.model_info["hash"], unknown_words_of(self._executor, prompt) if prompt else [])

    def _with_model_facts(self, rec: JobRecord) -> CheckedJob | None:
        """A job submitted while the model loaded gets the model's facts (and so its cache key) the first time
        they are needed after it has loaded — once: they are journaled. None for a job journaled by a daemon
        that did not keep its checked facts."""
        if rec.checked is None or rec.checked.model_hash is not None or self.model_info.get("state") != "ready":
            return rec.checked
        with self._model_facts_lock:
            checked = self.job(rec.job_id).checked
            assert checked is not None
            if checked.model_hash is None:
                checked = self._model_facts(checked)
                self.journal.set_checked(rec.job_id, checked, checked.cache_key())
            return checked

    # ============================================================================ requests
    def submit(self, key: str, job: dict[str, Any], on_journaled: Any = None) -> dict[str, Any]:
        """Validate against the file system, journal, and queue a job (or answer it from the cache).

        ``on_journaled(job_id)`` runs after the journal has the job and before it can start, so a
        subscriber registered there hears every event. Returns the job's summary with ``duplicate``
        and ``requeued``; raises ``ProtocolError`` (400, 409, 413, 503) naming the problem.
        """
        request = request_hash(job)
        existing = self.journal.by_key(key)
        if existing is not None:
            if existing.request_hash != request:
                raise ProtocolError(CONFLICT, f"idempotency key {key!r} was already used for a different job "
                                    f"({existing.job_id}); use a new key for a new job")
            if on_journaled is not None:
                on_journaled(existing.job_id)
            requeued = False
            with self._cv:
                rec = self.job(existing.job_id)
                if rec.state in ("failed", "cancelled"):
                    self.journal.set_state(rec.job_id, "queued")
                    requeued = True
                    self._cv.notify_all()
            rec = self.job(existing.job_id)
            return dict(self.summary(rec), output=job_output(rec.spec), duplicate=True, requeued=requeued)
        if self.model_info.get("state") == "failed":
            raise ProtocolError(UNAVAILABLE, f"the model failed to load: {self.model_info.get('error')}")
        if self.queued_count() >= self.max_queued_jobs:
            raise ProtocolError(UNAVAILABLE, f"the queue is full ({self.max_queued_jobs} jobs); retry later")
        checked = check_job(job, self.roots)
        ckey = None
        if self.model_info.get("state") == "ready":
            checked = self._model_facts(checked)
            ckey = checked.cache_key()
        state, cache_from, frames = "queued", None, None
        if ckey is not None:
            for done in self.journal.done_by_cache_key(ckey):
                done_frames = self.journal.frames(done.job_id)
                if len(done_frames) != len(checked.frames) or not all(os.path.isfile(p) for p in done_frames.values()):
                    continue
                if os.path.realpath(done.spec["output_dir"]) == os.path.realpath(checked.spec["output_dir"]):
                    state, frames = "done", done_frames
                else:
                    cache_from = done.job_id
                break
        rec = self.journal.add_job(key, request, checked, state=state, cache_key=ckey, cache_from=cache_from,
                                   cached=state == "done", frames=frames)
        if on_journaled is not None:
            on_journaled(rec.job_id)
        if state == "queued":
            with self._cv:
                self._cv.notify_all()
        return dict(self.summary(rec), output=job_output(rec.spec), duplicate=False, requeued=False)

    def cancel(self, job_id: str) -> str:
        """``"cancelled"`` (it was queued, or already cancelled) or ``"cancelling"`` (it is running and
        stops at its next diffusion step); 404 for an unknown job, 409 for a finished one."""
        with self._cv:
            rec = self.job(job_id)
            if rec.state in ("done", "failed"):
                raise ProtocolError(CONFLICT, f"job {rec.job_id} is already {rec.state}; nothing to cancel")
            if rec.state == "cancelled":
                return "cancelled"
            if rec.state == "running":
                self._cancel.add(job_id)
                return "cancelling"
            self.journal.set_state(job_id, "cancelled")
        self.sink.job_event(job_id, "job_state", {"job_id": job_id, "state": "cancelled",
                                                  "frames_done": self.journal.frame_count(job_id)})
        return "cancelled"

    # ============================================================================ running
    def _claim_next(self, timeout: float) -> str | None:
        """Mark the oldest queued job running and return it (None after ``timeout`` or when stopping).
        Claimed under the lock that cancel takes, so a job is never both cancelled and run."""
        with self._cv:
            job_id = self._next_queued()
            if job_id is None and not self.stopping:
                self._cv.wait(timeout)
                job_id = self._next_queued()
            if job_id is None or self.stopping:
                return None
            self._running.append(job_id)
            self._cancel.discard(job_id)  # a late cancel of an earlier run of this job
            self.journal.set_state(job_id, "running")
        self.sink.job_event(job_id, "job_state", {"job_id": job_id, "state": "running"})
        for position, queued_id in enumerate(self.journal.queued(), start=1):
            self.post_progress(queued_id, {"job_id": queued_id, "state": "queued", "queue_position": position})
        return job_id

    def _next_queued(self) -> str | None:
        return next((j for j in self.journal.queued() if j not in self._running), None)

    def run_job(self, job_id: str) -> None:
        """Prepare a claimed job, run it on the executor, and record how it ended."""
        from coolcolor.video.job import JobCancelled, ab_frame_path

        assert self._executor is not None
        rec = self.job(job_id)
        events = BoardJobEvents(self, job_id, int(rec.spec.get("window") or 8))
        try:
            output_dir = rec.spec["output_dir"]
            checked = self._with_model_facts(rec)
            if checked is None:  # journaled by an older daemon: checked here, once
                checked = self._model_facts(check_job(rec.spec, self.roots))
                self.journal.set_checked(job_id, checked, checked.cache_key())
            if rec.cache_from:
                self._copy_from_cache(job_id, rec.cache_from, checked)
            job = checked.job()
            self.journal.clear_failed_frames(job_id)
            result = self._executor.run(job, events)
            for frame in list(result.frames_written) + list(result.frames_skipped):
                self.announce_frame(job_id, frame, ab_frame_path(output_dir, frame))
            if result.frames_failed:
                failed = sorted(result.frames_failed)
                self.finish(job_id, "failed", code=INTERNAL,
                            message=f"{len(failed)} frames failed (first: frame {failed[0]}: "
                            f"{result.frames_failed[failed[0]]}); the other frames are kept — submit "
                            "again with the same key to retry the missing ones")
            else:
                self.finish(job_id, "done", cached=bool(rec.cache_from))
        except JobCancelled:
            if self.cancel_requested(job_id):
                self.finish(job_id, "cancelled", steps_after_cancel=events.steps_after_cancel)
            else:  # shutdown: the job stays in the queue and resumes at the next start
                self.finish(job_id, "queued", message="the daemon is shutting down; the job resumes when it "
                            "restarts")
        except ProtocolError as exc:
            self.finish(job_id, "failed", code=exc.code, message=exc.message)
        except InputError as exc:
            self.finish(job_id, "failed", code=BAD_REQUEST, message=str(exc))
        except OSError as exc:
            code = STORAGE_FULL if exc.errno in (errno.ENOSPC, errno.EDQUOT) else INTERNAL
            self.finish(job_id, "failed", code=code, message=f"{type(exc).__name__}: {exc}")
        except MemoryError as exc:
            self.finish(job_id, "failed", code=UNAVAILABLE, message=f"out of memory: {exc}")
        except Exception as exc:  # noqa: BLE001 - one job's crash fails that job, not the daemon
            log.error("job %s crashed:\n%s", job_id, traceback.format_exc())
            oom = "out of memory" in str(exc).lower()
            self.finish(job_id, "failed", code=UNAVAILABLE if oom else INTERNAL,
                        message=f"{type(exc).__name__}: {exc}")

    def finish(self, job_id: str, state: str, *, code: int | None = None, message: str | None = None,
               cached: bool = False, steps_after_cancel: int | None = None) -> None:
        """Record a job's end (or its return to the queue) and tell its subscribers."""
        with self._cv:
            self.journal.set_state(job_id, state, error_code=code, error_message=message, cached=cached)
            self._cancel.discard(job_id)
            if job_id in self._running:
                self._running.remove(job_id)
            self._cv.notify_all()
        with self._progress_lock:
            self._last_progress.pop(job_id, None)
        content: dict[str, Any] = {"job_id": job_id, "state": state, "frames_done": self.journal.frame_count(job_id)}
        if code is not None:
            content["error"] = {"code": code, "message": message}
        elif message:
            content["message"] = message
        if cached:
            content["cached"] = True
        if steps_after_cancel is not None:
            content["steps_after_cancel"] = steps_after_cancel
        self.sink.job_event(job_id, "job_state", content)
        log.info("job %s %s%s", job_id, state, f": {message}" if message else "")

    # ============================================================================ events
    def announce_frame(self, job_id: str, frame: int, path: str) -> None:
        """Journal, then announce, a frame that is complete on disk — at most once per job."""
        if self.journal.add_frame(job_id, frame, path):
            self.sink.frame_done(job_id, frame, path)

    def frame_failed(self, job_id: str, frame: int, message: str) -> None:
        self.journal.add_failed_frame(job_id, frame, message)
        self.sink.job_event(job_id, "error", {"job_id": job_id, "frame": frame, "code": INTERNAL,
                                              "message": f"frame {frame}: {message}"})

    def post_progress(self, job_id: str, content: dict[str, Any]) -> None:
        if content.get("state") == "running":
            with self._progress_lock:
                self._last_progress[job_id] = content
        self.sink.progress(job_id, content)

    # ============================================================================ cache
    def _copy_from_cache(self, job_id: str, source_job: str, checked: CheckedJob) -> None:
        """Copy a finished identical job's frames; the engine then finds them done (same job key) and
        only writes this job's manifest — one code path whether frames were computed or copied."""
        from coolcolor.video.job import JobCancelled, ab_frame_path
        from coolcolor.video.ownership import FolderOwnership, describe_job

        src = self.journal.get(source_job)
        if src is None or src.state != "done":
            return
        output_dir = checked.spec["output_dir"]
        # the key the engine's run will hold the folder with, from the checked facts
        ownership = FolderOwnership(output_dir, checked.job_key(), describe_job(checked.job()))

        def check() -> None:
            if self.cancel_requested(job_id) or self.stopping:
                raise JobCancelled("cancelled while copying cached frames")

        ownership.acquire(lambda message: log.info("job %s: %s", job_id, message), check)  # as the engine's writers
        try:
            for frame, path in sorted(self.journal.frames(source_job).items()):
                check()
                dst = ab_frame_path(output_dir, frame)
                if os.path.isfile(path) and not os.path.isfile(dst):
                    _copy_atomic(path, dst)
        finally:
            ownership.release()
