"""``coolcolor train`` (both stages) and ``coolcolor train-eval`` (the results in docs/model-card.md#results).

Also runnable without the main command: ``python -m coolcolor.train.cli train --config FILE``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence

from coolcolor.cli_types import int_in
from coolcolor.train.config import TrainConfig
from coolcolor.world.spec import WORLD_VERSIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a CoolColor model (VAE stage or UNet stage with progressive equivariant training)",
        description="Train from a JSON/TOML config; flags override its values. Resumes from the run folder's "
        "latest checkpoint. Ctrl-C or SIGTERM saves a checkpoint before stopping.",
    )
    train.add_argument("--config", metavar="FILE", help="JSON or TOML config (keys: see coolcolor.train.config)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one config key (VALUE is JSON, else a string); repeatable")
    train.add_argument("--output", help="run folder")
    train.add_argument("--steps", type=int, help="total optimizer steps of the run (overrides the config's steps)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to log.jsonl)")
    train.add_argument("--gpus", type=int_in(1), default=None, metavar="N",
                       help="data parallel on N CUDA GPUs of this machine: runs `accelerate launch --multi_gpu "
                       "--num_processes N -m coolcolor.train.cli train …` with the other arguments; batch_size is "
                       "per GPU (global batch = batch_size × N). See docs/production-training.md")
    train.set_defaults(func=_train)

    data = subparsers.add_parser("data", help="prepare a folder of color images for training (see data prepare)")
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    prep = data_sub.add_parser(
        "prepare",
        help="filter and caption a folder of images (and .tar shards) into a dataset training reads",
        description="Walk IMAGES_DIR (and uncompressed .tar shards in it); drop unreadable, small and "
        "under-saturated images (Hasler–Süsstrunk colorfulness); keep sidecar .txt captions, caption the rest "
        "with a local BLIP folder; drop captions that name no color; write DATASET/manifest.jsonl. "
        "Resumable: a re-run decides only the files not decided yet. Never uses the network. "
        "Then: coolcolor train --set data=DATASET …",
    )
    prep.add_argument("images", metavar="IMAGES_DIR", help="folder of colour images (and uncompressed .tar shards) to prepare")
    prep.add_argument("-o", "--output", required=True, metavar="DATASET", help="dataset folder to write (or resume)")
    prep.add_argument("--captioner", metavar="BLIP_DIR",
                      help="local BLIP folder (transformers) for images without a sidecar caption; without it they "
                      "are dropped")
    prep.add_argument("--min-colorfulness", type=float, default=15.0,
                      help="drop images less colorful than this (Hasler–Süsstrunk M; default 15, the paper's choice)")
    prep.add_argument("--min-size", type=int_in(1), default=256, help="drop images whose shorter side is below this")
    prep.add_argument("--workers", type=int_in(0), default=None,
                      help="processes that decode and measure (default: CPU count, at most 8; 0 or 1: this process)")
    prep.add_argument("--caption-batch", type=int_in(1), default=16, help="images per captioner batch")
    prep.add_argument("--no-progress", action="store_true", help="no progress bar (the summary is still printed)")
    prep.set_defaults(func=_data_prepare)

    ev = subparsers.add_parser(
        "train-eval",
        help="measure a trained model on held-out world clips (adherence, ΔE2000, colorfulness, flicker)",
    )
    ev.add_argument("models", nargs="+", metavar="NAME=CHECKPOINT", help="model folders to compare")
    ev.add_argument("--clips", type=int_in(1), default=16, help="held-out world clips rendered (default 16)")
    ev.add_argument("--frames", type=int_in(2), default=8, help="frames per clip (default 8)")
    ev.add_argument("--size", type=int_in(8), default=64, help="clip width and height in pixels (default 64)")
    ev.add_argument("--steps", type=int_in(1, 1000), default=20, help="diffusion steps per clip (default 20)")
    ev.add_argument("--guidance", type=float, default=5.0, help="text guidance scale (default 5)")
    ev.add_argument("--degradation", type=float, default=1.0, help="old-film damage strength of the clips (0: clean)")
    ev.add_argument("--leave-out", action="store_true",
                    help="also measure clips featuring a held-out shape family, layout and color synonyms "
                    "(the model's own leave-out set if it was trained with one, else the default set: a baseline)")
    ev.add_argument("--leave-out-clips", type=int, default=None, metavar="N",
                    help="clips per leave-out set (default: --clips)")
    ev.add_argument("--leave-out-world-version", type=int, default=None, choices=WORLD_VERSIONS,
                    help="world version of the leave-out clips (default: the model's training world); the same "
                    "version for every model compares them on the same clips")
    ev.add_argument("--world-version", type=int, default=1, choices=WORLD_VERSIONS,
                    help="world version of the usual held-out clips (default 1: the clips docs/model-card.md measures)")
    ev.add_argument("--json", metavar="FILE", help="also write all numbers as JSON")
    ev.add_argument("--threads", type=int_in(0), default=0,
                    help="torch CPU threads (0: torch's default; 1 is much faster on a machine shared with other jobs)")
    ev.set_defaults(func=_evaluate)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    from coolcolor.errors import InputError

    overrides: dict = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set {item!r}: expected KEY=VALUE")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    if args.output:
        overrides["output"] = args.output
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.config:
        return TrainConfig.from_file(args.config, overrides)
    return TrainConfig.from_dict(overrides, "flags")


def _train(args: argparse.Namespace) -> int:
    from coolcolor.train.trainer import Trainer

    import os

    from coolcolor.errors import InputError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = config_from_args(args)
    if os.path.exists(config.output) and not os.path.isdir(config.output):
        raise InputError(f"run folder {config.output} is a file, not a folder (--output)")
    if args.gpus is not None and args.gpus > 1:
        return _launch(args.gpus, config, _train_args(args))
    if args.gpus == 1:
        from coolcolor.train.distributed import check_gpus

        check_gpus(1)  # one GPU: this process trains on it
    command = "coolcolor " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0] else ""
    final = Trainer(config, command=command).run(progress=not args.no_progress)
    print(f"trained model written to {final}")
    return 0


def _launch(gpus: int, config, train_args: list[str]) -> int:
    """``--gpus N``: check there are N GPUs (before anything is written), then run the same training under
    ``accelerate launch`` in N processes, each started with this command's arguments less ``--gpus``.

    Why a child ``accelerate launch`` rather than forking workers here (``notebook_launcher``) or
    ``torch.multiprocessing.spawn``: it is the very command a diffusers user would type, so ``--gpus N``
    and ``accelerate launch`` cannot drift apart; its torchrun agent sets up each rank's environment and
    stops all ranks when one fails; and this process never initialises CUDA before the workers start."""
    import subprocess

    from coolcolor.errors import InputError
    from coolcolor.train.distributed import check_gpus, launch_command, launched_processes

    if launched_processes() > 1:
        raise InputError("--gpus starts the processes itself; under accelerate launch / torchrun leave it out")
    check_gpus(gpus)
    if config.stage != "unet":
        raise InputError(f"--gpus {gpus}: data parallel training trains the unet stage; run the {config.stage} "
                         "stage on one GPU")
    if config.device not in ("auto", "cuda"):
        raise InputError(f"--gpus {gpus}: the config's device is {config.device!r}; each process gets its GPU from "
                         "the launcher, so set device = auto or cuda")
    command = launch_command(gpus, train_args)
    logging.getLogger(__name__).info("running %s", shlex.join(command))
    done = subprocess.run(command)
    if done.returncode != 0:
        raise InputError(f"training on {gpus} GPUs stopped with exit status {done.returncode} (its messages "
                         "are above; the same command resumes from the last checkpoint)")
    return 0


def _train_args(args: argparse.Namespace) -> list[str]:
    """The ``train`` arguments that reproduce ``args`` (less ``--gpus``), for the launched processes."""
    out = ["--config", args.config] if args.config else []
    for item in args.set:
        out += ["--set", item]
    if args.output:
        out += ["--output", args.output]
    if args.steps is not None:
        out += ["--steps", str(args.steps)]
    if args.no_progress:
        out.append("--no-progress")
    return out


def _data_prepare(args: argparse.Namespace) -> int:
    import math

    from coolcolor.errors import InputError
    from coolcolor.train.data import blip_captioner
    from coolcolor.train.prepare import prepare

    if not (math.isfinite(args.min_colorfulness) and args.min_colorfulness >= 0):
        raise InputError(f"--min-colorfulness must be a finite number ≥ 0, got {args.min_colorfulness}")
    if not os.path.isdir(args.images):
        raise InputError(f"images folder {args.images} does not exist or is not a folder")
    captioner = blip_captioner(args.captioner) if args.captioner else None
    summary = prepare(args.images, args.output, captioner, args.min_colorfulness, args.min_size, args.workers,
                      args.caption_batch, progress=not args.no_progress)
    print(summary.line())
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import math
    import os

    from coolcolor.errors import InputError
    from coolcolor.model.pipeline import CoolColorPipeline
    from coolcolor.train.evaluate import evaluate_models, markdown_table, model_path

    models = {}
    for item in args.models:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = item, item
        models[name] = path
    if not (math.isfinite(args.degradation) and args.degradation >= 0):
        raise InputError(f"--degradation must be a number ≥ 0, got {args.degradation}")
    if not math.isfinite(args.guidance):
        raise InputError(f"--guidance must be a finite number, got {args.guidance}")
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            raise InputError(f"--json {args.json}: folder {folder} does not exist")
        if os.path.isdir(args.json):
            raise InputError(f"--json {args.json} is a folder; give a file name")
    if args.leave_out_clips is not None and args.leave_out_clips < 1:
        raise InputError("--leave-out-clips must be ≥ 1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    # Every model must load before the first is measured: a typo in the last one would otherwise cost
    # the whole evaluation of the others (tiny models load in a fraction of a second).
    for name, path in models.items():
        CoolColorPipeline.from_pretrained(model_path(path))
    results = evaluate_models(models, clips=args.clips, frames=args.frames, size=args.size, steps=args.steps,
                              guidance=args.guidance, degradation=args.degradation, leave_out=args.leave_out,
                              leave_out_clips=args.leave_out_clips, world_version=args.world_version,
                              leave_out_world_version=args.leave_out_world_version)
    print(markdown_table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m coolcolor.train.cli``: the training commands alone (a killed run has saved its checkpoint)."""
    from coolcolor.cli import main as coolcolor_main

    return coolcolor_main(argv, modules=("coolcolor.train.cli",), prog="python -m coolcolor.train.cli")


if __name__ == "__main__":
    sys.exit(main())
