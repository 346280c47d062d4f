"""The optical-flow baseline of the reference benchmark (coolcolor.real.flow_baseline): on a camera pan
over a textured colour image, whose true motion is known, the reference's colours follow the shift."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from coolcolor.color import rgb_to_lab
from coolcolor.errors import InputError
from coolcolor.real.flow_baseline import propagate_ab
from coolcolor.world import luminance_gray

H, W, FRAMES = 72, 96, 7
SHIFT = (2, 1)  # the camera moves 2 px right and 1 px down a frame: frame t at p shows frame 0 at p + t·SHIFT


@pytest.fixture(scope="module")
def pan() -> np.ndarray:
    """N×H×W×3 sRGB frames: windows of a smooth random colour texture, moving by SHIFT each frame."""
    rng = np.random.default_rng(7)
    dx, dy = SHIFT
    big = rng.random((H + dy * FRAMES, W + dx * FRAMES, 3)).astype(np.float32)
    big = cv2.GaussianBlur(big, (0, 0), 2.0)
    big = (big - big.min()) / (big.max() - big.min())
    return np.stack([big[t * dy : t * dy + H, t * dx : t * dx + W] for t in range(FRAMES)])


def test_colours_follow_a_known_shift_and_the_reference_comes_back_exactly(pan):
    ab_true = np.asarray(rgb_to_lab(pan), np.float32)[..., 1:]
    ab, unreliable = propagate_ab(ab_true[0], luminance_gray(pan))
    assert ab.shape == (FRAMES, H, W, 2) and unreliable.shape == (FRAMES, H, W)
    np.testing.assert_array_equal(ab[0], ab_true[0])
    assert not unreliable[0].any()
    dx, dy = SHIFT
    margin = 4  # DIS is least sure along the frame's edge
    for t in range(1, FRAMES):
        # Pixels whose source in frame 0 lies well inside it: the true colours, to flow accuracy.
        inner = (slice(margin, H - dy * t - margin), slice(margin, W - dx * t - margin))
        expected = ab_true[0][margin + dy * t : H - margin, margin + dx * t : W - margin]
        error = np.abs(ab[t][inner] - expected)
        assert np.median(error) < 0.6, (t, float(np.median(error)))
        assert np.percentile(error, 95) < 2.5, (t, float(np.percentile(error, 95)))
        # The true colours are what frame t shows there (the pan is exact), and leaving them still would be far worse.
        np.testing.assert_allclose(ab_true[t][inner], expected, atol=1e-5)
        assert np.median(np.abs(ab_true[0][inner] - expected)) > 5 * np.median(error)
        # The strip that entered the frame has no source in the reference: flagged, the interior not.
        entered = np.zeros((H, W), bool)
        entered[:, W - dx * t :] = True
        entered[H - dy * t :, :] = True
        assert unreliable[t][entered].mean() > 0.9
        assert unreliable[t][inner].mean() < 0.1


def test_a_one_frame_shot_is_its_reference_and_a_wrong_size_is_one_line(pan):
    ab_true = np.asarray(rgb_to_lab(pan[:1]), np.float32)[..., 1:]
    ab, unreliable = propagate_ab(ab_true[0], luminance_gray(pan[:1]))
    np.testing.assert_array_equal(ab[0], ab_true[0])
    assert not unreliable.any()
    with pytest.raises(InputError, match=r"reference a\*b\* is \(72, 95, 2\)"):
        propagate_ab(ab_true[0][:, :95], luminance_gray(pan))
    with pytest.raises(InputError, match="gray shot must be"):
        propagate_ab(ab_true[0], luminance_gray(pan)[0])
