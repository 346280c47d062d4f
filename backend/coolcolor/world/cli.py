"""``coolcolor world render`` and ``coolcolor world eval``."""

from __future__ import annotations

import argparse
import json
import math

from coolcolor.errors import InputError
from coolcolor.world.clip import clip_summary, parse_size, render_clip
from coolcolor.world.degrade import Degradations
from coolcolor.world.metrics import evaluate, format_table
from coolcolor.world.scene import Motion


def register(subparsers) -> None:
    world = subparsers.add_parser(
        "world", help="procedural old-film clips with exact ground truth, and quality metrics",
        description="Procedural old-film world: render clips with exact ground truth; score predictions.")
    sub = world.add_subparsers(dest="world_command", metavar="WORLD_COMMAND")
    world.set_defaults(func=lambda args: (world.print_help(), 2)[1])

    r = sub.add_parser("render", help="render a clip (PNG sequences + clip.json + truth.npz)")
    r.add_argument("out", metavar="OUT", help="output directory")
    r.add_argument("--seed", type=int, default=0, help="scene seed, >= 0 (default 0)")
    r.add_argument("--frames", type=int, default=16, help="number of frames (default 16)")
    r.add_argument("--size", default="128x128", help="WIDTHxHEIGHT (default 128x128)")
    r.add_argument("--objects", type=int, default=None, help="number of objects, 1-4 (default: from the seed)")
    r.add_argument("--colors", default=None, help="object colors back to front, comma-separated palette names")
    r.add_argument("--damage", type=float, default=1.0,
                   help="strength of every old-film degradation (0 = clean input; default 1)")
    r.add_argument("--degrade", default="", metavar="NAME=S,…",
                   help=f"override single degradations ({', '.join(Degradations.names())})")
    r.add_argument("--static", action="store_true", help="no object or camera motion")
    r.set_defaults(func=_render)

    e = sub.add_parser("eval", help="score a colorized clip against a rendered clip")
    e.add_argument("pred", metavar="PRED", help="prediction: directory of RGB frames, a*b* EXR frames, .npy/.npz")
    e.add_argument("gt", metavar="GT", help="ground-truth clip directory written by 'world render'")
    e.add_argument("--caption", type=int, default=0, help="index of the caption used as the prompt (default 0)")
    e.add_argument("--flow", choices=("gt", "dis"), default="gt",
                   help="flow for the flicker metric: exact ground truth or DIS on the gray input")
    e.add_argument("--ab-channels", default=None, metavar="A,B", help="EXR channel names of a*, b*")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.set_defaults(func=_eval)


def _render(args: argparse.Namespace) -> int:
    size = parse_size(args.size)
    if not math.isfinite(args.damage) or args.damage < 0:
        raise InputError(f"--damage must be a number >= 0, got {args.damage}")
    deg = Degradations.parse(args.degrade, base=Degradations.old_film(args.damage))
    colors = [c for c in (args.colors or "").split(",") if c.strip()] or None
    clip = render_clip(args.seed, args.frames, size, degradations=deg,
                       motion=Motion.static() if args.static else Motion(),
                       objects=args.objects, object_colors=colors)
    out = clip.save(args.out)
    summary = clip_summary(clip)
    print(f"wrote {clip.n_frames} frames of {size[0]}x{size[1]} to {out}")
    for lay in summary["layers"]:
        print(f"  layer {lay['id']}: {lay['kind']:<6} {lay['noun']:<10} {lay['color']}")
    for i, c in enumerate(clip.captions):
        print(f"  caption {i}: {c}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    ab_channels = None
    if args.ab_channels:
        parts = [p.strip() for p in args.ab_channels.split(",")]
        if len(parts) != 2 or not all(parts):
            raise InputError(f"--ab-channels must be two channel names separated by a comma, got {args.ab_channels!r}")
        ab_channels = (parts[0], parts[1])
    result = evaluate(args.pred, args.gt, caption=args.caption, flow=args.flow, ab_channels=ab_channels)
    if args.json:
        print(json.dumps(_finite(result), indent=1))
    else:
        print(format_table(result))
    return 0


def _finite(value):
    """NaN (a metric that is undefined, e.g. flicker of a one-frame clip) becomes JSON null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
