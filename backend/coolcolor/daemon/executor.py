"""Executors (docs/architecture.md#protocol-and-daemon): what runs a job. ``run(job, events) -> JobResult``, and
nothing else.

An executor never sees the daemon: it gets a ``ColorizeJob`` and the engine's ``JobEvents``
callbacks, and returns the engine's ``JobResult`` (or raises ``JobCancelled``, ``InputError``, …).
The job board (``board.py``) decides what runs when, journals it and tells clients.

* ``LocalExecutor``: the model in this process, one job at a time (``capacity`` 1) through
  ``run_colorize_job`` — the same code path as ``coolcolor colorize``.
* ``coolcolor.daemon.ray_executor.RayJobExecutor``: each job's windows on a Ray actor pool, one job at a
  time. Another executor implements the same methods and may have a ``capacity`` above 1; the board then
  runs that many jobs at once.

An executor runs *jobs*; what runs a job's *segments* is a ``coolcolor.video.run.SegmentRunner``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from coolcolor.model.resolve import ResolvedModel
    from coolcolor.model.pipeline import CoolColorPipeline
    from coolcolor.video.job import ColorizeJob, JobEvents, JobResult


class Executor(Protocol):
    """Runs colorize jobs. ``load`` once, then ``run`` from up to ``capacity`` threads at a time."""

    capacity: int

    def load(self) -> dict[str, Any]:
        """Get ready (load the model); return what is served: name, path, hash, device, dtype,
        resolution. Raises with a message naming the cause if it cannot."""

    def run(self, job: ColorizeJob, events: JobEvents) -> JobResult:
        """Run one job to its end, calling ``events`` as the engine does; raise ``JobCancelled`` when
        ``events.should_cancel()`` turned true (finished frames are kept)."""

    def close(self) -> None:
        """Release what ``load`` took."""

    def unknown_words(self, prompt: str) -> list[str]:
        """The prompt's words the loaded model ignores (unknown, or past its token limit), in prompt order,
        so a client can show them beside its prompt field before any frame exists. [] if it cannot tell.
        The board asks once per job (``coolcolor.model.prompt_words.unknown_words_of``) and journals the
        answer with the job's checked facts."""


class LocalExecutor:
    """The model on this machine, one job at a time."""

    capacity = 1

    def __init__(self, model: str | None = None, device: str | None = None, dtype: str | None = None):
        self.spec, self.device, self.dtype = model, device, dtype
        self.resolved: ResolvedModel | None = None
        self.pipeline: CoolColorPipeline | None = None
        self._one_at_a_time = threading.Lock()  # one pipeline, so one job at a time

    def load(self) -> dict[str, Any]:
        from coolcolor.model.prompt_words import known_word_count
        from coolcolor.model.resolve import resolve_model

        self.resolved = resolve_model(self.spec, self.device, self.dtype)
        self.pipeline = self.resolved.load_pipeline()
        return dict(self.resolved.describe(), resolution=self.pipeline.resolution,
                    known_words=known_word_count(self.pipeline.tokenizer))

    def run(self, job: ColorizeJob, events: JobEvents) -> JobResult:
        from coolcolor.video.run import run_colorize_job

        if self.pipeline is None:
            raise RuntimeError("LocalExecutor.run before load()")
        with self._one_at_a_time:
            return run_colorize_job(job, self.pipeline, events)

    def unknown_words(self, prompt: str) -> list[str]:
        """For the board's submit reply, before the job runs: found as the job's driver finds them
        (``coolcolor.video.run.unknown_words``)."""
        from coolcolor.model.prompt_words import prompt_reader
        from coolcolor.video.run import unknown_words

        return unknown_words(prompt_reader(self.pipeline), prompt) if self.pipeline is not None else []

    def close(self) -> None:
        self.pipeline = None
