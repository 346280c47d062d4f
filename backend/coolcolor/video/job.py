"""One colorize job: a source (sequence, image or movie) → one ab EXR per frame + a manifest.

This is the interface between the video engine and the daemon (agreed; both sides code to it) and
the body of ``coolcolor colorize``. The order of work:

1. **Validate everything first** — job fields, the encoding (and OCIO config), the source (missing
   files, gaps, unreadable headers, mismatched sizes, the frame range), keyframes inside the range,
   and frames already in ``output_dir`` that belong to a *different* job. Each problem is an
   ``InputError`` naming it, raised before any pixel is colorized.
2. **Shots**: one streaming pass over the gray frames finds the cuts (``shots.py``).
3. **Keyframes**: artist-marked frames belong to the shot they fall in; a shot without one gets an
   automatic keyframe (``coolcolor.keyframes``: candidates colorized cheaply, ranked). With several
   artist keyframes in a shot, each frame follows the nearest one. The plan (shots, keyframes,
   rankings) is stored in the manifest and reused when the same job is re-run.
4. **Windows**: each shot segment is colorized ``window`` frames at a time, every call given the
   segment's keyframe as an image, so memory stays flat in clip length. The pipeline draws one
   noise for all frames and shares the keyframe's K/V, so a frame's result does not depend on which
   window it lands in — a resumed, partly finished window gives the same pixels (up to float
   rounding of different batch sizes, ≤ 0.05 a*/b* units in the tests).
5. **Outputs**: ``ab.NNNN.exr`` (``exr.py``) written atomically before ``frame_done`` is called;
   optional ``preview.NNNN.png``; ``manifest.json`` (also atomic) at the start and the end.

Resume: a frame whose ab file exists and carries this job's ``job_key`` is skipped. A frame that
cannot be read mid-clip is reported (``JobEvents.frame_failed``, ``JobResult.frames_failed``, the
manifest) and the job goes on with the others; nothing already written is touched.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from coolcolor.errors import CoolColorError, InputError
from coolcolor.video.encoding import InputDecoder
from coolcolor.video.exr import (
    AB_CHANNELS,
    atomic_write,
    read_ab_header,
    resolve_outputs_present,
    write_ab_exr,
    write_preview_png,
    write_resolve_outputs,
)
from coolcolor.video.shots import DEFAULT_MIN_SHOT_FRAMES, Shot, ShotDetector
from coolcolor.video.sources import FrameReadError, FrameSource, _compress_ranges, open_source

from coolcolor_protocol.abfiles import AB_FILE_PATTERN, MANIFEST_NAME, PREVIEW_FILE_PATTERN, frame_file
from coolcolor_protocol.errors import ProtocolError
from coolcolor_protocol.jobspec import JobSpec

if TYPE_CHECKING:  # pragma: no cover
    from coolcolor.pipeline import CoolColorPipeline

MANIFEST_FORMAT = "coolcolor-job-manifest"
MANIFEST_VERSION = 1


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


def ab_frame_path(output_dir: str, frame: int) -> str:
    """``output_dir/ab.{frame:04d}.exr`` — the daemon uses this too."""
    return os.path.join(output_dir, frame_file(AB_FILE_PATTERN, frame))


def preview_frame_path(output_dir: str, frame: int) -> str:
    return os.path.join(output_dir, frame_file(PREVIEW_FILE_PATTERN, frame))


def job_key(job: ColorizeJob, first: int, last: int, model_hash: str) -> str:
    """Identifies everything that decides the pixels of the output (not window, not preview)."""
    settings = {
        "source": os.path.abspath(job.source),
        "first": first,
        "last": last,
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "keyframes": sorted(int(k) for k in job.keyframes),
        "seed": job.seed,
        "steps": job.steps,
        "guidance_scale": float(job.guidance_scale),
        "encoding": job.encoding,
        "ocio_config": job.ocio_config,
        "clip_model_dir": job.clip_model_dir,
        "model_hash": model_hash,
        "key_version": 1,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def check_job_input(job: ColorizeJob) -> tuple[InputDecoder, FrameSource]:
    """Every check that needs no model: fields, encoding, source, range, keyframes, output folder.

    Returns the decoder and the opened source (the caller closes it). The CLI runs this before it
    loads the model, so bad input is reported in a fraction of a second.
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
    except BaseException:
        source.close()
        raise
    return decoder, source


# ----------------------------------------------------------------------------- plan


@dataclass
class ShotPlan:
    first: int
    last: int
    keyframes: list[int]
    keyframe_source: str  # "artist" | "auto"
    ranking: dict | None = None

    def keyframe_of(self, frame: int) -> int:
        """The nearest keyframe of this shot (the earlier one on a tie)."""
        return min(self.keyframes, key=lambda k: (abs(k - frame), k))

    def segments(self) -> list[tuple[int, list[int]]]:
        """(keyframe, frames in order) for each run of frames that share a keyframe."""
        out: list[tuple[int, list[int]]] = []
        for f in range(self.first, self.last + 1):
            k = self.keyframe_of(f)
            if out and out[-1][0] == k:
                out[-1][1].append(f)
            else:
                out.append((k, [f]))
        return out


def _shots_from_manifest(previous: dict | None, key: str) -> list[ShotPlan] | None:
    """The plan of an earlier run of the same job, unless unreadable frames may have skewed it."""
    if not previous or previous.get("job_key") != key or not previous.get("shots"):
        return None
    if (previous.get("frames") or {}).get("failed"):
        return None  # the files may have been fixed since: find shots and keyframes again
    try:
        shots = [ShotPlan(**s) for s in previous["shots"]]
    except TypeError:
        return None
    return shots if all(s.keyframes for s in shots) else None


# ----------------------------------------------------------------------------- the job


class _Runner:
    def __init__(self, job: ColorizeJob, pipeline: CoolColorPipeline, events: JobEvents) -> None:
        self.job = job
        self.pipe = pipeline
        self.events = events
        self.started = time.time()
        self.timings: dict[str, float] = {}
        self.written: list[int] = []
        self.skipped: list[int] = []
        self.failed: dict[int, str] = {}
        self.manifest_path = os.path.join(job.output_dir, MANIFEST_NAME)

    # ---------------------------------------------------------------- validation
    def validate(self) -> None:
        t = time.perf_counter()
        job = self.job
        self.events.phase("validate")
        self.decoder, self.source = check_job_input(job)
        info = self.source.info
        self.frames = list(self.source.frames())
        self.model_hash = self.pipe.model_hash
        self.key = job_key(job, info.first, info.last, self.model_hash)
        self._remove_stale_temporaries()
        self.done = self._frames_already_done()
        self.previous = self._load_manifest()
        self.timings["validate_s"] = time.perf_counter() - t

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

    def _load_manifest(self) -> dict | None:
        try:
            with open(self.manifest_path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT else None

    # ---------------------------------------------------------------- helpers
    def check_cancel(self) -> None:
        if self.events.should_cancel():
            raise JobCancelled("cancelled; finished frames are kept and a re-run resumes")

    def frames_finished(self) -> int:
        """``frames_done`` as the protocol means it: frames whose ab file is complete (this run's and an
        earlier run's), never the failed ones (those are reported by ``frame_failed``)."""
        return len(self.skipped) + len(self.written)

    def read_gray(self, frame: int) -> np.ndarray:
        t = time.perf_counter()
        try:
            return self.decoder.to_gray(self.source.read(frame))
        finally:
            self.timings["read_s"] = self.timings.get("read_s", 0.0) + time.perf_counter() - t

    def fail(self, frame: int, message: str) -> None:
        if frame in self.failed:
            return
        self.failed[frame] = message
        self.events.frame_failed(frame, message)

    def pipeline_progress(self, frames_total: int) -> Callable:
        def report(event: Any) -> None:
            self.check_cancel()
            if getattr(event, "phase", "") == "denoise":
                self.events.progress(self.frames_finished(), frames_total, event.step, event.total_steps)

        return report

    # ---------------------------------------------------------------- plan
    def plan(self) -> list[ShotPlan]:
        reused = _shots_from_manifest(self.previous, self.key)
        if reused is not None:
            self.timings["shots_s"] = self.timings["keyframes_s"] = 0.0
            return reused
        self.events.phase("shots")
        t = time.perf_counter()
        detector = ShotDetector(DEFAULT_MIN_SHOT_FRAMES)
        for f in self.frames:
            self.check_cancel()
            try:
                detector.add(f, self.read_gray(f))
            except FrameReadError as exc:
                self.fail(f, str(exc))
        shots: list[Shot] = detector.shots()
        self.timings["shots_s"] = time.perf_counter() - t

        self.events.phase("keyframes")
        t = time.perf_counter()
        scorer = None
        artist = sorted({int(k) for k in self.job.keyframes})
        plans = []
        for shot in shots:
            marked = [k for k in artist if shot.first <= k <= shot.last]
            if marked:
                plans.append(ShotPlan(shot.first, shot.last, marked, "artist"))
                continue
            if scorer is None and self.job.clip_model_dir:
                from coolcolor.keyframes import ClipScorer

                scorer = ClipScorer(self.job.clip_model_dir, device=self.pipe.device)
            plans.append(self._auto_keyframe(shot, scorer))
        self.timings["keyframes_s"] = time.perf_counter() - t
        return plans

    def _auto_keyframe(self, shot: Shot, scorer: Any) -> ShotPlan:
        from coolcolor.keyframes import candidate_frames, rank_keyframes

        grays = {}
        for f in candidate_frames(shot.first, shot.last):
            if f in self.failed:
                continue
            try:
                grays[f] = self.read_gray(f)
            except FrameReadError as exc:
                self.fail(f, str(exc))
        if not grays:  # every candidate unreadable: fall back on any readable frame of the shot
            for f in shot.frames:
                if f in self.failed:
                    continue
                try:
                    grays[f] = self.read_gray(f)
                    break
                except FrameReadError as exc:
                    self.fail(f, str(exc))
        if not grays:
            return ShotPlan(shot.first, shot.last, [], "auto", {"error": "no readable frame in the shot"})
        ranking = rank_keyframes(
            self.pipe, grays, self.job.prompt, self.job.negative_prompt, steps=self.job.steps,
            guidance_scale=self.job.guidance_scale, seed=self.job.seed, clip_scorer=scorer,
            progress=lambda _e: self.check_cancel(),
        )
        return ShotPlan(shot.first, shot.last, [ranking.chosen], "auto", ranking.to_dict())

    # ---------------------------------------------------------------- manifest
    def write_manifest(self, status: str, shots: list[ShotPlan] | None, error: str | None = None) -> None:
        info = self.source.info
        frames_total = len(self.frames)
        colorize_s = self.timings.get("colorize_s", 0.0)
        timings = {k: round(v, 4) for k, v in self.timings.items()}
        timings["total_s"] = round(time.time() - self.started, 4)
        if self.written and colorize_s > 0:
            timings["frames_per_s"] = round(len(self.written) / colorize_s, 4)
        done = sorted(set(self.skipped) | set(self.written))
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "status": status,
            "error": error,
            "job": self.job.to_dict(),
            "job_key": self.key,
            "source": info.to_dict(),
            "model": {"hash": self.model_hash, "resolution": int(self.pipe.resolution)},
            "prompt": self.job.prompt,
            "negative_prompt": self.job.negative_prompt,
            "seed": self.job.seed,
            "encoding": self.decoder.describe(),
            "keyframes": sorted({k for s in shots or [] for k in s.keyframes}),
            "shots": [asdict(s) for s in shots] if shots is not None else None,
            "frames": {
                "first": info.first,
                "last": info.last,
                "total": frames_total,
                "done": len(done),
                "written_this_run": self.written,
                "skipped_this_run": self.skipped,
                "failed": {str(k): v for k, v in sorted(self.failed.items())},
            },
            "outputs": {
                "ab": AB_FILE_PATTERN,
                "ab_channels": list(AB_CHANNELS),
                "ab_pixel_type": "half",
                "ab_definition": "CIE a*, b* (D65, skimage Lab) of the display-sRGB rendering of the input, "
                "fitted to the sRGB gamut for the input's own L*",
                "preview": PREVIEW_FILE_PATTERN if self.job.preview else None,
            },
            "timings": timings,
            "finished_at" if status != "running" else "started_at": time.strftime(
                "%Y-%m-%dT%H:%M:%S%z", time.localtime()
            ),
        }
        data = json.dumps(manifest, indent=2).encode("utf-8")

        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                fh.write(data)

        atomic_write(self.manifest_path, write)

    # ---------------------------------------------------------------- colorize
    def provenance(self, frame: int, keyframe: int, keyframes: list[int]) -> dict[str, Any]:
        job = self.job
        return {
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt,
            "keyframe": keyframe,
            "keyframes": keyframes,
            "seed": job.seed,
            "steps": job.steps,
            "guidance_scale": float(job.guidance_scale),
            "model_hash": self.model_hash,
            "encoding": job.encoding,
            "ocio_config": job.ocio_config or "",
            "source": os.path.abspath(job.source),
            "frame": frame,
            "job_key": self.key,
        }

    def colorize(self, shots: list[ShotPlan]) -> dict[int, int]:
        """Colorize every planned frame, window by window, with reading and writing overlapped.

        One reader thread (every source read goes through it, so a movie decoder is never used by two
        threads) fetches the next window while the pipeline works on this one; one writer thread
        writes a window's EXRs (and previews) while the pipeline works on the next. At most two
        windows of results are alive, so memory stays flat in clip length. ``frame_done`` is always
        called from this thread, after the file is on disk, in frame order; on cancel or error the
        writes already handed over are finished first, so nothing colorized is lost.
        """
        self.events.phase("colorize")
        total = len(self.frames)
        all_keyframes = sorted({k for s in shots for k in s.keyframes})
        assignment: dict[int, int] = {}
        self.timings.setdefault("pipeline_s", 0.0)
        self.timings.setdefault("write_s", 0.0)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(1, "coolcolor-read") as reader, ThreadPoolExecutor(1, "coolcolor-write") as writer:
            io = _WindowIO(self, reader, writer)
            try:
                for shot in shots:
                    if not shot.keyframes:
                        for f in range(shot.first, shot.last + 1):
                            self.fail(f, (shot.ranking or {}).get("error", "no keyframe"))
                        continue
                    for keyframe, seg_frames in shot.segments():
                        for f in seg_frames:
                            assignment[f] = keyframe
                        todo = [f for f in seg_frames if f not in self.done and f not in self.failed]
                        if todo:
                            self._colorize_segment(io, keyframe, todo, all_keyframes, total)
                        self.timings["colorize_s"] = time.perf_counter() - t0
            finally:
                io.finish_writes()
        self.timings["colorize_s"] = time.perf_counter() - t0
        return assignment

    def _colorize_segment(self, io: _WindowIO, keyframe: int, todo: list[int], all_keyframes: list[int],
                          total: int) -> None:
        job = self.job
        self.check_cancel()
        [(_, key_gray)] = io.read([keyframe]).result()
        if isinstance(key_gray, FrameReadError):
            for f in todo:
                self.fail(f, f"its keyframe {keyframe} cannot be read: {key_gray}")
            return
        windows = [todo[i : i + job.window] for i in range(0, len(todo), job.window)]
        next_read = io.read(windows[0])
        for index in range(len(windows)):
            read = next_read
            if index + 1 < len(windows):
                next_read = io.read(windows[index + 1])  # prefetch while this window is colorized
            self.check_cancel()
            window, grays = [], []
            for f, gray in read.result():
                if isinstance(gray, FrameReadError):
                    self.fail(f, str(gray))
                else:
                    window.append(f)
                    grays.append(gray)
            if not window:
                continue
            t = time.perf_counter()
            result = self.pipe(
                np.stack(grays), prompt=job.prompt, negative_prompt=job.negative_prompt,
                keyframe=key_gray, num_inference_steps=job.steps, guidance_scale=job.guidance_scale,
                seed=job.seed, progress=self.pipeline_progress(total), preview=job.preview or job.rgb_plate,
            )
            self.timings["pipeline_s"] += time.perf_counter() - t
            io.finish_writes()  # the previous window's files: at most two windows of results alive
            io.write(window, result, [self.provenance(f, keyframe, all_keyframes) for f in window])

    def write_frame(self, frame: int, ab: np.ndarray, rgb: np.ndarray | None, provenance: dict[str, Any]) -> str:
        """Write one frame's outputs (on the writer thread); returns the ab file's path."""
        if rgb is not None and self.job.preview:
            write_preview_png(preview_frame_path(self.job.output_dir, frame), rgb)
        write_resolve_outputs(self.job.output_dir, frame, ab, rgb, provenance, sidecar=self.job.resolve_sidecar,
                              plate=self.job.rgb_plate, encoding=self.job.encoding)
        path = ab_frame_path(self.job.output_dir, frame)
        write_ab_exr(path, ab, provenance)
        return path

    def frame_written(self, frame: int, path: str) -> None:
        self.written.append(frame)
        self.events.frame_done(frame, path)
        self.events.progress(self.frames_finished(), len(self.frames), self.job.steps, self.job.steps)


class _WindowIO:
    """The reader and writer threads of ``_Runner.colorize`` and the writes not yet reported."""

    def __init__(self, runner: _Runner, reader: ThreadPoolExecutor, writer: ThreadPoolExecutor) -> None:
        self.runner, self.reader, self.writer = runner, reader, writer
        self.pending: list[tuple[int, Future[str]]] = []

    def read(self, frames: list[int]) -> Future[list[tuple[int, np.ndarray | FrameReadError]]]:
        def read_all() -> list[tuple[int, np.ndarray | FrameReadError]]:
            out: list[tuple[int, np.ndarray | FrameReadError]] = []
            for f in frames:
                try:
                    out.append((f, self.runner.read_gray(f)))
                except FrameReadError as exc:
                    out.append((f, exc))
            return out

        return self.reader.submit(read_all)

    def write(self, window: list[int], result: Any, provenance: list[dict[str, Any]]) -> None:
        for i, f in enumerate(window):
            rgb = result.rgb[i] if result.rgb is not None else None
            self.pending.append((f, self.writer.submit(self._timed_write, f, result.ab[i], rgb, provenance[i])))

    def _timed_write(self, frame: int, ab: np.ndarray, rgb: np.ndarray | None, provenance: dict[str, Any]) -> str:
        t = time.perf_counter()
        try:
            return self.runner.write_frame(frame, ab, rgb, provenance)
        finally:
            self.runner.timings["write_s"] += time.perf_counter() - t

    def finish_writes(self) -> None:
        """Wait for every handed-over write, report each finished frame; then raise the first error."""
        error: BaseException | None = None
        pending, self.pending = self.pending, []
        for f, future in pending:
            try:
                path = future.result()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other writes
                error = error or exc
                continue
            self.runner.frame_written(f, path)
        if error is not None:
            raise error


def run_colorize_job(
    job: ColorizeJob, pipeline: CoolColorPipeline, events: JobEvents | None = None
) -> JobResult:
    """Run ``job`` on ``pipeline``; see the module docstring for the order of work and guarantees.

    Raises ``InputError`` (before any work) for bad input and ``JobCancelled`` when cancelled;
    frames that fail mid-clip are in ``JobResult.frames_failed``, not raised.
    """
    events = events or JobEvents()
    runner = _Runner(job, pipeline, events)
    try:
        runner.validate()
    except BaseException:
        if hasattr(runner, "source"):
            runner.source.close()
        raise
    shots: list[ShotPlan] | None = None
    try:
        runner.skipped = sorted(runner.done)
        if len(runner.done) == len(runner.frames):
            shots = _shots_from_manifest(runner.previous, runner.key)
            runner.write_manifest("complete", shots)
            events.progress(len(runner.frames), len(runner.frames), job.steps, job.steps)
            events.phase("done")
            return JobResult([], runner.skipped, {}, runner.manifest_path, timings=dict(runner.timings))
        shots = runner.plan()
        runner.write_manifest("running", shots)
        assignment = runner.colorize(shots)
        status = "complete" if not runner.failed else "complete_with_errors"
        runner.write_manifest(status, shots)
        events.phase("done")
        return JobResult(
            runner.written, runner.skipped, dict(runner.failed), runner.manifest_path,
            keyframes=assignment, timings=dict(runner.timings),
        )
    except JobCancelled as exc:
        runner.write_manifest("cancelled", shots, str(exc))
        raise
    except BaseException as exc:
        runner.write_manifest("failed", shots, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        runner.source.close()
