"""World version 2: a world that teaches words, not layouts.

The shipped model learnt version 1's layouts more than its words (issue 16: 70 % adherence on the
world's own held-out clips, 42 % on simple scenes from another generator). Version 2 makes the same
caption describe very different images and one image many captions:

* 12 shape families (version 1's 8 and crescent, heart, hexagon, diamond), object sizes from about
  1 % of the frame to most of it (radius log-uniform in 0.05–0.55 frame heights);
* 1–5 backdrop regions (three more layouts: street, harbor, countryside), boundaries that may lie
  outside the frame;
* objects placed anywhere, partly or wholly outside the frame, some touching another, some
  sweeping across another (the occlusion motion of version 1);
* lightness textures cut from real photographs (scikit-learn's sample images), used for L* only —
  a* and b* still come from the palette, so masks and ab truth stay exact;
* captions built from the layers that are visible: the first names all of them, the others random
  subsets; layers in any order, with or without articles, with truthful size and texture adjectives.

The draws use their own random stream, so version 1 renders exactly as before.

World version 3 draws the same scenes and changes only the caption split: two full captions and two
partial ones per still, as version 1 writes them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from coolcolor.errors import InputError
from coolcolor.world.catalog import MAX_OBJECTS, layout_slots, shape_nouns
from coolcolor.world.palette import SHADE_RANGE
from coolcolor.world.scene import (
    Boundary,
    Layer,
    Motion,
    Scene,
    SceneObject,
    camera_motion,
    pick_colors,
    pick_shapes,
    sweep_front_across_back,
    wide_object_size,
)
from coolcolor.world.spec import WorldSpec
from coolcolor.world.textures import OBJECT_TEXTURES, REGION_TEXTURES, draw_texture, sky_texture, sphere_texture

PHOTO_PROBABILITY = 0.35  # share of non-sky layers textured by a photograph
TOUCH_PROBABILITY = 0.35  # share of objects placed against the previous one
SMALL, BIG = 0.015, 0.2  # visible share of the frame below / above which captions may say "small" / "big"
SIZE_WORDS = {"small": ("small", "little", "tiny"), "big": ("big", "large", "huge")}
TEXTURE_WORDS = {"stripes": ("striped",), "checker": ("checkered",), "plain": ("plain",), "photo": ("textured",)}
ADJECTIVES = tuple(sorted({w for ws in (*SIZE_WORDS.values(), *TEXTURE_WORDS.values()) for w in ws}))


# -- photographic lightness ------------------------------------------------------------------------


@functools.cache
def sample_photographs() -> tuple[np.ndarray, ...]:
    """Luminance (float32, mean 0, ±1 ≈ ±2 std, clipped) of scikit-learn's sample photographs.

    scikit-image's ``data`` images are deliberately not used: they are kept for evaluation.
    """
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        raise InputError("world versions 2 and 3 take photographic textures from scikit-learn's sample images: "
                         "install scikit-learn (pip install scikit-learn), or set the world's photos to false") from None
    out = []
    for img in load_sample_images().images:
        rgb = np.asarray(img, np.float32) / 255.0
        y = rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)  # luminance of the sRGB-encoded values
        y = y[::2, ::2]  # half size: detail finer than a 128-px frame is never seen
        out.append(np.clip((y - y.mean()) / (2 * y.std() + 1e-6), -1.0, 1.0).astype(np.float32))
    return tuple(out)


@dataclass
class _PhotoTexture:
    """L* offset sampled (bilinear, mirrored at the edges) from a photograph, as a smooth function of the
    layer's own coordinates — it moves with the layer, so the flow stays exact."""

    photo: int  # index into sample_photographs()
    scale: float  # photo pixels per layer unit
    angle: float
    origin: tuple[float, float]  # photo pixel at layer (0, 0)
    bias: float
    amp: float

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        img = sample_photographs()[self.photo]
        h, w = img.shape
        c, s = math.cos(self.angle), math.sin(self.angle)
        px = self.origin[0] + self.scale * (c * u - s * v)
        py = self.origin[1] + self.scale * (s * u + c * v)
        px, py = _mirror(px, w), _mirror(py, h)
        x0 = np.minimum(np.floor(px).astype(np.intp), w - 2)
        y0 = np.minimum(np.floor(py).astype(np.intp), h - 2)
        fx, fy = (px - x0).astype(np.float32), (py - y0).astype(np.float32)
        top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
        bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
        return self.bias + self.amp * (top * (1 - fy) + bottom * fy)


def _mirror(x: np.ndarray, n: int) -> np.ndarray:
    period = 2 * (n - 1)
    r = np.mod(x, period)
    return np.where(r > n - 1, period - r, r)


def _photo_texture(rng: np.random.Generator, world_units: bool) -> _PhotoTexture:
    photos = sample_photographs()
    lo, hi = SHADE_RANGE
    h, w = photos[0].shape
    # A region (world units: frame height 1) shows a ~100–300 px patch, an object (radius 1) ~40–160 px.
    scale = float(rng.uniform(100, 300)) if world_units else float(rng.uniform(20, 80))
    return _PhotoTexture(photo=int(rng.integers(len(photos))), scale=scale, angle=float(rng.uniform(0, 2 * math.pi)),
                         origin=(float(rng.uniform(0, w)), float(rng.uniform(0, h))),
                         bias=(lo + hi) / 2, amp=float(rng.uniform(0.5, 1.0)) * (hi - lo) / 2)


# -- the scene -------------------------------------------------------------------------------------


def _boundaries(rng: np.random.Generator, n_regions: int) -> list[Boundary]:
    """n−1 non-crossing boundaries, top to bottom; the outer ones may lie beyond the frame (|y| > 0.5)."""
    if n_regions == 1:
        return []
    span = float(rng.uniform(0.7, 1.3))  # the band the boundaries share; wider than the frame sometimes
    top = float(rng.uniform(-0.5, 0.5 - span * 0.6)) - span * 0.2
    cuts = np.sort(rng.uniform(0, 1, n_regions - 1))
    gaps = np.diff(np.concatenate([[0.0], cuts]))
    cuts = np.cumsum(np.maximum(gaps, 0.12 / span))  # at least 0.12 frame heights apart
    slope = float(rng.uniform(-0.1, 0.1))
    out = []
    for y in cuts:
        amp = float(rng.uniform(0.0, 0.03))  # waves smaller than half the minimum gap: no crossing
        out.append(Boundary(top + span * float(y), slope, amp, float(rng.uniform(3, 10)),
                            float(rng.uniform(0, 2 * math.pi))))
    return out


def _texture_for(rng: np.random.Generator, kinds: tuple[str, ...], world_units: bool, photos: bool):
    if photos and rng.random() < PHOTO_PROBABILITY:
        return _photo_texture(rng, world_units), "photo"
    kind = str(kinds[rng.integers(len(kinds))])
    return draw_texture(rng, kind, world=world_units), kind


def generate_wide_scene(seed: int, aspect: float, n_objects: int | None, motion: Motion,
                        object_colors: tuple[str, ...] | None, world: WorldSpec) -> Scene:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5CE4E, 2]))
    layouts = world.allowed_layouts()
    layout = layouts[rng.integers(len(layouts))]
    if world.feature == "layout":
        layout = world.exclude_layouts[int(seed) % len(world.exclude_layouts)]
    slots = layout_slots(layout)
    if n_objects is None:
        n_objects = len(object_colors) if object_colors is not None else int(rng.integers(1, MAX_OBJECTS + 1))
    shapes = pick_shapes(rng, world, n_objects, seed)
    colors = pick_colors(rng, len(slots), n_objects, object_colors)
    layers = [Layer(i, "region", nouns[0], nouns, colors[i]) for i, nouns in enumerate(slots)]
    layers += [Layer(len(slots) + k, "object", shape, shape_nouns(shape), colors[len(slots) + k])
               for k, shape in enumerate(shapes)]

    boundaries = _boundaries(rng, len(slots))
    region_textures, texture_kinds = [], []
    for nouns in slots:
        if nouns[0] == "sky":
            region_textures.append(sky_texture(rng))
            texture_kinds.append("noise")
        else:
            tex, kind = _texture_for(rng, REGION_TEXTURES, True, world.photos)
            region_textures.append(tex)
            texture_kinds.append(kind)

    half_w = 0.5 * aspect
    objects: list[SceneObject] = []
    for shape in shapes:
        if shape in ("disk", "oval") and rng.random() < 0.6:
            tex = sphere_texture(rng)
            kind = "sphere"
        else:
            tex, kind = _texture_for(rng, OBJECT_TEXTURES, False, world.photos)
        texture_kinds.append(kind)
        sigma0 = wide_object_size(rng)
        # Anywhere, partly or wholly beyond the frame's edges sometimes.
        center = np.array([rng.uniform(-1.1, 1.1) * half_w, rng.uniform(-0.6, 0.6)])
        if objects and rng.random() < TOUCH_PROBABILITY:
            prev = objects[-1]
            direction = rng.uniform(0, 2 * math.pi)
            center = prev.center + (prev.sigma0 + sigma0) * 0.9 * np.array([math.cos(direction), math.sin(direction)])
        period = rng.uniform(40, 160, 2)
        objects.append(SceneObject(
            shape=shape, texture=tex, center=center,  # type: ignore[arg-type]
            amp=(rng.uniform(0.04, 0.25, 2) * rng.choice([-1, 1], 2))[None],
            omega=(2 * math.pi / period)[None], phase=rng.uniform(0, 2 * math.pi, (1, 2)),
            theta0=float(rng.uniform(0, 2 * math.pi)),
            omega_rot=float(rng.uniform(0.01, 0.05) * rng.choice([-1, 1])),
            sigma0=sigma0, scale_amp=float(rng.uniform(0.05, 0.2)),
            omega_scale=float(2 * math.pi / rng.uniform(30, 120)), phase_scale=float(rng.uniform(0, 2 * math.pi)),
        ))
    if motion.occlusion and len(objects) >= 2 and rng.random() < 0.5:
        sweep_front_across_back(rng, objects[0], objects[-1])
    camera = camera_motion(rng)
    scene = Scene(layers, layout, boundaries, region_textures, objects, motion, camera)  # type: ignore[arg-type]
    scene.texture_kinds = texture_kinds  # type: ignore[attr-defined]  # for truthful texture adjectives
    return scene


# -- captions ---------------------------------------------------------------------------------------


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _adjectives(layer: Layer, scene: Scene, share: float) -> list[str]:
    """Words that are true of the layer as the clip shows it: its size (objects, by their visible share
    of the frame) and its texture."""
    out: list[str] = []
    if layer.kind == "object":
        if share < SMALL:
            out.append("small")
        elif share > BIG:
            out.append("big")
    kinds = getattr(scene, "texture_kinds", [])
    if layer.id < len(kinds) and kinds[layer.id] in TEXTURE_WORDS:
        out.append(kinds[layer.id])
    return out


def _phrase(rng: np.random.Generator, layer: Layer, scene: Scene, world: WorldSpec, share: float) -> str:
    words = world.caption_synonyms(layer.color)
    color = words[int(rng.integers(len(words)))]
    noun = layer.nouns[int(rng.integers(len(layer.nouns)))]
    adjective = ""
    facts = _adjectives(layer, scene, share)
    if facts and rng.random() < 0.4:
        fact = facts[int(rng.integers(len(facts)))]
        table = SIZE_WORDS if fact in SIZE_WORDS else TEXTURE_WORDS
        options = table[fact]
        adjective = options[int(rng.integers(len(options)))]
    form = int(rng.integers(5))
    if form == 3:  # "the ball in red"
        head = f"{adjective} {noun}".strip()
        return f"{_lead(rng, head, noun)}{head} in {color}"
    core = " ".join(w for w in (adjective, color, noun) if w) if form != 4 else " ".join(w for w in (color, adjective, noun) if w)
    return f"{_lead(rng, core, noun)}{core}"


def _lead(rng: np.random.Generator, text: str, noun: str) -> str:
    """An article, or none (about a third of the time); plural nouns ("peaks", "woods") get no "a"."""
    r = rng.random()
    if r < 0.35:
        return ""
    if r < 0.6 or noun.endswith("s"):
        return "the "
    return f"{_article(text)} "


_JOINERS = (" and ", ", ", " with ", " next to ", " beside ", "; ")
_FRAMES = ("{}", "{}", "a photo of {}", "old film still: {}", "{} in an old film", "a scene with {}")


def _sentence(rng: np.random.Generator, layers: list[Layer], scene: Scene, world: WorldSpec,
              shares: dict[int, float]) -> str:
    parts = [_phrase(rng, lay, scene, world, shares[lay.id]) for lay in layers]
    text = parts[0]
    for part in parts[1:]:
        text += _JOINERS[int(rng.integers(len(_JOINERS)))] + part
    return _FRAMES[int(rng.integers(len(_FRAMES)))].format(text)


def make_wide_captions(scene: Scene, masks: np.ndarray, seed: int, world: WorldSpec,
                       count: int = 4) -> tuple[list[str], list[list[int]]]:
    """Captions over the layers visible in ``masks`` (N×H×W layer ids): the first names them all (the
    first two in world version 3, version 1's split), the others a random non-empty subset (a proper one
    when there are two or more), in random order. Version 3 tests E3's guess that version 2's one-in-four
    full captions taught the model to leave big regions unnamed; E4 refuted it (docs/training.md)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xCA9, 2]))
    counts = np.bincount(masks.ravel(), minlength=len(scene.layers))
    shares = {lay.id: float(counts[lay.id]) / masks.size for lay in scene.layers}
    layers = [lay for lay in scene.layers if counts[lay.id] > 0]
    captions: list[str] = []
    named: list[list[int]] = []
    full = 2 if world.version >= 3 else 1
    for i in range(count):
        if i < full or len(layers) == 1:
            chosen = list(layers)
        else:
            k = int(rng.integers(1, len(layers)))
            chosen = [layers[j] for j in rng.choice(len(layers), size=k, replace=False)]
        order = [chosen[j] for j in rng.permutation(len(chosen))]
        captions.append(_sentence(rng, order, scene, world, shares))
        named.append(sorted(lay.id for lay in chosen))
    return captions, named


WIDE_CAPTION_WORDS = (*ADJECTIVES, "with", "next", "to", "beside", "photo", "of", "old", "film", "still", "in", "scene",
                      "a", "an", "the", "and", ",", ";", ":")
