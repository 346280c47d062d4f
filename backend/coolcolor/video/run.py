"""The video engine's driver: one run of a ``ColorizeJob`` (the contract is ``coolcolor.video.job``).

``run_job`` checks the job (``open_job``, unless it was opened already), takes the output folder
(``coolcolor.video.ownership``), plans once (``coolcolor.video.plan.plan_job``: shots, keyframes, the
``Segment``s left to do), hands the segments to a ``SegmentRunner`` and writes the manifest
(``coolcolor.video.manifest``). The runners are the three ways the windows of a plan are colorized,
all through ``coolcolor.video.segment.colorize_segment``:

- ``LocalSegmentRunner``: in this process, on one pipeline (``coolcolor colorize``, the daemon);
- ``coolcolor.scaleout.ray_cluster.RaySegmentRunner``: on a pool of Ray actors;
- the render farm (``coolcolor.scaleout.farm``): one OpenJD task per window, the driver's plan exported
  once and the manifest written by its last step — not a ``SegmentRunner``, since the farm, not this
  process, runs the windows.

``JobRun`` is the run's state (done, written, failed, timings) and the ``SegmentEvents`` its runner
reports to; the planner and the manifest see only the narrow parts they read (``PlanningRun``,
``ManifestJob`` and ``RunProgress``).

Resume: a frame whose ab file exists and carries this job's ``job_key`` is skipped. A frame that
cannot be read mid-clip is reported (``JobEvents.frame_failed``, ``JobResult.frames_failed``, the
manifest) and the job goes on with the others; nothing already written is touched.
"""

from __future__ import annotations

import contextlib
import glob
import os
import time
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from coolcolor import faults
from coolcolor.errors import InputError
from coolcolor.model.prompt_words import PromptReader, prompt_reader
from coolcolor.video.exr import read_ab_header, resolve_outputs_present
from coolcolor.video.job import (
    MANIFEST_NAME,
    ColorizeJob,
    JobCancelled,
    JobEvents,
    JobResult,
    OpenedJob,
    ab_frame_path,
    open_job,
)
from coolcolor.video.manifest import ManifestJob, ManifestWriter, load_manifest
from coolcolor.video.ownership import FolderOwnership, OwnershipLost, describe_job
from coolcolor.video.plan import JobPlan, ShotPlan, auto_keyframe, plan_job, shots_from_manifest
from coolcolor.video.segment import AbFolderSink, SegmentContext, SegmentEvents, colorize_segment
from coolcolor_protocol.frames import runs_text

if TYPE_CHECKING:  # pragma: no cover
    from coolcolor.model.pipeline import CoolColorPipeline
    from coolcolor.video.shots import Shot

__all__ = ["JobRun", "SegmentRunner", "LocalSegmentRunner", "run_job", "run_colorize_job", "interrupted_message",
           "unknown_words"]


def unknown_words(reader: PromptReader | None, prompt: str) -> list[str]:
    """The prompt's words the runner's model ignores — computed once per job, here, from the reader the
    runner holds (a Ray pool's comes from a worker); [] for a stand-in model that cannot tell."""
    return reader.ignored(prompt) if reader is not None else []


class JobRun(SegmentEvents):
    """The driver's state of one run: what is done, written, failed; the events; the timings.

    It is also the ``SegmentEvents`` of the local runner (its callbacks land here directly), the
    ``PlanningRun`` of ``plan_job`` and the ``RunProgress`` of the manifest.
    """

    def __init__(self, opened: OpenedJob, events: JobEvents, model_hash: str, resolution: int,
                 runner_name: str = "local", unknown: list[str] | None = None) -> None:
        self.opened, self.job, self.events = opened, opened.job, events
        self.frames = opened.frames
        self.model_hash, self.resolution = model_hash, int(resolution)
        self.key = opened.key(model_hash)
        self.unknown_words: list[str] = list(unknown or [])  # manifest, EXR headers
        self.started = time.time()
        self.timings: dict[str, float] = {}
        self.written: list[int] = []
        self.skipped: list[int] = []
        self.failed: dict[int, str] = {}
        self.done: set[int] = set()
        self.manifest = ManifestWriter(ManifestJob(
            job=self.job, key=self.key, source=opened.info.to_dict(), source_identity=opened.identity,
            encoding=opened.decoder.describe(), references=[r.to_dict() for r in opened.references],
            model_hash=model_hash, resolution=self.resolution, executor=runner_name,
            unknown_words=self.unknown_words, frames_total=len(self.frames)))
        self.ownership: FolderOwnership | None = None  # set while this run holds the output folder

    def write_manifest(self, status: str, shots: list[ShotPlan] | None, error: str | None = None) -> None:
        self.manifest.write(status, shots, self, error)

    def take_folder(self, farm_plan: str | None = None) -> FolderOwnership:
        """Take the output folder for this job before anything in it is read or written: another job's
        live writer is refused (``FolderBusy``), the same job's is waited for (protocol/SPEC.md, "Output
        folder ownership"). Give it back with ``release_folder``."""
        ownership = FolderOwnership(self.job.output_dir, self.key, describe_job(self.job), farm_plan)
        ownership.acquire(self.events.waiting, self.check_cancel)
        self.ownership = ownership
        return ownership

    def release_folder(self) -> None:
        if self.ownership is not None:
            self.ownership.release()
            self.ownership = None

    def prepare(self) -> dict | None:
        """Clear stale temporaries, find this job's finished frames; return the previous manifest."""
        self._remove_stale_temporaries()
        self.done = self._frames_already_done()
        self.skipped = sorted(self.done)
        return load_manifest(self.job.output_dir)

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of a run that was killed mid-write (never a finished output)."""
        for pattern in (".ab.*.tmp.exr", ".ab_rg.*.tmp.exr", ".rgb.*.tmp.exr", ".preview.*.tmp.png", f".{os.path.splitext(MANIFEST_NAME)[0]}.*.tmp.json",
                        ".coolcolor-probe.*"):  # a Ray driver's probe, left by a driver that died
            for path in glob.glob(os.path.join(glob.escape(self.job.output_dir), pattern)):
                with contextlib.suppress(OSError):
                    os.unlink(path)

    def _frames_already_done(self) -> set[int]:
        done, foreign = set(), []
        for f in self.frames:
            path = ab_frame_path(self.job.output_dir, f)
            if not os.path.exists(path):
                continue
            header = read_ab_header(path)
            if header is None:
                continue  # not a complete ab file of ours: it is redone (overwritten)
            if header.get("job_key") == self.key:
                if resolve_outputs_present(self.job.output_dir, f, sidecar=self.job.resolve_sidecar,
                                           plate=self.job.rgb_plate):
                    done.add(f)
            else:
                foreign.append(f)
        if foreign:
            raise InputError(
                f"{self.job.output_dir} already holds ab frames of a different job (frames "
                f"{runs_text(foreign)}: another source, range, prompt, keyframes, seed, settings or "
                "model); use another output folder or delete those files"
            )
        return done

    def segment_context(self, plan: JobPlan) -> SegmentContext:
        return SegmentContext(self.job, self.key, self.model_hash, plan.keyframes, self.timings,
                              unknown_words=self.unknown_words, references=self.opened.references,
                              shots=[(s.first, s.last) for s in plan.shots], decoder=self.opened.decoder)

    # SegmentEvents / PlanningRun ---------------------------------------------------------------
    def phase(self, name: str) -> None:
        self.events.phase(name)

    def check_cancel(self) -> None:
        if self.ownership is not None:
            self.ownership.check()
        if self.events.should_cancel():
            raise JobCancelled("cancelled; finished frames are kept and a re-run resumes")

    def frames_finished(self) -> int:
        """``frames_done`` as the protocol means it: frames whose ab file is complete (this run's and an
        earlier run's), never the failed ones (those are reported by ``frame_failed``)."""
        return len(self.skipped) + len(self.written)

    def read_gray(self, frame: int) -> np.ndarray:
        t = time.perf_counter()
        try:
            return self.opened.read_gray(frame)
        finally:
            self.timings["read_s"] = self.timings.get("read_s", 0.0) + time.perf_counter() - t

    def fail(self, frame: int, message: str) -> None:
        if frame in self.failed:
            return
        self.failed[frame] = message
        self.events.frame_failed(frame, message)

    frame_failed = fail

    def step(self, step: int, steps_total: int) -> None:
        self.events.progress(self.frames_finished(), len(self.frames), step, steps_total)

    def frame_done(self, frame: int, path: str) -> None:
        self.written.append(frame)
        self.events.frame_done(frame, path)
        faults.hit("frame_written")
        self.events.progress(self.frames_finished(), len(self.frames), self.job.steps, self.job.steps)


class SegmentRunner(Protocol):
    """Runs a planned job's segments; the driver (``run_job``) plans, tracks and writes the manifest.

    Not the daemon's ``Executor`` (``coolcolor.daemon.executor``), which runs whole jobs — through
    ``run_job`` with one of these."""

    name: str  # the manifest's "executor"
    model_hash: str
    resolution: int
    prompt_reader: PromptReader | None  # what the model reads of a prompt (``unknown_words``)

    def choose_keyframe(self, run: JobRun, shot: Shot) -> ShotPlan:
        """The automatic keyframe of a shot without an artist keyframe (needs the model)."""

    def colorize(self, run: JobRun, plan: JobPlan) -> None:
        """Colorize ``plan.segments``, reporting through ``run`` (``frame_done``, ``fail``, ...)."""


def _keyframe_cache_for(pipeline: Any) -> Any:
    """A ``KeyframeKVCache`` for a real pipeline (None for test doubles that are not one)."""
    from coolcolor.model.pipeline import CoolColorPipeline, KeyframeKVCache

    return KeyframeKVCache() if isinstance(pipeline, CoolColorPipeline) else None


class LocalSegmentRunner:
    """Every segment in this process, on one pipeline."""

    name = "local"

    def __init__(self, pipeline: CoolColorPipeline) -> None:
        self.pipeline = pipeline
        self.model_hash = pipeline.model_hash
        self.resolution = int(pipeline.resolution)
        self.prompt_reader = prompt_reader(pipeline)
        self._scorer: Any = None
        self.keyframe_cache = _keyframe_cache_for(pipeline)

    def choose_keyframe(self, run: JobRun, shot: Shot) -> ShotPlan:
        if self._scorer is None and run.job.clip_model_dir:
            from coolcolor.video.keyframes import ClipScorer

            self._scorer = ClipScorer(run.job.clip_model_dir, device=self.pipeline.device)
        return auto_keyframe(self.pipeline, run.job, run.read_gray, shot, run.failed, run.fail, self._scorer,
                             run.check_cancel)

    def colorize(self, run: JobRun, plan: JobPlan) -> None:
        context = run.segment_context(plan)
        context.keyframe_cache = self.keyframe_cache
        sink = AbFolderSink(run.job)
        t0 = time.perf_counter()
        try:
            for segment in plan.segments:
                todo = tuple(f for f in segment.frames if f not in run.failed)
                if todo:
                    colorize_segment(self.pipeline, type(segment)(segment.keyframe, todo), run.opened.read_gray,
                                     sink, run, context)
        finally:
            run.timings["colorize_s"] = time.perf_counter() - t0


def run_job(job: ColorizeJob, runner: SegmentRunner, events: JobEvents | None = None,
            opened: OpenedJob | None = None) -> JobResult:
    """The driver: check (unless ``opened`` is given), plan once, hand the segments to ``runner``,
    write the manifest. Raises ``InputError`` (before any work) for bad input and ``JobCancelled``
    when cancelled; frames that fail mid-clip are in ``JobResult.frames_failed``, not raised."""
    events = events or JobEvents()
    events.phase("validate")
    t = time.perf_counter()
    own = opened is None
    opened = open_job(job) if opened is None else opened
    try:
        run = JobRun(opened, events, runner.model_hash, runner.resolution, runner.name,
                     unknown_words(runner.prompt_reader, job.prompt))
        run.take_folder()  # FolderBusy before anything in the folder is touched
        try:
            previous = run.prepare()
            run.timings["validate_s"] = time.perf_counter() - t
            return _run_prepared(run, runner, previous)
        finally:
            run.release_folder()
    finally:
        if own:
            opened.close()


def _run_prepared(run: JobRun, runner: SegmentRunner, previous: dict | None) -> JobResult:
    """``run_job`` once the folder is held and prepared: plan, colorize, write the manifest."""
    job, events = run.job, run.events
    shots: list[ShotPlan] | None = None
    try:
        if len(run.done) == len(run.frames):
            shots = shots_from_manifest(previous, run.key)
            run.write_manifest("complete", shots)
            events.progress(len(run.frames), len(run.frames), job.steps, job.steps)
            events.phase("done")
            return JobResult([], run.skipped, {}, run.manifest.path, timings=dict(run.timings))
        plan = plan_job(run, lambda shot: runner.choose_keyframe(run, shot), previous)
        shots = plan.shots
        run.write_manifest("running", shots)
        events.phase("colorize")
        runner.colorize(run, plan)
        status = "complete" if not run.failed else "complete_with_errors"
        run.write_manifest(status, shots)
        events.phase("done")
        return JobResult(sorted(run.written), run.skipped, dict(run.failed), run.manifest.path,
                         keyframes=dict(plan.assignment), timings=dict(run.timings))
    except JobCancelled as exc:
        run.write_manifest("cancelled", shots, str(exc))
        raise
    except OwnershipLost:
        raise  # the folder is another process's now: not even the manifest is written
    except KeyboardInterrupt:  # Ctrl-C: the user's stop, as a cancel is; not a failure with an empty message
        with contextlib.suppress(OSError):
            run.write_manifest("cancelled", shots, interrupted_message(run.frames_finished()))
        raise
    except BaseException as exc:
        with contextlib.suppress(OSError):  # on a full disk this fails too; the error that stopped the job counts
            run.write_manifest("failed", shots, f"{type(exc).__name__}: {exc}")
        raise


def interrupted_message(frames_kept: int) -> str:
    """The manifest's error after Ctrl-C: who stopped the job and what is kept."""
    return (f"interrupted by the user; the {frames_kept} finished frame(s) are kept and running the same job "
            "again resumes")


def run_colorize_job(
    job: ColorizeJob, pipeline: CoolColorPipeline, events: JobEvents | None = None,
    opened: OpenedJob | None = None,
) -> JobResult:
    """Run ``job`` on ``pipeline`` in this process (``run_job`` with a ``LocalSegmentRunner``)."""
    return run_job(job, LocalSegmentRunner(pipeline), events, opened)
