"""Luminance-guided chroma upsampling (coolcolor.chroma.upsample_ab)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from coolcolor import color
from coolcolor.chroma import guided_upsample, upsample_ab
from coolcolor.video.encoding import lightness_to_gray


def test_same_size_is_returned_unchanged():
    ab = torch.randn(2, 8, 8, 2)
    assert upsample_ab(ab, torch.rand(2, 8, 8)) is ab


def test_shapes_and_constant_chroma():
    ab = torch.zeros(2, 6, 8, 2)
    ab[..., 0], ab[..., 1] = 12.5, -30.0
    gray = torch.rand(2, 48, 64)
    out = upsample_ab(ab, gray)
    assert out.shape == (2, 48, 64, 2) and out.dtype == ab.dtype
    assert torch.allclose(out[..., 0], torch.tensor(12.5), atol=1e-3)
    assert torch.allclose(out[..., 1], torch.tensor(-30.0), atol=1e-3)


def test_chroma_that_follows_lightness_linearly_is_reproduced_at_full_resolution():
    """If a* = α·L + β locally, the guided filter's linear model recovers it from the full-res L."""
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(96.0), indexing="ij")
    L = 50 + 30 * torch.sin(x / 5) * torch.cos(y / 7)  # detail finer than the low-res grid
    guide = (L / 100)[None, None]
    target = 0.8 * L - 20
    low = F.interpolate(target[None, None], size=(16, 24), mode="bilinear", antialias=True, align_corners=False)
    guided = guided_upsample(low, guide)[0, 0]
    bilinear = F.interpolate(low, size=(64, 96), mode="bilinear", align_corners=False)[0, 0]
    err_guided = (guided - target).abs().mean()
    err_bilinear = (bilinear - target).abs().mean()
    assert err_guided < 0.35 * err_bilinear, (err_guided, err_bilinear)


def test_color_edge_snaps_to_the_luminance_edge():
    """A red object on a blue ground, edge between low-res pixels: guided ΔE ≪ bilinear ΔE near the edge."""
    h, w = 64, 64
    rgb = np.zeros((h, w, 3), np.float32)
    rgb[:, :] = (0.15, 0.25, 0.75)
    rgb[:, 27:] = (0.85, 0.2, 0.15)  # edge at x = 27: inside a low-res pixel (factor 8)
    lab = color.rgb_to_lab(torch.from_numpy(rgb))
    gray = lightness_to_gray(lab[..., 0])[None]
    small = F.interpolate(torch.from_numpy(rgb).permute(2, 0, 1)[None], size=(8, 8), mode="bilinear",
                          antialias=True, align_corners=False)
    ab_low = color.rgb_to_lab(small[0].permute(1, 2, 0))[None, ..., 1:]
    guided = upsample_ab(ab_low, gray)[0]
    bilinear = F.interpolate(ab_low.permute(0, 3, 1, 2), size=(h, w), mode="bilinear",
                             align_corners=False)[0].permute(1, 2, 0)
    band = slice(19, 35)  # ±8 px around the edge
    err_g = (guided - lab[..., 1:])[:, band].norm(dim=-1).mean()
    err_b = (bilinear - lab[..., 1:])[:, band].norm(dim=-1).mean()
    assert err_g < 0.5 * err_b, (err_g, err_b)
