"""``coolcolor colorize``: the main job — footage in, ab EXR sequence (+ manifest, previews) out.

    coolcolor colorize INPUT --prompt "…" [--keyframe N …] [--first F --last L]
                       [--model PATH] -o OUT

INPUT is an image sequence (``name.%04d.exr`` or ``name.####.exr``), one image, or a movie.
Re-running the same command resumes: finished frames are not redone.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TextIO

from coolcolor.errors import InputError
from coolcolor.job_args import add_job_arguments, job_from_args
from coolcolor.video.job import ColorizeJob, JobEvents, check_job_input, run_colorize_job

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
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_job_arguments(p)  # the job's flags, the same as `coolcolor submit`'s
    p.add_argument("--model", metavar="PATH", help="CoolColor checkpoint folder (default: the embedded default model)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.set_defaults(func=run)


def load_pipeline(model: str | None, device: str | None):
    """The pipeline for ``--model``, or the embedded default model when none is given."""
    import torch

    from coolcolor.pipeline import CoolColorPipeline

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not model:
        from coolcolor.default_model import default_model_path

        model = str(default_model_path())  # CheckpointError naming the folder if it is missing
    if not os.path.isdir(model):
        raise InputError(f"model folder not found: {model}")
    return CoolColorPipeline.from_pretrained(model, device=device)


class ProgressLine(JobEvents):
    """A one-line progress display on stderr: frames done/total, diffusion step, rate and ETA.

    On a terminal the line is redrawn in place; otherwise one line per finished frame.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started: float | None = None
        self.first_done: int | None = None
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
            self.started = time.monotonic()  # the rate counts model time, not shot and keyframe analysis
        if name in _PHASES:
            if self.tty and self._last_len:
                self.stream.write("\n")
                self._last_len = 0
            self._emit(f"coolcolor colorize: {_PHASES[name]}…", final=not self.tty)

    def progress(self, frames_done: int, frames_total: int, step: int, steps_total: int) -> None:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        if self.first_done is None:
            self.first_done = frames_done  # frames done by earlier runs do not count towards the rate
        done_here = frames_done - (self.first_done or 0)
        elapsed = now - self.started
        if done_here > 0 and frames_done < frames_total:
            eta = elapsed / done_here * (frames_total - frames_done)
            tail = f"{done_here / elapsed:.2f} frames/s  ETA {int(eta // 60):02d}:{int(eta % 60):02d}"
        elif frames_done >= frames_total:
            tail = f"done in {int(elapsed // 60):02d}:{int(elapsed % 60):02d}"
        else:
            tail = "ETA --:--"
        width = 24
        filled = int(width * frames_done / max(1, frames_total))
        bar = "#" * filled + "-" * (width - filled)
        text = f"[{bar}] {frames_done}/{frames_total} frames  step {step}/{steps_total}  {tail}"
        if self.tty or step == steps_total:
            self._emit(text)

    def frame_failed(self, frame: int, message: str) -> None:
        self.failures.append(message)
        if self.tty and self._last_len:
            self.stream.write("\n")
            self._last_len = 0
        self.stream.write(f"coolcolor colorize: error: {message}\n")


def run(args: argparse.Namespace) -> int:
    job = job_from_args(args, ColorizeJob)
    check_job_input(job)[1].close()  # bad input is reported before the model is loaded
    pipeline = load_pipeline(args.model, args.device)
    events = ProgressLine()
    result = run_colorize_job(job, pipeline, events)
    if events.tty and events._last_len:
        sys.stderr.write("\n")
    print(
        f"{len(result.frames_written)} frame(s) written, {len(result.frames_skipped)} already done, "
        f"{len(result.frames_failed)} failed; manifest: {result.manifest_path}"
    )
    return 0 if result.ok else 1
