"""Measure trained models on held-out world clips: the results table of docs/model-card.md#results.

Clips use world seeds from ``HELD_OUT_SEED_BASE`` up, which training never draws (see ``train.data``).
Each clip is colorized with its first caption (it names every layer) as the prompt, once with
frames treated independently (keyframe attention off) and once with frame 0 as the keyframe.

Leave-out evaluation (``leave_out=True``) adds three sets of clips that feature what a leave-out
training run never saw: a held-out shape family, a held-out backdrop layout, and captions that name
every color by a held-out synonym (``coolcolor.world.spec``). Only a model trained with those left
out (its recorded ``train_config.world``) makes them a generalisation test; for any other model they
are a baseline, and the results say so. Every adherence figure is also broken down by shape family
(regions by their slot) and by the layer's share of the frame, so a reader sees where the misses are.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from coolcolor.train.data import HELD_OUT_SEED_BASE
from coolcolor.world import Degradations, evaluate, render_clip
from coolcolor.world.metrics import Prediction
from coolcolor.world.spec import DEFAULT_LEAVE_OUT, FEATURES, WorldSpec

METRICS = ("text_adherence", "delta_e2000", "colorfulness", "flicker_ab_rms", "cdc_ab")
# Seeds of the leave-out sets: held out like the usual clips, and apart from them (one block per feature).
LEAVE_OUT_SEED_BASE = {kind: HELD_OUT_SEED_BASE + 10_000_000 * (k + 1) for k, kind in enumerate(FEATURES)}
# Bins of a layer's share of the frame (upper bounds), for the per-size breakdown.
SIZE_BINS = ((0.02, "< 2 %"), (0.05, "2–5 %"), (0.15, "5–15 %"), (0.4, "15–40 %"), (math.inf, "≥ 40 %"))


def held_out_clips(count: int, frames: int, size: int, degradation: float = 1.0, world: WorldSpec | None = None,
                   seed_base: int = HELD_OUT_SEED_BASE) -> list:
    return [render_clip(seed_base + i, frames, (size, size), degradations=Degradations.old_film(degradation),
                        world=world) for i in range(count)]


def training_worlds(pipe) -> list[WorldSpec]:
    """The worlds a model was trained on, latest stage first: its recorded training config, then the
    config of the model it was fine-tuned from (``init_recipe``), and so on. Version 1 with nothing
    left out for a stage that predates the setting."""
    worlds = []
    recipe = pipe.config.recipe or {}
    while recipe:
        config = recipe.get("train_config") or {}
        worlds.append(WorldSpec.from_json(config.get("world") or {}, "train_config.world"))
        recipe = recipe.get("init_recipe") or {}
    return worlds or [WorldSpec()]


def training_world(pipe) -> WorldSpec:
    """The world of the model's last training stage."""
    return training_worlds(pipe)[0]


def leave_out_world(trained: WorldSpec | list[WorldSpec]) -> tuple[WorldSpec, bool]:
    """The spec whose featured items are unseen, and whether they really are: the model's own exclusions
    when every training stage left them out, else (or when nothing was left out) the default leave-out
    set on the model's world version — then only a baseline."""
    worlds = trained if isinstance(trained, list) else [trained]
    last = worlds[0]
    if last.leaves_out:
        unseen = all(set(last.held_out(kind)) <= set(w.held_out(kind)) for w in worlds for kind in FEATURES)
        return last, unseen
    return WorldSpec(version=last.version, **DEFAULT_LEAVE_OUT), False


def size_bin(fraction: float) -> str:
    return next(label for bound, label in SIZE_BINS if fraction < bound)


def layer_family(layer) -> str:
    return layer.shape if layer.kind == "object" else f"region: {layer.shape}"


def model_path(name_or_path: str) -> Path:
    if name_or_path in ("default", "coolcolor-tiny"):
        from coolcolor.default_model import default_model_path

        return default_model_path()
    path = Path(name_or_path)
    return path / "final" if (path / "final" / "coolcolor.json").is_file() else path  # a run folder


def _named_layer_results(scores: dict) -> list[bool]:
    """Right or wrong, per named layer that is visible in the clip: what adherence is pooled from."""
    return [r["correct"] for r in scores["layers"] if r["correct"] is not None]


def _tally(table: dict[str, list[int]], key: str, correct: bool) -> None:
    row = table.setdefault(key, [0, 0])
    row[0] += int(correct)
    row[1] += 1


def evaluate_pipeline(pipe, clips: list, keyframe: bool, steps: int = 20, guidance: float = 5.0,
                      held_out: WorldSpec | None = None) -> dict:
    """Mean metrics over ``clips``; adherence is pooled over all named layers of all clips.

    ``by_family`` / ``by_size`` hold [correct, named] per shape family (regions by slot) and per share
    of the frame. With ``held_out`` (a spec featuring one kind), ``held_out_layers`` counts only the
    layers that carry the featured item: the held-out family's objects, the held-out layout's regions,
    or (synonyms) every named layer whose color has a held-out synonym.
    """
    per_clip: dict[str, list[float]] = {m: [] for m in METRICS}
    correct = named = 0
    by_family: dict[str, list[int]] = {}
    by_size: dict[str, list[int]] = {}
    featured = [0, 0]
    start = time.time()
    for clip in clips:
        result = pipe(clip.gray, prompt=clip.captions[0], keyframe=0 if keyframe else None,
                      num_inference_steps=steps, guidance_scale=guidance, seed=0)
        scores = evaluate(Prediction(rgb=result.rgb, ab=None, source="pipeline"), clip, caption=0)
        for m in METRICS:
            per_clip[m].append(float(scores[m]))
        rows = _named_layer_results(scores)
        correct, named = correct + sum(rows), named + len(rows)
        by_id = {lay.id: lay for lay in clip.layers}
        frame_pixels = clip.masks.size
        for r in scores["layers"]:
            if r["correct"] is None:
                continue
            lay = by_id[r["id"]]
            _tally(by_family, layer_family(lay), r["correct"])
            _tally(by_size, size_bin(r["pixels"] / frame_pixels), r["correct"])
            if held_out is not None and _carries_featured(lay, clip, held_out):
                featured[0] += int(r["correct"])
                featured[1] += 1
    out = {m: float(np.nanmean(v)) for m, v in per_clip.items()}
    out["text_adherence"] = correct / named if named else math.nan
    out.update(named_layers=named, correct_layers=correct, clips=len(clips), seconds=round(time.time() - start, 1),
               by_family=dict(sorted(by_family.items())),
               by_size={label: by_size[label] for _, label in SIZE_BINS if label in by_size})
    if held_out is not None:
        out["held_out_layers"] = featured
    return out


def _carries_featured(layer, clip, world: WorldSpec) -> bool:
    if world.feature == "shape":
        return layer.kind == "object" and layer.shape in world.exclude_shapes
    if world.feature == "layout":
        return layer.kind == "region" and clip.layout in world.exclude_layouts
    return any(w in world.exclude_synonyms for w in layer.palette.synonyms)


def vae_round_trip(pipe, rgb: np.ndarray, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True colours (N×H×W×3 sRGB) after the pipeline's VAE and finishing: shrunk to the model's size, encoded
    (posterior mode), decoded, and finished like a colorization (a*, b* upsampled onto ``gray``'s L*, gamut
    fit). Returns the a*, b* (N×H×W×2) and the sRGB frames. What the decoder makes of the truth itself: the
    reference point for what the UNet can reach (not a strict floor on ΔE: a duller guess can score lower)."""
    import torch

    from coolcolor.chroma import resize

    n, height, width = gray.shape
    frames = torch.from_numpy(np.ascontiguousarray(rgb, np.float32)).permute(0, 3, 1, 2)
    small = resize(frames, pipe.model_size(height, width)).clamp(0, 1).to(pipe.device, pipe.vae.dtype)
    with torch.no_grad():
        z = pipe.vae.encode(small * 2 - 1).latent_dist.mode() * pipe.vae.config.scaling_factor
    ab = np.empty((n, height, width, 2), np.float32)
    finished = np.empty((n, height, width, 3), np.float32)
    pipe.finish_latents(z, torch.from_numpy(np.ascontiguousarray(gray, np.float32)), ab, finished)
    return ab, finished


def evaluate_vae_ceiling(pipe, clips: list) -> dict:
    """Adherence and ΔE2000 of the *true* colors after a VAE round trip and the pipeline's finishing
    (``vae_round_trip``): a row to read the model's own numbers against."""
    correct = named = 0
    delta_e = []
    for clip in clips:
        _, finished = vae_round_trip(pipe, clip.rgb, clip.gray)
        scores = evaluate(Prediction(rgb=finished, ab=None, source="vae round trip"), clip, caption=0)
        rows = _named_layer_results(scores)
        correct, named = correct + sum(rows), named + len(rows)
        delta_e.append(float(scores["delta_e2000"]))
    return {"text_adherence": correct / named if named else math.nan, "correct_layers": correct,
            "named_layers": named, "delta_e2000": float(np.nanmean(delta_e))}


def evaluate_models(models: dict[str, str], clips: int = 16, frames: int = 8, size: int = 64, steps: int = 20,
                    guidance: float = 5.0, degradation: float = 1.0, leave_out: bool = False,
                    leave_out_clips: int | None = None, world_version: int = 1,
                    leave_out_world_version: int | None = None) -> dict:
    from coolcolor.model.pipeline import CoolColorPipeline

    world = WorldSpec(version=world_version)
    data = held_out_clips(clips, frames, size, degradation, world)
    truth = [evaluate(Prediction(rgb=c.rgb, source="truth"), c) for c in data]
    results: dict = {
        "settings": {"clips": clips, "frames": frames, "size": size, "steps": steps, "guidance": guidance,
                     "seeds": [HELD_OUT_SEED_BASE, HELD_OUT_SEED_BASE + clips - 1], "degradation": f"old_film({degradation:g})",
                     "world_version": world_version},
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
        if leave_out:
            results["models"][name]["leave_out"] = evaluate_leave_out(
                pipe, leave_out_clips or clips, frames, size, steps, guidance, degradation, leave_out_world_version)
    return results


def evaluate_leave_out(pipe, clips: int, frames: int, size: int, steps: int = 20, guidance: float = 5.0,
                       degradation: float = 1.0, world_version: int | None = None) -> dict:
    """Adherence on clips featuring each held-out kind (keyframe attention off: the frame-independent
    figure, the one the held-out items change). ``world_version`` draws them from another world than the
    model's own, with the same items held out (every world leaves them out alike, so they stay unseen)."""
    spec, trained_without = leave_out_world(training_worlds(pipe))
    if world_version is not None:
        spec = replace(spec, version=world_version)
    out: dict = {"world": spec.to_json(), "model_trained_without_them": trained_without, "sets": {}}
    for kind in FEATURES:
        featured = spec.featuring(kind)
        data = held_out_clips(clips, frames, size, degradation, featured, seed_base=LEAVE_OUT_SEED_BASE[kind])
        result = evaluate_pipeline(pipe, data, keyframe=False, steps=steps, guidance=guidance, held_out=featured)
        result["seeds"] = [LEAVE_OUT_SEED_BASE[kind], LEAVE_OUT_SEED_BASE[kind] + clips - 1]
        out["sets"][kind] = result
    return out


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
    for name, r in results["models"].items():
        if "leave_out" in r:
            lines += ["", *leave_out_table(name, r["leave_out"])]
        lines += ["", *breakdown_table(name, r)]
    return "\n".join(lines)


def _pct(row: list[int]) -> str:
    return f"{row[0] / row[1]:.1%} ({row[0]}/{row[1]})" if row[1] else "—"


def leave_out_table(name: str, lo: dict) -> list[str]:
    w = lo["world"]
    status = ("trained without them: a generalisation test" if lo["model_trained_without_them"] else
              "NOT trained without them (it saw them in training): a baseline only, not a generalisation figure")
    lines = [
        f"Leave-out clips for {name} — held out: shape {', '.join(w['exclude_shapes']) or '—'}; layout "
        f"{', '.join(w['exclude_layouts']) or '—'}; synonyms {', '.join(w['exclude_synonyms']) or '—'}. Model {status}. "
        "Keyframe attention off.",
        "",
        "| leave-out set | seeds | text adherence (all named layers) | on the held-out item's layers | ΔE2000 ↓ |",
        "|---|---|---|---|---|",
    ]
    for kind, m in lo["sets"].items():
        lines.append(f"| unseen {kind} | {m['seeds'][0]}–{m['seeds'][1]} | {_pct([m['correct_layers'], m['named_layers']])} "
                     f"| {_pct(m['held_out_layers'])} | {m['delta_e2000']:.2f} |")
    return lines


def breakdown_table(name: str, r: dict) -> list[str]:
    """Adherence by shape family and by layer size, over the usual held-out clips (keyframe off) and
    the leave-out sets together when there are any."""
    family: dict[str, list[int]] = {}
    sizes: dict[str, list[int]] = {}
    runs = [r["keyframe_off"], *(r.get("leave_out", {}).get("sets", {}).values())]
    for run in runs:
        for table, part in ((family, run["by_family"]), (sizes, run["by_size"])):
            for key, (c, n) in part.items():
                row = table.setdefault(key, [0, 0])
                row[0] += c
                row[1] += n
    where = "held-out clips" + (" and leave-out clips" if len(runs) > 1 else "") + ", keyframe attention off"
    lines = [f"{name}: adherence by shape family / region ({where})", "", "| family | adherence |", "|---|---|"]
    lines += [f"| {k} | {_pct(v)} |" for k, v in sorted(family.items())]
    lines += ["", f"{name}: adherence by the layer's share of the frame", "", "| size | adherence |", "|---|---|"]
    lines += [f"| {label} | {_pct(sizes[label])} |" for _, label in SIZE_BINS if label in sizes]
    return lines
