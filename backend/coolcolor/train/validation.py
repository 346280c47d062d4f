"""Validation images: every ``validation_every`` steps the run colorizes a fixed set of gray inputs.

The set (``validation_set``) is the same for every step of a run: ``validation_world`` held-out world
frames (seeds from ``HELD_OUT_SEED_BASE`` up, which training never draws; their first caption as the
prompt) and up to ``validation_real`` held-out real photographs of the real-footage catalog that are
installed (``coolcolor real install``; their truthful caption), centre-cropped to the working size; item
k is sampled with seed k. Each step is written as::

    OUTPUT/validation/inputs/NN-NAME.png          the gray inputs (written once)
    OUTPUT/validation/step-NNNNNNN/NN-NAME.png    the colorized results
    OUTPUT/validation/step-NNNNNNN/index.json     step, prompts, seeds, sources, whether the EMA was used
    OUTPUT/validation/step-NNNNNNN/index.html     the same as a page: input | result | prompt

The images are made with the weights the final model would get now: the EMA when the run keeps one, the
LoRA adapters merged. They never touch training: the sampler draws from its own seeded generator, the
global RNG states are restored afterwards, the trainable modules return to train mode, and the UNet used
is a separate plain copy (``lora.plain_unet``), so the loss curve is the same with or without validation.
A step's folder appears whole (written beside it, then renamed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from coolcolor.errors import InputError
from coolcolor.model.checkpoint import Components
from coolcolor.train.config import TrainConfig

FOLDER = "validation"


@dataclass(frozen=True)
class ValidationItem:
    name: str  # file stem, e.g. "00-world-1000000000"
    gray: np.ndarray  # H×W float32 in [0, 1]
    prompt: str
    seed: int
    source: str  # what the input is, for the index


def validation_set(config: TrainConfig) -> list[ValidationItem]:
    """The run's fixed validation inputs (see the module docstring)."""
    from coolcolor.train.data import HELD_OUT_SEED_BASE
    from coolcolor.world import Degradations, render_clip
    from coolcolor.world.spec import WorldSpec

    size = (config.resolution, config.resolution)
    world = WorldSpec.from_json(config.world, "world") if config.data == "world" else WorldSpec()
    inputs: list[tuple[str, np.ndarray, str, str]] = []
    for i in range(config.validation_world):
        clip = render_clip(HELD_OUT_SEED_BASE + i, 1, size, degradations=Degradations.old_film(1.0), world=world)
        inputs.append((f"world-{HELD_OUT_SEED_BASE + i}", clip.gray[0], clip.captions[0],
                       f"held-out world frame, seed {HELD_OUT_SEED_BASE + i}, old-film damage 1.0"))
    inputs.extend(_real_inputs(config, size))
    return [ValidationItem(f"{k:02d}-{name}", np.asarray(gray, np.float32), prompt, k, source)
            for k, (name, gray, prompt, source) in enumerate(inputs)]


def _real_inputs(config: TrainConfig, size: tuple[int, int]) -> list[tuple[str, np.ndarray, str, str]]:
    """Held-out (eval) photographs of the real-footage catalog that are installed here, at most
    ``validation_real``; none when the data is not installed (validation then uses world frames only)."""
    from coolcolor.real.bench import centre_crop_resize
    from coolcolor.real.catalog import load_catalog, read_image, verified_path
    from coolcolor.world import luminance_gray

    found = []
    data_dir = Path(config.real_data) if config.real_data else None
    for item in load_catalog().select("eval", "photo"):
        if len(found) >= config.validation_real:
            break
        try:
            path = verified_path(item, data_dir)
            rgb = read_image(path)
        except InputError:
            continue
        gray = luminance_gray(np.clip(centre_crop_resize(rgb[..., :3], size), 0, 1))
        found.append((f"real-{item.id}", gray, item.caption, f"held-out real photograph {item.id} ({path.name})"))
    return found


@contextlib.contextmanager
def _isolated(modules: list[torch.nn.Module], device: torch.device):
    """Eval mode for ``modules`` and untouched global RNG streams for the duration; both restored."""
    modes = [(m, m.training) for module in modules for m in module.modules()]
    devices = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        for module in modules:
            module.eval()
        try:
            yield
        finally:
            for m, training in modes:
                m.train(training)


def write_validation(run: Path, step: int, components: Components, unet: torch.nn.Module,
                     items: list[ValidationItem], steps: int, ema: bool, device: torch.device) -> Path:
    """Colorize ``items`` with ``components`` and ``unet`` (a plain UNet, see ``lora.plain_unet``) into
    ``run/validation/step-NNNNNNN``; returns that folder."""
    from coolcolor.model.pipeline import CoolColorPipeline

    root = run / FOLDER
    inputs = root / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    for item in items:
        if not (inputs / f"{item.name}.png").is_file():
            _write_png(inputs / f"{item.name}.png", np.repeat(item.gray[..., None], 3, -1))
    final = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    live = [m for m in (*components.modules()[1:], unet) if m is not None]
    try:
        with _isolated(live, device):
            # Its own UNet and scheduler (set_timesteps changes a scheduler): training's stay as they were.
            scheduler = type(components.scheduler).from_config(components.scheduler.config)
            pipe = CoolColorPipeline(dataclasses.replace(components, unet=unet, scheduler=scheduler))
            for item in items:
                result = pipe(item.gray[None], prompt=item.prompt, num_inference_steps=steps, seed=item.seed)
                _write_png(tmp / f"{item.name}.png", result.rgb[0])
        entries = [{"file": f"{i.name}.png", "input": f"../inputs/{i.name}.png", "prompt": i.prompt,
                    "seed": i.seed, "source": i.source} for i in items]
        index = {"step": step, "ema": ema, "diffusion_steps": steps, "items": entries}
        (tmp / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        (tmp / "index.html").write_text(_html(index), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _write_png(path: Path, rgb: np.ndarray) -> None:
    u8 = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    if not cv2.imwrite(str(path), cv2.cvtColor(u8, cv2.COLOR_RGB2BGR)):  # cv2 reports failure only this way
        raise OSError(f"could not write {path} (is the disk full?)")


def _html(index: dict) -> str:
    rows = "".join(
        f"<tr><td><img src=\"{html.escape(e['input'])}\"></td><td><img src=\"{html.escape(e['file'])}\"></td>"
        f"<td>{html.escape(e['prompt'])}<br><small>seed {e['seed']} · {html.escape(e['source'])}</small></td></tr>\n"
        for e in index["items"])
    weights = "EMA weights" if index["ema"] else "training weights"
    return (f"<!doctype html><meta charset=\"utf-8\"><title>validation, step {index['step']}</title>\n"
            f"<style>img{{width:192px;image-rendering:pixelated}}td{{vertical-align:top;padding:4px}}</style>\n"
            f"<h1>Step {index['step']}</h1><p>{weights}, {index['diffusion_steps']} diffusion steps</p>\n"
            f"<table><tr><th>input</th><th>result</th><th>prompt</th></tr>\n{rows}</table>\n")
