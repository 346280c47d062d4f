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
        rows = [r["correct"] for r in scores["layers"] if r["correct"] is not None]
        correct, named = correct + sum(rows), named + len(rows)
    out = {m: float(np.nanmean(v)) for m, v in per_clip.items()}
    out["text_adherence"] = correct / named if named else math.nan
    out.update(named_layers=named, correct_layers=correct, clips=len(clips), seconds=round(time.time() - start, 1))
    return out


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
    t = results["truth"]
    lines.append(f"| ground truth | — | 100% | 0 | {t['colorfulness']:.1f} | {t['flicker_ab_rms']:.3f} | — |")
    return "\n".join(lines)
