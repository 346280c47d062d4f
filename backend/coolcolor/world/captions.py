"""Captions for a scene: varied phrasing and synonyms, full and partial.

Nouns are unique per layer within a scene (shape families are drawn without replacement and region
nouns differ from object nouns), so every caption binds each color word to exactly one layer.
"""

from __future__ import annotations

import numpy as np

from coolcolor.world.scene import Layer
from coolcolor.world.spec import WorldSpec


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _object_phrase(rng: np.random.Generator, layer: Layer, world: WorldSpec) -> str:
    color = _pick(rng, world.caption_synonyms(layer.color))
    noun = _pick(rng, layer.nouns)
    form = int(rng.integers(4))
    if form == 0:
        return f"{_article(color)} {color} {noun}"
    if form == 1:
        return f"the {color} {noun}"
    if form == 2:
        # The color's name ("in red"), unless the clip is to name every color by a held-out synonym.
        return f"{_article(noun)} {noun} in {color if world.feature == 'synonym' else layer.color}"
    return f"{color} {noun}"


def _region_phrase(rng: np.random.Generator, layer: Layer, world: WorldSpec) -> str:
    color = _pick(rng, world.caption_synonyms(layer.color))
    noun = _pick(rng, layer.nouns)
    form = int(rng.integers(3))
    if form == 0:
        return f"{_article(color)} {color} {noun}"
    if form == 1:
        return f"the {color} {noun}"
    return f"{color} {noun}"


def _join(rng: np.random.Generator, parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    if rng.random() < 0.5:
        return ", ".join(parts[:-1]) + " and " + parts[-1]
    return ", ".join(parts)


# The sentence forms of a caption (train.model builds the tokenizer's vocabulary from them too).
CAPTION_TEMPLATES = (
    "{objects} in front of {regions}",
    "{objects} against {regions}",
    "a photo of {objects} with {regions}",
    "{regions}; {objects}",
    "old film still: {objects}, {regions}",
    "{objects} and {regions}",
)


def _caption(rng: np.random.Generator, objects: list[Layer], regions: list[Layer], world: WorldSpec) -> str:
    obj = _join(rng, [_object_phrase(rng, lay, world) for lay in objects]) if objects else ""
    reg = _join(rng, [_region_phrase(rng, lay, world) for lay in regions]) if regions else ""
    if obj and reg:
        return _pick(rng, CAPTION_TEMPLATES).format(objects=obj, regions=reg)
    return obj or reg


def make_captions(layers: list[Layer], seed: int, world: WorldSpec | None = None) -> tuple[list[str], list[list[int]]]:
    """Captions and, for each, the ids of the layers it names. The first two name every layer (two
    phrasings); the third names the objects but not the backdrop, the fourth one object (maybe with
    one region). ``world`` decides which color words may be used (its left-out synonyms never, or
    only those when it features them)."""
    world = WorldSpec() if world is None else world
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xCA9]))
    objects = [lay for lay in layers if lay.kind == "object"]
    regions = [lay for lay in layers if lay.kind == "region"]
    captions: list[str] = []
    named: list[list[int]] = []
    for _ in range(2):
        order = [objects[i] for i in rng.permutation(len(objects))]
        captions.append(_caption(rng, order, regions, world))
        named.append(sorted(lay.id for lay in layers))
    # Objects only, without the backdrop (there is always at least one region, so this is partial).
    captions.append(_caption(rng, [objects[i] for i in rng.permutation(len(objects))], [], world))
    named.append(sorted(lay.id for lay in objects))
    # One object, sometimes with one region, as long as that still leaves something unnamed.
    one = objects[int(rng.integers(len(objects)))]
    with_region = [regions[int(rng.integers(len(regions)))]] if rng.random() < 0.5 else []
    if 1 + len(with_region) == len(layers):
        with_region = []
    captions.append(_caption(rng, [one], with_region, world))
    named.append(sorted([one.id] + [r.id for r in with_region]))
    return captions, named
