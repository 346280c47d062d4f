"""World version 2: more families, sizes and regions; objects that touch, overlap and leave the frame;
photographic lightness; captions that name some layers, in any order, with and without articles."""

from __future__ import annotations

import re

import numpy as np
import pytest

from coolcolor import color
from coolcolor.errors import InputError
from coolcolor.world import render_clip
from coolcolor.world.catalog import LAYOUTS, SHAPES, WIDE_LAYOUTS, WIDE_SHAPES
from coolcolor.world.clip import _render_fields
from coolcolor.world.generator import generate_scene
from coolcolor.world.palette import SHADE_RANGE
from coolcolor.world.scene import Motion
from coolcolor.world.spec import WorldSpec
from coolcolor.world.wide import SIZE_WORDS, _adjectives, make_wide_captions

WIDE = WorldSpec(version=2, photos=False)  # photographs need scikit-learn; tested on their own below


def scenes(count: int, size: int = 24, world: WorldSpec = WIDE):
    for seed in range(count):
        scene = generate_scene(seed, 1.0, None, Motion.static(), None, world)
        ids, L = _render_fields(scene, 1, (size, size))
        yield seed, scene, ids, L


def test_wide_world_draws_every_family_layout_and_one_to_five_regions():
    shapes, layouts, regions = set(), set(), set()
    for _, scene, _, _ in scenes(200, size=8):
        shapes |= {lay.shape for lay in scene.layers if lay.kind == "object"}
        layouts.add(scene.layout)
        regions.add(sum(lay.kind == "region" for lay in scene.layers))
    assert shapes == set(SHAPES) | set(WIDE_SHAPES)
    assert layouts == set(LAYOUTS) | set(WIDE_LAYOUTS)
    assert regions == {1, 2, 3, 4, 5}


def test_objects_range_from_a_few_percent_to_most_of_the_frame_touch_and_leave_it():
    shares, touching, outside = [], 0, 0
    for _, scene, ids, _ in scenes(150):
        n_regions = len(scene.boundaries) + 1
        frame = ids[0]
        for k, obj in enumerate(scene.objects):
            lid = n_regions + k
            share = float((frame == lid).mean())
            # Visible share against the analytic area: an object cut by the frame edge shows less.
            if share < 0.9 * np.pi * obj.sigma0**2 * 0.3 or share == 0:
                outside += abs(obj.center[0]) + obj.sigma0 > 0.5 or abs(obj.center[1]) + obj.sigma0 > 0.5
            shares.append(share)
        # Two different objects side by side somewhere in the frame.
        right = (frame[:, :-1] != frame[:, 1:]) & (frame[:, :-1] >= n_regions) & (frame[:, 1:] >= n_regions)
        touching += bool(right.any())
    shares = np.array(shares)
    assert (shares[shares > 0] < 0.02).any() and (shares > 0.4).any()
    assert touching >= 10 and outside >= 10


def test_wide_ground_truth_stays_exact():
    clip = render_clip(11, 3, (40, 32), world=WIDE)
    lab = color.rgb_to_lab(clip.rgb)
    inside = (clip.rgb > 0.002).all(-1) & (clip.rgb < 0.998).all(-1)  # away from the gamut clip
    assert np.abs(lab[..., 1:][inside] - clip.ab_truth()[inside]).max() < 0.5
    # The flow carries each visible pixel to a pixel of the same layer.
    ys, xs = np.nonzero(clip.flow_valid[0])
    fx, fy = xs + clip.flow[0, ys, xs, 0], ys + clip.flow[0, ys, xs, 1]
    ids, _ = clip.scene.sample(1, fx, fy, clip.size)
    assert (ids == clip.masks[0, ys, xs]).mean() > 0.999


def test_captions_name_visible_layers_some_or_all_in_any_order_with_and_without_articles():
    from coolcolor.model.prompt_words import prompt_words
    from coolcolor.train.model import architecture, tokenizer_for

    tokenizer = tokenizer_for(architecture("coolcolor-tiny"))
    partial = bare = articled = 0
    firsts: set[str] = set()
    for seed, scene, ids, _ in scenes(120, size=16):
        captions, named = make_wide_captions(scene, ids, seed, WIDE)
        visible = sorted(int(i) for i in np.unique(ids))
        assert named[0] == visible  # the first caption names every visible layer, and only those
        for caption, ids_named in zip(captions, named, strict=True):
            assert set(ids_named) <= set(visible) and ids_named
            assert prompt_words(tokenizer, caption).unknown == []  # every word is in the vocabulary
            assert len(tokenizer(caption).input_ids) <= tokenizer.model_max_length
            partial += len(ids_named) < len(visible)
            bare += not re.match(r"(a|an|the) ", caption)
            articled += bool(re.match(r"(a|an|the) ", caption))
        firsts.add(scene.layers[named[0][0]].kind)
    assert partial > 100 and bare > 50 and articled > 50


def test_layer_order_varies_and_adjectives_are_truthful():
    class FakeScene:
        texture_kinds = ["noise", "stripes"]
        boundaries: list = []
        objects: list = []

    from coolcolor.world.scene import Layer

    obj = Layer(1, "object", "disk", ("ball",), "red")
    assert _adjectives(obj, FakeScene(), 0.005) == ["small", "stripes"]
    assert _adjectives(obj, FakeScene(), 0.5) == ["big", "stripes"]
    assert _adjectives(obj, FakeScene(), 0.05) == ["stripes"]
    region = Layer(0, "region", "sky", ("sky",), "blue")
    assert _adjectives(region, FakeScene(), 0.9) == []  # no size words for the backdrop
    # Over many scenes, a caption's first phrase is sometimes a region, sometimes an object.
    first_kinds = set()
    size_words = set(SIZE_WORDS["small"]) | set(SIZE_WORDS["big"])
    seen_size_word = False
    for seed, scene, ids, _ in scenes(60, size=16):
        captions, _ = make_wide_captions(scene, ids, seed, WIDE)
        first = re.sub(r"^(a photo of|old film still:|a scene with) ", "", captions[0])
        nouns = {n: lay.kind for lay in scene.layers for n in lay.nouns}
        for word in re.findall(r"[a-z]+", first):
            if word in nouns:
                first_kinds.add(nouns[word])
                break
        seen_size_word |= bool(set(re.findall(r"[a-z]+", " ".join(captions))) & size_words)
    assert first_kinds == {"region", "object"} and seen_size_word


def test_leave_out_works_in_the_wide_world():
    spec = WorldSpec(version=2, photos=False, exclude_shapes=("heart",), exclude_layouts=("harbor",))
    for _, scene, _, _ in scenes(80, size=8, world=spec):
        assert scene.layout != "harbor" and all(lay.shape != "heart" for lay in scene.layers)
    for _, scene, _, _ in scenes(10, size=8, world=spec.featuring("shape")):
        assert any(lay.shape == "heart" for lay in scene.layers)


def test_version_3_draws_version_2_scenes_with_two_full_captions_of_four():
    """World version 3 keeps version 2's scenes and changes only the caption split, version 1's two full
    captions of four (docs/training.md, E4: the test of E3's guess about big regions)."""
    v3 = WorldSpec(version=3, photos=False)
    all_partial_in_v2 = 0
    for seed, scene, ids, _ in scenes(40, size=16):
        scene3 = generate_scene(seed, 1.0, None, Motion.static(), None, v3)
        np.testing.assert_array_equal(_render_fields(scene3, 1, (16, 16))[0], ids)  # same scene for the same seed
        visible = sorted(int(i) for i in np.unique(ids))
        named2 = make_wide_captions(scene, ids, seed, WIDE)[1]
        named3 = make_wide_captions(scene, ids, seed, v3)[1]
        assert named3[0] == named3[1] == visible and named2[0] == visible
        all_partial_in_v2 += len(visible) > 1 and named2[1] != visible
        for ids_named in named3[2:]:
            assert ids_named and set(ids_named) <= set(visible)
            assert len(visible) == 1 or len(ids_named) < len(visible)
    assert all_partial_in_v2 > 20  # version 2 itself is unchanged: its second caption is partial


def test_version_4_keeps_version_1_backdrops_and_takes_version_2_families_and_sizes():
    """World version 4 (docs/training.md, E5): version 1's five layouts and their boundaries, all twelve shape families,
    object radii over version 2's range rather than version 1's 0.08–0.18."""
    v4 = WorldSpec(version=4)
    shapes, layouts, radii = set(), set(), []
    for _, scene, _, _ in scenes(200, size=8, world=v4):
        shapes |= {lay.shape for lay in scene.layers if lay.kind == "object"}
        layouts.add(scene.layout)
        assert len(scene.boundaries) == len(LAYOUTS[scene.layout]) - 1
        radii += [obj.sigma0 for obj in scene.objects]
    assert shapes == set(SHAPES) | set(WIDE_SHAPES) and layouts == set(LAYOUTS)
    assert min(radii) < 0.08 and max(radii) > 0.4


def test_version_4_captions_name_only_the_layers_the_clip_shows():
    """A big object can hide a region or another object; version 4's captions (version 1's phrasing and
    split) then leave the hidden layer out, and a hidden layer's nouns appear in no caption."""
    v4 = WorldSpec(version=4)
    hidden_seen = 0
    for seed in range(120):
        clip = render_clip(seed, 1, (32, 32), motion=Motion.static(), world=v4)
        visible = {int(i) for i in np.unique(clip.masks)}
        hidden = [lay for lay in clip.layers if lay.id not in visible]
        kinds = {lay.kind for lay in clip.layers if lay.id in visible}
        if kinds != {"object", "region"}:
            continue  # the documented fallback: every layer is kept
        assert clip.caption_layers[0] == clip.caption_layers[1] == sorted(visible)
        for named in clip.caption_layers:
            assert set(named) <= visible
        for lay in hidden:
            hidden_seen += 1
            for caption in clip.captions:  # nouns are unique across families and regions
                assert not any(re.search(rf"\b{noun}\b", caption) for noun in lay.nouns), (caption, lay.nouns)
    assert hidden_seen >= 5


def test_version_4_does_not_change_version_1():
    a = render_clip(5, 2, (24, 24))
    b = render_clip(5, 2, (24, 24), world=WorldSpec(version=4))
    assert [lay.shape for lay in a.layers] != [lay.shape for lay in b.layers] or a.captions != b.captions
    np.testing.assert_array_equal(render_clip(5, 2, (24, 24)).rgb, a.rgb)


def test_version_2_does_not_change_version_1():
    a = render_clip(5, 2, (24, 24))
    b = render_clip(5, 2, (24, 24), world=WIDE)
    assert a.layout != b.layout or [lay.shape for lay in a.layers] != [lay.shape for lay in b.layers] \
        or a.captions != b.captions
    np.testing.assert_array_equal(render_clip(5, 2, (24, 24)).rgb, a.rgb)


def test_photo_textures_vary_lightness_only():
    pytest.importorskip("sklearn")
    from coolcolor.world.wide import sample_photographs

    photos = sample_photographs()
    assert len(photos) >= 2 and all(p.ndim == 2 and abs(float(p.mean())) < 0.2 for p in photos)
    world = WorldSpec(version=2)
    spreads = []
    for seed in range(30):
        clip = render_clip(seed, 1, (48, 48), world=world)
        kinds = clip.scene.texture_kinds
        lab = color.rgb_to_lab(clip.rgb[0])
        truth = clip.ab_truth()[0]
        for lay in clip.layers:
            sel = clip.masks[0] == lay.id
            if kinds[lay.id] != "photo" or sel.sum() < 50:
                continue
            L = lab[..., 0][sel]
            base = lay.palette.lightness
            assert L.min() >= base + SHADE_RANGE[0] - 0.5 and L.max() <= base + SHADE_RANGE[1] + 0.5
            np.testing.assert_allclose(truth[sel], np.broadcast_to(lay.palette.ab, truth[sel].shape))
            spreads.append(float(L.std()))
    # Most photo patches show the photograph's structure in L* (some are flat sky, as in a photo).
    assert len(spreads) >= 10 and np.median(spreads) > 1.0, spreads


def test_missing_scikit_learn_is_named(monkeypatch):
    import sys

    from coolcolor.world import wide

    wide.sample_photographs.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    try:
        with pytest.raises(InputError, match="install scikit-learn.*photos to false"):
            wide.sample_photographs()
    finally:
        wide.sample_photographs.cache_clear()
