"""Measure trained models on held-out world clips: the README's results table.

Clips use world seeds from ``HELD_OUT_SEED_BASE`` up, which training never draws (see ``train.data``).
Each clip is colorized with its first caption (it names every layer) as the prompt, once with
frames treated independently (keyframe attention off) and once with frame 0 as the keyframe.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from coolcolor.train.data import HELD_OUT_SEED_BASE
from coolcolor.world import Degradations, evaluate, render_clip
from coolcolor.world.metrics import Prediction

METRICS = ("text_adherence", "delta_e2000", "colorfulness", "flicker_ab_rms", "cdc_ab")


def held_out_clips(count: int, frames: int, size: int, degradation: float = 1.0) -> list:
    return [render_clip(HELD_OUT_SEED_BASE + i, frames, (size, size), degradations=Degradations.old_film(degradation))
            for i in range(count)]


def model_path(name_or_path: str) -> Path:
    if name_or_path in ("default", "coolcolor-tiny"):
        from coolcolor.default_model import default_model_path

        return default_model_path()
    path = Path(name_or_path)
    return path / "final" if (path / "final" / "coolcolor.json").is_file() else path  # a run folder


def _named_layer_results(scores: dict) -> list[bool]:
    """Right or wrong, per named layer that is visible in the clip: what adherence is pooled from."""
    return [r["correct"] for r in scores["layers"] if r["correct"] is not None]


def evaluate_pipeline(pipe, clips: list, keyframe: bool, steps: int = 20, guidance: float = 5.0) -> dict:
    """Mean metrics over ``clips``; adherence is pooled over all named layers of all clips."""
    per_clip: dict[str, list[float]] = {m: [] for m in METRICS}
    correct = named = 0
    start = time.time()
    for clip in clips:
        result = pipe(clip.gray, prompt=clip.captions[0], keyframe=0 if keyframe else None,
                      num_inference_steps=steps, guidance_scale=guidance, seed=0)
        scores = evaluate(Prediction(rgb=result.rgb, ab=None, source="pipeline"), clip, caption=0)
        for m in METRICS:
            per_clip[m].append(float(scores[m]))
        rows = _named_layer_results(scores)
        correct, named = correct + sum(rows), named + len(rows)
    out = {m: float(np.nanmean(v)) for m, v in per_clip.items()}
    out["text_adherence"] = correct / named if named else math.nan
    out.update(named_layers=named, correct_layers=correct, clips=len(clips), seconds=round(time.time() - start, 1))
    return out


def evaluate_vae_ceiling(pipe, clips: list) -> dict:
    """Adherence and ΔE2000 of the *true* colors after a VAE round trip and the pipeline's finishing.

    Each clip's ground-truth frames are shrunk to the model's size, encoded (posterior mode), decoded, and
    finished like a colorization (a*, b* upsampled onto the input's L*, gamut fit). No diffusion model can
    decode to better colors than its VAE does, so this bounds what the UNet can reach: a row to read the
    model's own numbers against.
    """
    import torch

    from coolcolor.chroma import resize

    correct = named = 0
    delta_e = []
    for clip in clips:
        n, height, width = clip.gray.shape
        rgb = torch.from_numpy(clip.rgb).permute(0, 3, 1, 2).float()
        small = resize(rgb, pipe.model_size(height, width)).clamp(0, 1).to(pipe.device, pipe.vae.dtype)
        with torch.no_grad():
            z = pipe.vae.encode(small * 2 - 1).latent_dist.mode() * pipe.vae.config.scaling_factor
        ab = np.empty((n, height, width, 2), np.float32)
        finished = np.empty((n, height, width, 3), np.float32)
        pipe.finish_latents(z, torch.from_numpy(clip.gray), ab, finished)
        scores = evaluate(Prediction(rgb=finished, ab=None, source="vae round trip"), clip, caption=0)
        rows = _named_layer_results(scores)
        correct, named = correct + sum(rows), named + len(rows)
        delta_e.append(float(scores["delta_e2000"]))
    return {"text_adherence": correct / named if named else math.nan, "correct_layers": correct,
            "named_layers": named, "delta_e2000": float(np.nanmean(delta_e))}


def evaluate_models(models: dict[str, str], clips: int = 16, frames: int = 8, size: int = 64, steps: int = 20,
                    guidance: float = 5.0, degradation: float = 1.0) -> dict:
    from coolcolor.pipeline import CoolColorPipeline

    data = held_out_clips(clips, frames, size, degradation)
    truth = [evaluate(Prediction(rgb=c.rgb, source="truth"), c) for c in data]
    results: dict = {
        "settings": {"clips": clips, "frames": frames, "size": size, "steps": steps, "guidance": guidance,
                     "seeds": [HELD_OUT_SEED_BASE, HELD_OUT_SEED_BASE + clips - 1], "degradation": f"old_film({degradation:g})"},
        "truth": {"colorfulness": float(np.mean([t["colorfulness"] for t in truth])),
                  "flicker_ab_rms": float(np.nanmean([t["flicker_ab_rms"] for t in truth]))},
        "models": {},
    }
    for name, path in models.items():
        pipe = CoolColorPipeline.from_pretrained(model_path(path))
        results["models"][name] = {
            "path": str(path),
            "keyframe_off": evaluate_pipeline(pipe, data, keyframe=False, steps=steps, guidance=guidance),
            "keyframe_on": evaluate_pipeline(pipe, data, keyframe=True, steps=steps, guidance=guidance),
            "vae_ceiling": evaluate_vae_ceiling(pipe, data),
        }
    return results


def markdown_table(results: dict) -> str:
    s = results["settings"]
    lines = [
        f"{s['clips']} held-out world clips (seeds {s['seeds'][0]}–{s['seeds'][1]}), {s['frames']} frames of "
        f"{s['size']}×{s['size']}, {s['degradation']} damage, prompt = the clip's full caption, "
        f"{s['steps']} DDIM steps, guidance {s['guidance']:g}.",
        "",
        "| model | keyframe attention | text adherence (named layers) | ΔE2000 ↓ | colorfulness | a*b* flicker (RMS warp error) ↓ | CDC a*b* ↓ |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results["models"].items():
        for key, label in (("keyframe_off", "off"), ("keyframe_on", "on")):
            m = r[key]
            lines.append(f"| {name} | {label} | {m['text_adherence']:.1%} ({m['correct_layers']}/{m['named_layers']}) "
                         f"| {m['delta_e2000']:.2f} | {m['colorfulness']:.1f} | {m['flicker_ab_rms']:.3f} | {m['cdc_ab']:.5f} |")
        if "vae_ceiling" in r:
            v = r["vae_ceiling"]
            lines.append(f"| {name}: its VAE on the true colors (ceiling) | — | {v['text_adherence']:.1%} "
                         f"({v['correct_layers']}/{v['named_layers']}) | {v['delta_e2000']:.2f} | — | — | — |")
    t = results["truth"]
    lines.append(f"| ground truth | — | 100% | 0 | {t['colorfulness']:.1f} | {t['flicker_ab_rms']:.3f} | — |")
    return "\n".join(lines)
