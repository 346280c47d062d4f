"""Colorizing one segment (a keyframe and its frames) — the code every segment runner runs.

``colorize_segment`` reads the gray frames, calls the pipeline ``window`` frames at a time with the
segment's keyframe, and hands each frame's ab (and preview) to a ``FrameSink``. The default sink
writes ``ab.NNNN.exr`` straight into the output folder, atomically (temporary file, fsync, rename):
on a Ray worker that folder is shared storage, so only small records travel back to the driver.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np

from coolcolor import faults
from coolcolor.video.exr import write_ab_exr, write_preview_png, write_resolve_outputs
from coolcolor.video.job import ColorizeJob, ab_frame_path, preview_frame_path
from coolcolor.video.sources import FrameReadError

if TYPE_CHECKING:  # pragma: no cover
    from coolcolor.model.pipeline import CoolColorPipeline
    from coolcolor.video.plan import Segment


class FrameSink(Protocol):
    def write(self, frame: int, ab: np.ndarray, rgb: np.ndarray | None, provenance: dict[str, Any]) -> str:
        """Store one frame's outputs durably; return the ab file's path."""


class AbFolderSink:
    """``ab.NNNN.exr`` (+ the optional preview PNG, Resolve sidecar and RGB plate) in the job's output
    folder, each written atomically; the ab file last, so its presence means the frame is complete."""

    def __init__(self, job: ColorizeJob) -> None:
        self.job = job
        self.output_dir = job.output_dir

    def write(self, frame: int, ab: np.ndarray, rgb: np.ndarray | None, provenance: dict[str, Any]) -> str:
        job = self.job
        if rgb is not None and job.preview:
            write_preview_png(preview_frame_path(self.output_dir, frame), rgb)
        write_resolve_outputs(self.output_dir, frame, ab, rgb, provenance, sidecar=job.resolve_sidecar,
                              plate=job.rgb_plate, encoding=job.encoding)
        path = ab_frame_path(self.output_dir, frame)
        write_ab_exr(path, ab, provenance)
        return path


class SegmentEvents:
    """What ``colorize_segment`` reports; the driver's ``JobRun`` forwards it to ``JobEvents``."""

    def frame_done(self, frame: int, path: str) -> None:
        """The frame's ab file is durably on disk."""

    def frame_failed(self, frame: int, message: str) -> None:
        """A frame (or the segment's keyframe) could not be read; the segment goes on."""

    def step(self, step: int, steps_total: int) -> None:
        """After each diffusion step of the current window."""

    def check_cancel(self) -> None:
        """Raise (``JobCancelled``) to stop between steps and windows; finished writes are kept."""


@dataclass
class SegmentContext:
    """What a worker needs besides the segment: the job's settings and the identity stamped on files."""

    job: ColorizeJob
    key: str  # job_key: a later run recognises its own files by it
    model_hash: str
    keyframes: list[int]  # every keyframe of the job (provenance)
    timings: dict[str, float] = field(default_factory=dict)
    # coolcolor.model.pipeline.KeyframeKVCache of this worker: the keyframe denoised once per worker, not once
    # per window. Every segment runner passes one, so results stay bit-identical wherever a window runs.
    keyframe_cache: Any = None
    # prompt words the model ignores (provenance): the driver's, computed once per job (``run_job``)
    unknown_words: list[str] = field(default_factory=list)
    # The job's checked references (``open_job``; a Ray task and a farm task get the driver's): a file must
    # still hold the content the job was opened with. None: check them here from ``job.references``.
    # ``shots`` ((first, last) each) confines a frame reference to its shot; None: the job is one shot.
    # ``decoder``: the job's InputDecoder (float references).
    references: list[Any] | None = None
    shots: list[tuple[int, int]] | None = None
    decoder: Any = None
    _reference_images: dict[str, Any] = field(default_factory=dict, repr=False)

    def checked_references(self) -> list[Any]:
        if self.references is None:
            from coolcolor.references import CheckedReference, file_sha256

            self.references = [CheckedReference(r["frame"], r["path"], file_sha256(r["path"]))
                               for r in self.job.references]
        return self.references

    def references_for(self, frames: tuple[int, ...], plate_size: tuple[int, int]) -> list[Any]:
        """The ``ReferenceImage``s that ``frames`` (one segment, inside one shot) read: the frame references
        of their shot and every exemplar. Each file is decoded once per worker and must still hold the
        content the job was opened with (its sha256)."""
        from coolcolor.errors import InputError
        from coolcolor.references import ReferenceImage, check_reference
        from coolcolor.video.encoding import InputDecoder

        if self.decoder is None:
            self.decoder = InputDecoder(self.job.encoding, self.job.ocio_config)
        shot = next(((a, b) for a, b in self.shots or [] if a <= frames[0] <= b), None)
        out = []
        for ref in self.checked_references():
            if ref.frame is not None and shot is not None and not shot[0] <= ref.frame <= shot[1]:
                continue
            if ref.path not in self._reference_images:
                checked, image = check_reference(ref.frame, ref.path, plate_size, self.decoder.to_srgb)
                if checked.sha256 != ref.sha256:
                    raise InputError(f"reference {ref.path} changed since the job started (content hash differs)")
                self._reference_images[ref.path] = image.rgb
            out.append(ReferenceImage(self._reference_images[ref.path], ref.frame))
        return out

    def provenance(self, frame: int, keyframe: int) -> dict[str, Any]:
        job = self.job
        extra = {"references": [r.to_dict() for r in self.checked_references()]} if self.job.references else {}
        return {
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt,
            "keyframe": keyframe,
            "keyframes": self.keyframes,
            "seed": job.seed,
            "steps": job.steps,
            "guidance_scale": float(job.guidance_scale),
            "model_hash": self.model_hash,
            "encoding": job.encoding,
            "ocio_config": job.ocio_config or "",
            "source": os.path.abspath(job.source),
            "frame": frame,
            "job_key": self.key,
            "unknown_words": self.unknown_words,
            **extra,
        }

    def add_time(self, name: str, seconds: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + seconds


def colorize_segment(
    pipeline: CoolColorPipeline, segment: Segment, source: Callable[[int], np.ndarray], sink: FrameSink,
    events: SegmentEvents, context: SegmentContext,
) -> None:
    """Colorize ``segment.frames`` from ``segment.keyframe``, ``context.job.window`` frames per call.

    ``source(frame)`` gives a frame's gray image (raising ``FrameReadError``). One reader thread
    fetches the next window while the pipeline works on this one (every read goes through it, so a
    movie decoder is never used by two threads); one writer thread writes a window's files while the
    pipeline works on the next. At most two windows of results are alive. ``events.frame_done`` is
    called from this thread, after the file is on disk, in frame order; on cancel or error the
    writes already handed over are finished first, so nothing colorized is lost.
    """
    job = context.job
    with ThreadPoolExecutor(1, "coolcolor-read") as reader, ThreadPoolExecutor(1, "coolcolor-write") as writer:
        io = _WindowIO(source, sink, events, context, reader, writer)
        try:
            events.check_cancel()
            references: list[Any] = []
            if job.references:  # the references are the keyframes (issue 25): the gray keyframe is not read
                key_gray: Any = None
            else:
                [(_, key_gray)] = io.read([segment.keyframe]).result()
            if isinstance(key_gray, FrameReadError):
                for f in segment.frames:
                    events.frame_failed(f, f"its keyframe {segment.keyframe} cannot be read: {key_gray}")
                return
            windows = segment.windows(job.window)
            next_read = io.read(list(windows[0].frames))
            for index in range(len(windows)):
                read = next_read
                if index + 1 < len(windows):
                    next_read = io.read(list(windows[index + 1].frames))  # prefetch while this one runs
                events.check_cancel()
                window, grays = [], []
                for f, gray in read.result():
                    if isinstance(gray, FrameReadError):
                        events.frame_failed(f, str(gray))
                    else:
                        window.append(f)
                        grays.append(gray)
                if not window:
                    continue
                t = time.perf_counter()
                cache = {} if context.keyframe_cache is None else {"keyframe_cache": context.keyframe_cache}
                if job.references:
                    if not references:
                        references = context.references_for(segment.frames, grays[0].shape)
                    cache.update(references=references, frame_numbers=window)
                result = pipeline(
                    np.stack(grays), prompt=job.prompt, negative_prompt=job.negative_prompt,
                    keyframe=key_gray, num_inference_steps=job.steps, guidance_scale=job.guidance_scale,
                    seed=job.seed, progress=_step_reporter(events), preview=job.preview or job.rgb_plate, **cache,
                )
                context.add_time("unet_evaluations", float(getattr(result, "unet_evaluations", 0) or 0))
                context.add_time("pipeline_s", time.perf_counter() - t)
                io.finish_writes()  # the previous window's files: at most two windows of results alive
                io.write(window, result, [context.provenance(f, segment.keyframe) for f in window])
        finally:
            io.finish_writes()


def _step_reporter(events: SegmentEvents) -> Callable[[Any], None]:
    def report(event: Any) -> None:
        events.check_cancel()
        if getattr(event, "phase", "") == "denoise":
            events.step(event.step, event.total_steps)

    return report


class _WindowIO:
    """The reader and writer threads of ``colorize_segment`` and the writes not yet reported."""

    def __init__(self, source: Callable[[int], np.ndarray], sink: FrameSink, events: SegmentEvents,
                 context: SegmentContext, reader: ThreadPoolExecutor, writer: ThreadPoolExecutor) -> None:
        self.source, self.sink, self.events, self.context = source, sink, events, context
        self.reader, self.writer = reader, writer
        self.pending: list[tuple[int, Future[str]]] = []

    def read(self, frames: list[int]) -> Future[list[tuple[int, np.ndarray | FrameReadError]]]:
        def read_all() -> list[tuple[int, np.ndarray | FrameReadError]]:
            out: list[tuple[int, np.ndarray | FrameReadError]] = []
            t = time.perf_counter()
            for f in frames:
                try:
                    out.append((f, self.source(f)))
                except FrameReadError as exc:
                    out.append((f, exc))
            self.context.add_time("read_s", time.perf_counter() - t)
            return out

        return self.reader.submit(read_all)

    def write(self, window: list[int], result: Any, provenance: list[dict[str, Any]]) -> None:
        for i, f in enumerate(window):
            rgb = result.rgb[i] if result.rgb is not None else None
            write = self.writer.submit(self._timed_write, f, result.ab[i], rgb, provenance[i], i == 0)
            self.pending.append((f, write))

    def _timed_write(self, frame: int, ab: np.ndarray, rgb: np.ndarray | None, provenance: dict[str, Any],
                     first_of_window: bool) -> str:
        t = time.perf_counter()
        try:
            path = self.sink.write(frame, ab, rgb, provenance)
        finally:
            self.context.add_time("write_s", time.perf_counter() - t)
        if first_of_window:
            faults.hit("window_first_written")  # the rest of the window not yet written
        return path

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
            self.events.frame_done(f, path)
        if error is not None:
            raise error
