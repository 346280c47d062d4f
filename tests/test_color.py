"""color.py against skimage (the reference definition, docs/architecture.md#the-color-contract) and hand-computed
values."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.color
import torch

from coolcolor import color


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(1)
    img = rng.random((32, 48, 3))
    img[0, :8] = [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.04045, 0.5, 0.003], [1, 1, 0], [0.2, 0.2, 0.2]]
    return img


def test_rgb_to_lab_matches_skimage(rgb):
    assert np.abs(color.rgb_to_lab(rgb) - skimage.color.rgb2lab(rgb)).max() < 1e-4
    # float32 and torch inputs follow the same definition
    assert np.abs(color.rgb_to_lab(rgb.astype(np.float32)) - skimage.color.rgb2lab(rgb)).max() < 1e-4
    as_tensor = color.rgb_to_lab(torch.from_numpy(rgb))
    assert isinstance(as_tensor, torch.Tensor)
    assert np.abs(as_tensor.numpy() - skimage.color.rgb2lab(rgb)).max() < 1e-4


def test_lab_to_rgb_matches_skimage_and_round_trips(rgb):
    lab = skimage.color.rgb2lab(rgb)
    assert np.abs(color.lab_to_rgb(lab) - skimage.color.lab2rgb(lab)).max() < 1e-4
    assert np.abs(color.lab_to_rgb(color.rgb_to_lab(rgb)) - rgb).max() < 1e-6


def test_xyz_and_linear_steps_match_skimage(rgb):
    assert np.abs(color.linear_rgb_to_xyz(color.srgb_to_linear(rgb)) - skimage.color.rgb2xyz(rgb)).max() < 1e-6
    xyz = skimage.color.rgb2xyz(rgb)
    assert np.abs(color.xyz_to_lab(xyz) - skimage.color.xyz2lab(xyz)).max() < 1e-4
    # the two segments of the sRGB curve meet only to ~3e-8 at 0.04045 (the standard's own rounding)
    assert np.abs(color.linear_to_srgb(color.srgb_to_linear(rgb)) - rgb).max() < 1e-7


def test_known_lab_values():
    lab = color.rgb_to_lab(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    # skimage's rounded matrix puts D65 white at a* = -0.0025, b* = 0.0047, not exactly neutral
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.01)  # sRGB red, the textbook value


def test_gray_to_lightness_equals_lab_of_gray_pixels():
    g = np.linspace(0, 1, 257)
    rgb = np.repeat(g[:, None], 3, axis=1)
    assert np.abs(color.gray_to_lightness(g) - skimage.color.rgb2lab(rgb)[:, 0]).max() < 1e-4


def test_replace_luminance_keeps_input_l_exactly():
    rng = np.random.default_rng(2)
    gray = rng.random((3, 5, 7)).astype(np.float32)
    ab = (rng.random((3, 5, 7, 2)).astype(np.float32) - 0.5) * 100
    lab = color.replace_luminance(ab, gray)
    assert lab.shape == (3, 5, 7, 3)
    assert np.array_equal(lab[..., 0], color.gray_to_lightness(gray))
    assert np.array_equal(lab[..., 1:], ab)


def test_replace_luminance_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="differ in size"):
        color.replace_luminance(np.zeros((4, 4, 2)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="2 channels"):
        color.replace_luminance(np.zeros((4, 4, 3)), np.zeros((4, 4)))


def test_fit_chroma_to_gamut_keeps_l_and_hue_and_lands_in_gamut():
    hues = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    L = np.repeat([5.0, 30.0, 50.0, 75.0, 97.0], len(hues))
    ab = np.tile(np.stack([np.cos(hues), np.sin(hues)], -1) * 120, (5, 1))
    lab = np.concatenate([L[:, None], ab], -1)
    fitted = color.fit_chroma_to_gamut(lab)
    rgb = color.lab_to_rgb(fitted)
    assert rgb.min() > -1e-4 and rgb.max() < 1 + 1e-4
    assert np.array_equal(fitted[:, 0], L)
    scale = np.linalg.norm(fitted[:, 1:], axis=1) / 120
    assert (scale > 0).all() and (scale < 1).all()  # all these were out of gamut, none collapsed to gray
    np.testing.assert_allclose(fitted[:, 1:] / scale[:, None], ab, atol=1e-6)  # hue kept
    # as little chroma removed as possible: 2⁻¹² more of the original chroma (four bisection steps)
    # would leave the gamut
    more = np.concatenate([L[:, None], ab * (scale + 2**-12)[:, None]], -1)
    outside = color.lab_to_rgb(more)
    assert ((outside < -1e-6) | (outside > 1 + 1e-6)).any(axis=1).all()


def test_fit_chroma_to_gamut_leaves_in_gamut_colors_alone(rgb):
    lab = color.rgb_to_lab(rgb)
    assert np.abs(color.fit_chroma_to_gamut(lab) - lab).max() == 0


def test_colorfulness_hand_computed():
    gray = np.full((4, 4, 3), 0.5)
    assert color.colorfulness(gray) == pytest.approx(0.0, abs=1e-9)
    red = np.zeros((4, 4, 3))
    red[..., 0] = 1
    # rg = 255, yb = 127.5 everywhere: sigma 0, mu = sqrt(255² + 127.5²) = 285.10
    assert color.colorfulness(red) == pytest.approx(0.3 * np.hypot(255, 127.5), rel=1e-9)
    half = np.zeros((2, 2, 3))
    half[0, :, 0] = 1  # red row
    half[1, :, 1] = 1  # green row: rg = ±255 (sigma 255, mean 0), yb = 127.5 (sigma 0)
    assert color.colorfulness(half) == pytest.approx(255 + 0.3 * 127.5, rel=1e-9)
    # batched: one value per image
    assert color.colorfulness(np.stack([gray, red])).shape == (2,)


def test_channel_errors_name_the_problem():
    with pytest.raises(ValueError, match="RGB must have 3 channels"):
        color.rgb_to_lab(np.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match="at least H×W×3"):
        color.colorfulness(np.zeros((3,)))


def test_lightness_to_gray_inverts_gray_to_lightness():
    g = np.linspace(0, 1, 1001)
    assert np.abs(color.lightness_to_gray(color.gray_to_lightness(g)) - g).max() < 1e-6


def test_srgb_to_gray_keeps_lightness(rgb):
    gray = color.srgb_to_gray(rgb)
    assert gray.shape == rgb.shape[:-1]
    assert np.abs(color.gray_to_lightness(gray) - skimage.color.rgb2lab(rgb)[..., 0]).max() < 1e-3
