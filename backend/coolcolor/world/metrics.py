"""Quality metrics for colorized clips, against the world's exact ground truth or without it.

* text adherence — does the color the prompt names win? (fraction of named layers whose mean
  predicted a*, b* is nearest, among the palette, to the named color);
* ΔE2000 inside the named layers, computed at the ground truth's L* so it measures the color
  decision and not the film damage the input carries (output L* is the input's by design);
* colorfulness (Hasler–Süsstrunk, ``coolcolor.color.colorfulness``);
* temporal flicker: the warp error of Lai et al. (2018) on a*, b* with the exact ground-truth flow and
  visibility, or with OpenCV DIS flow on the gray input and a forward–backward check when there is no
  ground truth; plus CDC (TCVC) on RGB and on a*, b* histograms;
* luminance fidelity: max |L*_out − L*_in|.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from coolcolor.color import (
    colorfulness,
    fit_chroma_to_gamut,
    gray_to_lightness,
    lab_to_rgb,
    replace_luminance,
    rgb_to_lab,
)
from coolcolor.errors import InputError
from coolcolor.world.clip import Clip
from coolcolor.world.palette import nearest_palette_colors
from coolcolor_protocol.abfiles import AB_CHANNELS

# -- CIEDE2000 -----------------------------------------------------------------------------------


def ciede2000(lab1: np.ndarray, lab2: np.ndarray, kL: float = 1.0, kC: float = 1.0, kH: float = 1.0) -> np.ndarray:
    """CIEDE2000 color difference (Sharma, Wu & Dalal 2005) of two Lab arrays (…×3), float64."""
    lab1 = np.asarray(lab1, np.float64)
    lab2 = np.asarray(lab2, np.float64)
    if lab1.shape[-1:] != (3,) or lab2.shape[-1:] != (3,):
        raise InputError(f"CIEDE2000 needs Lab arrays with 3 channels last, got {lab1.shape} and {lab2.shape}")
    L1, a1, b1 = np.moveaxis(lab1, -1, 0)
    L2, a2, b2 = np.moveaxis(lab2, -1, 0)
    c_bar7 = ((np.hypot(a1, b1) + np.hypot(a2, b2)) / 2) ** 7
    g = 0.5 * (1 - np.sqrt(c_bar7 / (c_bar7 + 25.0**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.mod(np.arctan2(b1, a1p), 2 * np.pi)
    h2p = np.mod(np.arctan2(b2, a2p), 2 * np.pi)
    chroma_zero = (c1p * c2p) == 0

    dL = L2 - L1
    dC = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > np.pi, dh - 2 * np.pi, np.where(dh < -np.pi, dh + 2 * np.pi, dh))
    dh = np.where(chroma_zero, 0.0, dh)
    dH = 2 * np.sqrt(c1p * c2p) * np.sin(dh / 2)

    L_bar = (L1 + L2) / 2
    c_bar_p = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_bar = np.where(np.abs(h1p - h2p) <= np.pi, h_sum / 2,
                     np.where(h_sum < 2 * np.pi, (h_sum + 2 * np.pi) / 2, (h_sum - 2 * np.pi) / 2))
    h_bar = np.where(chroma_zero, h_sum, h_bar)
    T = (1 - 0.17 * np.cos(h_bar - np.radians(30)) + 0.24 * np.cos(2 * h_bar)
         + 0.32 * np.cos(3 * h_bar + np.radians(6)) - 0.20 * np.cos(4 * h_bar - np.radians(63)))
    d_theta = np.radians(30) * np.exp(-(((np.degrees(h_bar) - 275) / 25) ** 2))
    c_bar_p7 = c_bar_p**7
    R_C = 2 * np.sqrt(c_bar_p7 / (c_bar_p7 + 25.0**7))
    S_L = 1 + 0.015 * (L_bar - 50) ** 2 / np.sqrt(20 + (L_bar - 50) ** 2)
    S_C = 1 + 0.045 * c_bar_p
    S_H = 1 + 0.015 * c_bar_p * T
    R_T = -np.sin(2 * d_theta) * R_C
    tl, tc, th = dL / (kL * S_L), dC / (kC * S_C), dH / (kH * S_H)
    return np.sqrt(np.maximum(tl**2 + tc**2 + th**2 + R_T * tc * th, 0.0))


# -- predictions ---------------------------------------------------------------------------------


@dataclass
class Prediction:
    """A colorized clip: RGB (N, H, W, 3) sRGB in [0, 1], or a*, b* only (N, H, W, 2)."""

    rgb: np.ndarray | None = None
    ab: np.ndarray | None = None
    source: str = "arrays"

    @property
    def shape(self) -> tuple[int, int, int]:
        arr = self.rgb if self.rgb is not None else self.ab
        assert arr is not None
        return tuple(arr.shape[:3])  # type: ignore[return-value]

    @classmethod
    def from_array(cls, arr: np.ndarray, source: str = "arrays") -> Prediction:
        """(N, H, W, 3) RGB (float in [0, 1], uint8 or uint16) or (N, H, W, 2) a*, b*; a single
        frame may drop N."""
        a = np.asarray(arr)
        if a.ndim == 3 and a.shape[-1] in (2, 3):
            a = a[None]
        if a.ndim != 4 or a.shape[-1] not in (2, 3):
            raise InputError(f"{source}: prediction must be (frames, H, W, 3) RGB or (frames, H, W, 2) a*b*, "
                             f"got shape {a.shape}")
        if a.shape[-1] == 2:
            return cls(ab=a.astype(np.float32), source=source)
        if a.dtype == np.uint8:
            rgb = a.astype(np.float32) / 255.0
        elif a.dtype == np.uint16:
            rgb = a.astype(np.float32) / 65535.0
        else:
            rgb = a.astype(np.float32)
        return cls(rgb=rgb, source=source)


_IMAGE_EXT = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


def load_prediction(path: str | os.PathLike, ab_channels: tuple[str, str] | None = None) -> Prediction:
    """Read a prediction from disk.

    Supported: a world clip directory (its ``color/`` frames); a directory of RGB image frames
    (PNG/TIFF/JPEG, 8 or 16 bit, sorted by name); a directory of a*, b* OpenEXR frames (sorted by name;
    channels ``ab.a_star``/``ab.b_star`` as the video engine writes them, or given by ``ab_channels``); a ``.npy`` file or a
    ``.npz`` with one array (or keys ``rgb`` / ``ab``), or a directory holding exactly one of those.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"prediction {p} does not exist")
    if p.is_file():
        return _load_array_file(p)
    if (p / "clip.json").is_file():
        return Prediction(rgb=Clip.load(p).rgb, source=str(p))
    files = sorted(f for f in p.iterdir() if f.is_file())
    exr = [f for f in files if f.suffix.lower() == ".exr"]
    if exr:
        return Prediction(ab=np.stack([_read_ab_exr(f, ab_channels) for f in exr]), source=str(p))
    images = [f for f in files if f.suffix.lower() in _IMAGE_EXT]
    if images:
        frames = []
        for f in images:
            img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
            if img is None or img.ndim != 3 or img.shape[2] < 3:
                raise InputError(f"{f}: not an RGB image (shape {None if img is None else img.shape})")
            frames.append(img[..., 2::-1])  # BGR(A) → RGB
        dtypes = {fr.dtype for fr in frames}
        if len(dtypes) != 1 or len({fr.shape for fr in frames}) != 1:
            raise InputError(f"{p}: frames differ in size or bit depth")
        return Prediction.from_array(np.stack(frames), source=str(p))
    arrays = [f for f in files if f.suffix.lower() in (".npy", ".npz")]
    if len(arrays) == 1:
        return _load_array_file(arrays[0])
    if len(arrays) > 1:
        raise InputError(f"{p}: holds {len(arrays)} .npy/.npz files; expected one")
    raise InputError(f"{p}: no prediction found (expected RGB image frames, a*b* EXR frames, .npy or .npz)")


def _load_array_file(f: Path) -> Prediction:
    if f.suffix.lower() == ".npy":
        return Prediction.from_array(np.load(f, allow_pickle=False), source=str(f))
    if f.suffix.lower() == ".npz":
        with np.load(f, allow_pickle=False) as z:
            keys = list(z.keys())
            for key in ("rgb", "ab"):
                if key in keys:
                    return Prediction.from_array(z[key], source=f"{f}[{key}]")
            if len(keys) == 1:
                return Prediction.from_array(z[keys[0]], source=str(f))
        raise InputError(f"{f}: expected an array named 'rgb' or 'ab' (or a single array), found {keys}")
    raise InputError(f"{f}: unsupported prediction file (use a directory of frames, .npy or .npz)")


def _read_ab_exr(f: Path, ab_channels: tuple[str, str] | None) -> np.ndarray:
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(str(f))
    if inp is None:
        raise InputError(f"could not read {f}: {oiio.geterror()}")
    try:
        names = list(inp.spec().channelnames)
        pixels = inp.read_image(oiio.FLOAT)
    finally:
        inp.close()
    if pixels is None:
        raise InputError(f"could not read pixels of {f}")
    if ab_channels is None:
        ab_channels = AB_CHANNELS  # the project's ab layer contract (protocol/SPEC.md)
    missing = [c for c in ab_channels if c not in names]
    if missing:
        raise InputError(f"{f}: channel(s) {missing} not found; the file has {names} (name them with --ab-channels)")
    ia, ib = names.index(ab_channels[0]), names.index(ab_channels[1])
    return np.stack([pixels[..., ia], pixels[..., ib]], axis=-1).astype(np.float32)


# -- single metrics ------------------------------------------------------------------------------


def text_adherence(pred_ab: np.ndarray, masks: np.ndarray, layers, named: list[int]) -> tuple[float, list[dict]]:
    """Fraction of ``named`` layers whose mean predicted a*, b* (over all their pixels in all frames) is
    nearest, among the palette colors, to the named color (ties count: white, gray and black share
    a*, b* = 0 and differ only in L*, which the input fixes). Returns the fraction and per-layer rows."""
    rows = []
    by_id = {lay.id: lay for lay in layers}
    for lid in named:
        sel = masks == lid
        n = int(sel.sum())
        lay = by_id[lid]
        if n == 0:
            rows.append({"id": lid, "noun": lay.noun, "color": lay.color, "pixels": 0, "mean_ab": None,
                         "nearest": [], "correct": None})
            continue
        mean_ab = pred_ab[sel].astype(np.float64).mean(axis=0)
        nearest = nearest_palette_colors(mean_ab)[0]
        rows.append({"id": lid, "noun": lay.noun, "color": lay.color, "pixels": n,
                     "mean_ab": [round(float(v), 3) for v in mean_ab], "nearest": list(nearest),
                     "correct": lay.color in nearest})
    scored = [r["correct"] for r in rows if r["correct"] is not None]
    return (float(np.mean(scored)) if scored else float("nan")), rows


def warp_error(frames: np.ndarray, flow: np.ndarray, valid: np.ndarray) -> float:
    """Lai et al. (2018) warp error: mean over consecutive pairs of Σ M‖V_t − warp(V_{t+1})‖² / Σ M, where
    warp samples frame t+1 at p + flow_t(p) (bilinear) and M marks the valid (non-occluded) pixels.
    Pairs with no valid pixel are skipped; NaN when there is none at all."""
    n = frames.shape[0]
    if flow.shape[0] != n - 1 or valid.shape[0] != n - 1:
        raise InputError(f"flow for {flow.shape[0]} pairs and valid mask for {valid.shape[0]} pairs do not fit "
                         f"{n} frames")
    if n < 2:
        return float("nan")
    h, w = frames.shape[1:3]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    errs = []
    for t in range(n - 1):
        m = valid[t]
        cnt = int(m.sum())
        if cnt == 0:
            continue
        nxt = np.ascontiguousarray(frames[t + 1], dtype=np.float32)
        warped = cv2.remap(nxt, xs + flow[t, ..., 0], ys + flow[t, ..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        if warped.ndim == 2:
            warped = warped[..., None]
        cur = frames[t].astype(np.float32)
        if cur.ndim == 2:
            cur = cur[..., None]
        d = ((cur - warped) ** 2).sum(axis=-1)
        errs.append(float(d[m].sum(dtype=np.float64) / cnt))
    return float(np.mean(errs)) if errs else float("nan")


def dis_flow(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward flow between consecutive gray frames (N, H, W) in [0, 1] with OpenCV DIS (medium
    preset), and a validity mask from the forward–backward check used by Lai et al.: a pixel is
    occluded if |F(p) + B(p + F(p))|² > 0.01 (|F|² + |B|²) + 0.5, on a motion boundary if
    |∇F|² > 0.01 |F|² + 0.002, or if it leaves the frame."""
    g = np.asarray(gray)
    if g.ndim != 3:
        raise InputError(f"gray clip must be (frames, H, W), got shape {g.shape}")
    n, h, w = g.shape
    u8 = np.round(np.clip(g, 0, 1) * 255).astype(np.uint8)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    flows = np.zeros((max(n - 1, 0), h, w, 2), np.float32)
    valid = np.zeros((max(n - 1, 0), h, w), bool)
    for t in range(n - 1):
        fw = dis.calc(u8[t], u8[t + 1], None)
        bw = dis.calc(u8[t + 1], u8[t], None)
        mx, my = xs + fw[..., 0], ys + fw[..., 1]
        bw_w = cv2.remap(bw, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        s = fw + bw_w
        occluded = (s**2).sum(-1) > 0.01 * ((fw**2).sum(-1) + (bw_w**2).sum(-1)) + 0.5
        gx_u, gy_u = np.gradient(fw[..., 0], axis=1), np.gradient(fw[..., 0], axis=0)
        gx_v, gy_v = np.gradient(fw[..., 1], axis=1), np.gradient(fw[..., 1], axis=0)
        boundary = gx_u**2 + gy_u**2 + gx_v**2 + gy_v**2 > 0.01 * (fw**2).sum(-1) + 0.002
        inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        flows[t] = fw
        valid[t] = inside & ~occluded & ~boundary
    return flows, valid


def _js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence (natural log) along the last axis of histograms (normalised here)."""
    p = p / p.sum(-1, keepdims=True)
    q = q / q.sum(-1, keepdims=True)
    m = (p + q) / 2

    def kl(x, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0, x * np.log(x / y), 0.0).sum(-1)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def _cdc_from_histograms(hists: np.ndarray, dilations=(1, 2, 4)) -> float:
    """hists: (N, C, bins). TCVC: Σ_d w_d · mean_i JS(h_i, h_{i+d}), averaged over channels, w_d = 1/3.
    Dilations not shorter than the clip are left out and the weights renormalised; NaN for 1 frame."""
    n = hists.shape[0]
    usable = [d for d in dilations if d < n]
    if not usable:
        return float("nan")
    total = 0.0
    for d in usable:
        total += _js_divergence(hists[:-d], hists[d:]).mean(axis=0)  # (C,)
    return float(np.mean(total / len(usable)))


def cdc_rgb(rgb: np.ndarray, dilations=(1, 2, 4)) -> float:
    """Color distribution consistency (TCVC, Liu et al.) on 8-bit RGB: 256-bin per-channel histograms."""
    u8 = np.round(np.clip(np.asarray(rgb, np.float32), 0, 1) * 255).astype(np.int64)
    n = u8.shape[0]
    hists = np.stack([[np.bincount(u8[t, ..., c].ravel(), minlength=256) for c in range(3)] for t in range(n)])
    return _cdc_from_histograms(hists.astype(np.float64), dilations)


def cdc_ab(ab: np.ndarray, dilations=(1, 2, 4)) -> float:
    """CDC on a*, b*: 256 one-unit bins centred on the integers −128…127 per channel, so luminance
    flicker inherited from the film does not count (centred bins keep neutral a*, b* ≈ 0 in one bin)."""
    idx = np.clip(np.round(np.asarray(ab, np.float32)) + 128, 0, 255).astype(np.int64)
    n = idx.shape[0]
    hists = np.stack([[np.bincount(idx[t, ..., c].ravel(), minlength=256) for c in range(2)] for t in range(n)])
    return _cdc_from_histograms(hists.astype(np.float64), dilations)


def luminance_error(pred_rgb: np.ndarray, gray_in: np.ndarray) -> float:
    """max |L*_out − L*_in| over all pixels: the paper keeps the input's luminance exactly."""
    return float(np.abs(rgb_to_lab(np.asarray(pred_rgb, np.float32))[..., 0]
                        - gray_to_lightness(np.asarray(gray_in, np.float32))).max())


def recombine(ab: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """sRGB frames from predicted a*, b* over the input's own L*, chroma shrunk into gamut — what the
    pipeline outputs (with the true a*, b*: the ideal output for a damaged input)."""
    lab = fit_chroma_to_gamut(replace_luminance(np.asarray(ab, np.float32), np.asarray(gray, np.float32)))
    return np.clip(lab_to_rgb(lab), 0.0, 1.0).astype(np.float32)


def _mean_colorfulness(rgb: np.ndarray) -> float:
    return float(np.mean(colorfulness(np.asarray(rgb, np.float32))))


def temporal_metrics(pred: Prediction | np.ndarray, gray: np.ndarray) -> dict:
    """Flicker metrics for a clip without ground truth: DIS flow on the gray input."""
    p = pred if isinstance(pred, Prediction) else Prediction.from_array(pred)
    _check_same(p.shape, gray.shape, "gray input")
    _, ab, rgb = _lab_parts(p, gray)
    flow, valid = dis_flow(gray)
    e_ab = warp_error(ab, flow, valid)
    return {"flow": "DIS on the gray input", "warp_error_ab": e_ab, "flicker_ab_rms": _sqrt(e_ab),
            "warp_error_rgb": warp_error(rgb, flow, valid), "cdc_rgb": cdc_rgb(rgb), "cdc_ab": cdc_ab(ab),
            "valid_fraction": float(valid.mean()) if valid.size else float("nan")}


def _sqrt(v: float) -> float:
    return math.sqrt(v) if not math.isnan(v) else float("nan")


def _check_same(pred_shape, gt_shape, what: str) -> None:
    if tuple(pred_shape[:3]) != tuple(gt_shape[:3]):
        n, h, w = pred_shape[:3]
        gn, gh, gw = gt_shape[:3]
        raise InputError(f"prediction has {n} frames of {w}x{h} but the {what} has {gn} frames of {gw}x{gh}")


def _lab_parts(p: Prediction, gray_in: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(L* of the output or None for an a*b*-only prediction, a*b*, sRGB)."""
    if p.rgb is not None:
        rgb = np.clip(p.rgb, 0.0, 1.0)
        lab = rgb_to_lab(rgb)
        return lab[..., 0], lab[..., 1:].astype(np.float32), rgb
    assert p.ab is not None
    return None, p.ab.astype(np.float32), recombine(p.ab, gray_in)


# -- everything ----------------------------------------------------------------------------------


def evaluate(pred, gt, caption: int = 0, flow: str = "gt", ab_channels: tuple[str, str] | None = None) -> dict:
    """All metrics of a prediction against a world clip.

    ``pred``: a ``Prediction``, an array (see ``Prediction.from_array``) or a path
    (``load_prediction``). ``gt``: a ``Clip`` or a clip directory. ``caption``: which of the clip's
    captions was the prompt (it decides which layers count as named). ``flow``: ``"gt"`` (exact flow
    and visibility) or ``"dis"`` (what a clip without ground truth gets).
    """
    clip = gt if isinstance(gt, Clip) else Clip.load(gt)
    if isinstance(pred, Prediction):
        p = pred
    elif isinstance(pred, np.ndarray):
        p = Prediction.from_array(pred)
    else:
        p = load_prediction(pred, ab_channels)
    _check_same(p.shape, clip.gray.shape, "ground truth")
    if not 0 <= caption < len(clip.captions):
        raise InputError(f"caption index {caption} is out of range: the clip has {len(clip.captions)} captions")
    if flow not in ("gt", "dis"):
        raise InputError(f"flow must be 'gt' or 'dis', got {flow!r}")

    L_out, ab, rgb = _lab_parts(p, clip.gray)
    named = clip.caption_layers[caption]
    adherence, rows = text_adherence(ab, clip.masks, clip.layers, named)

    gt_ab = clip.ab_truth()
    true_lab = rgb_to_lab(clip.rgb)
    gt_L = true_lab[..., 0]
    sel = np.isin(clip.masks, named)
    de_all = ciede2000(np.concatenate([gt_L[sel][:, None], ab[sel]], -1),
                       np.concatenate([gt_L[sel][:, None], gt_ab[sel]], -1))
    lid_sel = clip.masks[sel]
    for r in rows:
        m = lid_sel == r["id"]
        r["delta_e2000"] = float(de_all[m].mean()) if m.any() else None

    if flow == "gt":
        fl, valid = clip.flow, clip.flow_valid
        flow_name = "ground truth"
    else:
        fl, valid = dis_flow(clip.gray)
        flow_name = "DIS on the gray input"
    e_ab = warp_error(ab, fl, valid)
    L_in = gray_to_lightness(clip.gray)
    true_e_ab = warp_error(true_lab[..., 1:], fl, valid)
    return {
        "frames": clip.n_frames, "size": list(clip.size), "prediction": p.source,
        "prediction_kind": "rgb" if p.rgb is not None else "ab",
        "caption_index": caption, "caption": clip.captions[caption], "named_layers": named,
        "text_adherence": adherence,
        "delta_e2000": float(de_all.mean()) if de_all.size else float("nan"),
        "colorfulness": _mean_colorfulness(rgb),
        "flow": flow_name,
        "warp_error_ab": e_ab,
        "flicker_ab_rms": _sqrt(e_ab),
        "warp_error_rgb": warp_error(rgb, fl, valid),
        "cdc_rgb": cdc_rgb(rgb),
        "cdc_ab": cdc_ab(ab),
        "luminance_error_max": float(np.abs(L_out - L_in).max()) if L_out is not None else None,
        # The same metrics for the ground-truth color clip (its L* is the clean one, so against a
        # damaged input its luminance error measures the damage).
        "reference": {"colorfulness": _mean_colorfulness(clip.rgb), "flicker_ab_rms": _sqrt(true_e_ab),
                      "warp_error_rgb": warp_error(clip.rgb, fl, valid), "cdc_rgb": cdc_rgb(clip.rgb),
                      "cdc_ab": cdc_ab(true_lab[..., 1:]),
                      "luminance_error_max": float(np.abs(true_lab[..., 0] - L_in).max())},
        "layers": rows,
    }


def format_table(result: dict) -> str:
    """Human-readable table of ``evaluate``'s result: each metric for the prediction and for the
    ground-truth color clip itself."""

    def f(v, digits=3):
        if v is None:
            return "—"
        if isinstance(v, float) and math.isnan(v):
            return "n/a"
        return f"{v:.{digits}f}"

    ref = result["reference"]
    lum = result["luminance_error_max"]
    rows = [
        (f"text adherence ({len(result['named_layers'])} named)", f(result["text_adherence"]), "1.000"),
        ("ΔE2000 in named layers (at true L*)", f(result["delta_e2000"], 2), "0.00"),
        ("colorfulness (Hasler–Süsstrunk)", f(result["colorfulness"], 1), f(ref["colorfulness"], 1)),
        ("a*b* flicker: RMS warp error", f(result["flicker_ab_rms"], 3), f(ref["flicker_ab_rms"], 3)),
        ("RGB warp error (Lai)", f(result["warp_error_rgb"], 5), f(ref["warp_error_rgb"], 5)),
        ("CDC RGB", f(result["cdc_rgb"], 5), f(ref["cdc_rgb"], 5)),
        ("CDC a*b*", f(result["cdc_ab"], 5), f(ref["cdc_ab"], 5)),
        ("max |L*out − L*in|", f(lum) if lum is not None else "a*b* only", f(ref["luminance_error_max"])),
    ]
    lines = [
        f"prompt (caption {result['caption_index']}): {result['caption']}",
        f"{result['frames']} frames of {result['size'][0]}x{result['size'][1]}, prediction: {result['prediction']}",
        f"flow for flicker: {result['flow']}",
        "",
        f"{'metric':<38}{'prediction':>12}{'truth':>12}",
    ]
    lines += [f"{a:<38}{b:>12}{c:>12}" for a, b, c in rows]
    lines += ["", f"{'layer':<16}{'named color':<14}{'nearest predicted':<26}{'ΔE2000':>8}"]
    for r in result["layers"]:
        nearest = "/".join(r["nearest"]) if r["nearest"] else "not visible"
        mark = "" if r["correct"] is None else ("  ok" if r["correct"] else "  WRONG")
        lines.append(f"{str(r['id']) + ' ' + r['noun']:<16}{r['color']:<14}{nearest + mark:<26}"
                     f"{f(r['delta_e2000'], 2):>8}")
    return "\n".join(lines)
