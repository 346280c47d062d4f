"""``manifest.json``: what a job is, its plan and how far it got — written only by the job's driver.

Workers (local threads or Ray actors) write ab files and report small records; the driver alone
writes this file (atomically), at the start of the colorize phase and at the end, so two writers
never race on it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from coolcolor.video.exr import AB_CHANNELS, atomic_write
from coolcolor.video.job import ColorizeJob
from coolcolor.video.plan import ShotPlan
from coolcolor_protocol.abfiles import AB_FILE_PATTERN, MANIFEST_NAME, PREVIEW_FILE_PATTERN

MANIFEST_FORMAT = "coolcolor-job-manifest"
MANIFEST_VERSION = 1


def load_manifest(output_dir: str) -> dict | None:
    """The manifest in ``output_dir`` if it is one of ours, else None (missing, unreadable, foreign)."""
    try:
        with open(os.path.join(output_dir, MANIFEST_NAME), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT else None


@dataclass(frozen=True)
class ManifestJob:
    """What the manifest says of the job and its run that does not change while it runs."""

    job: ColorizeJob
    key: str  # job_key
    source: dict[str, Any]  # SourceInfo.to_dict()
    source_identity: dict[str, Any]
    encoding: dict[str, Any]  # InputDecoder.describe()
    references: list[dict[str, Any]]  # CheckedReference.to_dict() each: path and content sha256 (issue 25)
    model_hash: str
    resolution: int
    executor: str  # which segment runner: "local", "ray", "openjd"
    unknown_words: list[str]
    frames_total: int


class RunProgress(Protocol):
    """How far the run got (the driver's ``JobRun`` is one)."""

    started: float  # time.time() at the start
    timings: dict[str, float]
    written: list[int]  # this run's frames
    skipped: list[int]  # an earlier run's
    failed: dict[int, str]


class ManifestWriter:
    """Writes the manifest of one run: ``job`` fixed, the progress passed to each ``write``."""

    def __init__(self, job: ManifestJob) -> None:
        self.job = job
        self.path = os.path.join(job.job.output_dir, MANIFEST_NAME)

    def write(self, status: str, shots: list[ShotPlan] | None, run: RunProgress, error: str | None = None) -> None:
        fixed, job = self.job, self.job.job
        info = fixed.source
        colorize_s = run.timings.get("colorize_s", 0.0)
        timings = {k: round(v, 4) for k, v in run.timings.items()}
        timings["total_s"] = round(time.time() - run.started, 4)
        if run.written and colorize_s > 0:
            timings["frames_per_s"] = round(len(run.written) / colorize_s, 4)
        done = sorted(set(run.skipped) | set(run.written))
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "status": status,
            "error": error,
            "job": job.to_dict(),
            "job_key": fixed.key,
            "source": info,
            "source_identity": fixed.source_identity,
            "model": {"hash": fixed.model_hash, "resolution": int(fixed.resolution)},
            "executor": fixed.executor,
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt,
            "unknown_words": fixed.unknown_words,
            "seed": job.seed,
            "encoding": fixed.encoding,
            "keyframes": sorted({k for s in shots or [] for k in s.keyframes}),
            "references": fixed.references,
            "shots": [asdict(s) for s in shots] if shots is not None else None,
            "frames": {
                "first": info["first"],
                "last": info["last"],
                "total": fixed.frames_total,
                "done": len(done),
                "written_this_run": sorted(run.written),
                "skipped_this_run": run.skipped,
                "failed": {str(k): v for k, v in sorted(run.failed.items())},
            },
            "outputs": {
                "ab": AB_FILE_PATTERN,
                "ab_channels": list(AB_CHANNELS),
                "ab_pixel_type": "half",
                "ab_definition": "CIE a*, b* (D65, skimage Lab) of the display-sRGB rendering of the input, "
                "fitted to the sRGB gamut for the input's own L*",
                "preview": PREVIEW_FILE_PATTERN if job.preview else None,
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

        atomic_write(self.path, write)
