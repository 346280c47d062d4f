"""``coolcolor colorize``: the main job — footage in, ab EXR sequence (+ manifest, previews) out.

    coolcolor colorize INPUT --prompt "…" [--keyframe N …] [--first F --last L] [--model PATH] -o OUT

INPUT is an image sequence (``name.%04d.exr`` or ``name.####.exr``), one image, or a movie.
A shot without a ``--keyframe`` gets an automatic one (stored in the manifest and reused when the job
is re-run). Re-running the same command resumes: finished frames are not redone.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, TextIO

from coolcolor.cli_types import one_line, plain_text
from coolcolor.job_args import add_job_arguments, job_from_args
from coolcolor.model.prompt_words import ignored_words_warning
from coolcolor.model.resolve import resolve_model
from coolcolor.video.job import ColorizeJob, JobEvents, open_job
from coolcolor.video.run import run_colorize_job, run_job, unknown_words

_PHASES = {
    "validate": "checking the input",
    "shots": "finding shots",
    "keyframes": "choosing keyframes",
    "colorize": "colorizing",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "colorize",
        help="colorize footage: an image sequence, an image or a movie → ab EXR sequence",
        description=plain_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_job_arguments(p)  # the job's flags, the same as `coolcolor submit`'s
    p.add_argument("--model", metavar="PATH", help="'default', a training run folder or a CoolColor checkpoint "
                   "folder (default: $COOLCOLOR_MODEL, else the embedded default model coolcolor-tiny)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--ray", metavar="auto|ADDRESS|local:N", default=None,
                   help="run the windows on a Ray cluster: auto (the one `ray start` made here), HOST:PORT, or "
                   "local:N (a new cluster of N workers on 127.0.0.1); needs pip install 'coolcolor[ray]'")
    p.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="actors in the Ray pool (default: one per GPU of the cluster, else one per CPU)")
    p.add_argument("--dtype", default=None, help="fp32, fp16 or bf16 (default: fp16 on CUDA, fp32 on CPU)")
    p.set_defaults(func=run)


class ProgressLine(JobEvents):
    """A one-line progress display on stderr: frames done/total, diffusion step, rate and ETA.

    On a terminal the line is redrawn in place; otherwise one line per finished frame.

    The ETA counts measured diffusion steps, not finished frames: frames are announced only once their
    window's files are written, which lags the model by a window, so a rate of frames overestimated the
    rest many times over at the start. Each pipeline call (``window`` frames) takes ``steps_total``
    steps; the time per step measured so far times the steps still to run is the ETA. Before the
    first step it says "estimating…".
    """

    def __init__(self, stream: TextIO | None = None, window: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.window = max(1, int(window))
        self.clock = clock
        self.started: float | None = None
        self.first_done: int | None = None
        self.steps_seen = 0
        self._last_done: int | None = None
        self.failures: list[str] = []
        self._last_len = 0

    def _emit(self, text: str, final: bool = False) -> None:
        if self.tty:
            pad = max(0, self._last_len - len(text))
            self.stream.write("\r" + text + " " * pad + ("\n" if final else ""))
            self._last_len = 0 if final else len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def phase(self, name: str) -> None:
        if name == "colorize":
            self.started = self.clock()  # the rate counts model time, not shot and keyframe analysis
            self.steps_seen = 0
        if name in _PHASES:
            if self.tty and self._last_len:
                self.stream.write("\n")
                self._last_len = 0
            self._emit(f"coolcolor colorize: {_PHASES[name]}…", final=not self.tty)

    def eta_seconds(self, frames_done: int, frames_total: int, step: int, steps_total: int) -> float | None:
        """Seconds left from the measured time per step, or None before a step has been measured."""
        if self.started is None or self.steps_seen == 0:
            return None
        per_step = (self.clock() - self.started) / self.steps_seen
        todo = frames_total - (self.first_done or 0)
        steps_planned = -(-todo // self.window) * max(1, steps_total)
        return max(0.0, steps_planned - self.steps_seen) * per_step

    def progress(self, frames_done: int, frames_total: int, step: int, steps_total: int) -> None:
        now = self.clock()
        if self.started is None:
            self.started = now
        if self.first_done is None:
            self.first_done = frames_done  # frames done by earlier runs do not count towards the rate
        # A diffusion step leaves frames_done as it was; a finished frame raises it (it is no step).
        if step > 0 and frames_done == (self._last_done if self._last_done is not None else frames_done):
            self.steps_seen += 1
        self._last_done = frames_done
        elapsed = now - self.started
        if frames_done >= frames_total:
            tail = f"done in {int(elapsed // 60):02d}:{int(elapsed % 60):02d}"
        else:
            eta = self.eta_seconds(frames_done, frames_total, step, steps_total)
            tail = "ETA estimating…" if eta is None else f"ETA {int(eta // 60):02d}:{int(eta % 60):02d}"
            done_here = frames_done - (self.first_done or 0)
            if done_here > 0 and elapsed > 0:
                tail = f"{done_here / elapsed:.2f} frames/s  {tail}"
        width = 24
        filled = int(width * frames_done / max(1, frames_total))
        bar = "#" * filled + "-" * (width - filled)
        text = f"[{bar}] {frames_done}/{frames_total} frames  step {step}/{steps_total}  {tail}"
        if self.tty or step == steps_total:
            self._emit(text)

    def waiting(self, message: str) -> None:
        if self.tty and self._last_len:
            self.stream.write("\n")
            self._last_len = 0
        self.stream.write(f"coolcolor colorize: {message}\n")
        self.stream.flush()

    def frame_failed(self, frame: int, message: str) -> None:
        self.failures.append(message)
        if self.tty and self._last_len:
            self.stream.write("\n")
            self._last_len = 0
        self.stream.write(f"coolcolor colorize: error: {one_line(message)}\n")  # OIIO's errors span lines


def run(args: argparse.Namespace) -> int:
    job = job_from_args(args, ColorizeJob)
    with open_job(job) as opened:  # bad input is reported before the model is loaded; opened once
        if opened.source.note:
            sys.stderr.write(f"coolcolor colorize: note: {one_line(opened.source.note)}\n")
        events = ProgressLine(window=job.window)
        if getattr(args, "ray", None):
            result = _run_on_ray(args, job, opened, events)
        else:
            pipeline = resolve_model(args.model, args.device, args.dtype).load_pipeline()
            _warn(pipeline.prompt_warning(job.prompt))
            result = run_colorize_job(job, pipeline, events, opened=opened)
    if events.tty and events._last_len:
        sys.stderr.write("\n")
    print(
        f"{len(result.frames_written)} frame(s) written, {len(result.frames_skipped)} already done, "
        f"{len(result.frames_failed)} failed; manifest: {result.manifest_path}"
    )
    return 0 if result.ok else 1


def _warn(text: str | None) -> None:
    """A warning about the job (an empty prompt, words the model ignores) as one stderr line."""
    if text:
        sys.stderr.write(f"coolcolor colorize: warning: {one_line(text)}\n")


def _run_on_ray(args: argparse.Namespace, job: ColorizeJob, opened, events: JobEvents):
    """The same driver as a local run, with the windows on a Ray actor pool (scaleout/ray_cluster.py)."""
    from coolcolor.scaleout.ray_cluster import RaySegmentRunner, connect_ray

    local_workers = connect_ray(args.ray)
    import ray

    try:
        runner = RaySegmentRunner(args.model, workers=args.ray_workers or local_workers, device=args.device,
                                  dtype=args.dtype)
        try:
            _warn(ignored_words_warning(job.prompt, unknown_words(runner.prompt_reader, job.prompt)))
            return run_job(job, runner, events, opened=opened)
        finally:
            runner.close()
    finally:
        ray.shutdown()
