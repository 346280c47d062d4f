"""The real-footage benchmark (issue 24 §1): how far a model's colours are from real colour footage's.

Clips are built from the catalog's held-out ``eval`` items (``coolcolor.real.catalog``), never from
anything a training set reads:

* a video: ``frames`` consecutive frames from a fixed start (``VIDEO_START``), centre-cropped to the clip's
  aspect and resized;
* a photograph: a slow diagonal pan with a slight zoom — a window of the clip's aspect, ``PAN_START`` of
  the largest that fits at frame 0 down to ``PAN_END`` at the last frame, moving linearly from the top-left
  corner to the bottom-right one.

The colour frames are the truth; the model's input is their luminance (``coolcolor.world.luminance_gray``,
the gray the product sees). Each clip is colorized twice with the same seed and settings: with the
item's truthful ``caption`` and with its ``wrong_caption`` (same things, other colours: the control).
The keyframe is chosen as ``coolcolor colorize`` chooses it (``coolcolor.video.keyframes.rank_keyframes``).

Every metric stands beside its baseline, all from the truth:

* mean CIEDE2000 of the result's a*, b* at the truth's L*, against the **left-gray** baseline (L* kept,
  a* = b* = 0) and their ratio (< 1: the colours help; > 1: the film would be better left gray);
* mean chroma C*ab of the result and of the truth, and their ratio (> 1: too colourful, < 1: washed out);
* a*b* flicker (RMS warp error) and CDC a*b* of the result beside the truth's own
  (``coolcolor.world.metrics.temporal_metrics``: DIS flow on the gray input);
* the wrong-colours result's ΔE, and whether the truthful prompt lands nearer the truth.

ΔE is taken at the truth's L* (as ``world.metrics.evaluate`` does) so it measures the colour decision; the
output's L* is the input's by design and differs from the truth's only by the gamut fit.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from coolcolor.color import rgb_to_lab
from coolcolor.errors import InputError
from coolcolor.real.catalog import Catalog, RealItem, load_catalog, read_image, verified_path
from coolcolor.world import luminance_gray
from coolcolor.world.metrics import Prediction, ciede2000, temporal_metrics

DEFAULT_FRAMES = 8
DEFAULT_SIZE = (256, 192)  # width, height: the 4:3 of the catalog's videos
VIDEO_START = 0  # first frame of a video clip (tree.avi reads only 68 frames)
PAN_START, PAN_END = 0.85, 0.75  # the pan window's side, as a share of the largest window that fits


@dataclass
class BenchClip:
    """One benchmark clip: the truth (N×H×W×3 sRGB in [0, 1]), its gray, and the two prompts."""

    id: str
    kind: str
    caption: str
    wrong_caption: str
    rgb: np.ndarray
    gray: np.ndarray
    source: str = ""  # which frames / which pan: what the benchmark holds out
    licence: str = ""


# -- clips -------------------------------------------------------------------------------------------


def _fit_aspect(width: int, height: int, aspect: float) -> tuple[int, int]:
    """The largest (w, h) of ``aspect`` = w / h inside a width × height frame."""
    if width / height > aspect:
        return max(1, round(height * aspect)), height
    return width, max(1, round(width / aspect))


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)


def centre_crop_resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` (H×W×3) cropped about its centre to the aspect of ``size`` = (width, height), then resized."""
    h, w = frame.shape[:2]
    cw, ch = _fit_aspect(w, h, size[0] / size[1])
    left, top = (w - cw) // 2, (h - ch) // 2
    return _resize(frame[top : top + ch, left : left + cw], size)


def pan_windows(image_size: tuple[int, int], frames: int, size: tuple[int, int],
                start: float = PAN_START, end: float = PAN_END) -> list[tuple[int, int, int, int]]:
    """(left, top, width, height) of each frame's crop window in an image of ``image_size`` = (w, h).

    The window keeps the clip's aspect; its side goes linearly from ``start`` to ``end`` of the largest
    such window that fits (a slight zoom in) while it moves from the top-left corner to the bottom-right one.
    """
    if frames < 1:
        raise InputError(f"a clip needs at least 1 frame, got {frames}")
    w, h = image_size
    fw, fh = _fit_aspect(w, h, size[0] / size[1])
    windows = []
    for t in range(frames):
        u = t / (frames - 1) if frames > 1 else 0.0
        scale = start + (end - start) * u
        ww, wh = max(1, round(fw * scale)), max(1, round(fh * scale))
        windows.append((round((w - ww) * u), round((h - wh) * u), ww, wh))
    return windows


def pan_clip(image: np.ndarray, frames: int, size: tuple[int, int]) -> np.ndarray:
    """A photograph (H×W×3 sRGB in [0, 1]) as a panned, slightly zooming clip (N×h×w×3, ``size`` = (w, h))."""
    h, w = image.shape[:2]
    return np.stack([_resize(image[top : top + wh, left : left + ww], size)
                     for left, top, ww, wh in pan_windows((w, h), frames, size)]).astype(np.float32)


def read_video_frames(path: Path, start: int, frames: int) -> np.ndarray:
    """``frames`` consecutive RGB frames (N×H×W×3 in [0, 1]) from frame ``start`` of a movie (OpenCV)."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError(f"{path}: not a readable movie")
    out, index = [], 0
    try:
        while len(out) < frames:
            ok, bgr = capture.read()
            if not ok:
                raise InputError(f"{path}: only {index} readable frame(s); the clip needs frames "
                                 f"{start}–{start + frames - 1}")
            if index >= start:
                out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)
            index += 1
    finally:
        capture.release()
    return np.stack(out)


def read_photo(path: Path) -> np.ndarray:
    """A photograph as float32 RGB in [0, 1] (the catalog's one image reader)."""
    return read_image(path)


def make_clip(item: RealItem, rgb: np.ndarray, licence: str = "", source: str = "") -> BenchClip:
    """A clip from its truth frames: the gray is the truth's luminance, what the product is given."""
    rgb = np.clip(np.asarray(rgb, np.float32), 0.0, 1.0)
    return BenchClip(item.id, item.kind, item.caption, item.wrong_caption, rgb, luminance_gray(rgb),
                     source, licence)


def load_clip(item: RealItem, frames: int = DEFAULT_FRAMES, size: tuple[int, int] = DEFAULT_SIZE,
              data_dir: Path | None = None, catalog: Catalog | None = None) -> BenchClip:
    """The benchmark clip of a catalog item (its file checked against its sha256 first)."""
    catalog = catalog or load_catalog()
    if item.role != "eval":
        raise InputError(f"{item.id} is a training item; the benchmark uses only held-out (eval) items")
    path = verified_path(item, data_dir, catalog)
    if item.kind == "video":
        raw = read_video_frames(path, VIDEO_START, frames)
        rgb = np.stack([centre_crop_resize(f, size) for f in raw])
        source = f"{path.name} frames {VIDEO_START}–{VIDEO_START + frames - 1}, centre crop"
    elif item.kind == "photo":
        image = read_photo(path)
        rgb = pan_clip(image, frames, size)
        source = (f"{path.name} panned top-left → bottom-right, window {PAN_START:.0%} → {PAN_END:.0%} "
                  f"of the largest that fits")
    else:
        raise InputError(f"{item.id}: a {item.kind} is not a benchmark clip (videos and photos are)")
    return make_clip(item, rgb, catalog.licence(item), source)


# -- metrics -----------------------------------------------------------------------------------------


def _lab(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb_to_lab(np.clip(np.asarray(rgb, np.float32), 0.0, 1.0)), np.float64)


def delta_e_at_truth_lightness(result_rgb: np.ndarray, truth_lab: np.ndarray) -> float:
    """Mean CIEDE2000 between the result's a*, b* and the truth's, both at the truth's L*."""
    ab = _lab(result_rgb)[..., 1:]
    return float(ciede2000(np.concatenate([truth_lab[..., :1], ab], -1), truth_lab).mean())


def gray_baseline(truth_lab: np.ndarray) -> float:
    """Mean CIEDE2000 of leaving the film gray: L* kept, a* = b* = 0."""
    gray = np.concatenate([truth_lab[..., :1], np.zeros_like(truth_lab[..., 1:])], -1)
    return float(ciede2000(gray, truth_lab).mean())


def mean_chroma(lab: np.ndarray) -> float:
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def clip_metrics(truth_rgb: np.ndarray, gray: np.ndarray, result_rgb: np.ndarray,
                 wrong_rgb: np.ndarray) -> dict[str, Any]:
    """Every metric of one clip's two results, each beside its baseline (see the module docstring)."""
    truth_lab = _lab(truth_rgb)
    de = delta_e_at_truth_lightness(result_rgb, truth_lab)
    de_gray = gray_baseline(truth_lab)
    de_wrong = delta_e_at_truth_lightness(wrong_rgb, truth_lab)
    chroma, chroma_truth = mean_chroma(_lab(result_rgb)), mean_chroma(truth_lab)
    ours = temporal_metrics(Prediction(rgb=np.asarray(result_rgb, np.float32), source="result"), gray)
    theirs = temporal_metrics(Prediction(rgb=np.asarray(truth_rgb, np.float32), source="truth"), gray)
    return {
        "delta_e": de, "delta_e_gray": de_gray, "ratio_to_gray": _ratio(de, de_gray), "below_gray": de < de_gray,
        "chroma": chroma, "chroma_truth": chroma_truth, "chroma_ratio": _ratio(chroma, chroma_truth),
        "flicker_ab": ours["flicker_ab_rms"], "flicker_ab_truth": theirs["flicker_ab_rms"],
        "cdc_ab": ours["cdc_ab"], "cdc_ab_truth": theirs["cdc_ab"],
        "delta_e_wrong": de_wrong, "truthful_beats_wrong": de < de_wrong,
    }


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means over clips, the ratio to gray averaged per clip, and the two counts the targets name."""
    keys = ("delta_e", "delta_e_gray", "ratio_to_gray", "chroma", "chroma_truth", "chroma_ratio", "flicker_ab",
            "flicker_ab_truth", "cdc_ab", "cdc_ab_truth", "delta_e_wrong")
    out: dict[str, Any] = {k: _nanmean([r[k] for r in rows]) for k in keys}
    out.update(clips=len(rows), below_gray=sum(bool(r["below_gray"]) for r in rows),
               truthful_beats_wrong=sum(bool(r["truthful_beats_wrong"]) for r in rows))
    return out


# -- running a model ---------------------------------------------------------------------------------


@dataclass
class BenchSettings:
    steps: int = 20  # JobSpec's defaults: what `coolcolor colorize` runs with
    guidance: float = 5.0
    seed: int = 0
    keyframe: str = "auto"  # "auto" (as colorize), "none" (frames independent) or a frame index
    extra: dict = field(default_factory=dict)


def choose_keyframe(pipe, clip_gray: np.ndarray, prompt: str, settings: BenchSettings) -> int | None:
    """The keyframe ``coolcolor colorize`` would choose for this clip and prompt (or the one asked for)."""
    if settings.keyframe == "none":
        return None
    if settings.keyframe != "auto":
        index = int(settings.keyframe)
        if not 0 <= index < len(clip_gray):
            raise InputError(f"keyframe {index} is outside the clip's {len(clip_gray)} frames")
        return index
    from coolcolor.video.keyframes import candidate_frames, rank_keyframes

    grays = {f: clip_gray[f] for f in candidate_frames(0, len(clip_gray) - 1)}
    return rank_keyframes(pipe, grays, prompt, steps=settings.steps, guidance_scale=settings.guidance,
                          seed=settings.seed).chosen


def colorize_clip(pipe, gray: np.ndarray, prompt: str,
                  settings: BenchSettings) -> tuple[np.ndarray, int | None, list[str]]:
    """The result's sRGB frames, the keyframe used, and the prompt's words the model does not know."""
    key = choose_keyframe(pipe, gray, prompt, settings)
    result = pipe(gray, prompt=prompt, keyframe=key, num_inference_steps=settings.steps,
                  guidance_scale=settings.guidance, seed=settings.seed)
    return np.asarray(result.rgb, np.float32), key, list(getattr(result, "unknown_words", []) or [])


def run_bench(pipe, clips: Sequence[BenchClip], settings: BenchSettings | None = None,
              pictures: Path | None = None, log: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Colorize every clip with its truthful and its wrong caption and score both (see the module docstring)."""
    settings = settings or BenchSettings()
    if pictures is not None:
        pictures.mkdir(parents=True, exist_ok=True)
    rows = []
    start = time.perf_counter()
    for clip in clips:
        t = time.perf_counter()
        result, key, unknown = colorize_clip(pipe, clip.gray, clip.caption, settings)
        wrong, wrong_key, unknown_wrong = colorize_clip(pipe, clip.gray, clip.wrong_caption, settings)
        row = {"id": clip.id, "kind": clip.kind, "source": clip.source, "licence": clip.licence,
               "caption": clip.caption, "wrong_caption": clip.wrong_caption,
               "frames": int(clip.rgb.shape[0]), "size": [int(clip.rgb.shape[2]), int(clip.rgb.shape[1])],
               "keyframe": key, "keyframe_wrong": wrong_key,
               "unknown_words": unknown, "unknown_words_wrong": unknown_wrong,
               **clip_metrics(clip.rgb, clip.gray, result, wrong), "seconds": round(time.perf_counter() - t, 1)}
        if pictures is not None:
            row["picture"] = str(write_strip(pictures / f"{clip.id}.png", clip.gray[0], clip.rgb[0], result[0]))
        rows.append(row)
        log(f"{clip.id}: ΔE {row['delta_e']:.2f} (gray {row['delta_e_gray']:.2f}), wrong {row['delta_e_wrong']:.2f}, "
            f"{row['seconds']:.0f}s")
    return {
        "settings": {"steps": settings.steps, "guidance": settings.guidance, "seed": settings.seed,
                     "keyframe": settings.keyframe, **settings.extra},
        "clips": rows,
        "summary": summarise(rows),
        "seconds": round(time.perf_counter() - start, 1),
    }


def write_strip(path: Path, gray: np.ndarray, truth: np.ndarray, result: np.ndarray) -> Path:
    """One PNG: gray | truth | result, side by side (frame 0 of a clip), for the docs."""
    return write_panels(path, [gray, truth, result])


def write_panels(path: Path, panels: Sequence[np.ndarray]) -> Path:
    """One image (its format from ``path``'s extension) of same-size panels side by side: H×W×3 sRGB or H×W
    gray, in [0, 1]."""
    strip = np.concatenate([np.repeat(np.asarray(p)[..., None], 3, -1) if np.ndim(p) == 2 else p for p in panels],
                           axis=1)
    u8 = np.round(np.clip(strip, 0, 1) * 255).astype(np.uint8)
    if not cv2.imwrite(str(path), cv2.cvtColor(u8, cv2.COLOR_RGB2BGR)):
        raise InputError(f"could not write {path} (is the disk full?)")
    return path


# -- reporting ---------------------------------------------------------------------------------------


def _f(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def markdown_table(results: dict[str, Any]) -> str:
    """One row per clip and a summary row; each metric beside its baseline."""
    s = results["settings"]
    model = s.get("model", "?")
    lines = [
        f"Real-footage benchmark: model {model}, {s.get('frames', '?')} frames of {s.get('size', '?')}, "
        f"{s['steps']} DDIM steps, guidance {s['guidance']:g}, seed {s['seed']}, keyframe {s['keyframe']}. "
        "ΔE = mean CIEDE2000 at the truth's L*; gray = the film left gray (a* = b* = 0).",
        "",
        "| clip | ΔE ↓ | gray ΔE | ΔE / gray ↓ | chroma | truth chroma | chroma ratio | a*b* flicker (truth) "
        "| CDC a*b* (truth) | wrong-colours ΔE | truthful < wrong |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["clips"]:
        lines.append(
            f"| {r['id']} | {_f(r['delta_e'])} | {_f(r['delta_e_gray'])} | {_f(r['ratio_to_gray'])} "
            f"| {_f(r['chroma'], 1)} | {_f(r['chroma_truth'], 1)} | {_f(r['chroma_ratio'])} "
            f"| {_f(r['flicker_ab'])} ({_f(r['flicker_ab_truth'])}) | {_f(r['cdc_ab'], 4)} ({_f(r['cdc_ab_truth'], 4)}) "
            f"| {_f(r['delta_e_wrong'])} | {'yes' if r['truthful_beats_wrong'] else 'no'} |")
    m = results["summary"]
    lines.append(
        f"| **mean of {m['clips']}** | {_f(m['delta_e'])} | {_f(m['delta_e_gray'])} | {_f(m['ratio_to_gray'])} "
        f"| {_f(m['chroma'], 1)} | {_f(m['chroma_truth'], 1)} | {_f(m['chroma_ratio'])} "
        f"| {_f(m['flicker_ab'])} ({_f(m['flicker_ab_truth'])}) | {_f(m['cdc_ab'], 4)} ({_f(m['cdc_ab_truth'], 4)}) "
        f"| {_f(m['delta_e_wrong'])} | {m['truthful_beats_wrong']}/{m['clips']} |")
    lines += ["", f"Clips below the gray baseline: {m['below_gray']}/{m['clips']}; mean ΔE / gray "
              f"{_f(m['ratio_to_gray'])}; truthful prompt nearer the truth than the wrong one: "
              f"{m['truthful_beats_wrong']}/{m['clips']}."]
    unread = [f"{r['id']}: {', '.join(r['unknown_words'])}" for r in results["clips"] if r.get("unknown_words")]
    if unread:
        lines.append(f"Caption words the model does not know (it ignores them): {'; '.join(unread)}.")
    return "\n".join(lines)


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(results), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _plain(value: Any) -> Any:
    """Strict JSON: numpy scalars as Python ones, NaN (a metric a 1-frame clip lacks) as null."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
