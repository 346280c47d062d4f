"""What the daemon checks before it accepts a job (docs/architecture.md#protocol-and-daemon): ``check_job`` makes
the job's ``CheckedJob``, once, on arrival; the journal keeps it, and the result-cache key and the run are
made from it (issue 23 §2).

The protocol package has already checked types, lengths and counts (``validate_job``). Here come the
checks that need the file system: the source opens and its frames exist (the video engine's own
``open_source``, so there is one definition of a valid source), every path is readable or writable
and lies inside the configured roots, and the engine's ``ColorizeJob.from_dict`` accepts the fields.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coolcolor.errors import CoolColorError
from coolcolor_protocol import BAD_REQUEST, TOO_LARGE, ProtocolError
from coolcolor_protocol.frames import KeyframeOutsideRange, check_keyframes_in_range
from coolcolor_protocol.identity import cache_key
from coolcolor_protocol.messages import MAX_FRAMES_PER_JOB

if TYPE_CHECKING:  # pragma: no cover
    from coolcolor.video.job import ColorizeJob


@dataclass(frozen=True)
class CheckedJob:
    """A submitted job as the daemon checked it, once, on arrival: what the source *is* and which frames
    the job covers, so that nothing opens the source again to know it (the journal keeps these facts
    beside the job; the cache key and the cache copy's job key are made from them). The run still opens
    the source to read its frames — later, from the journal, maybe after a restart.

    The model's facts (its hash, the prompt's unknown words) come once the model is loaded
    (``with_model``); until then ``model_hash`` is None and there is no cache key.
    """

    spec: dict[str, Any]  # JobSpec.to_dict() with paths absolute and first/last resolved (what the worker runs)
    first: int
    last: int
    source_identity: dict[str, Any]  # the engine's ``source_identity``: the "source" of its ``job_key``
    input_files: list[list[Any]]  # [path, size, mtime_ns] of every input file the job reads (the cache's exactness)
    reference_sha256: list[str] = field(default_factory=list)  # the content of each of spec["references"]
    model_hash: str | None = None
    unknown_words: list[str] = field(default_factory=list)  # the prompt's words the served model ignores

    @property
    def frames(self) -> range:
        return range(self.first, self.last + 1)

    def job(self) -> ColorizeJob:
        from coolcolor.video.job import ColorizeJob

        return ColorizeJob.from_dict(self.spec)

    def with_model(self, model_hash: str, unknown_words: list[str]) -> CheckedJob:
        return dataclasses.replace(self, model_hash=model_hash, unknown_words=list(unknown_words))

    def job_key(self) -> str:
        """The engine's ``job_key`` (everything that decides the pixels), from the facts: no source open."""
        from coolcolor.video.job import job_key

        if self.model_hash is None:
            raise ValueError("job_key before the model's facts (with_model)")
        return job_key(self.job(), self.first, self.last, self.model_hash, self.source_identity,
                       self.reference_sha256 or None)

    def cache_key(self) -> str:
        """Equal keys mean equal outputs, so finished frames can be reused (``coolcolor_protocol.identity``)."""
        return cache_key(self.job_key(), self.input_files)

    def facts(self) -> dict[str, Any]:
        """What the journal keeps beside the spec (JSON)."""
        return {"first": self.first, "last": self.last, "source_identity": self.source_identity,
                "input_files": self.input_files, "reference_sha256": self.reference_sha256,
                "model_hash": self.model_hash, "unknown_words": self.unknown_words}

    @classmethod
    def from_facts(cls, spec: dict[str, Any], facts: dict[str, Any]) -> CheckedJob:
        return cls(spec=spec, **facts)


def _inside(path: str, roots: list[str]) -> bool:
    real = os.path.realpath(path)
    for root in roots:
        root_real = os.path.realpath(root)
        if real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep):
            return True
    return False


def _check_path(label: str, path: str, roots: list[str], *, write: bool = False) -> str:
    path = os.path.abspath(os.path.expanduser(path))
    if roots and not _inside(path, roots):
        raise ProtocolError(BAD_REQUEST, f"{label} {path} is outside the allowed roots {roots}")
    if write:
        probe = path
        while not os.path.exists(probe):
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
        if not os.path.isdir(probe):
            raise ProtocolError(BAD_REQUEST, f"{label} {path}: {probe} exists and is not a folder")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise ProtocolError(BAD_REQUEST, f"{label} {path}: folder {probe} is not writable")
    else:
        if not os.path.exists(path):
            raise ProtocolError(BAD_REQUEST, f"{label} not found: {path}")
        if not os.access(path, os.R_OK):
            raise ProtocolError(BAD_REQUEST, f"{label} {path} is not readable")
    return path


def _stat_identity(path: str) -> list[Any]:
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


def check_job(job: dict[str, Any], roots: list[str]) -> CheckedJob:
    """Raise ProtocolError (400/413) naming the problem, or return the job ready to journal."""
    from coolcolor.video.job import ColorizeJob, check_outputs_spare_source, source_identity
    from coolcolor.video.sources import open_source, parse_sequence_pattern

    job = dict(job)
    try:
        pattern = parse_sequence_pattern(job["source"])
    except CoolColorError as exc:
        raise ProtocolError(BAD_REQUEST, f"job.source: {exc}") from None
    if pattern is not None:
        folder = os.path.dirname(pattern[0]) or "."
        _check_path("job.source folder", folder, roots)
        job["source"] = os.path.join(os.path.abspath(folder), os.path.basename(job["source"]))
    else:
        job["source"] = _check_path("job.source", job["source"], roots)
    job["output_dir"] = _check_path("job.output_dir", job["output_dir"], roots, write=True)
    for name in ("ocio_config", "clip_model_dir"):
        if job.get(name):
            job[name] = _check_path(f"job.{name}", job[name], roots)
    reference_sha256: list[str] = []
    job["references"] = [dict(r, path=_check_path(f"job.references[{i}]", r["path"], roots))
                         for i, r in enumerate(job.get("references") or [])]
    try:
        with open_source(job["source"], job.get("first"), job.get("last")) as source:
            info = source.info
            if info.frame_count > MAX_FRAMES_PER_JOB:
                raise ProtocolError(TOO_LARGE, f"job.source has {info.frame_count} frames in range; limit "
                                    f"{MAX_FRAMES_PER_JOB} per job (split the shot with first/last)")
            files = source.files()
            footage = source_identity(source)
            check_outputs_spare_source(ColorizeJob.from_dict(job), source)
        unreadable = [p for p in files if not os.access(p, os.R_OK)]
        if unreadable:
            raise ProtocolError(BAD_REQUEST, f"job.source: {len(unreadable)} frame files are not readable, "
                                f"e.g. {unreadable[0]}")
        input_files = [_stat_identity(p) for p in files]
        for name in ("ocio_config",):
            if job.get(name):
                input_files.append(_stat_identity(job[name]))
        try:
            check_keyframes_in_range(job.get("keyframes", []), info.first, info.last)
        except KeyframeOutsideRange as exc:
            raise ProtocolError(BAD_REQUEST, f"job.keyframes: {exc}") from None
        if job["references"]:  # the engine's own checks (decodes, colour, the plate's size, frame in range)
            from coolcolor.video.encoding import InputDecoder
            from coolcolor.video.job import check_references

            references = check_references(ColorizeJob.from_dict(dict(job, first=info.first, last=info.last)), info,
                                          InputDecoder(job.get("encoding", "srgb"), job.get("ocio_config")))
            reference_sha256 = [r.sha256 for r in references]  # in the order of the job's (normalized) references
            input_files += [_stat_identity(r["path"]) for r in job["references"]]
        # the range the job covers, resolved (null = the source's bound): replies and status name real frames
        job["first"], job["last"] = info.first, info.last
        spec = ColorizeJob.from_dict(job).to_dict()  # unknown fields stay in it: journaled, not used
    except ProtocolError:
        raise
    except (CoolColorError, ValueError, TypeError, OSError) as exc:
        raise ProtocolError(BAD_REQUEST, f"job: {exc}") from None
    return CheckedJob(spec=spec, first=info.first, last=info.last, source_identity=footage,
                      input_files=input_files, reference_sha256=reference_sha256)
