"""Quality metrics on hand-built cases with known answers."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage.color import deltaE_ciede2000

from coolcolor.color import gray_to_lightness, lab_to_rgb, rgb_to_lab
from coolcolor.errors import InputError
from coolcolor.world import (
    Degradations,
    Motion,
    Prediction,
    cdc_ab,
    cdc_rgb,
    ciede2000,
    evaluate,
    load_prediction,
    palette_color,
    render_clip,
    temporal_metrics,
    warp_error,
)
from coolcolor.world.metrics import format_table, recombine

SIZE = (64, 48)


@pytest.fixture(scope="module")
def clip():
    return render_clip(7, 6, SIZE, objects=3, degradations=Degradations.none())


# -- CIEDE2000 --------------------------------------------------------------------------------------


def test_ciede2000_matches_skimage():
    rng = np.random.default_rng(0)
    lab1 = np.stack([rng.uniform(0, 100, 4000), rng.uniform(-110, 110, 4000), rng.uniform(-110, 110, 4000)], -1)
    lab2 = lab1 + rng.normal(0, 1, lab1.shape) * rng.choice([0.5, 5, 40], (4000, 1))
    # Edge cases: neutral colors (hue undefined), hue differences around ±180°, identical colors.
    extra1 = np.array([[50, 0, 0], [50, 0, 0], [60, -30, 1], [60, -30, -1], [40, 10, 10], [70, 2.5, 0]])
    extra2 = np.array([[60, 0, 0], [50, 20, -5], [60, -30, -1], [60, -30, 1], [40, 10, 10], [70, 0, -82]])
    lab1, lab2 = np.concatenate([lab1, extra1]), np.concatenate([lab2, extra2])
    np.testing.assert_allclose(ciede2000(lab1, lab2), deltaE_ciede2000(lab1, lab2), atol=1e-9, rtol=1e-9)


def test_ciede2000_sharma_reference_pairs():
    # Sharma, Wu & Dalal (2005), table 1, pairs 1 and 7.
    assert ciede2000(np.array([50, 2.6772, -79.7751]), np.array([50, 0, -82.7485])) == pytest.approx(2.0425, abs=1e-4)
    assert ciede2000(np.array([50, 0, 0]), np.array([50, -1, 2])) == pytest.approx(2.3669, abs=1e-4)


# -- perfect and known predictions --------------------------------------------------------------------


def test_perfect_prediction_scores_perfectly(clip):
    r = evaluate(clip.rgb, clip)
    assert r["text_adherence"] == 1.0
    assert r["delta_e2000"] < 0.01
    assert r["flicker_ab_rms"] < 0.01 and r["warp_error_rgb"] < 1e-6
    assert r["luminance_error_max"] < 0.01
    assert r["colorfulness"] == pytest.approx(r["reference"]["colorfulness"])
    assert all(row["correct"] for row in r["layers"])
    # The same with a*, b* only.
    r = evaluate(clip.ab_truth(), clip)
    assert r["text_adherence"] == 1.0 and r["delta_e2000"] < 1e-9 and r["flicker_ab_rms"] < 1e-6
    assert r["luminance_error_max"] is None and r["prediction_kind"] == "ab"


def test_a_gray_prediction_adheres_only_to_neutral_layers(clip):
    gray = np.repeat(clip.gray[..., None], 3, -1)
    r = evaluate(gray, clip)
    neutral = {"white", "gray", "black"}
    expected = np.mean([lay.color in neutral for lay in clip.layers if (clip.masks == lay.id).any()])
    assert r["text_adherence"] == pytest.approx(expected)
    assert r["colorfulness"] < 1e-3 and r["flicker_ab_rms"] < 0.01
    assert r["luminance_error_max"] < 0.01


def test_swapping_one_named_color_costs_exactly_that_layer(clip):
    obj = clip.objects[0]
    other = next(c for c in ("red", "green", "blue", "yellow") if c != obj.color)
    ab = clip.ab_truth().copy()
    ab[clip.masks == obj.id] = palette_color(other).ab
    r = evaluate(ab, clip)
    n_named = len(clip.caption_layers[0])
    assert r["text_adherence"] == pytest.approx((n_named - 1) / n_named)
    row = next(row for row in r["layers"] if row["id"] == obj.id)
    assert row["correct"] is False and row["nearest"] == [other]
    # ΔE of the swapped layer is that of the two palette colors at the true L*.
    L = rgb_to_lab(clip.rgb)[..., 0][clip.masks == obj.id]
    want = deltaE_ciede2000(np.stack([L, *[np.full_like(L, v) for v in palette_color(other).ab]], -1),
                            np.stack([L, *[np.full_like(L, v) for v in obj.palette.ab]], -1)).mean()
    assert row["delta_e2000"] == pytest.approx(want, rel=1e-3)
    # A caption that does not name that object ignores it.
    partial = next(i for i, n in enumerate(clip.caption_layers) if obj.id not in n)
    assert evaluate(ab, clip, caption=partial)["text_adherence"] == 1.0


def test_alternating_ab_offset_gives_known_flicker(clip):
    d = 3.0
    ab = clip.ab_truth().copy()
    ab[1::2, ..., 0] += d  # a* jumps by ±d between consecutive frames
    r = evaluate(ab, clip)
    assert r["flicker_ab_rms"] == pytest.approx(d, abs=1e-3)
    assert r["warp_error_ab"] == pytest.approx(d * d, abs=1e-2)
    # A constant offset is wrong color, not flicker.
    ab2 = clip.ab_truth() + np.float32(d)
    assert evaluate(ab2, clip)["flicker_ab_rms"] < 1e-3


def test_warp_error_of_a_translated_sequence_is_zero_and_a_mismatch_is_counted():
    rng = np.random.default_rng(1)
    base = cv2.GaussianBlur(rng.random((40, 60)).astype(np.float32), (0, 0), 3)
    frames = np.stack([np.roll(base, 2 * t, axis=1) for t in range(4)])[..., None]
    flow = np.zeros((3, 40, 60, 2), np.float32)
    flow[..., 0] = 2.0
    valid = np.ones((3, 40, 60), bool)
    valid[:, :, -3:] = False  # leaves the frame (np.roll wraps)
    assert warp_error(frames, flow, valid) < 1e-10
    frames2 = frames.copy()
    frames2[2] += 0.1  # one frame brighter: pairs (1,2) and (2,3) each err by 0.1² per pixel
    assert warp_error(frames2, flow, valid) == pytest.approx(2 * 0.01 / 3, rel=1e-4)
    with pytest.raises(InputError, match="do not fit 4 frames"):
        warp_error(frames, flow[:2], valid[:2])


def test_luminance_error_is_the_largest_lightness_change(clip):
    lab = rgb_to_lab(clip.rgb)
    lab[2, 10, 20, 0] += 4.0
    lab[3, 5, 5, 0] -= 1.5
    r = evaluate(np.clip(lab_to_rgb(lab), 0, 1), clip)
    assert r["luminance_error_max"] == pytest.approx(4.0, abs=0.05)


def test_cdc_known_values():
    static = np.full((6, 8, 8, 3), 0.5, np.float32)
    assert cdc_rgb(static) == 0.0
    # Frames alternate between all-black and all-white: JS = ln 2 at odd dilation 1, 0 at 2 and 4.
    alt = np.stack([np.zeros((8, 8, 3)) if t % 2 == 0 else np.ones((8, 8, 3)) for t in range(9)]).astype(np.float32)
    assert cdc_rgb(alt) == pytest.approx(math.log(2) / 3)
    # Half the pixels change bin → JS of (1,0) vs (½,½).
    a = np.zeros((2, 4, 4, 2), np.float32)
    a[1, :2, :, 0] = 10.0  # a* of half the pixels moves; b* stays
    js = 0.5 * (1 * math.log(1 / 0.75)) + 0.5 * (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25))
    assert cdc_ab(a) == pytest.approx(js / 2)  # averaged with the unchanged b* channel
    assert math.isnan(cdc_rgb(static[:1]))


def test_dis_flow_tells_flicker_from_steady_color():
    c = render_clip(5, 6, (96, 72), objects=2, degradations=Degradations.none(),
                    motion=Motion(translate=1, rotate=0, scale=0, pan=1, zoom=0, occlusion=False))
    steady = temporal_metrics(c.rgb, c.gray)
    flicker = c.ab_truth().copy()
    flicker[1::2] += np.float32(6.0)
    unsteady = temporal_metrics(Prediction(ab=flicker), c.gray)
    assert steady["valid_fraction"] > 0.5
    assert unsteady["flicker_ab_rms"] > steady["flicker_ab_rms"] + 3.0
    assert unsteady["cdc_ab"] > steady["cdc_ab"]
    r = evaluate(c.rgb, c, flow="dis")
    assert r["flow"].startswith("DIS") and r["flicker_ab_rms"] == pytest.approx(steady["flicker_ab_rms"])


def test_recombined_truth_keeps_input_lightness():
    c = render_clip(3, 3, SIZE, degradations=Degradations.old_film(1.0))
    rgb = recombine(c.ab_truth(), c.gray)
    r = evaluate(rgb, c)
    assert r["luminance_error_max"] < 0.05
    assert r["text_adherence"] == 1.0
    np.testing.assert_allclose(rgb_to_lab(rgb)[..., 0], gray_to_lightness(c.gray), atol=0.05)


# -- bad input -------------------------------------------------------------------------------------


def test_mismatched_prediction_is_named(clip):
    with pytest.raises(InputError, match="prediction has 5 frames of 64x48 but the ground truth has 6 frames of 64x48"):
        evaluate(clip.rgb[:5], clip)
    with pytest.raises(InputError, match="prediction has 6 frames of 32x48"):
        evaluate(clip.rgb[:, :, :32], clip)
    with pytest.raises(InputError, match="must be \\(frames, H, W, 3\\) RGB or \\(frames, H, W, 2\\)"):
        evaluate(np.zeros((6, 48, 64, 4), np.float32), clip)
    with pytest.raises(InputError, match="caption index 9 is out of range"):
        evaluate(clip.rgb, clip, caption=9)
    with pytest.raises(InputError, match="flow must be 'gt' or 'dis'"):
        evaluate(clip.rgb, clip, flow="farneback")
    with pytest.raises(InputError, match="does not exist"):
        evaluate("/nonexistent/pred", clip)


# -- prediction files -------------------------------------------------------------------------------


def test_load_prediction_formats(clip, tmp_path):
    # RGB PNG frames (8-bit).
    png = tmp_path / "png"
    png.mkdir()
    for t in range(clip.n_frames):
        cv2.imwrite(str(png / f"frame.{t:04d}.png"), np.round(clip.rgb[t, ..., ::-1] * 255).astype(np.uint8))
    p = load_prediction(png)
    assert p.rgb.shape == clip.rgb.shape and np.abs(p.rgb - clip.rgb).max() <= 0.5 / 255 + 1e-6
    r = evaluate(png, clip)
    assert r["text_adherence"] == 1.0 and r["luminance_error_max"] < 1.0
    # .npy of a*, b*, and .npz with a key.
    np.save(tmp_path / "ab.npy", clip.ab_truth())
    assert load_prediction(tmp_path / "ab.npy").ab.shape == clip.ab_truth().shape
    np.savez(tmp_path / "pred.npz", rgb=clip.rgb)
    assert load_prediction(tmp_path / "pred.npz").rgb.shape == clip.rgb.shape
    # A world clip directory counts as an RGB prediction.
    out = clip.save(tmp_path / "clip")
    assert evaluate(out, out)["text_adherence"] == 1.0


def test_load_ab_exr_frames_as_the_video_engine_writes_them(clip, tmp_path):
    import OpenImageIO as oiio

    from coolcolor.video.exr import write_ab_exr

    d = tmp_path / "exr"
    d.mkdir()
    ab = clip.ab_truth()
    for t in range(clip.n_frames):
        write_ab_exr(str(d / f"ab.{t + 1:04d}.exr"), ab[t], {"prompt": "test"})
    p = load_prediction(d)
    np.testing.assert_allclose(p.ab, ab, atol=0.05)  # half float
    assert evaluate(d, clip)["text_adherence"] == 1.0
    with pytest.raises(InputError, match="channel\\(s\\) \\['x'\\] not found"):
        load_prediction(d, ab_channels=("ab.a_star", "x"))

    # files from elsewhere with other channel names: named on the command line
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    spec = oiio.ImageSpec(SIZE[0], SIZE[1], 2, oiio.HALF)
    spec.channelnames = ("chroma.u", "chroma.v")
    for t in range(clip.n_frames):
        out = oiio.ImageOutput.create(str(foreign / f"f.{t + 1:04d}.exr"))
        out.open(str(foreign / f"f.{t + 1:04d}.exr"), spec)
        out.write_image(np.ascontiguousarray(ab[t]))
        out.close()
    with pytest.raises(InputError, match="not found.*--ab-channels"):
        load_prediction(foreign)
    np.testing.assert_allclose(load_prediction(foreign, ab_channels=("chroma.u", "chroma.v")).ab, ab, atol=0.05)


def test_format_table_lists_metrics_and_layers(clip):
    text = format_table(evaluate(clip.rgb, clip))
    for needle in ("text adherence", "ΔE2000", "colorfulness", "flicker", "CDC RGB", "CDC a*b*", "L*out"):
        assert needle in text
    for lay in clip.layers:
        assert lay.noun in text
