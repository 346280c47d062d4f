"""``coolcolor init --from-sd15``, ``coolcolor demo`` and ``coolcolor words``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    init = subparsers.add_parser(
        "init",
        help="turn a Stable Diffusion 1.5 diffusers folder into an untrained CoolColor checkpoint",
        description="Widen the UNet's conv_in with a zero-initialised F_in for the gray latent, switch the "
        "scheduler to DDIM and write coolcolor.json. The result behaves exactly like SD-1.5 until trained.",
    )
    init.add_argument("--from-sd15", dest="sd_dir", required=True, metavar="SD_DIR", help="SD-1.5 diffusers folder")
    init.add_argument("out", metavar="OUT", help="new checkpoint folder (must not exist or be empty)")
    init.add_argument("--resolution", type=int, default=512, help="working resolution, long side (default 512)")
    init.set_defaults(func=_init)

    demo = subparsers.add_parser(
        "demo",
        help="colorize a generated gray clip with the tiny preset (random weights) to check the installation",
        description="Runs the whole pipeline — VAE, DDIM with classifier-free guidance, keyframe attention, "
        "luminance replacement — on the tiny preset. Its weights are random, so the colors mean nothing.",
    )
    demo.add_argument("-o", "--output", default="out/demo", help="folder for the PNG results (default out/demo)")
    demo.add_argument("--frames", type=int, default=8, help="frames of the generated clip (default 8)")
    demo.add_argument("--steps", type=int, default=20, help="diffusion steps (default 20)")
    demo.add_argument("--prompt", default="a red ball on green grass under a blue sky",
                      help='text that guides the colors (default "a red ball on green grass under a blue sky")')
    demo.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    demo.set_defaults(func=_demo)

    words = subparsers.add_parser(
        "words",
        help="list the words the model knows (a prompt's other words are ignored)",
        description="Print the words the model's tokenizer knows, one per line; a prompt's words outside this "
        "list are dropped (colorize and the plugins warn about them). A model with a sub-word tokenizer "
        "(SD-1.5's CLIP) spells any word; then only its token limit is printed.",
    )
    words.add_argument("--model", metavar="PATH", help="'default', a training run folder or a CoolColor checkpoint "
                       "folder (default: $COOLCOLOR_MODEL, else the embedded default model coolcolor-tiny)")
    words.set_defaults(func=_words)


def _init(args: argparse.Namespace) -> int:
    from coolcolor.model.checkpoint import init_from_sd15

    out = init_from_sd15(args.sd_dir, args.out, resolution=args.resolution)
    print(f"wrote untrained CoolColor checkpoint to {out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    import time

    import cv2
    import numpy as np

    from coolcolor.errors import InputError
    from coolcolor.model.presets import tiny_pipeline

    if args.frames < 1:
        raise InputError(f"--frames must be at least 1, got {args.frames}")
    if args.steps < 1:
        raise InputError(f"--steps must be at least 1, got {args.steps}")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)  # before the work: a bad -o is reported at once
    gray = _moving_disc_clip(args.frames, 96, 128)
    pipe = tiny_pipeline(seed=0)
    start = time.perf_counter()
    result = pipe(gray, prompt=args.prompt, keyframe=0, num_inference_steps=args.steps, seed=args.seed)
    seconds = time.perf_counter() - start

    def write_png(path: Path, image: np.ndarray) -> None:
        if not cv2.imwrite(str(path), image):  # cv2 reports a failed write (a full disk) only by returning False
            raise InputError(f"could not write {path} (is the disk full?)")

    for i, (g, rgb) in enumerate(zip(gray, result.rgb, strict=True)):
        write_png(out / f"gray.{i:04d}.png", np.round(g * 255).astype(np.uint8))
        write_png(out / f"color.{i:04d}.png", cv2.cvtColor(np.round(rgb * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    np.save(out / "ab.npy", result.ab)
    print(
        f"colorized {len(gray)} frames of {gray.shape[2]}x{gray.shape[1]} with the tiny preset (random weights) "
        f"in {seconds:.1f}s ({result.unet_evaluations / len(gray):.0f} UNet evaluations per frame); "
        f"results in {out}/"
    )
    return 0


def _words(args: argparse.Namespace) -> int:
    import sys

    from coolcolor.model.prompt_words import known_words, token_limit
    from coolcolor.model.resolve import resolve_model

    model = resolve_model(args.model, "cpu")
    tokenizer = model.load_tokenizer()
    words = known_words(tokenizer)
    if words is None:
        print(f"{model.name}: its tokenizer spells any word in sub-word pieces, so no word is unknown; a prompt is "
              f"read up to {token_limit(tokenizer)} tokens")
        return 0
    print("\n".join(words))
    print(f"coolcolor words: {len(words)} words known to {model.name}; a prompt's other words are ignored",
          file=sys.stderr)
    return 0


def _moving_disc_clip(frames: int, height: int, width: int):
    """A shaded disc gliding over a gradient: enough structure to exercise the pipeline."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    clip = np.empty((frames, height, width), np.float32)
    for t in range(frames):
        cx, cy, r = width * (0.3 + 0.4 * t / max(frames - 1, 1)), height * 0.5, height * 0.25
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2) / r
        background = 0.3 + 0.4 * y / height
        disc = 0.8 - 0.3 * np.clip(d, 0, 1) ** 2
        clip[t] = np.where(d < 1, disc, background)
    return clip
