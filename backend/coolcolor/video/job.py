"""One colorize job: a source (sequence, image or movie) → one ab EXR per frame + a manifest.

This is the interface between the video engine and its callers (``coolcolor colorize``, the daemon)
and the job's *driver*. The work is split in public parts, each with one job:

- ``ColorizeJob`` (the job's fields, checked by ``validate``) and ``open_job``: **validate once and
  open the source once** — fields, the encoding (and OCIO config), the source (missing files, gaps,
  unreadable headers, mismatched sizes, the frame range), keyframes inside the range, a writable
  output folder. Each problem is an ``InputError`` naming it, raised before any pixel is colorized.
  ``OpenedJob`` is handed on, so nothing is checked or opened twice.
- ``job_key``: everything that decides the pixels, the source taken by its *identity* (names, sizes,
  sampled bytes; see ``source_identity``), not its absolute path, so a job resumes on the same files
  mounted elsewhere. Files carrying another key are never overwritten.
- ``coolcolor.video.plan.plan_job``: shots (``shots.py``), keyframes (artist-marked, else automatic,
  ``coolcolor.video.keyframes``; several in a shot: each frame follows the nearest), and the
  ``Segment``s left to do. The plan is stored in the manifest and reused by a re-run.
- ``coolcolor.video.segment.colorize_segment``: one segment, ``window`` frames per pipeline call,
  ab files written atomically before ``frame_done``. The pipeline draws one noise for all frames and
  shares the keyframe's K/V, so a frame's result does not depend on which window it lands in.
- an executor runs the segments: ``LocalExecutor`` (in this process) or the Ray executor
  (``coolcolor.scaleout.ray_cluster``), both through ``colorize_segment``.
- ``coolcolor.video.manifest.ManifestWriter``: ``manifest.json``, written by the driver only.

Resume: a frame whose ab file exists and carries this job's ``job_key`` is skipped. A frame that
cannot be read mid-clip is reported (``JobEvents.frame_failed``, ``JobResult.frames_failed``, the
manifest) and the job goes on with the others; nothing already written is touched.
"""

from __future__ import annotations

import contextlib
import glob
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from coolcolor import faults
from coolcolor.errors import CoolColorError, InputError
from coolcolor.references import CheckedReference, check_reference, file_sha256
from coolcolor.video.encoding import InputDecoder
from coolcolor.video.exr import read_ab_header, resolve_outputs_present
from coolcolor.video.manifest import MANIFEST_NAME, ManifestWriter, load_manifest
from coolcolor.video.ownership import (
    FolderOwnership,
    OwnershipLost,
    describe_job,
    refuse_if_another_job_holds,
)
from coolcolor.video.plan import JobPlan, ShotPlan, auto_keyframe, plan_job, shots_from_manifest
from coolcolor.video.segment import (
    AbFolderSink,
    SegmentContext,
    SegmentEvents,
    ab_frame_path,
    colorize_segment,
    preview_frame_path,
)
from coolcolor.video.sources import FrameSource, open_source

from coolcolor_protocol.abfiles import (
    AB_FILE_PATTERN,
    PREVIEW_FILE_PATTERN,
    RESOLVE_SIDECAR_PATTERN,
    RGB_PLATE_PATTERN,
    frame_file,
)
from coolcolor_protocol.errors import ProtocolError
from coolcolor_protocol.frames import KeyframeOutsideRange, check_keyframes_in_range, runs_text
from coolcolor_protocol.identity import settings_digest
from coolcolor_protocol.jobspec import JobSpec

if TYPE_CHECKING:  # pragma: no cover
    from coolcolor.model.pipeline import CoolColorPipeline
    from coolcolor.video.shots import Shot

__all__ = [
    "MANIFEST_NAME", "ColorizeJob", "JobEvents", "JobCancelled", "JobResult", "OpenedJob", "JobRun",
    "Executor", "LocalExecutor", "open_job", "check_job_input", "job_key", "source_identity", "run_job",
    "run_colorize_job", "ab_frame_path", "preview_frame_path", "ShotPlan", "JobPlan", "plan_job",
]



@dataclass
class ColorizeJob(JobSpec):
    """What to colorize and how: the job contract ``coolcolor_protocol.JobSpec`` as the engine runs it.

    Fields, defaults, limits and the reasons a value is refused are JobSpec's (one definition, shared
    with the daemon and the plugins). The engine adds only what needs the file system — the source
    opens with every frame present, the output folder is writable (``check_job_input``) — and reports
    a bad field as ``InputError``, which the CLI prints as one line.
    """

    def validate(self, where: str = "job") -> None:
        """InputError naming the first field that is wrong."""
        try:
            super().validate(where)
        except ProtocolError as exc:
            raise InputError(exc.message) from None

    @classmethod
    def from_dict(cls, d: Any, where: str = "job") -> ColorizeJob:
        """From JSON (the wire, the journal); unknown fields are kept in ``extras`` and not used."""
        try:
            job = super().from_dict(d, where)
        except ProtocolError as exc:
            raise InputError(exc.message) from None
        assert isinstance(job, ColorizeJob)
        return job

    @classmethod
    def from_spec(cls, spec: JobSpec) -> ColorizeJob:
        job = cls(**{name: getattr(spec, name) for name in JobSpec.field_names()}, extras=dict(spec.extras))
        job.validate()
        return job


class JobEvents:
    """Callbacks from a running job; the daemon and the CLI subclass this. Defaults do nothing."""

    def phase(self, name: str) -> None:
        """Entering "validate", "shots", "keyframes", "colorize" or "done"."""

    def progress(self, frames_done: int, frames_total: int, step: int, steps_total: int) -> None:
        """After each diffusion step and each finished frame. ``frames_done`` counts the frames whose ab
        file is complete on disk, including those an earlier run wrote (SPEC §6: one meaning everywhere);
        failed frames are not in it, they come through ``frame_failed``."""

    def frame_done(self, frame: int, path: str) -> None:
        """Called only after the ab file is durably on disk (fsync + rename)."""

    def frame_failed(self, frame: int, message: str) -> None:
        """A frame that could not be read mid-clip; the job continues with the others."""

    def should_cancel(self) -> bool:
        """Polled between diffusion steps (via the pipeline's progress callback) and between frames."""
        return False

    def waiting(self, message: str) -> None:
        """The output folder is being written by another run of the same job: this one waits for it
        (``coolcolor.video.ownership``), then finds its frames done. Called once; cancel still works."""


class JobCancelled(CoolColorError):
    """The job stopped because ``JobEvents.should_cancel`` returned True; finished frames are kept."""


@dataclass
class JobResult:
    frames_written: list[int]
    frames_skipped: list[int]  # already done by an earlier run of the same job
    frames_failed: dict[int, str]  # frame → message
    manifest_path: str
    keyframes: dict[int, int] = field(default_factory=dict)  # frame → its keyframe
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.frames_failed


# ----------------------------------------------------------------------------- identity

KEY_VERSION = 2


def source_identity(source: FrameSource) -> dict[str, Any]:
    """What the footage *is*, independent of where it is mounted (protocol/SPEC.md, "Source identity").

    The kind, the file name (a sequence's pattern without its folder), the frame range and the
    geometry (width, height, channels, pixel format). Not the folder, not mtimes and not the bytes:
    the same files copied or mounted elsewhere keep their identity, and so does a sequence in which a
    damaged frame was re-rendered (the finished frames are kept, only the missing ones are redone).
    The daemon's result cache is stricter (``coolcolor_protocol.identity.cache_key`` adds every file's
    size and mtime), because a cache hit must be exact while a resume only has to be the same job.
    """
    info = source.info
    return {
        "kind": info.kind,
        "name": os.path.basename(info.path),
        "first": info.first,
        "last": info.last,
        "width": info.width,
        "height": info.height,
        "channels": info.channels,
        "pixel_format": info.pixel_format,
    }


def job_key(job: ColorizeJob, first: int, last: int, model_hash: str,
            identity: dict[str, Any] | None = None, reference_sha256: list[str] | None = None) -> str:
    """Identifies everything that decides the pixels of the output (not window, not preview, not where
    the files are mounted): the ``settings_digest`` of those settings (protocol/SPEC.md, "Job identities").
    ``identity`` is ``source_identity`` of the opened source (computed here by opening it when not given);
    ``reference_sha256`` the content hashes of ``job.references`` as checked (hashed here when not given)."""
    if identity is None:
        with open_source(job.source, first, last) as source:
            identity = source_identity(source)
    settings = {
        "source": identity,
        "first": first,
        "last": last,
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "keyframes": sorted(int(k) for k in job.keyframes),
        "seed": job.seed,
        "steps": job.steps,
        "guidance_scale": float(job.guidance_scale),
        "encoding": job.encoding,
        "ocio_config": os.path.basename(job.ocio_config) if job.ocio_config else None,
        "clip_model_dir": os.path.basename(os.path.normpath(job.clip_model_dir)) if job.clip_model_dir else None,
        "model_hash": model_hash,
        "key_version": KEY_VERSION,
    }
    if job.references:  # by content, not path (a moved file is the same job); absent otherwise: old keys hold
        hashes = reference_sha256 or [file_sha256(r["path"]) for r in job.references]
        settings["references"] = [{"frame": r["frame"], "sha256": h} for r, h in zip(job.references, hashes)]
    return settings_digest(settings)


# ----------------------------------------------------------------------------- checked input


class OpenedJob:
    """A job checked once and its source opened once; handed to the planner and the executors."""

    def __init__(self, job: ColorizeJob, decoder: InputDecoder, source: FrameSource) -> None:
        self.job, self.decoder, self.source = job, decoder, source
        self.info = source.info
        self.frames = list(source.frames())
        self._identity: dict[str, Any] | None = None
        self.references: list[CheckedReference] = []  # checked by open_job (path, content hash, frame)

    @property
    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = source_identity(self.source)
        return self._identity

    def key(self, model_hash: str) -> str:
        return job_key(self.job, self.info.first, self.info.last, model_hash, self.identity,
                       [r.sha256 for r in self.references] or None)  # hashed by open_job, when it checked them

    def read_gray(self, frame: int) -> np.ndarray:
        return self.decoder.to_gray(self.source.read(frame))

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> OpenedJob:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_job(job: ColorizeJob) -> OpenedJob:
    """Every check that needs no model: fields, encoding, source, range, keyframes, output folder.

    The CLI runs this before it loads the model, so bad input is reported in a fraction of a second,
    and passes the result on (``run_job(..., opened=)``) so the source is not opened again.
    """
    job.validate()
    decoder = InputDecoder(job.encoding, job.ocio_config)
    if job.clip_model_dir is not None and not os.path.isdir(job.clip_model_dir):
        raise InputError(f"CLIP model folder not found: {job.clip_model_dir}")
    source = open_source(job.source, job.first, job.last)
    try:
        info = source.info
        try:
            check_keyframes_in_range(job.keyframes, info.first, info.last)
        except KeyframeOutsideRange as exc:
            raise InputError(str(exc)) from None
        check_outputs_spare_source(job, source)
        references = check_references(job, info, decoder)
        try:
            os.makedirs(job.output_dir, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create output folder {job.output_dir}: {exc}") from exc
        if not os.access(job.output_dir, os.W_OK):
            raise InputError(f"output folder {job.output_dir} is not writable")
        refuse_if_another_job_holds(job.output_dir, describe_job(job))  # at once, before the model loads
        opened = OpenedJob(job, decoder, source)
        opened.references = references
        return opened
    except BaseException:
        source.close()
        raise


def job_output_files(job: JobSpec, frames: range | list[int]) -> list[str]:
    """Every file the job may write for ``frames``: ab, the outputs it asks for, the manifest."""
    patterns = [AB_FILE_PATTERN]
    patterns += [PREVIEW_FILE_PATTERN] if job.preview else []
    patterns += [RESOLVE_SIDECAR_PATTERN] if job.resolve_sidecar else []
    patterns += [RGB_PLATE_PATTERN] if job.rgb_plate else []
    files = [os.path.join(job.output_dir, frame_file(p, f)) for f in frames for p in patterns]
    return [*files, os.path.join(job.output_dir, MANIFEST_NAME)]


def check_outputs_spare_source(job: JobSpec, source: FrameSource) -> None:
    """InputError when an output file would land on a source file (``-o`` the source's own folder, with
    source frames named like ours, e.g. ``preview.%04d.png`` and ``--preview``): checked before anything
    is written, because a plate overwritten by its own colorization is lost."""

    def real(path: str) -> str:
        return os.path.normcase(os.path.realpath(path))

    sources = {real(path) for path in source.files()}
    clashes = [path for path in job_output_files(job, source.frames()) if real(path) in sources]
    if clashes:
        names = ", ".join(os.path.basename(p) for p in clashes[:3]) + (", …" if len(clashes) > 3 else "")
        raise InputError(f"output folder {job.output_dir} holds the source and this job would write over "
                         f"{len(clashes)} of its frame file(s) ({names}); choose another output folder")


def check_references(job: JobSpec, info: Any, decoder: InputDecoder) -> list[CheckedReference]:
    """Every reference of ``job`` against the opened source (``info``): its frame among the frames to
    colorize, and the file (exists, decodes, has colour, a frame reference at the plate's size;
    ``coolcolor.references.check_reference``). One-line ``InputError`` naming the first bad one."""
    checked = []
    for ref in job.references:
        frame = ref["frame"]
        if frame is not None and not info.first <= frame <= info.last:
            raise InputError(f"reference {ref['path']} is for frame {frame}, outside the frames to colorize "
                             f"({info.first}-{info.last})")
        checked.append(check_reference(frame, ref["path"], (info.height, info.width), decoder.to_srgb)[0])
    return checked


def check_job_input(job: ColorizeJob) -> tuple[InputDecoder, FrameSource]:
    """``open_job`` as (decoder, source) — kept for callers written before ``OpenedJob``."""
    opened = open_job(job)
    return opened.decoder, opened.source


# ----------------------------------------------------------------------------- one run


class JobRun(SegmentEvents):
    """The driver's state of one run: what is done, written, failed; the events; the timings.

    It is also the ``SegmentEvents`` of the local executor (its callbacks land here directly).
    """

    def __init__(self, opened: OpenedJob, events: JobEvents, model_hash: str, resolution: int,
                 executor_name: str = "local") -> None:
        self.opened, self.job, self.events = opened, opened.job, events
        self.frames = opened.frames
        self.model_hash, self.resolution, self.executor_name = model_hash, int(resolution), executor_name
        self.key = opened.key(model_hash)
        self.unknown_words: list[str] = []  # set by the driver from the executor's model (manifest, EXR headers)
        self.started = time.time()
        self.timings: dict[str, float] = {}
        self.written: list[int] = []
        self.skipped: list[int] = []
        self.failed: dict[int, str] = {}
        self.done: set[int] = set()
        self.manifest = ManifestWriter(self)
        self.ownership: FolderOwnership | None = None  # set while this run holds the output folder

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

    # SegmentEvents / helpers -----------------------------------------------------------------
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


class Executor(Protocol):
    """Runs a planned job's segments; the driver (``run_job``) plans, tracks and writes the manifest."""

    name: str
    model_hash: str
    resolution: int

    def choose_keyframe(self, run: JobRun, shot: Shot) -> ShotPlan:
        """The automatic keyframe of a shot without an artist keyframe (needs the model)."""

    def colorize(self, run: JobRun, plan: JobPlan) -> None:
        """Colorize ``plan.segments``, reporting through ``run`` (``frame_done``, ``fail``, ...)."""

    def unknown_words(self, prompt: str) -> list[str]:
        """The prompt's words the model ignores (manifest and EXR provenance)."""


def _keyframe_cache_for(pipeline: Any) -> Any:
    """A ``KeyframeKVCache`` for a real pipeline (None for test doubles that are not one)."""
    from coolcolor.model.pipeline import CoolColorPipeline, KeyframeKVCache

    return KeyframeKVCache() if isinstance(pipeline, CoolColorPipeline) else None


class LocalExecutor:
    """Today's behaviour: every segment in this process, on one pipeline."""

    name = "local"

    def __init__(self, pipeline: CoolColorPipeline) -> None:
        self.pipeline = pipeline
        self.model_hash = pipeline.model_hash
        self.resolution = int(pipeline.resolution)
        self._scorer: Any = None
        self.keyframe_cache = _keyframe_cache_for(pipeline)

    def unknown_words(self, prompt: str) -> list[str]:
        from coolcolor.model.prompt_words import unknown_words_of

        return unknown_words_of(self.pipeline, prompt)

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


def run_job(job: ColorizeJob, executor: Executor, events: JobEvents | None = None,
            opened: OpenedJob | None = None) -> JobResult:
    """The driver: check (unless ``opened`` is given), plan once, hand the segments to ``executor``,
    write the manifest. Raises ``InputError`` (before any work) for bad input and ``JobCancelled``
    when cancelled; frames that fail mid-clip are in ``JobResult.frames_failed``, not raised."""
    events = events or JobEvents()
    events.phase("validate")
    t = time.perf_counter()
    own = opened is None
    opened = open_job(job) if opened is None else opened
    try:
        run = JobRun(opened, events, executor.model_hash, executor.resolution, executor.name)
        run.unknown_words = executor.unknown_words(job.prompt)
        run.take_folder()  # FolderBusy before anything in the folder is touched
        try:
            previous = run.prepare()
            run.timings["validate_s"] = time.perf_counter() - t
            return _run_prepared(run, executor, previous)
        finally:
            run.release_folder()
    finally:
        if own:
            opened.close()


def _run_prepared(run: JobRun, executor: Executor, previous: dict | None) -> JobResult:
    """``run_job`` once the folder is held and prepared: plan, colorize, write the manifest."""
    job, events = run.job, run.events
    shots: list[ShotPlan] | None = None
    try:
        if len(run.done) == len(run.frames):
            shots = shots_from_manifest(previous, run.key)
            run.manifest.write("complete", shots)
            events.progress(len(run.frames), len(run.frames), job.steps, job.steps)
            events.phase("done")
            return JobResult([], run.skipped, {}, run.manifest.path, timings=dict(run.timings))
        plan = plan_job(run, lambda shot: executor.choose_keyframe(run, shot), previous)
        shots = plan.shots
        run.manifest.write("running", shots)
        events.phase("colorize")
        executor.colorize(run, plan)
        status = "complete" if not run.failed else "complete_with_errors"
        run.manifest.write(status, shots)
        events.phase("done")
        return JobResult(sorted(run.written), run.skipped, dict(run.failed), run.manifest.path,
                         keyframes=dict(plan.assignment), timings=dict(run.timings))
    except JobCancelled as exc:
        run.manifest.write("cancelled", shots, str(exc))
        raise
    except OwnershipLost:
        raise  # the folder is another process's now: not even the manifest is written
    except KeyboardInterrupt:  # Ctrl-C: the user's stop, as a cancel is; not a failure with an empty message
        with contextlib.suppress(OSError):
            run.manifest.write("cancelled", shots, interrupted_message(run.frames_finished()))
        raise
    except BaseException as exc:
        with contextlib.suppress(OSError):  # on a full disk this fails too; the error that stopped the job counts
            run.manifest.write("failed", shots, f"{type(exc).__name__}: {exc}")
        raise


def interrupted_message(frames_kept: int) -> str:
    """The manifest's error after Ctrl-C: who stopped the job and what is kept."""
    return (f"interrupted by the user; the {frames_kept} finished frame(s) are kept and running the same job "
            "again resumes")


def run_colorize_job(
    job: ColorizeJob, pipeline: CoolColorPipeline, events: JobEvents | None = None,
    opened: OpenedJob | None = None,
) -> JobResult:
    """Run ``job`` on ``pipeline`` in this process (``run_job`` with a ``LocalExecutor``)."""
    return run_job(job, LocalExecutor(pipeline), events, opened)
