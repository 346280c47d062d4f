"""Automatic keyframe choice (paper §3.4, docs/architecture.md#the-model): colorize candidates cheaply, rank them.

A few candidate frames spread over the shot are colorized together at the model's resolution with
fewer steps and no cross-frame attention (the cheap preview of what each would give as keyframe).
They are ranked by colorfulness (Hasler–Süsstrunk, ``color.colorfulness``), always, and — when a
local CLIP model folder is configured — also by CLIP score (torchmetrics' definition,
max(100·cos(image, text), 0)). With both, the order is by the sum of the two ranks (Borda), ties
going to the higher CLIP score; CLIP alone would pick a washed-out frame that matches the words,
colorfulness alone a garish one that ignores them. The whole ranking is returned for the manifest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from coolcolor import color
from coolcolor.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from coolcolor.model.pipeline import CoolColorPipeline

DEFAULT_CANDIDATES = 5


@dataclass
class KeyframeCandidate:
    frame: int
    colorfulness: float
    clip_score: float | None
    rank: int = 0  # 1 = best


@dataclass
class KeyframeRanking:
    chosen: int
    candidates: list[KeyframeCandidate]  # best first
    steps: int
    method: str  # "colorfulness" or "clip+colorfulness"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "chosen": self.chosen,
            "method": self.method,
            "steps": self.steps,
            "candidates": [asdict(c) for c in self.candidates],
            **self.extra,
        }


def candidate_frames(first: int, last: int, count: int = DEFAULT_CANDIDATES) -> list[int]:
    """``count`` frames spread evenly over [first, last], away from the ends (shot boundaries are
    often dissolves or motion-blurred); every frame when the shot is that short."""
    n = last - first + 1
    if n <= count:
        return list(range(first, last + 1))
    return sorted({first + int((i + 0.5) * n / count) for i in range(count)})


def cheap_steps(steps: int) -> int:
    """Steps for the candidate previews: a quarter of the job's, at least 4 (or the job's if fewer)."""
    return min(steps, max(4, steps // 4))


class ClipScorer:
    """CLIP score from a local model folder (transformers ``CLIPModel`` + ``CLIPProcessor``)."""

    def __init__(self, model_dir: str, device: str | torch.device = "cpu") -> None:
        from transformers import CLIPModel, CLIPProcessor

        if not os.path.isdir(model_dir):
            raise InputError(f"CLIP model folder not found: {model_dir}")
        try:
            model = CLIPModel.from_pretrained(model_dir, local_files_only=True)
            # nn.Module.to directly: transformers' decorated ``to`` confuses type checkers
            self.model = torch.nn.Module.to(model, torch.device(device)).eval()
            self.processor = CLIPProcessor.from_pretrained(model_dir, local_files_only=True)
        except Exception as exc:
            raise InputError(f"cannot load a CLIP model from {model_dir}: {exc}") from exc
        self.device = torch.device(device)
        self.model_dir = model_dir

    @torch.no_grad()
    def __call__(self, rgb: np.ndarray, text: str) -> np.ndarray:
        """Scores (N,) for N×H×W×3 sRGB images in [0, 1] against ``text``."""
        images = [np.clip(np.round(im * 255), 0, 255).astype(np.uint8) for im in rgb]
        inputs = self.processor(text=[text], images=images, return_tensors="pt", padding=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        image_emb = self.model.get_image_features(pixel_values=inputs["pixel_values"])
        text_emb = self.model.get_text_features(
            input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask")
        )
        image_emb = getattr(image_emb, "pooler_output", image_emb)
        text_emb = getattr(text_emb, "pooler_output", text_emb)
        cos = F.cosine_similarity(image_emb.float(), text_emb.float(), dim=-1)
        return (100 * cos).clamp_min(0).cpu().numpy()


def _ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """0 for the largest value, ties broken by position (stable)."""
    order = np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return ranks


def rank_keyframes(
    pipeline: CoolColorPipeline,
    grays: dict[int, np.ndarray],
    prompt: str,
    negative_prompt: str = "",
    steps: int = 20,
    guidance_scale: float = 5.0,
    seed: int = 0,
    clip_scorer: Callable[[np.ndarray, str], np.ndarray] | None = None,
    progress: Callable | None = None,
) -> KeyframeRanking:
    """Rank candidate frames (``grays``: frame number → H×W gray) as keyframes for one shot."""
    if not grays:
        raise InputError("no candidate frames to choose a keyframe from")
    frames = sorted(grays)
    size = pipeline.model_size(*grays[frames[0]].shape)
    # Candidates go in at the model's resolution: the preview never needs the plate's.
    stack = torch.from_numpy(np.stack([grays[f] for f in frames]).astype(np.float32))[:, None]
    small = F.interpolate(stack, size=size, mode="bilinear", align_corners=False, antialias=True)[:, 0]
    n_steps = cheap_steps(steps)
    result = pipeline(
        small.clamp(0, 1).numpy(), prompt=prompt, negative_prompt=negative_prompt, keyframe=None,
        num_inference_steps=n_steps, guidance_scale=guidance_scale, seed=seed, progress=progress,
    )
    cf = np.asarray(color.colorfulness(result.rgb), dtype=np.float64)
    clip = None if clip_scorer is None else np.asarray(clip_scorer(result.rgb, prompt), dtype=np.float64)
    if clip is None:
        order = _ranks(cf)
        method = "colorfulness"
    else:
        borda = _ranks(cf) + _ranks(clip)
        # lexsort: last key is primary → by Borda ascending, then CLIP descending
        order_idx = np.lexsort((-clip, borda))
        order = np.empty(len(frames), dtype=np.int64)
        order[order_idx] = np.arange(len(frames))
        method = "clip+colorfulness"
    candidates = [
        KeyframeCandidate(frame=f, colorfulness=round(float(cf[i]), 4),
                          clip_score=None if clip is None else round(float(clip[i]), 4), rank=int(order[i]) + 1)
        for i, f in enumerate(frames)
    ]
    candidates.sort(key=lambda c: c.rank)
    return KeyframeRanking(chosen=candidates[0].frame, candidates=candidates, steps=n_steps, method=method)
