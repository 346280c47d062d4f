"""Planning a job: shots, one keyframe per run of frames, and the segments left to colorize.

The plan is made once, by the job's driver (``coolcolor.video.run``), whatever runs the segments. It
reads the run through ``PlanningRun``, the few things planning needs, not the driver's whole state. Its unit of work is a
``Segment``: a keyframe and frames that follow it. Once the keyframe is fixed, every window of a
segment is independent of the others (each pipeline call recomputes the keyframe's K/V from the same
gray keyframe and the same per-frame noise), so a segment can be cut into windows and the windows
run anywhere, in any order, with the same pixels — which is what lets a pool of workers share one
long shot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from coolcolor.video.job import ColorizeJob
from coolcolor.video.shots import DEFAULT_MIN_SHOT_FRAMES, Shot, ShotDetector
from coolcolor.video.sources import FrameReadError

if TYPE_CHECKING:  # pragma: no cover
    from coolcolor.model.pipeline import CoolColorPipeline


@dataclass
class ShotPlan:
    first: int
    last: int
    keyframes: list[int]
    keyframe_source: str  # "artist" | "auto" | "reference" (graded frames) | "exemplar" (stills only)
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


@dataclass(frozen=True)
class Segment:
    """A keyframe and the frames (in order) colorized from it: the unit of work of every segment runner."""

    keyframe: int
    frames: tuple[int, ...]

    def windows(self, size: int) -> list[Segment]:
        """This segment cut into pieces of at most ``size`` frames (one pipeline call each)."""
        return [Segment(self.keyframe, self.frames[i : i + size]) for i in range(0, len(self.frames), size)]

    def to_dict(self) -> dict[str, Any]:
        return {"keyframe": self.keyframe, "frames": list(self.frames)}


@dataclass
class JobPlan:
    shots: list[ShotPlan]
    segments: list[Segment]  # frames still to colorize (done and failed frames left out)
    assignment: dict[int, int] = field(default_factory=dict)  # every planned frame → its keyframe

    @property
    def keyframes(self) -> list[int]:
        return sorted({k for s in self.shots for k in s.keyframes})

    def windows(self, size: int) -> list[Segment]:
        """Every segment cut into windows of at most ``size`` frames, in plan order."""
        return [w for s in self.segments for w in s.windows(size)]

    @property
    def frames_todo(self) -> int:
        return sum(len(s.frames) for s in self.segments)


def shots_from_manifest(previous: dict | None, key: str) -> list[ShotPlan] | None:
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


AutoKeyframe = Callable[[Shot], ShotPlan]


class PlanningRun(Protocol):
    """What planning reads of a run and reports to it (the driver's ``JobRun`` is one)."""

    job: ColorizeJob
    key: str  # job_key: a stored plan is reused only for the same job
    frames: list[int]
    done: set[int]  # frames an earlier run finished
    failed: dict[int, str]
    timings: dict[str, float]

    def phase(self, name: str) -> None: ...

    def check_cancel(self) -> None: ...

    def read_gray(self, frame: int) -> np.ndarray: ...

    def fail(self, frame: int, message: str) -> None: ...


def auto_keyframe(
    pipeline: CoolColorPipeline, job: ColorizeJob, read_gray: Callable[[int], np.ndarray], shot: Shot,
    failed: dict[int, str], fail: Callable[[int, str], None], scorer: Any = None,
    check_cancel: Callable[[], None] = lambda: None,
) -> ShotPlan:
    """Choose a shot's keyframe (``coolcolor.video.keyframes``); unreadable candidates are reported to ``fail``."""
    from coolcolor.video.keyframes import candidate_frames, rank_keyframes

    grays = {}
    for f in candidate_frames(shot.first, shot.last):
        if f in failed:
            continue
        try:
            grays[f] = read_gray(f)
        except FrameReadError as exc:
            fail(f, str(exc))
    if not grays:  # every candidate unreadable: fall back on any readable frame of the shot
        for f in shot.frames:
            if f in failed:
                continue
            try:
                grays[f] = read_gray(f)
                break
            except FrameReadError as exc:
                fail(f, str(exc))
    if not grays:
        return ShotPlan(shot.first, shot.last, [], "auto", {"error": "no readable frame in the shot"})
    ranking = rank_keyframes(
        pipeline, grays, job.prompt, job.negative_prompt, steps=job.steps,
        guidance_scale=job.guidance_scale, seed=job.seed, clip_scorer=scorer,
        progress=lambda _e: check_cancel(),
    )
    return ShotPlan(shot.first, shot.last, [ranking.chosen], "auto", ranking.to_dict())


def plan_job(run: PlanningRun, choose_keyframe: AutoKeyframe, previous: dict | None = None) -> JobPlan:
    """Shots (one streaming pass over the gray frames), keyframes, then the segments still to do.

    ``choose_keyframe`` picks the keyframe of a shot that has no artist keyframe (it needs the model:
    the local segment runner runs ``auto_keyframe`` in-process, the Ray one on a worker). A plan stored
    in ``previous`` (the manifest of an earlier run of the same job) is reused as it is.
    """
    shots = shots_from_manifest(previous, run.key)
    if shots is None:
        shots = _find_shots_and_keyframes(run, choose_keyframe)
    else:
        run.timings["shots_s"] = run.timings["keyframes_s"] = 0.0
    segments: list[Segment] = []
    assignment: dict[int, int] = {}
    for shot in shots:
        if not shot.keyframes:
            for f in range(shot.first, shot.last + 1):
                run.fail(f, (shot.ranking or {}).get("error", "no keyframe"))
            continue
        for keyframe, frames in shot.segments():
            if run.job.keyframes_only:  # "preview keyframe": the keyframe alone, from itself
                frames = [keyframe]
            for f in frames:
                assignment[f] = keyframe
            todo = tuple(f for f in frames if f not in run.done and f not in run.failed)
            if todo:
                segments.append(Segment(keyframe, todo))
    return JobPlan(shots, segments, assignment)


def _find_shots_and_keyframes(run: PlanningRun, choose_keyframe: AutoKeyframe) -> list[ShotPlan]:
    run.phase("shots")
    t = time.perf_counter()
    detector = ShotDetector(DEFAULT_MIN_SHOT_FRAMES)
    for f in run.frames:
        run.check_cancel()
        try:
            detector.add(f, run.read_gray(f))
        except FrameReadError as exc:
            run.fail(f, str(exc))
    shots: list[Shot] = detector.shots()
    run.timings["shots_s"] = time.perf_counter() - t

    run.phase("keyframes")
    t = time.perf_counter()
    artist = sorted({int(k) for k in run.job.keyframes})
    graded = sorted(r["frame"] for r in run.job.references if r["frame"] is not None)
    exemplars = any(r["frame"] is None for r in run.job.references)
    plans = []
    for shot in shots:
        marked = [k for k in artist if shot.first <= k <= shot.last]
        referenced = [k for k in graded if shot.first <= k <= shot.last]
        if referenced:  # the artist's graded frames are the shot's keyframes: no automatic choice to make
            plans.append(ShotPlan(shot.first, shot.last, referenced, "reference"))
        elif exemplars:  # every frame reads the stills; the keyframe only groups the frames (and is the preview)
            from coolcolor.video.keyframes import candidate_frames

            plans.append(ShotPlan(shot.first, shot.last, marked or candidate_frames(shot.first, shot.last, 1),
                                  "exemplar"))
        else:
            plans.append(ShotPlan(shot.first, shot.last, marked, "artist") if marked else choose_keyframe(shot))
    run.timings["keyframes_s"] = time.perf_counter() - t
    return plans
