"""Rendering clips of the old-film world and their on-disk format.

``render_clip`` draws a scene from a seed and renders, per frame, the exact layer mask and L* field;
a*, b* are the palette color of each layer (constant inside a layer: texture and shading only change
L*). The color frame is Lab → sRGB of that; the clean gray frame is the sRGB gray with the color
frame's own luminance Y (so ``gray_to_lightness(gray_clean)`` is the color frame's L* and luminance
replacement with the true a*, b* gives the color frame back); the input gray is the clean gray with
old-film damage.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from coolcolor import color
from coolcolor.color import lab_to_rgb
from coolcolor.errors import InputError
from coolcolor.world.captions import make_captions
from coolcolor.world.catalog import MAX_OBJECTS
from coolcolor.world.degrade import Degradations, apply_degradations, weave_offsets
from coolcolor.world.generator import generate_scene
from coolcolor.world.palette import palette_color
from coolcolor.world.scene import Layer, Motion, Scene
from coolcolor.world.spec import WorldSpec
from coolcolor.world.wide import make_wide_captions

FORMAT = "coolcolor-world-clip"
FORMAT_VERSION = 1
MAX_SIDE = 8192


@dataclass
class Clip:
    """A rendered clip with its ground truth. Arrays are frame-major.

    gray: (N, H, W) float32 sRGB in [0, 1], damaged — the model's input.
    gray_clean: (N, H, W) float32, undamaged.
    rgb: (N, H, W, 3) float32 sRGB in [0, 1] — the ground-truth color.
    masks: (N, H, W) uint8 layer ids (index into ``layers``).
    flow: (N-1, H, W, 2) float32 forward flow in pixels (x, y): pixel p of frame t shows at p + flow.
    flow_valid: (N-1, H, W) bool, pixels whose layer is still visible at p + flow in frame t+1 with all
        four bilinear neighbours on that layer (non-occluded, safe to compare after warping).
    captions / caption_layers: captions (the first names every layer) and the layer ids each names.
    scene: the analytic scene, for sampling any frame at any point (``Scene.sample``); not saved.
    """

    seed: int
    gray: np.ndarray
    gray_clean: np.ndarray
    rgb: np.ndarray
    masks: np.ndarray
    flow: np.ndarray
    flow_valid: np.ndarray
    layers: list[Layer]
    captions: list[str]
    caption_layers: list[list[int]]
    layout: str = ""
    degradations: Degradations = field(default_factory=Degradations)
    motion: Motion = field(default_factory=Motion)
    scene: Scene | None = field(default=None, repr=False)  # the analytic scene (not saved to disk)

    @property
    def n_frames(self) -> int:
        return int(self.gray.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.gray.shape[2]), int(self.gray.shape[1])

    @property
    def objects(self) -> list[Layer]:
        return [lay for lay in self.layers if lay.kind == "object"]

    @property
    def regions(self) -> list[Layer]:
        return [lay for lay in self.layers if lay.kind == "region"]

    def ab_truth(self) -> np.ndarray:
        """(N, H, W, 2) float32 exact a*, b* (the palette color of each pixel's layer)."""
        table = np.array([lay.palette.ab for lay in self.layers], np.float32)
        return table[self.masks]

    # -- disk format ------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``clip.json``, 16-bit PNG sequences ``color/``, ``gray/``, ``gray_clean/`` (frames
        numbered from 1) and ``truth.npz`` (masks, flow, flow_valid)."""
        out = Path(directory)
        if out.exists() and not out.is_dir():
            raise InputError(f"{out} exists and is not a directory")
        if out.is_dir() and any(out.iterdir()) and not (out / "clip.json").exists():
            raise InputError(f"refusing to write a clip into {out}: the directory is not empty and holds no clip")
        for sub in ("color", "gray", "gray_clean"):
            (out / sub).mkdir(parents=True, exist_ok=True)
            for old in (out / sub).glob(f"{sub}.*.png"):
                old.unlink()
        for t in range(self.n_frames):
            _write_png16(out / "color" / f"color.{t + 1:04d}.png", self.rgb[t])
            _write_png16(out / "gray" / f"gray.{t + 1:04d}.png", self.gray[t])
            _write_png16(out / "gray_clean" / f"gray_clean.{t + 1:04d}.png", self.gray_clean[t])
        np.savez_compressed(out / "truth.npz", masks=self.masks, flow=self.flow, flow_valid=self.flow_valid)
        meta = {
            "format": FORMAT, "version": FORMAT_VERSION, "seed": self.seed,
            "frames": self.n_frames, "size": list(self.size), "layout": self.layout,
            "layers": [lay.to_json() for lay in self.layers],
            "captions": self.captions, "caption_layers": self.caption_layers,
            "degradations": self.degradations.to_json(), "motion": asdict(self.motion),
            "files": {"color": "color/color.%04d.png", "gray": "gray/gray.%04d.png",
                      "gray_clean": "gray_clean/gray_clean.%04d.png", "truth": "truth.npz",
                      "first_frame": 1, "encoding": "sRGB, 16-bit PNG"},
        }
        (out / "clip.json").write_text(json.dumps(meta, indent=1))
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Clip:
        src = Path(directory)
        meta_path = src / "clip.json"
        if not meta_path.is_file():
            raise InputError(f"{src} is not a world clip: {meta_path} is missing")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{meta_path} is not valid JSON: {exc}") from None
        if meta.get("format") != FORMAT:
            raise InputError(f"{meta_path}: format is {meta.get('format')!r}, expected {FORMAT!r}")
        if meta.get("version") != FORMAT_VERSION:
            raise InputError(f"{meta_path}: version {meta.get('version')!r} is not supported "
                             f"(this build reads {FORMAT_VERSION})")
        n = int(meta["frames"])
        w, h = (int(v) for v in meta["size"])
        rgb = np.stack([_read_png16(src / "color" / f"color.{t + 1:04d}.png", 3, (w, h)) for t in range(n)])
        gray = np.stack([_read_png16(src / "gray" / f"gray.{t + 1:04d}.png", 1, (w, h)) for t in range(n)])
        gray_clean = np.stack([_read_png16(src / "gray_clean" / f"gray_clean.{t + 1:04d}.png", 1, (w, h))
                               for t in range(n)])
        truth_path = src / "truth.npz"
        if not truth_path.is_file():
            raise InputError(f"{src}: {truth_path.name} (masks and flow) is missing")
        with np.load(truth_path) as truth:
            masks, flow, valid = truth["masks"], truth["flow"], truth["flow_valid"]
        if masks.shape != (n, h, w) or flow.shape != (max(n - 1, 0), h, w, 2):
            raise InputError(f"{truth_path}: masks {masks.shape} / flow {flow.shape} do not match "
                             f"{n} frames of {w}x{h}")
        return cls(
            seed=int(meta["seed"]), gray=gray, gray_clean=gray_clean, rgb=rgb, masks=masks, flow=flow,
            flow_valid=valid, layers=[Layer.from_json(d) for d in meta["layers"]],
            captions=list(meta["captions"]), caption_layers=[list(c) for c in meta["caption_layers"]],
            layout=str(meta.get("layout", "")), degradations=Degradations(**meta.get("degradations", {})),
            motion=Motion(**meta.get("motion", {})),
        )


def _write_png16(path: Path, img: np.ndarray) -> None:
    q = np.round(np.clip(img, 0.0, 1.0) * 65535.0).astype(np.uint16)
    if q.ndim == 3:
        q = q[..., ::-1]  # cv2 writes BGR
    if not cv2.imwrite(str(path), q, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
        raise InputError(f"could not write {path}")


def _read_png16(path: Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"frame {path} is missing")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"could not read {path}")
    if img.shape[:2] != (size[1], size[0]) or (img.ndim == 3) != (channels == 3):
        raise InputError(f"{path} has shape {img.shape}, expected {size[0]}x{size[1]} with {channels} channel(s)")
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    img = img.astype(np.float32) / scale
    return img[..., ::-1].copy() if channels == 3 else img


# -- rendering -----------------------------------------------------------------------------------


def _check_size(size) -> tuple[int, int]:
    try:
        w, h = size
        w_i, h_i = int(w), int(h)
    except (TypeError, ValueError):
        raise InputError(f"size must be (width, height), got {size!r}") from None
    if w_i != w or h_i != h or w_i <= 0 or h_i <= 0:
        raise InputError(f"size must be two positive integers (width, height), got {size!r}")
    if w_i > MAX_SIDE or h_i > MAX_SIDE:
        raise InputError(f"size {w_i}x{h_i} is larger than {MAX_SIDE} pixels on a side")
    return w_i, h_i


def render_clip(
    seed: int,
    frames: int,
    size: tuple[int, int] = (128, 128),
    degradations: Degradations | None = None,
    motion: Motion | None = None,
    objects: int | None = None,
    object_colors: tuple[str, ...] | list[str] | None = None,
    world: WorldSpec | None = None,
) -> Clip:
    """Render ``frames`` frames of the scene drawn from ``seed`` at ``size`` = (width, height).

    ``degradations`` defaults to ``Degradations.old_film()``, ``motion`` to ``Motion()``; ``objects``
    (1–4) and ``object_colors`` (palette names, back to front) override what the seed would draw.
    The scene does not depend on ``frames``: color, masks and flow of a longer clip extend those of a
    shorter one (the film damage is drawn anew). ``world`` (a ``WorldSpec``) picks the world version
    and what it leaves out or features; the default is world version 1 as it always rendered.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames <= 0:
        raise InputError(f"frame count must be a positive integer, got {frames!r}")
    w, h = _check_size(size)
    if objects is not None and not (isinstance(objects, (int, np.integer)) and 1 <= objects <= MAX_OBJECTS):
        raise InputError(f"objects must be between 1 and {MAX_OBJECTS}, got {objects!r}")
    colors = None
    if object_colors is not None:
        colors = tuple(palette_color(c).name for c in object_colors)  # raises on unknown names
        if not 1 <= len(colors) <= MAX_OBJECTS:
            raise InputError(f"object_colors must name 1 to {MAX_OBJECTS} colors, got {len(colors)}")
        if objects is not None and objects != len(colors):
            raise InputError(f"objects={objects} but object_colors names {len(colors)} colors")
    degradations = Degradations.old_film() if degradations is None else degradations
    motion = Motion() if motion is None else motion
    if not isinstance(degradations, Degradations):
        raise InputError(f"degradations must be a Degradations, got {type(degradations).__name__}")
    if not isinstance(motion, Motion):
        raise InputError(f"motion must be a Motion, got {type(motion).__name__}")
    if world is not None and not isinstance(world, WorldSpec):
        raise InputError(f"world must be a WorldSpec, got {type(world).__name__}")
    world = WorldSpec() if world is None else world
    frames, seed = int(frames), int(seed)

    scene = generate_scene(seed, w / h, objects, motion, colors, world)
    weave_rng = np.random.default_rng(np.random.SeedSequence([seed, 0xDE6, 0]))
    scene.weave = weave_offsets(weave_rng, frames, degradations.gate_weave)

    ids, L = _render_fields(scene, frames, (w, h))
    rgb, gray_clean = _lab_to_rgb_and_gray(ids, L, scene.layers)
    flow, valid = _flow_fields(scene, ids, (w, h))

    if degradations.is_clean():
        gray = gray_clean.copy()
    else:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xDE6, 1]))
        gray = apply_degradations(gray_clean, degradations, rng)
    if world.version == 1:
        captions, named = make_captions(scene.layers, seed, world)
    elif world.version == 4:
        captions, named = make_captions(_named_layers(scene.layers, ids), seed, world)
    else:
        captions, named = make_wide_captions(scene, ids, seed, world)
    return Clip(seed=seed, gray=gray, gray_clean=gray_clean, rgb=rgb, masks=ids, flow=flow,
                flow_valid=valid, layers=scene.layers, captions=captions, caption_layers=named,
                layout=scene.layout, degradations=degradations, motion=motion, scene=scene)


def _named_layers(layers: list[Layer], masks: np.ndarray) -> list[Layer]:
    """The layers a version-4 caption may name: those the clip shows. Its big objects can hide a region
    or another object, and a caption should not teach a color for pixels that are not there. Version 1's
    captions need an object and a region; when no object (or no region) is visible, all layers are kept."""
    counts = np.bincount(masks.ravel(), minlength=len(layers))
    visible = [lay for lay in layers if counts[lay.id] > 0]
    if {lay.kind for lay in visible} != {"object", "region"}:
        return list(layers)
    return visible


def render_image(
    seed: int,
    size: tuple[int, int] = (128, 128),
    degradations: Degradations | None = None,
    objects: int | None = None,
    object_colors: tuple[str, ...] | list[str] | None = None,
    world: WorldSpec | None = None,
) -> Clip:
    """A single still (a one-frame, motionless clip): the cheap sample for image training."""
    return render_clip(seed, 1, size, degradations, Motion.static(), objects, object_colors, world)


def luminance_gray(rgb: np.ndarray) -> np.ndarray:
    """The sRGB gray with the same luminance Y (hence L*) as each sRGB color pixel (…×3 → …)."""
    return np.asarray(color.srgb_to_gray(np.asarray(rgb)), dtype=np.float32)


_LUT_STEP = 1.0 / 64.0  # L* step of the conversion tables
_LUT_GRID = np.arange(0.0, 100.0 + _LUT_STEP, _LUT_STEP, dtype=np.float64)


@functools.cache
def _color_table(color: str) -> np.ndarray:
    """(len(_LUT_GRID), 4) float32: sRGB and clean gray of the palette color's a*, b* at every grid L*."""
    a, b = palette_color(color).ab
    lab = np.stack([_LUT_GRID, np.full_like(_LUT_GRID, a), np.full_like(_LUT_GRID, b)], axis=-1)
    rgb = np.clip(lab_to_rgb(lab), 0.0, 1.0)
    return np.concatenate([rgb, luminance_gray(rgb)[:, None]], axis=-1).astype(np.float32)


def _lab_to_rgb_and_gray(ids: np.ndarray, L: np.ndarray, layers: list[Layer]) -> tuple[np.ndarray, np.ndarray]:
    """sRGB color and clean gray of every pixel from its layer's a*, b* and its L*.

    Inside a layer only L* varies, so color and gray are 1-D functions of L* per palette color:
    tabulated once with ``lab_to_rgb`` / ``luminance_gray`` every 1/64 L* and interpolated linearly.
    The curves are smooth, so the interpolation error (≤ 2e-6 in sRGB) is far below a 16-bit step; the
    conversion costs two gathers instead of a Lab → sRGB pass over every pixel.
    """
    m = _LUT_GRID.size
    table = np.concatenate([_color_table(lay.color) for lay in layers])
    pos = np.clip(L, 0.0, 100.0, dtype=np.float32) * np.float32(1.0 / _LUT_STEP)
    i0 = np.minimum(pos.astype(np.int32), m - 2)
    frac = (pos - i0.astype(np.float32))[..., None]
    idx = ids.astype(np.int32) * np.int32(m) + i0
    lo = np.take(table, idx, axis=0)
    out = lo + (np.take(table, idx + 1, axis=0) - lo) * frac
    return np.ascontiguousarray(out[..., :3]), np.ascontiguousarray(out[..., 3])


def _render_fields(scene: Scene, frames: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    w, h = size
    ids = np.empty((frames, h, w), np.uint8)
    L = np.empty((frames, h, w), np.float32)
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)
    grid = (np.broadcast_to(xs[None, :], (h, w)), np.broadcast_to(ys[:, None], (h, w)))
    for t in range(frames):
        scene.render_frame(t, size, ids[t], L[t], grid)
    return ids, L


def _flow_fields(scene: Scene, ids: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Exact forward flow from the per-layer pixel maps, and where it may be compared after warping."""
    n = ids.shape[0]
    w, h = size
    flow = np.empty((max(n - 1, 0), h, w, 2), np.float32)
    valid = np.empty((max(n - 1, 0), h, w), bool)
    xs = np.arange(w, dtype=np.float64)[None, :]
    ys = np.arange(h, dtype=np.float64)[:, None]
    for t in range(n - 1):
        F = scene.flow_matrices(t, size)
        idx = ids[t]
        a, b, c = F[:, 0, 0][idx], F[:, 0, 1][idx], F[:, 0, 2][idx]
        d, e, f = F[:, 1, 0][idx], F[:, 1, 1][idx], F[:, 1, 2][idx]
        x1 = a * xs + b * ys + c
        y1 = d * xs + e * ys + f
        flow[t, ..., 0] = x1 - xs
        flow[t, ..., 1] = y1 - ys
        valid[t] = _visible_after_warp(x1, y1, idx, ids[t + 1])
    return flow, valid


def _visible_after_warp(x1: np.ndarray, y1: np.ndarray, idx: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    h, w = nxt.shape
    inside = (x1 >= 0) & (x1 <= w - 1) & (y1 >= 0) & (y1 <= h - 1)
    x0 = np.clip(np.floor(x1), 0, w - 1).astype(np.intp)
    y0 = np.clip(np.floor(y1), 0, h - 1).astype(np.intp)
    xa, ya = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    same = (nxt[y0, x0] == idx) & (nxt[y0, xa] == idx) & (nxt[ya, x0] == idx) & (nxt[ya, xa] == idx)
    return inside & same


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` → (W, H), with an error that names the problem."""
    parts = str(text).lower().split("x")
    if len(parts) != 2:
        raise InputError(f"size {text!r} is not of the form WIDTHxHEIGHT (e.g. 128x128)")
    try:
        w, h = int(parts[0]), int(parts[1])
    except ValueError:
        raise InputError(f"size {text!r} is not of the form WIDTHxHEIGHT (e.g. 128x128)") from None
    return _check_size((w, h))


def clip_summary(clip: Clip) -> dict:
    """What a person wants to see after rendering (the CLI prints it)."""
    return {
        "seed": clip.seed, "frames": clip.n_frames, "size": list(clip.size), "layout": clip.layout,
        "layers": [{"id": lay.id, "kind": lay.kind, "noun": lay.noun, "color": lay.color} for lay in clip.layers],
        "captions": clip.captions,
        "max_flow_px": float(math.sqrt(float((clip.flow ** 2).sum(-1).max()))) if clip.flow.size else 0.0,
    }
