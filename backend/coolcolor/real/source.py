"""Training views of real photographs and real cut-outs, for a model that must colour real film.

Two kinds of view, both pure functions of (run seed, step, index) like the world's stills, so a resumed run
sees the same batches:

* a square crop of a catalog photograph at a random scale (half the short side to all of it), flipped at
  random, with the photograph's hand-written caption (the crop keeps at least half the short side, so
  the things the caption names are mostly in view);
* a photographic cut-out with alpha (Tux Paint's stamps: animals, fruit, vehicles, …) laid over a crop of
  a photograph, captioned ``"a <colour> <noun>"``. The colour word is *measured* from the cut-out's own
  pixels (``colour_name``), so the caption is true of the pixels the model is asked to produce.

The gray input is the view's luminance, damaged like the world's (old-film strength U(0, max), clean with
probability ``clean_fraction``). Only ``train`` items of the catalog are ever read: the benchmark's clips
(``eval`` items) stay unseen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from coolcolor.color import rgb_to_lab
from coolcolor.errors import InputError
from coolcolor.model.pipeline import resize_frames
from coolcolor.real.catalog import Catalog, load_catalog, read_image, verified_path
from coolcolor.world import Degradations, luminance_gray
from coolcolor.world.degrade import apply_degradations

logger = logging.getLogger(__name__)

PHOTO_SIDE = 192  # photographs are kept in memory with this short side (crops are shrunk to ≤ 64 px anyway)
CUTOUT_SIDE = 128  # and cut-outs with this long side
MIN_CROP = 0.5  # smallest crop, as a share of the photograph's short side


COLOUR_WORDS = ("white", "gray", "black", "red", "pink", "orange", "brown", "yellow", "green", "blue", "purple")


def _pixel_colours(lab: np.ndarray) -> np.ndarray:
    """Index into ``COLOUR_WORDS`` for each CIELab pixel (N×3), from L*, chroma and hue angle.

    The hue bins follow where sRGB's named colours fall in CIELab (red ≈ 40°, yellow ≈ 100°, green ≈ 136°,
    blue ≈ 306°, magenta ≈ 328°, whose purple neighbours start past blue); dark oranges and yellows are brown, light weak reds pink.
    """
    lightness, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    hue = np.degrees(np.arctan2(b, a)) % 360
    w = COLOUR_WORDS.index
    out = np.full(len(lab), w("gray"))
    out[(hue >= 345) | (hue < 45)] = w("red")
    out[((hue >= 345) | (hue < 45)) & (lightness > 70) & (chroma < 50)] = w("pink")
    out[(hue >= 45) & (hue < 75)] = w("orange")
    out[(hue >= 75) & (hue < 105)] = w("yellow")
    out[(hue >= 45) & (hue < 105) & ((lightness < 55) | (chroma < 30))] = w("brown")
    out[(hue >= 105) & (hue < 195)] = w("green")
    out[(hue >= 195) & (hue < 312)] = w("blue")
    out[(hue >= 312) & (hue < 335)] = w("purple")
    out[(hue >= 335) & (hue < 345)] = w("pink")
    weak = chroma < 12
    out[weak] = np.where(lightness[weak] > 80, w("white"), np.where(lightness[weak] < 25, w("black"), w("gray")))
    return out


def colour_name(rgb: np.ndarray, alpha: np.ndarray | None = None) -> str:
    """The everyday colour word that covers most of an sRGB image (pixels weighted by alpha when given)."""
    lab = np.asarray(rgb_to_lab(np.asarray(rgb, np.float32)), np.float64).reshape(-1, 3)
    weights = np.ones(len(lab)) if alpha is None else np.asarray(alpha, np.float64).reshape(-1)
    if weights.sum() <= 0:
        raise ValueError("colour_name: no opaque pixel")
    votes = np.bincount(_pixel_colours(lab), weights=weights, minlength=len(COLOUR_WORDS))
    return COLOUR_WORDS[int(np.argmax(votes))]


PLURAL_NOUNS = frozenset({"cherries", "grapes", "binoculars", "scissors", "pliers"})


def with_article(colour: str, noun: str) -> str:
    """``"a red apple"``, ``"an orange pig"``, ``"red cherries"``."""
    if noun in PLURAL_NOUNS:
        return f"{colour} {noun}"
    return f"{'an' if colour[:1] in 'aeiou' else 'a'} {colour} {noun}"


def _shrink(image: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


@dataclass
class Photo:
    rgb: np.ndarray  # H×W×3 sRGB in [0, 1]
    caption: str


@dataclass
class Cutout:
    rgb: np.ndarray  # h×w×3
    alpha: np.ndarray  # h×w in [0, 1]
    caption: str


class RealSource:
    """Real training views (see the module docstring); ``cutout_share`` of them are cut-out composites."""

    def __init__(self, resolution: int, seed: int, data_dir: str | Path = "", cutout_share: float = 0.5,
                 degradation_max: float = 2.0, clean_fraction: float = 0.25, catalog: Catalog | None = None) -> None:
        self.resolution, self.seed = resolution, seed
        self.cutout_share, self.degradation_max, self.clean_fraction = cutout_share, degradation_max, clean_fraction
        catalog = catalog or load_catalog()
        root = Path(data_dir) if data_dir else None
        self.photos: list[Photo] = []
        for item in catalog.select("train", "photo"):
            rgb = read_image(verified_path(item, root, catalog))
            self.photos.append(Photo(_shrink(rgb, PHOTO_SIDE / min(rgb.shape[:2])), item.caption))
        self.cutouts: list[Cutout] = []
        for item in catalog.select("train", "cutout"):
            rgba = read_image(verified_path(item, root, catalog), cv2.IMREAD_UNCHANGED)
            if rgba.ndim != 3 or rgba.shape[2] != 4:
                logger.warning("skipping cut-out %s: no alpha channel", item.id)
                continue
            rgba = _shrink(rgba, CUTOUT_SIDE / max(rgba.shape[:2]))
            rgb, alpha = np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
            self.cutouts.append(Cutout(rgb, alpha, with_article(colour_name(rgb, alpha), item.noun)))
        if not self.photos:
            raise InputError("real-footage catalog: no training photographs")

    def captions(self) -> list[str]:
        """Every caption this source can produce (for growing the tokenizer's vocabulary)."""
        return [p.caption for p in self.photos] + [c.caption for c in self.cutouts]

    def _crop(self, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        photo = self.photos[int(rng.integers(len(self.photos)))]
        h, w = photo.rgb.shape[:2]
        side = int(round(min(h, w) * rng.uniform(MIN_CROP, 1.0)))
        top, left = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
        crop = photo.rgb[top : top + side, left : left + side]
        return (crop[:, ::-1] if rng.random() < 0.5 else crop), photo.caption

    def _composite(self, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        background, _ = self._crop(rng)
        cut = self.cutouts[int(rng.integers(len(self.cutouts)))]
        side = background.shape[0]
        # the object fills 45–90 % of the view's side, somewhere inside it
        scale = side * rng.uniform(0.45, 0.9) / max(cut.rgb.shape[:2])
        size = (max(1, round(cut.rgb.shape[1] * scale)), max(1, round(cut.rgb.shape[0] * scale)))
        rgb = cv2.resize(cut.rgb, size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(cut.alpha, size, interpolation=cv2.INTER_AREA)[..., None]
        if rng.random() < 0.5:
            rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
        top, left = int(rng.integers(side - size[1] + 1)), int(rng.integers(side - size[0] + 1))
        out = np.array(background, np.float32)
        region = out[top : top + size[1], left : left + size[0]]
        out[top : top + size[1], left : left + size[0]] = rgb * alpha + region * (1 - alpha)
        return out, cut.caption

    def sample(self, step: int, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, step, index, 0x4EA1]))
        use_cutout = bool(self.cutouts) and rng.random() < self.cutout_share
        view, caption = self._composite(rng) if use_cutout else self._crop(rng)
        clean = rng.random() < self.clean_fraction
        strength = 0.0 if clean else float(rng.uniform(0, self.degradation_max))
        # damage at twice the working size, as the world's stills are damaged, then shrink like the pipeline
        big = 2 * self.resolution
        view = cv2.resize(np.ascontiguousarray(view), (big, big), interpolation=cv2.INTER_AREA)
        size = (self.resolution, self.resolution)
        rgb = resize_frames(torch.from_numpy(np.ascontiguousarray(view.transpose(2, 0, 1))), size)
        gray = luminance_gray(view)[None]
        if strength > 0:
            gray = apply_degradations(gray, Degradations.old_film(strength), rng)
        return rgb.clamp(0, 1), resize_frames(torch.from_numpy(gray), size)[0].clamp(0, 1), caption
