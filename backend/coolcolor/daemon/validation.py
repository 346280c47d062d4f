"""What the daemon checks before it accepts a job, and the result-cache key (docs/architecture.md#protocol-and-daemon).

The protocol package has already checked types, lengths and counts (``validate_job``). Here come the
checks that need the file system: the source opens and its frames exist (the video engine's own
``open_source``, so there is one definition of a valid source), every path is readable or writable
and lies inside the configured roots, and the engine's ``ColorizeJob.from_dict`` accepts the fields.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from coolcolor.errors import CoolColorError
from coolcolor_protocol import BAD_REQUEST, TOO_LARGE, ProtocolError
from coolcolor_protocol.frames import KeyframeOutsideRange, check_keyframes_in_range
from coolcolor_protocol.messages import MAX_FRAMES_PER_JOB


@dataclass
class CheckedJob:
    spec: dict[str, Any]  # JobSpec.to_dict() with paths absolute and first/last resolved (what the worker runs)
    first: int
    last: int
    source_identity: list[list[Any]]  # [name, size, mtime_ns] of every input file the job reads

    @property
    def frames(self) -> range:
        return range(self.first, self.last + 1)


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
    from coolcolor.video.job import ColorizeJob, check_outputs_spare_source
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
    job["references"] = [dict(r, path=_check_path(f"job.references[{i}]", r["path"], roots))
                         for i, r in enumerate(job.get("references") or [])]
    try:
        with open_source(job["source"], job.get("first"), job.get("last")) as source:
            info = source.info
            if info.frame_count > MAX_FRAMES_PER_JOB:
                raise ProtocolError(TOO_LARGE, f"job.source has {info.frame_count} frames in range; limit "
                                    f"{MAX_FRAMES_PER_JOB} per job (split the shot with first/last)")
            files = source.files()
            check_outputs_spare_source(ColorizeJob.from_dict(job), source)
        unreadable = [p for p in files if not os.access(p, os.R_OK)]
        if unreadable:
            raise ProtocolError(BAD_REQUEST, f"job.source: {len(unreadable)} frame files are not readable, "
                                f"e.g. {unreadable[0]}")
        identity = [_stat_identity(p) for p in files]
        for name in ("ocio_config",):
            if job.get(name):
                identity.append(_stat_identity(job[name]))
        try:
            check_keyframes_in_range(job.get("keyframes", []), info.first, info.last)
        except KeyframeOutsideRange as exc:
            raise ProtocolError(BAD_REQUEST, f"job.keyframes: {exc}") from None
        if job["references"]:  # the engine's own checks (decodes, colour, the plate's size, frame in range)
            from coolcolor.video.encoding import InputDecoder
            from coolcolor.video.job import check_references

            check_references(ColorizeJob.from_dict(dict(job, first=info.first, last=info.last)), info,
                             InputDecoder(job.get("encoding", "srgb"), job.get("ocio_config")))
            identity += [_stat_identity(r["path"]) for r in job["references"]]
        # the range the job covers, resolved (null = the source's bound): replies and status name real frames
        job["first"], job["last"] = info.first, info.last
        spec = ColorizeJob.from_dict(job).to_dict()  # unknown fields stay in it: journaled, not used
    except ProtocolError:
        raise
    except (CoolColorError, ValueError, TypeError, OSError) as exc:
        raise ProtocolError(BAD_REQUEST, f"job: {exc}") from None
    return CheckedJob(spec=spec, first=info.first, last=info.last, source_identity=identity)


def canonical_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def cache_key(checked: CheckedJob, model_hash: str) -> str:
    """The engine's ``job_key`` (everything that decides the pixels) plus the identity (path, size,
    mtime) of every input file: equal keys mean equal outputs, so finished frames can be reused."""
    from coolcolor.video.job import ColorizeJob, job_key

    key = job_key(ColorizeJob.from_dict(checked.spec), checked.first, checked.last, model_hash)
    return canonical_hash({"v": 1, "job_key": key, "inputs": checked.source_identity})
