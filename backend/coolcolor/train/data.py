"""Training data: the old-film world rendered on the fly, or a folder of captioned color images.

A batch is a dict: ``rgb`` (B×3×R×R, sRGB in [0, 1], the target), ``gray`` (B×R×R in [0, 1], the
input, possibly damaged) and ``captions`` (B strings). Each sample is a pure function of (run seed,
step, index), so a resumed run sees exactly the batches the killed run would have seen.

World seeds for training are drawn below ``HELD_OUT_SEED_BASE``; evaluation uses seeds from it up,
so held-out clips are never trained on.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from coolcolor.color import colorfulness
from coolcolor.errors import InputError
from coolcolor.model.prompt_words import prompt_words
from coolcolor.model.pipeline import resize_frames
from coolcolor.world import Degradations, luminance_gray, render_image
from coolcolor.world.palette import PALETTE
from coolcolor.world.spec import WorldSpec

logger = logging.getLogger(__name__)

HELD_OUT_SEED_BASE = 1_000_000_000
MANIFEST_NAME = "manifest.jsonl"  # the dataset manifest `coolcolor data prepare` writes
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# Color words for the caption filter: the world's palette words and common English color names.
COLOR_WORDS = frozenset(
    {w for c in PALETTE for w in c.synonyms}
    | set(["red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "black", "white", "gray", "grey", "gold", "golden", "silver", "crimson", "scarlet", "maroon", "navy", "teal", "cyan", "turquoise", "magenta", "beige", "tan", "ivory", "cream", "olive", "lime", "indigo", "amber", "khaki", "lavender", "emerald", "azure", "coral", "peach", "blond", "blonde"])
)


def _sample_rng(seed: int, step: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, step, index, 0x7A1]))


def has_color_word(caption: str) -> bool:
    return any(w in COLOR_WORDS for w in re.findall(r"[a-z]+(?:-[a-z]+)?", caption.lower()))


def downsample_rgb(rgb: np.ndarray, size: int) -> torch.Tensor:
    """H×W×3 → 3×size×size with the pipeline's own (antialiased) resize, after a centre square crop."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = torch.from_numpy(np.ascontiguousarray(rgb[top : top + side, left : left + side], np.float32))
    return resize_frames(square.permute(2, 0, 1), (size, size))


class WorldSource:
    """Stills of the old-film world at 2× the working size, shrunk like the pipeline shrinks its input.

    The gray input carries random old-film damage (strength U(0, degradation_max), clean with
    probability ``clean_fraction``); the target is the clean color frame. The caption is one of the
    still's four captions (two full, two partial), so the model also learns what to do with unnamed layers.
    """

    def __init__(self, resolution: int, seed: int, degradation_max: float = 2.0, clean_fraction: float = 0.25,
                 world: WorldSpec | None = None, v1_share: float = 0.0) -> None:
        self.resolution, self.seed = resolution, seed
        self.degradation_max, self.clean_fraction = degradation_max, clean_fraction
        self.world = WorldSpec() if world is None else world  # its left-out items are never drawn
        # a version-2 world can keep teaching version 1's scenes (the ones the held-out clips come from):
        # this share of the stills is drawn by version 1 with the same items left out
        self.v1_share = v1_share

    def world_seed(self, step: int, index: int) -> int:
        return int(_sample_rng(self.seed, step, index).integers(HELD_OUT_SEED_BASE))

    def sample(self, step: int, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        rng = _sample_rng(self.seed, step, index)
        world_seed = int(rng.integers(HELD_OUT_SEED_BASE))
        clean = rng.random() < self.clean_fraction
        strength = 0.0 if clean else float(rng.uniform(0, self.degradation_max))
        world = self.world
        if self.v1_share > 0 and rng.random() < self.v1_share:  # no draw when off: older runs' streams stay
            world = replace(world, version=1)
        big = 2 * self.resolution
        clip = render_image(world_seed, (big, big), degradations=Degradations.old_film(strength), world=world)
        rgb = downsample_rgb(clip.rgb[0], self.resolution)
        gray = resize_frames(torch.from_numpy(clip.gray), (self.resolution, self.resolution))[0]
        caption = clip.captions[int(rng.integers(len(clip.captions)))]
        return rgb, gray, caption

    def batch(self, step: int, size: int) -> dict:
        return collate([self.sample(step, i) for i in range(size)])


class MixedSource:
    """The world's stills with a share of real views (``coolcolor.real.source.RealSource``) in each batch.

    Which source a sample comes from is drawn from its own (seed, step, index) stream, so each source's
    samples, and a resumed run's batches, are unchanged by the mixing.
    """

    def __init__(self, world: WorldSource, real: Any, real_share: float, seed: int) -> None:
        self.world, self.real, self.real_share, self.seed = world, real, real_share, seed

    def sample(self, step: int, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, step, index, 0x313]))
        return (self.real if rng.random() < self.real_share else self.world).sample(step, index)

    def batch(self, step: int, size: int) -> dict:
        return collate([self.sample(step, i) for i in range(size)])


def collate(samples: list[tuple[torch.Tensor, torch.Tensor, str]]) -> dict:
    return {"rgb": torch.stack([s[0] for s in samples]), "gray": torch.stack([s[1] for s in samples]),
            "captions": [s[2] for s in samples]}


@dataclass
class FolderItem:
    path: Path
    caption: str


Captioner = Callable[[np.ndarray], str]


class BlipCaptioner:
    """Captions from a local BLIP folder (transformers), as the paper does; never the network.

    One image (``captioner(rgb)``, the ``Captioner`` interface training uses) or a batch
    (``caption_batch``, what ``coolcolor data prepare`` uses), on the GPU when torch sees one.
    """

    def __init__(self, folder: str | Path, device: str | None = None) -> None:
        from transformers import BlipForConditionalGeneration, BlipProcessor

        path = Path(folder)
        if not path.is_dir():
            raise InputError(f"captioning model folder {path} does not exist")
        config = path / "config.json"
        try:
            model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type") if config.is_file() else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
            raise InputError(f"captioning model folder {path}: config.json is not readable JSON ({exc})") from exc
        if model_type != "blip":
            found = "no config.json" if not config.is_file() else f"config.json says model_type {model_type!r}"
            raise InputError(f"captioning model folder {path} is not a BLIP model ({found}; expected 'blip')")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.processor = BlipProcessor.from_pretrained(path, local_files_only=True)
            self.model = BlipForConditionalGeneration.from_pretrained(path, local_files_only=True).eval().to(self.device)
        except (OSError, ValueError) as exc:
            raise InputError(f"captioning model folder {path}: cannot load BLIP ({exc})") from exc

    def __call__(self, rgb: np.ndarray) -> str:
        return self.caption_batch([rgb])[0]

    @torch.no_grad()
    def caption_batch(self, images: list[np.ndarray]) -> list[str]:
        """One caption per H×W×3 float image in [0, 1] (sizes may differ: the processor resizes)."""
        inputs = self.processor(images=[(np.clip(rgb, 0, 1) * 255).round().astype(np.uint8) for rgb in images],
                                return_tensors="pt").to(self.device)
        out = self.model.generate(**inputs, max_new_tokens=40)
        return [text.strip() for text in self.processor.batch_decode(out, skip_special_tokens=True)]


def blip_captioner(folder: str | Path) -> BlipCaptioner:
    """Caption images with a local BLIP folder; ``InputError`` (one line) when it is not one."""
    return BlipCaptioner(folder)


def decode_rgb(data: np.ndarray, name: str) -> np.ndarray:
    """H×W×3 float32 sRGB in [0, 1] from an encoded image's bytes; raises ``InputError`` naming ``name``."""
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if image is None:
        raise InputError(f"{name}: not a readable image")
    if image.ndim == 2 or image.shape[2] < 3:
        raise InputError(f"{name}: not a color image (it has {1 if image.ndim == 2 else image.shape[2]} channel(s))")
    scale = 65535.0 if image.dtype == np.uint16 else 255.0 if image.dtype == np.uint8 else 1.0
    rgb = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32) / scale
    return np.clip(rgb, 0, 1)


def read_rgb(path: Path) -> np.ndarray:
    """H×W×3 float32 sRGB in [0, 1]; raises ``InputError`` naming the file when it cannot be decoded."""
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    return decode_rgb(data, str(path))


def sidecar_caption(path: Path) -> str:
    """The caption in ``image.txt`` beside ``image.png`` ("" when there is none); ``InputError`` if not UTF-8."""
    txt = path.with_suffix(".txt")
    if not txt.is_file():
        return ""
    return caption_text(txt.read_bytes(), path, txt.name)


def caption_text(data: bytes, image: Path | str, caption_file: str) -> str:
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise InputError(f"{image}: caption file {caption_file} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


@dataclass
class ManifestEntry:
    caption: str
    colorfulness: float | None  # measured by `coolcolor data prepare`; None: measure while scanning


class FolderSource:
    """Color images with captions: ``image.txt`` next to ``image.png``, or a JSONL manifest of
    ``{"file": "relative/path.png", "caption": "…"}`` lines (``file`` relative to the folder; it may lead
    out of it, e.g. ``../photos/a.png``). A folder made by ``coolcolor data prepare`` holds its manifest as
    ``manifest.jsonl``, used when no other manifest is named; its lines also carry the measured
    ``colorfulness`` (and width, height, sha256), so its images are not decoded again before training.

    The paper's filters apply: images less colorful than ``min_colorfulness`` and captions naming no
    color are dropped. Images without a caption are captioned by ``captioner`` when given, else dropped.
    Every dropped file is logged with its reason; the counts are in ``self.rejected``. Files that fail
    later (while training) are skipped the same way and replaced by another image. Given the model's
    ``tokenizer``, captions of which it knows no word are dropped too: they would train the text
    encoder on [UNK] alone.
    """

    def __init__(self, root: str | Path, resolution: int, seed: int, manifest: str | Path = "",
                 min_colorfulness: float = 15.0, require_color_words: bool = True,
                 captioner: Captioner | None = None, tokenizer: Any = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"data folder {self.root} does not exist or is not a folder")
        self.resolution, self.seed = resolution, seed
        self.min_colorfulness, self.require_color_words = min_colorfulness, require_color_words
        self.rejected: Counter[str] = Counter()
        self.tokenizer = tokenizer
        self.items: list[FolderItem] = []
        if not manifest and (self.root / MANIFEST_NAME).is_file():
            manifest = MANIFEST_NAME
            logger.info("data folder %s: using its %s (made by coolcolor data prepare)", self.root, MANIFEST_NAME)
        entries = self._manifest(Path(manifest)) if manifest else None
        paths = {p.resolve() for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}
        if entries is not None:
            paths |= set(entries)  # a prepared manifest may point outside the folder
        for path in sorted(paths):
            entry = entries.get(path) if entries is not None else None
            try:
                if entry is not None and entry.colorfulness is not None:
                    self._check(path, entry.caption, entry.colorfulness)  # measured when prepared
                    self.items.append(FolderItem(path, entry.caption))
                    continue
                caption = entry.caption if entry is not None else "" if entries is not None else sidecar_caption(path)
                rgb = read_rgb(path)
                if not caption:
                    if captioner is None:
                        raise InputError(f"{path}: no caption (no sidecar .txt / manifest entry, and no captioner)")
                    caption = captioner(rgb)
                self._check(path, caption, float(colorfulness(rgb)))
            except InputError as exc:
                self._reject(str(exc))
                continue
            self.items.append(FolderItem(path, caption))
        if not self.items:
            reasons = "; ".join(f"{n}× {r}" for r, n in self.rejected.most_common(5)) or "no image files found"
            raise InputError(f"data folder {self.root}: no usable images ({reasons})")
        logger.info("data folder %s: %d images, %d dropped", self.root, len(self.items), sum(self.rejected.values()))

    def _reject(self, message: str) -> None:
        reason = message.split(": ", 1)[-1]
        reason = re.sub(r"\s*\(.*\)$", "", reason) if reason.startswith("colorfulness") else reason
        self.rejected[reason.split(" (")[0]] += 1
        logger.warning("skipping %s", message)

    def _manifest(self, manifest: Path) -> dict[Path, ManifestEntry]:
        path = manifest if manifest.is_absolute() else self.root / manifest
        if not path.is_file():
            raise InputError(f"manifest {path} does not exist")
        out: dict[Path, ManifestEntry] = {}
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise InputError(f"manifest {path}: not UTF-8 text ({exc})") from exc
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                file, caption = entry["file"], entry["caption"]
                if not isinstance(file, str) or not isinstance(caption, str):
                    raise TypeError("file and caption must be strings")
                measured = entry.get("colorfulness")
                if measured is not None and (isinstance(measured, bool) or not isinstance(measured, (int, float))):
                    raise TypeError("colorfulness must be a number")
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                logger.warning("skipping %s line %d: not a {\"file\", \"caption\"} JSON object (%s)", path, number, exc)
                self.rejected["bad manifest line"] += 1
                continue
            out[(self.root / file).resolve()] = ManifestEntry(caption.strip(), None if measured is None else float(measured))
        return out

    def _check(self, path: Path, caption: str, measured_colorfulness: float) -> None:
        if self.tokenizer is not None and prompt_words(self.tokenizer, caption).all_unknown:
            raise InputError(f"{path}: caption holds only words the model does not know: {caption!r}")
        if self.require_color_words and not has_color_word(caption):
            raise InputError(f"{path}: caption names no color: {caption!r}")
        c = measured_colorfulness
        if c < self.min_colorfulness:
            raise InputError(f"{path}: colorfulness {c:.1f} below the threshold {self.min_colorfulness:g}")

    def sample(self, step: int, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        rng = _sample_rng(self.seed, step, index)
        while self.items:
            item = self.items[int(rng.integers(len(self.items)))]
            try:
                rgb = read_rgb(item.path)  # may have changed or vanished since the scan
            except InputError as exc:
                self._reject(str(exc))
                self.items.remove(item)  # dropped for the rest of the run
                continue
            gray = luminance_gray(rgb)
            target = downsample_rgb(rgb, self.resolution)
            return target, downsample_rgb(np.repeat(gray[..., None], 3, -1), self.resolution)[0], item.caption
        raise InputError(f"data folder {self.root}: no image could be read any more")

    def batch(self, step: int, size: int) -> dict:
        return collate([self.sample(step, i) for i in range(size)])
