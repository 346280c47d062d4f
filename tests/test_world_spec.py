"""World versions and leave-out: version 1 renders as it always did; left-out items are never drawn in
training and drawn on purpose for the leave-out evaluation."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest

from coolcolor.errors import InputError
from coolcolor.world import render_clip, render_image
from coolcolor.world.captions import make_captions
from coolcolor.world.catalog import SHAPES
from coolcolor.world.generator import generate_scene
from coolcolor.world.palette import PALETTE
from coolcolor.world.scene import Motion
from coolcolor.world.spec import DEFAULT_LEAVE_OUT, WorldSpec

HELD_OUT = 1_000_000_000
LEAVE_OUT = WorldSpec(**DEFAULT_LEAVE_OUT)


def fingerprint(clip) -> dict:
    """What a clip is, in a form that holds on every x86 CPU: the random draws (captions, layers, layout)
    exactly, and the rendered arrays by their pixel counts and means. Bit digests of the float arrays do
    not travel: numpy's SIMD kernels differ between CPU types (an AMD EPYC with AVX-512 rendered other
    float32 bits than the machine the first digests were taken on, from the same generator)."""
    meta = json.dumps([clip.captions, clip.caption_layers, [lay.to_json() for lay in clip.layers], clip.layout])
    return {"meta": hashlib.sha256(meta.encode()).hexdigest()[:16],
            "pixels": np.bincount(clip.masks.ravel()).tolist(),
            "gray": float(clip.gray.mean()), "rgb": [float(v) for v in clip.rgb.mean(axis=(0, 1, 2))],
            "flow": float(np.abs(clip.flow).mean()) if clip.flow.size else 0.0, "valid": int(clip.flow_valid.sum())}


def assert_same_clip(clip, meta: str, pixels: list[int], gray: float, rgb: list[float], flow: float,
                     valid: int) -> None:
    got = fingerprint(clip)
    assert got["meta"] == meta  # the draws are exact everywhere
    # edge pixels and float means may move by a rounding step between CPUs; a changed generator moves them more
    assert len(got["pixels"]) == len(pixels)
    for a, b in zip(got["pixels"], pixels):
        assert abs(a - b) <= max(3, b // 500)
    assert abs(got["valid"] - valid) <= max(3, valid // 500)
    np.testing.assert_allclose([got["gray"], *got["rgb"], got["flow"]], [gray, *rgb, flow], atol=2e-4)


def test_version_1_renders_the_held_out_clips_exactly_as_before():
    """The shipped model's evaluation clips must not change. The references were taken from the generator
    as it was before world versions and leave-out existed (commit 2bfd50f): on an AMD EPYC (AVX-512) its
    clips and today's are bit-identical, array for array."""
    assert_same_clip(render_clip(HELD_OUT, 8, (64, 64)), "9775efa2588ca6b7", [14214, 14273, 309, 1132, 650, 2190],
                     0.45532, [0.36188, 0.53548, 0.51652], 0.30397, 25850)
    assert_same_clip(render_clip(HELD_OUT + 1, 8, (64, 64), world=WorldSpec()), "2f3a7c52bfb592d3",
                     [8503, 8172, 15225, 364, 504], 0.50903, [0.58891, 0.51466, 0.59196], 0.22857, 26077)
    assert_same_clip(render_image(12345, (64, 64)), "36ee4914bd19fb97", [1149, 2697, 250],
                     0.56591, [0.83625, 0.6927, 0.31348], 0.0, 0)


def _scene_and_captions(seed: int, world: WorldSpec):
    scene = generate_scene(seed, 1.0, None, Motion.static(), None, world)
    return scene, make_captions(scene.layers, seed, world)[0]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+(?:-[a-z]+)?", text.lower()))


def test_left_out_items_are_never_drawn():
    held_shape_nouns = set(SHAPES["ring"])
    seen_ring = seen_seaside = seen_synonym = False
    for seed in range(300):
        scene, captions = _scene_and_captions(seed, LEAVE_OUT)
        assert scene.layout != "seaside"
        assert all(lay.shape != "ring" for lay in scene.layers)
        words = set().union(*map(_words, captions))
        assert not words & set(LEAVE_OUT.exclude_synonyms) and not words & held_shape_nouns
        full, full_captions = _scene_and_captions(seed, WorldSpec())
        seen_ring |= any(lay.shape == "ring" for lay in full.layers)
        seen_seaside |= full.layout == "seaside"
        seen_synonym |= bool(set().union(*map(_words, full_captions)) & set(LEAVE_OUT.exclude_synonyms))
    assert seen_ring and seen_seaside and seen_synonym  # the full world does draw them


def test_featured_clips_use_the_held_out_items_and_nothing_else_held_out():
    for seed in range(40):
        scene, _ = _scene_and_captions(seed, LEAVE_OUT.featuring("shape"))
        assert sum(lay.shape == "ring" for lay in scene.layers) == 1 and scene.layout != "seaside"
        scene, _ = _scene_and_captions(seed, LEAVE_OUT.featuring("layout"))
        assert scene.layout == "seaside" and all(lay.shape != "ring" for lay in scene.layers)
        scene, captions = _scene_and_captions(seed, LEAVE_OUT.featuring("synonym"))
        color_words = {w for c in PALETTE for w in c.synonyms}
        used = _words(captions[0]) & color_words
        assert used and used <= set(LEAVE_OUT.exclude_synonyms), (captions[0], used)
    a = render_clip(HELD_OUT + 7, 2, (32, 32), world=LEAVE_OUT.featuring("shape"))
    b = render_clip(HELD_OUT + 7, 2, (32, 32), world=LEAVE_OUT.featuring("shape"))
    assert fingerprint(a) == fingerprint(b)  # same machine, same process: bit-identical
    for name in ("gray", "rgb", "masks", "flow", "flow_valid"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("data, message", [
    ({"version": 5}, "world.version must be one of 1, 2, 3, 4"),
    ({"exclude_shapes": ["blob"]}, "world.exclude_shapes: unknown 'blob'"),
    ({"exclude_shapes": ["heart"]}, "unknown 'heart'; world version 1"),
    ({"exclude_layouts": ["studio", "outdoor", "indoor", "landscape", "seaside"]}, "leaves no backdrop layout"),
    ({"exclude_synonyms": ["red"]}, "'red' is a color's own name"),
    ({"exclude_synonyms": ["mauve"]}, "'mauve' is not a palette synonym"),
    ({"feature": "shape"}, "nothing of that kind is excluded"),
    ({"leave_out": "yes"}, "world.leave_out must be true or false"),
    ({"colour": 1}, "unknown key(s) colour"),
])
def test_bad_world_settings_are_named(data, message):
    with pytest.raises(InputError, match=re.escape(message)):
        WorldSpec.from_json(data)


def test_leave_out_shorthand_and_train_config():
    from coolcolor.train.config import TrainConfig

    assert WorldSpec.from_json({"leave_out": True}) == LEAVE_OUT
    assert WorldSpec.from_json({"leave_out": True, "version": 2}).exclude_shapes == ("ring",)
    config = TrainConfig.from_dict({"output": "x", "world": {"leave_out": True}})
    assert WorldSpec.from_json(config.world) == LEAVE_OUT
    with pytest.raises(InputError, match=re.escape("flags: world.version must be one of 1, 2")):
        TrainConfig.from_dict({"output": "x", "world": {"version": 7}}, "flags")
    with pytest.raises(InputError, match="world.feature is for evaluation"):
        TrainConfig.from_dict({"output": "x", "world": {"leave_out": True, "feature": "shape"}})


def test_world_source_leaves_the_items_out_of_training_batches():
    from coolcolor.train.data import WorldSource

    source = WorldSource(8, seed=0, world=LEAVE_OUT)
    banned = set(SHAPES["ring"]) | set(LEAVE_OUT.exclude_synonyms)
    captions = [source.sample(0, i)[2] for i in range(40)]
    assert not set().union(*map(_words, captions)) & banned
    assert WorldSource(8, seed=0).sample(0, 0)[2] == WorldSource(8, seed=0, world=WorldSpec()).sample(0, 0)[2]


def test_version_mix_draws_both_worlds_with_the_same_items_left_out():
    """world_v1_share keeps version 1's scenes (where the held-out clips come from) in a version-2 run,
    leaving the same items out of both; without it the stream is the pure version-2 one."""
    from coolcolor.train.config import TrainConfig
    from coolcolor.train.data import WorldSource

    wide = WorldSpec.from_json({"version": 2, "leave_out": True})
    mixed = WorldSource(8, seed=0, world=wide, v1_share=0.5)
    pure = WorldSource(8, seed=0, world=wide)
    banned = set(SHAPES["ring"]) | set(LEAVE_OUT.exclude_synonyms)
    mixed_captions = [mixed.sample(0, i)[2] for i in range(40)]
    pure_captions = [pure.sample(0, i)[2] for i in range(40)]
    assert not set().union(*map(_words, mixed_captions)) & banned
    # every still is the version-1 or the version-2 rendering of its seed, and both occur
    from coolcolor.world import render_image
    from coolcolor.world.spec import replace as _replace

    drawn_by = []
    for i, caption in enumerate(mixed_captions):
        seed = mixed.world_seed(0, i)
        by_version = [render_image(seed, (16, 16), world=_replace(wide, version=v)).captions for v in (1, 2)]
        drawn_by.append([v for v, captions in zip((1, 2), by_version) if caption in captions])
    assert all(len(d) == 1 for d in drawn_by)
    assert 5 < sum(d == [1] for d in drawn_by) < 35
    assert pure_captions == [WorldSource(8, seed=0, world=wide).sample(0, i)[2] for i in range(40)]
    with pytest.raises(InputError, match="world_v1_share mixes version 1 into a version-2 or -3 world"):
        TrainConfig.from_dict({"output": "x", "world": {"leave_out": True}, "world_v1_share": 0.5})
    assert TrainConfig.from_dict({"output": "x", "world": {"version": 3}, "world_v1_share": 0.5}).world_v1_share == 0.5
    with pytest.raises(InputError, match="world_v1_share"):
        TrainConfig.from_dict({"output": "x", "world": {"version": 2}, "world_v1_share": 1.5})
