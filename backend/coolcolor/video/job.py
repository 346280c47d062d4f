"""One colorize job's contract: what a job is, how it is checked, what identifies it, where its files go.

The video engine's callers (``coolcolor colorize``, the daemon, the farm and Ray paths) and its driver
(``coolcolor.video.run``) share these definitions:

- ``ColorizeJob`` (the job's fields, checked by ``validate``) and ``open_job``: **validate once and
  open the source once** — fields, the encoding (and OCIO config), the source (missing files, gaps,
  unreadable headers, mismatched sizes, the frame range), keyframes inside the range, a writable
  output folder. Each problem is an ``InputError`` naming it, raised before any pixel is colorized.
  ``OpenedJob`` is handed on, so nothing is checked or opened twice.
- ``job_key``: everything that decides the pixels, the source taken by its *identity* (names, sizes,
  sampled bytes; see ``source_identity``), not its absolute path, so a job resumes on the same files
  mounted elsewhere. Files carrying another key are never overwritten.
- ``JobEvents`` (what a running job reports), ``JobResult`` (what it returns), ``JobCancelled``.
- ``ab_frame_path``, ``job_output_files``: the files a job writes.

The driver — plan once, hand the segments to a ``SegmentRunner``, write the manifest — is
``coolcolor.video.run`` (``run_job``, ``run_colorize_job``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coolcolor.errors import CoolColorError, InputError
from coolcolor.references import CheckedReference, check_reference, file_sha256
from coolcolor.video.encoding import InputDecoder
from coolcolor.video.ownership import describe_job, refuse_if_another_job_holds
from coolcolor.video.sources import FrameSource, open_source

from coolcolor_protocol.abfiles import (
    AB_FILE_PATTERN,
    MANIFEST_NAME,
    PREVIEW_FILE_PATTERN,
    RESOLVE_SIDECAR_PATTERN,
    RGB_PLATE_PATTERN,
    frame_file,
)
from coolcolor_protocol.errors import ProtocolError
from coolcolor_protocol.frames import KeyframeOutsideRange, check_keyframes_in_range
from coolcolor_protocol.identity import settings_digest
from coolcolor_protocol.jobspec import JobSpec

__all__ = [
    "MANIFEST_NAME", "ColorizeJob", "JobEvents", "JobCancelled", "JobResult", "OpenedJob", "open_job", "job_key",
    "source_identity", "ab_frame_path", "preview_frame_path", "job_output_files", "check_outputs_spare_source",
    "check_references",
]


@dataclass
class ColorizeJob(JobSpec):
    """What to colorize and how: the job contract ``coolcolor_protocol.JobSpec`` as the engine runs it.

    Fields, defaults, limits and the reasons a value is refused are JobSpec's (one definition, shared
    with the daemon and the plugins). The engine adds only what needs the file system — the source
    opens with every frame present, the output folder is writable (``open_job``) — and reports
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


def ab_frame_path(output_dir: str, frame: int) -> str:
    """``output_dir/ab.{frame:04d}.exr`` — the daemon uses this too."""
    return os.path.join(output_dir, frame_file(AB_FILE_PATTERN, frame))


def preview_frame_path(output_dir: str, frame: int) -> str:
    return os.path.join(output_dir, frame_file(PREVIEW_FILE_PATTERN, frame))


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
    """A job checked once and its source opened once; handed to the driver and the segment runners."""

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
    and passes the result on (````coolcolor.video.run.run_job(..., opened=)````) so the source is not opened again.
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
