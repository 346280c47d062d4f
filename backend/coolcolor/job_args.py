"""The job flags shared by ``coolcolor colorize`` (runs here) and ``coolcolor submit`` (runs in the daemon).

Both build the same ``JobSpec``, so they take the same flags with the same names, defaults and help,
from this one helper; they had drifted (``--guidance-scale`` vs ``--guidance``, ``--keyframe N …`` vs a
repeated ``--keyframe``, no ``--clip-model``/``--window`` on submit). Defaults come from JobSpec itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from typing import Any, TypeVar

from coolcolor_protocol.abfiles import BUILTIN_ENCODINGS
from coolcolor_protocol.jobspec import MAX_STEPS, MAX_WINDOW, JobSpec

SpecT = TypeVar("SpecT", bound=JobSpec)

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(JobSpec) if f.default is not dataclasses.MISSING}


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the job's positional source, ``-o``, and every job field's flag to ``parser``."""
    d = _DEFAULTS
    parser.add_argument("source", metavar="INPUT", help="image sequence (name.%%04d.exr or name.####.exr), "
                        "one image, or a movie")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (created if needed)")
    parser.add_argument("--prompt", default=d["prompt"], help='what the colors should be, e.g. "a red car on a '
                        'sunny street"')
    parser.add_argument("--negative-prompt", default=d["negative_prompt"], metavar="TEXT",
                        help="colors to steer away from, e.g. \"sepia, washed out\" (default: none)")
    parser.add_argument("--keyframe", dest="keyframes", type=int, nargs="+", action="extend", default=[],
                        metavar="N", help="artist-marked keyframe(s), in the source's frame numbers (--keyframe 3 9 "
                        "or --keyframe 3 --keyframe 9); a shot without one gets an automatic keyframe")
    parser.add_argument("--reference", dest="references", type=reference_arg, action="append", default=[],
                        metavar="[FRAME=]IMAGE", help="a colour image the shot follows: FRAME=IMAGE is the graded "
                        "frame FRAME of the shot (its output is that image's colour), IMAGE alone an exemplar still "
                        "(repeatable)")
    parser.add_argument("--first", type=int, metavar="F", help="first frame to colorize (source numbering, inclusive)")
    parser.add_argument("--last", type=int, metavar="L", help="last frame to colorize (inclusive)")
    parser.add_argument("--seed", type=int, default=d["seed"], help=f"noise seed (default {d['seed']})")
    parser.add_argument("--steps", type=int, default=d["steps"],
                        help=f"diffusion steps, 1…{MAX_STEPS} (default {d['steps']})")
    parser.add_argument("--guidance-scale", type=float, default=d["guidance_scale"],
                        help=f"text guidance (default {d['guidance_scale']:g})")
    parser.add_argument("--encoding", default=d["encoding"], help=f"input encoding: {', '.join(BUILTIN_ENCODINGS)}, "
                        "or an OCIO colorspace with --ocio-config")
    parser.add_argument("--ocio-config", metavar="CONFIG", help="OCIO config file (or ocio:// URI) for --encoding")
    parser.add_argument("--preview", action="store_true", help="also write preview.NNNN.png (sRGB)")
    parser.add_argument("--clip-model", dest="clip_model_dir", metavar="DIR",
                        help="local CLIP model folder to rank automatic keyframes")
    parser.add_argument("--window", type=int, default=d["window"],
                        help=f"frames per model call, 1…{MAX_WINDOW} (memory only; default {d['window']})")
    parser.add_argument("--keyframes-only", action="store_true",
                        help="colorize only the keyframes (a quick look before the whole shot)")
    parser.add_argument("--resolve-sidecar", action="store_true",
                        help="also write ab_rg.NNNN.exr (R = a*, G = b*) for a Fusion Loader")
    parser.add_argument("--rgb-plate", action="store_true",
                        help="also write rgb.NNNN.exr: the plate's L* with the ab, in the job's encoding")


def reference_arg(text: str) -> dict[str, Any]:
    """``1040=graded/sh010.1040.png`` → a frame reference, ``still.jpg`` → an exemplar (argparse type)."""
    match = re.fullmatch(r"(\d+)=(.+)", text)
    if match:
        return {"frame": int(match.group(1)), "path": match.group(2)}
    if not text:
        raise argparse.ArgumentTypeError("empty reference: give FRAME=IMAGE or IMAGE")
    return {"frame": None, "path": text}


def job_from_args(args: argparse.Namespace, cls: type[SpecT] = JobSpec, *, absolute_paths: bool = False) -> SpecT:
    """The job the flags describe (not yet validated). ``absolute_paths`` for a daemon with another cwd."""

    def path(p: str | None) -> str | None:
        if p is None or not absolute_paths or p.startswith("ocio://"):
            return p
        return os.path.abspath(os.path.expanduser(p))

    values: dict[str, Any] = {
        "source": path(args.source), "output_dir": path(args.output), "prompt": args.prompt,
        "negative_prompt": args.negative_prompt, "first": args.first, "last": args.last,
        "keyframes": list(args.keyframes), "seed": args.seed, "steps": args.steps,
        "guidance_scale": args.guidance_scale, "encoding": args.encoding, "ocio_config": path(args.ocio_config),
        "preview": args.preview, "clip_model_dir": path(args.clip_model_dir), "window": args.window,
        "keyframes_only": args.keyframes_only, "resolve_sidecar": args.resolve_sidecar, "rgb_plate": args.rgb_plate,
        "references": [{"frame": r["frame"], "path": path(r["path"])} for r in getattr(args, "references", [])],
    }
    return cls(**values)
