"""Declared encodings → display sRGB → gray with the input's L* (docs/architecture.md#the-color-contract)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import rgb2lab

from coolcolor import color
from coolcolor.errors import InputError
from coolcolor.video.encoding import InputDecoder, lightness_to_gray, srgb_to_gray

OCIO_DEFAULT = "ocio://default"  # OCIO's built-in CG config (no file needed)


def rng_rgb(shape=(9, 11, 3), seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_lightness_to_gray_inverts_gray_to_lightness():
    gray = np.linspace(0, 1, 1001, dtype=np.float32)
    back = lightness_to_gray(color.gray_to_lightness(gray))
    assert np.abs(back - gray).max() < 2e-5


def test_gray_has_the_lightness_of_the_color_frame():
    """The paper's grayscale preprocessing: L*(gray) == L*(rgb), as skimage defines L*."""
    rgb = rng_rgb()
    gray = srgb_to_gray(rgb)
    assert gray.shape == rgb.shape[:2] and gray.dtype == np.float32
    assert np.abs(color.gray_to_lightness(gray) - rgb2lab(rgb)[..., 0]).max() < 2e-3


def test_srgb_is_identity_and_gray_input_comes_back_unchanged():
    dec = InputDecoder("srgb")
    rgb = rng_rgb()
    assert np.array_equal(dec.to_srgb(rgb), rgb)
    g = rng_rgb()[..., :1]
    assert np.array_equal(dec.to_gray(g), g[..., 0])
    neutral = np.repeat(g, 3, axis=-1)
    assert np.abs(dec.to_gray(neutral) - g[..., 0]).max() < 3e-5


def test_out_of_range_values_are_clamped():
    dec = InputDecoder("srgb")
    x = np.array([[[-0.5], [1.7], [0.25]]], np.float32)
    assert dec.to_gray(x).tolist() == [[0.0, 1.0, 0.25]]


@pytest.mark.parametrize(
    ("encoding", "ocio_colorspace"),
    [("rec709", "Rec.1886 Rec.709 - Display"), ("linear", "Linear Rec.709 (sRGB)"), ("srgb", "sRGB - Display")],
)
def test_builtin_encodings_agree_with_opencolorio(encoding, ocio_colorspace):
    """Our closed-form decodes equal OCIO's own conversions to its sRGB display colorspace."""
    x = rng_rgb(seed=3) * 0.98
    ours = InputDecoder(encoding).to_srgb(x)
    theirs = InputDecoder(ocio_colorspace, OCIO_DEFAULT).to_srgb(x)
    assert np.abs(ours - theirs).max() < 2e-3


def test_rec709_and_linear_values():
    # BT.1886 (gamma 2.4) display light of code 0.5, sRGB-encoded: 1.055 · 0.5 − 0.055
    assert InputDecoder("rec709").to_srgb(np.array([[[0.5]]], np.float32))[0, 0, 0] == pytest.approx(0.4725, abs=1e-5)
    lin = np.array([[[0.18, 1.5, -0.1]]], np.float32)
    got = InputDecoder("linear").to_srgb(lin)[0, 0]
    assert got.tolist() == pytest.approx([0.4614, 1.0, 0.0], abs=1e-3)


def test_ocio_scene_linear_colorspace_from_a_config_file(tmp_path):
    import PyOpenColorIO as ocio

    path = tmp_path / "config.ocio"
    path.write_text(ocio.Config.CreateFromFile(OCIO_DEFAULT).serialize())
    dec = InputDecoder("ACEScg", str(path))
    gray = dec.to_gray(np.full((2, 3, 3), 0.18, np.float32))
    # ACEScg 0.18 neutral → sRGB encoded 0.4614 (colorimetric, no tone mapping)
    assert np.allclose(gray, 0.4614, atol=2e-3)


def test_unknown_encodings_are_named():
    with pytest.raises(InputError, match=r"unknown input encoding 'log-c'.*srgb, rec709, linear"):
        InputDecoder("log-c")
    with pytest.raises(InputError, match=r"unknown input encoding 'NoSuchSpace': not a colorspace of ocio://default"):
        InputDecoder("NoSuchSpace", OCIO_DEFAULT)
    with pytest.raises(InputError, match="OCIO config not found"):
        InputDecoder("ACEScg", "/nonexistent/config.ocio")


def test_broken_ocio_config_is_named(tmp_path):
    bad = tmp_path / "bad.ocio"
    bad.write_text("this: is: not an ocio config\n")
    with pytest.raises(InputError, match=r"cannot read OCIO config .*bad\.ocio"):
        InputDecoder("ACEScg", str(bad))
