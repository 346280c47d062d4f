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
  ``coolcolor.keyframes``; several in a shot: each frame follows the nearest), and the
  ``Segment``s left to do. The plan is stored in the manifest and reused by a re-run.
- ``coolcolor.video.segment.colorize_segment``: one segment, ``window`` frames per pipeline call,
  ab files written atomically before ``frame_done``. The pipeline draws one noise for all frames and
  shares the keyframe's K/V, so a frame's result does not depend on which window it lands in.
- an executor runs the segments: ``LocalExecutor`` (in this process) or the Ray executor
  (``coolcolor.video.ray_executor``), both through ``colorize_segment``.
- ``coolcolor.video.manifest.ManifestWriter``: ``manifest.json``, written by the driver only.

Resume: a frame whose ab file exists and carries this job's ``job_key`` is skipped. A frame that
cannot be read mid-clip is reported (``JobEvents.frame_failed``, ``JobResult.frames_failed``, the
manifest) and the job goes on with the others; nothing already written is touched.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from coolcolor.errors import CoolColorError, InputError
from coolcolor.video.encoding import BUILTIN_ENCODINGS, InputDecoder
from coolcolor.video.exr import read_ab_header, resolve_outputs_present
from coolcolor.video.manifest import MANIFEST_NAME, ManifestWriter, load_manifest
from coolcolor.video.plan import JobPlan, ShotPlan, auto_keyframe, plan_job, shots_from_manifest
from coolcolor.video.segment import (
    AbFolderSink,
    SegmentContext,
    SegmentEvents,
    ab_frame_path,
    colorize_segment,
    preview_frame_path,
)
from coolcolor.video.sources import FrameSource, ImageSequenceSource, _compress_ranges, open_source

if TYPE_CHECKING:  # pragma: no cover
    from coolcolor.pipeline import CoolColorPipeline
    from coolcolor.video.shots import Shot

__all__ = [
    "MANIFEST_NAME", "ColorizeJob", "JobEvents", "JobCancelled", "JobResult", "OpenedJob", "JobRun",
    "Executor", "LocalExecutor", "open_job", "check_job_input", "job_key", "source_identity", "run_job",
    "run_colorize_job", "ab_frame_path", "preview_frame_path", "ShotPlan", "JobPlan", "plan_job",
]

MAX_STEPS = 1000


@dataclass
class ColorizeJob:
    """What to colorize and how. Frame numbers are the source's own (see ``sources.py``)."""

    source: str  # image-sequence pattern (name.%04d.exr or name.####.exr), one image, or a movie
    output_dir: str
    prompt: str = ""
    negative_prompt: str = ""
    first: int | None = None  # inclusive; None = the source's first frame
    last: int | None = None  # inclusive; None = the source's last frame
    keyframes: list[int] = field(default_factory=list)  # artist-marked; a shot without one → automatic
    seed: int = 0
    steps: int = 20
    guidance_scale: float = 5.0
    encoding: str = "srgb"  # srgb | rec709 | linear | an OCIO colorspace name (needs ocio_config)
    ocio_config: str | None = None
    preview: bool = False  # also write preview.NNNN.png (sRGB, 8-bit)
    clip_model_dir: str | None = None  # local CLIP model folder: rank automatic keyframes by CLIP too
    window: int = 8  # frames per pipeline call (memory), results do not depend on it
    resolve_sidecar: bool = False  # also write ab_rg.NNNN.exr (R = a*, G = b*) for a Fusion Loader
    rgb_plate: bool = False  # also write rgb.NNNN.exr: the plate's L* + ab, in the job's encoding
    keyframes_only: bool = False  # "preview keyframe": colorize only each shot's keyframe(s)

    def validate(self) -> None:
        """InputError naming the first field that is wrong."""
        _check_type("source", self.source, str)
        if not self.source:
            raise InputError("source is empty: give an image, an image-sequence pattern or a movie")
        _check_type("output_dir", self.output_dir, str)
        if not self.output_dir:
            raise InputError("output_dir is empty")
        _check_type("prompt", self.prompt, str)
        _check_type("negative_prompt", self.negative_prompt, str)
        for name in ("first", "last"):
            value = getattr(self, name)
            if value is not None:
                _check_int(name, value)
                if value < 0:
                    raise InputError(f"{name} must be ≥ 0, got {value}")
        if self.first is not None and self.last is not None and self.first > self.last:
            raise InputError(f"first frame {self.first} is after last frame {self.last}")
        if not isinstance(self.keyframes, (list, tuple)):
            raise InputError(f"keyframes must be a list of frame numbers, got {type(self.keyframes).__name__}")
        for k in self.keyframes:
            _check_int("keyframes", k)
        _check_int("seed", self.seed)
        if not 0 <= self.seed < 2**63:
            raise InputError(f"seed must be a non-negative integer below 2**63, got {self.seed}")
        _check_int("steps", self.steps)
        if not 1 <= self.steps <= MAX_STEPS:
            raise InputError(f"steps must be in 1…{MAX_STEPS}, got {self.steps}")
        if isinstance(self.guidance_scale, bool) or not isinstance(self.guidance_scale, (int, float)):
            raise InputError(f"guidance_scale must be a number, got {type(self.guidance_scale).__name__}")
        if not math.isfinite(self.guidance_scale) or self.guidance_scale < 0:
            raise InputError(f"guidance_scale must be a finite number ≥ 0, got {self.guidance_scale}")
        _check_type("encoding", self.encoding, str)
        if self.ocio_config is not None:
            _check_type("ocio_config", self.ocio_config, str)
        if self.encoding not in BUILTIN_ENCODINGS and not self.ocio_config:
            raise InputError(
                f"unknown input encoding {self.encoding!r}: use one of {', '.join(BUILTIN_ENCODINGS)}, "
                "or an OCIO colorspace name together with ocio_config"
            )
        _check_type("preview", self.preview, bool)
        _check_type("resolve_sidecar", self.resolve_sidecar, bool)
        _check_type("rgb_plate", self.rgb_plate, bool)
        _check_type("keyframes_only", self.keyframes_only, bool)
        if self.rgb_plate and self.encoding not in BUILTIN_ENCODINGS:
            raise InputError(f"rgb_plate is written in a built-in encoding only, not {self.encoding!r}")
        if self.clip_model_dir is not None:
            _check_type("clip_model_dir", self.clip_model_dir, str)
        _check_int("window", self.window)
        if self.window < 1:
            raise InputError(f"window must be ≥ 1 frame, got {self.window}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe."""
        d = asdict(self)
        d["keyframes"] = [int(k) for k in self.keyframes]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColorizeJob:
        """From ``to_dict``'s output (e.g. JSON over the wire); unknown or wrongly typed fields → InputError."""
        if not isinstance(d, dict):
            raise InputError(f"a colorize job must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown colorize job field(s): {', '.join(unknown)}")
        for required in ("source", "output_dir"):
            if required not in d:
                raise InputError(f"colorize job is missing {required!r}")
        values = dict(d)
        if "keyframes" in values and isinstance(values["keyframes"], (list, tuple)):
            values["keyframes"] = list(values["keyframes"])
        job = cls(**values)
        job.validate()
        return job


def _check_type(name: str, value: Any, kind: type) -> None:
    if not isinstance(value, kind):
        raise InputError(f"{name} must be a {kind.__name__}, got {type(value).__name__} {value!r}")


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {type(value).__name__} {value!r}")


class JobEvents:
    """Callbacks from a running job; the daemon and the CLI subclass this. Defaults do nothing."""

    def phase(self, name: str) -> None:
        """Entering "validate", "shots", "keyframes", "colorize" or "done"."""

    def progress(self, frames_done: int, frames_total: int, step: int, steps_total: int) -> None:
        """After each diffusion step and each finished frame; frames_done counts skipped ones too."""

    def frame_done(self, frame: int, path: str) -> None:
        """Called only after the ab file is durably on disk (fsync + rename)."""

    def frame_failed(self, frame: int, message: str) -> None:
        """A frame that could not be read mid-clip; the job continues with the others."""

    def should_cancel(self) -> bool:
        """Polled between diffusion steps (via the pipeline's progress callback) and between frames."""
        return False


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
    The daemon's result cache is stricter (``daemon.validation.cache_key`` adds every file's size and
    mtime), because a cache hit must be exact while a resume only has to be the same job.
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
            identity: dict[str, Any] | None = None) -> str:
    """Identifies everything that decides the pixels of the output (not window, not preview, not where
    the files are mounted). ``identity`` is ``source_identity`` of the opened source (computed here
    by opening it when not given)."""
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
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------- checked input


class OpenedJob:
    """A job checked once and its source opened once; handed to the planner and the executors."""

    def __init__(self, job: ColorizeJob, decoder: InputDecoder, source: FrameSource) -> None:
        self.job, self.decoder, self.source = job, decoder, source
        self.info = source.info
        self.frames = list(source.frames())
        self._identity: dict[str, Any] | None = None

    @property
    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = source_identity(self.source)
        return self._identity

    def key(self, model_hash: str) -> str:
        return job_key(self.job, self.info.first, self.info.last, model_hash, self.identity)

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
        outside = sorted(k for k in job.keyframes if not info.first <= k <= info.last)
        if outside:
            raise InputError(
                f"keyframe(s) {', '.join(map(str, outside))} outside the frames to colorize ({info.first}-{info.last})"
            )
        try:
            os.makedirs(job.output_dir, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create output folder {job.output_dir}: {exc}") from exc
        if not os.access(job.output_dir, os.W_OK):
            raise InputError(f"output folder {job.output_dir} is not writable")
        return OpenedJob(job, decoder, source)
    except BaseException:
        source.close()
        raise


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

    def prepare(self) -> dict | None:
        """Clear stale temporaries, find this job's finished frames; return the previous manifest."""
        self._remove_stale_temporaries()
        self.done = self._frames_already_done()
        self.skipped = sorted(self.done)
        return load_manifest(self.job.output_dir)

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of a run that was killed mid-write (never a finished output)."""
        for pattern in (".ab.*.tmp.exr", ".ab_rg.*.tmp.exr", ".rgb.*.tmp.exr", ".preview.*.tmp.png", f".{os.path.splitext(MANIFEST_NAME)[0]}.*.tmp.json"):
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
                f"{_compress_ranges(foreign)}: another source, range, prompt, keyframes, seed, settings or "
                "model); use another output folder or delete those files"
            )
        return done

    def segment_context(self, plan: JobPlan) -> SegmentContext:
        return SegmentContext(self.job, self.key, self.model_hash, plan.keyframes, self.timings,
                              unknown_words=self.unknown_words)

    # SegmentEvents / helpers -----------------------------------------------------------------
    def check_cancel(self) -> None:
        if self.events.should_cancel():
            raise JobCancelled("cancelled; finished frames are kept and a re-run resumes")

    def frames_finished(self) -> int:
        return len(self.skipped) + len(self.written) + len(self.failed)

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


class LocalExecutor:
    """Today's behaviour: every segment in this process, on one pipeline."""

    name = "local"

    def __init__(self, pipeline: CoolColorPipeline) -> None:
        self.pipeline = pipeline
        self.model_hash = pipeline.model_hash
        self.resolution = int(pipeline.resolution)
        self._scorer: Any = None

    def unknown_words(self, prompt: str) -> list[str]:
        from coolcolor.model.prompt_words import unknown_words_of

        return unknown_words_of(self.pipeline, prompt)

    def choose_keyframe(self, run: JobRun, shot: Shot) -> ShotPlan:
        if self._scorer is None and run.job.clip_model_dir:
            from coolcolor.keyframes import ClipScorer

            self._scorer = ClipScorer(run.job.clip_model_dir, device=self.pipeline.device)
        return auto_keyframe(self.pipeline, run.job, run.read_gray, shot, run.failed, run.fail, self._scorer,
                             run.check_cancel)

    def colorize(self, run: JobRun, plan: JobPlan) -> None:
        context = run.segment_context(plan)
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
    shots: list[ShotPlan] | None = None
    try:
        run = JobRun(opened, events, executor.model_hash, executor.resolution, executor.name)
        if hasattr(executor, "unknown_words"):
            run.unknown_words = executor.unknown_words(job.prompt)
        previous = run.prepare()
        run.timings["validate_s"] = time.perf_counter() - t
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
        except BaseException as exc:
            run.manifest.write("failed", shots, f"{type(exc).__name__}: {exc}")
            raise
    finally:
        if own:
            opened.close()


def run_colorize_job(
    job: ColorizeJob, pipeline: CoolColorPipeline, events: JobEvents | None = None,
    opened: OpenedJob | None = None,
) -> JobResult:
    """Run ``job`` on ``pipeline`` in this process (``run_job`` with a ``LocalExecutor``)."""
    return run_job(job, LocalExecutor(pipeline), events, opened)
