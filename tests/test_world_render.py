"""Old-film world: palette, scene rendering, captions, degradations, on-disk format, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coolcolor.color import gray_to_lightness, lab_to_rgb, rgb_to_lab
from coolcolor.errors import InputError
from coolcolor.world import (
    PALETTE,
    Clip,
    Degradations,
    Motion,
    lightness_groups,
    palette_color,
    render_clip,
    render_image,
)
from coolcolor.world.palette import SHADE_RANGE, nearest_palette_colors

SIZE = (64, 48)


@pytest.fixture(scope="module")
def clip() -> Clip:
    return render_clip(11, 8, SIZE)


# -- palette ---------------------------------------------------------------------------------------


def test_palette_has_named_colors_in_equal_lightness_groups():
    names = {c.name for c in PALETTE}
    assert {"red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "white", "black",
            "gray"} <= names
    groups = lightness_groups()
    assert all(len(g) >= 2 for g in groups.values()), groups
    assert sum(len(g) for g in groups.values()) == len(PALETTE)


def test_palette_stays_in_gamut_over_the_shading_range():
    # Shading only moves L*; a*, b* must survive it unclipped for every color.
    for c in PALETTE:
        Ls = np.linspace(c.lightness + SHADE_RANGE[0], c.lightness + SHADE_RANGE[1], 81)
        lab = np.stack([Ls, np.full_like(Ls, c.ab[0]), np.full_like(Ls, c.ab[1])], -1)
        rgb = lab_to_rgb(lab)
        assert rgb.min() >= 0 and rgb.max() <= 1, c.name


def test_palette_colors_are_separable_in_ab():
    chromatic = [c for c in PALETTE if c.ab != (0.0, 0.0)]
    for i, c in enumerate(chromatic):
        for d in chromatic[i + 1:]:
            assert np.hypot(c.ab[0] - d.ab[0], c.ab[1] - d.ab[1]) > 20, (c.name, d.name)
        assert nearest_palette_colors(np.array(c.ab))[0] == (c.name,)
    assert set(nearest_palette_colors(np.zeros(2))[0]) == {"white", "gray", "black"}


def test_palette_lookup_by_synonym_and_unknown_name():
    assert palette_color("Crimson").name == "red"
    assert palette_color("grey").name == "gray"
    with pytest.raises(InputError, match="unknown palette color 'mauve'"):
        palette_color("mauve")


# -- rendering -------------------------------------------------------------------------------------


def test_shapes_and_dtypes(clip):
    n, (w, h) = 8, SIZE
    assert clip.gray.shape == clip.gray_clean.shape == (n, h, w)
    assert clip.rgb.shape == (n, h, w, 3)
    assert clip.masks.shape == (n, h, w) and clip.masks.dtype == np.uint8
    assert clip.flow.shape == (n - 1, h, w, 2) and clip.flow.dtype == np.float32
    assert clip.flow_valid.shape == (n - 1, h, w) and clip.flow_valid.dtype == bool
    for arr in (clip.gray, clip.gray_clean, clip.rgb):
        assert arr.dtype == np.float32 and arr.min() >= 0 and arr.max() <= 1
    assert 1 <= len(clip.objects) <= 4 and len(clip.regions) >= 1
    assert set(np.unique(clip.masks)) <= {lay.id for lay in clip.layers}


def test_same_seed_same_clip_and_other_seed_differs():
    a, b = render_clip(5, 4, SIZE), render_clip(5, 4, SIZE)
    for name in ("gray", "gray_clean", "rgb", "masks", "flow", "flow_valid"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.captions == b.captions and a.layers == b.layers
    c = render_clip(6, 4, SIZE)
    assert not np.array_equal(a.rgb, c.rgb)


def test_longer_clip_extends_shorter_one():
    short, long = render_clip(9, 3, SIZE), render_clip(9, 6, SIZE)
    np.testing.assert_array_equal(short.rgb, long.rgb[:3])
    np.testing.assert_array_equal(short.masks, long.masks[:3])
    np.testing.assert_array_equal(short.flow, long.flow[:2])


def test_ab_is_the_palette_color_of_each_layer_and_luminance_varies_inside(clip):
    lab = rgb_to_lab(clip.rgb)
    np.testing.assert_allclose(lab[..., 1:], clip.ab_truth(), atol=0.05)
    for lay in clip.layers:
        sel = clip.masks == lay.id
        if sel.sum() > 20:
            L = lab[..., 0][sel]
            assert L.max() - L.min() > 1.0, f"layer {lay.noun} is flat"
            assert SHADE_RANGE[0] - 0.01 <= L.min() - lay.lab[0] and L.max() - lay.lab[0] <= SHADE_RANGE[1] + 0.01


def test_clean_gray_has_the_color_frames_lightness(clip):
    L_color = rgb_to_lab(clip.rgb)[..., 0]
    np.testing.assert_allclose(gray_to_lightness(clip.gray_clean), L_color, atol=2e-3)


def test_gray_alone_does_not_tell_the_color():
    # Every color of a lightness group renders the very same gray picture.
    for group in lightness_groups().values():
        grays = [render_clip(21, 2, SIZE, objects=1, object_colors=[c.name], degradations=Degradations.none())
                 for c in group]
        obj_id = grays[0].objects[0].id
        colors = {g.objects[0].color for g in grays}
        assert colors == {c.name for c in group}
        for g in grays[1:]:
            np.testing.assert_allclose(g.gray_clean, grays[0].gray_clean, atol=1e-5)
            np.testing.assert_array_equal(g.masks, grays[0].masks)
        assert (grays[0].masks == obj_id).any()


def test_any_resolution_renders_the_same_scene():
    small = render_clip(3, 1, (40, 30), degradations=Degradations.none())
    big = render_clip(3, 1, (400, 300), degradations=Degradations.none())
    assert small.layers == big.layers and small.captions == big.captions
    # Pixel (i, j) of the small frame covers pixels 10i..10i+9 of the big one; their centres match
    # at offset 4.5, so compare the big frame sampled at the small frame's pixel centres.
    xs, ys = np.meshgrid(np.arange(40) * 10 + 4.5, np.arange(30) * 10 + 4.5)
    ids, _ = big.scene.sample(0, xs, ys, (400, 300))
    assert (ids == small.masks[0]).mean() > 0.99


def test_render_image_is_a_motionless_single_frame():
    img = render_image(4, (32, 32))
    assert img.n_frames == 1 and img.flow.shape == (0, 32, 32, 2)
    assert img.motion == Motion.static()


def test_static_motion_without_weave_has_zero_flow():
    c = render_clip(2, 3, SIZE, motion=Motion.static(), degradations=Degradations(grain=1.0))
    assert np.abs(c.flow).max() < 1e-4
    np.testing.assert_array_equal(c.masks[0], c.masks[2])


def test_captions_name_colors_and_shapes():
    for seed in range(12):
        c = render_clip(seed, 1, (16, 16), degradations=Degradations.none())
        assert len(c.captions) == len(c.caption_layers) >= 3
        assert c.caption_layers[0] == sorted(lay.id for lay in c.layers)
        by_id = {lay.id: lay for lay in c.layers}
        for text, named in zip(c.captions, c.caption_layers, strict=True):
            words = text.lower()
            for lid in named:
                lay = by_id[lid]
                assert any(n in words for n in lay.nouns), (text, lay)
                assert any(s in words for s in palette_color(lay.color).synonyms), (text, lay)
        # Partial captions leave something out.
        assert any(len(n) < len(c.layers) for n in c.caption_layers[2:])
    nouns = [lay.noun for lay in c.layers]
    assert len(set(nouns)) == len(nouns)


def test_captions_use_synonyms_across_seeds():
    words = " ".join(" ".join(render_clip(s, 1, (8, 8), degradations=Degradations.none()).captions)
                     for s in range(30))
    synonyms_used = sum(w in words for c in PALETTE for w in c.synonyms[1:])
    assert synonyms_used >= 8


# -- degradations -----------------------------------------------------------------------------------


def test_degradations_touch_only_the_gray_input():
    clean = render_clip(8, 4, SIZE, degradations=Degradations.none())
    damaged = render_clip(8, 4, SIZE, degradations=Degradations(
        grain=1, flicker=1, blur=1, scratches=1, dust=1, vignette=1))
    np.testing.assert_array_equal(clean.rgb, damaged.rgb)
    np.testing.assert_array_equal(clean.masks, damaged.masks)
    np.testing.assert_array_equal(clean.gray_clean, damaged.gray_clean)
    np.testing.assert_array_equal(clean.gray, clean.gray_clean)
    assert np.abs(damaged.gray - damaged.gray_clean).mean() > 0.01


@pytest.mark.parametrize("name", Degradations.names())
def test_each_degradation_switches_on_alone(name):
    base = render_clip(12, 3, SIZE, degradations=Degradations.none())
    one = render_clip(12, 3, SIZE, degradations=Degradations.parse(f"{name}=2"))
    if name == "gate_weave":  # moves the whole picture, color and masks included
        assert not np.array_equal(base.masks, one.masks)
        np.testing.assert_array_equal(one.gray, one.gray_clean)
    else:
        np.testing.assert_array_equal(base.rgb, one.rgb)
        assert not np.array_equal(one.gray, one.gray_clean)


def test_flicker_changes_frame_brightness_and_vignette_darkens_corners():
    c = render_clip(12, 8, SIZE, degradations=Degradations(flicker=2.0), motion=Motion.static())
    ratio = c.gray.mean(axis=(1, 2)) / c.gray_clean.mean(axis=(1, 2))
    assert ratio.std() > 0.02
    v = render_clip(12, 1, SIZE, degradations=Degradations(vignette=2.0))
    assert (v.gray[0, :4, :4] < v.gray_clean[0, :4, :4]).all()
    np.testing.assert_allclose(v.gray[0, 22:26, 30:34], v.gray_clean[0, 22:26, 30:34], atol=0.01)


def test_degradation_spec_parsing_and_errors():
    d = Degradations.parse("grain=0.5, gate-weave=2", base=Degradations.old_film(1.0))
    assert d.grain == 0.5 and d.gate_weave == 2.0 and d.blur == 1.0
    with pytest.raises(InputError, match="unknown degradation 'rain'"):
        Degradations.parse("rain=1")
    with pytest.raises(InputError, match="'blur'.*not a number"):
        Degradations.parse("blur=lots")
    with pytest.raises(InputError, match="'grain' must be a finite number >= 0"):
        Degradations(grain=-1)


# -- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"frames": 0}, "frame count must be a positive integer, got 0"),
    ({"frames": -3}, "frame count must be a positive integer, got -3"),
    ({"size": (0, 10)}, "size must be two positive integers"),
    ({"size": (64, -1)}, "size must be two positive integers"),
    ({"size": (64.5, 10)}, "size must be two positive integers"),
    ({"size": 64}, "size must be \\(width, height\\)"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"objects": 5}, "objects must be between 1 and 4"),
    ({"object_colors": ["red", "mauve"]}, "unknown palette color 'mauve'"),
    ({"objects": 1, "object_colors": ["red", "blue"]}, "objects=1 but object_colors names 2"),
])
def test_bad_render_arguments_are_named(kwargs, message):
    args = {"seed": 1, "frames": 2, "size": (16, 16), **kwargs}
    with pytest.raises(InputError, match=message):
        render_clip(**args)


# -- disk format ------------------------------------------------------------------------------------


def test_save_and_load_round_trip(clip, tmp_path):
    out = clip.save(tmp_path / "c")
    meta = json.loads((out / "clip.json").read_text())
    assert meta["captions"] == clip.captions and meta["frames"] == 8
    assert {d["color"] for d in meta["layers"]} == {lay.color for lay in clip.layers}
    assert all("lab" in d for d in meta["layers"])
    assert (out / "color" / "color.0001.png").is_file() and (out / "gray" / "gray.0008.png").is_file()
    back = Clip.load(out)
    np.testing.assert_allclose(back.rgb, clip.rgb, atol=1 / 65535)
    np.testing.assert_allclose(back.gray, clip.gray, atol=1 / 65535)
    np.testing.assert_array_equal(back.masks, clip.masks)
    np.testing.assert_array_equal(back.flow, clip.flow)
    np.testing.assert_array_equal(back.flow_valid, clip.flow_valid)
    assert back.layers == clip.layers and back.caption_layers == clip.caption_layers
    assert back.degradations == clip.degradations and back.motion == clip.motion
    # Saving again over a clip replaces it; a foreign non-empty folder is refused.
    clip.save(out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not empty and holds no clip"):
        clip.save(tmp_path / "other")


def test_load_names_what_is_missing(clip, tmp_path):
    with pytest.raises(InputError, match="clip.json is missing"):
        Clip.load(tmp_path)
    out = clip.save(tmp_path / "c")
    (out / "gray" / "gray.0003.png").unlink()
    with pytest.raises(InputError, match="gray.0003.png is missing"):
        Clip.load(out)
