"""L_EF and the geometric transforms F of progressive equivariant training."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from coolcolor.model.presets import SD15_SCHEDULER_CONFIG
from coolcolor.train.equivariance import (
    ef_loss,
    identity_affine,
    in_frame_mask,
    lambda_at,
    masked_mse,
    random_affine,
    warp,
)


def shift(n: int, dx_pixels: int, width: int) -> torch.Tensor:
    """affine_grid matrix that moves content right by ``dx_pixels`` (samples from x − dx)."""
    theta = identity_affine(n)
    theta[:, 0, 2] = -2 * dx_pixels / width
    return theta


def test_identity_warp_is_exact_and_fully_in_frame():
    x = torch.randn(2, 4, 8, 8)
    assert torch.allclose(warp(x, identity_affine(2)), x, atol=1e-6)
    assert torch.allclose(warp(x, identity_affine(2), "nearest"), x)
    assert in_frame_mask(identity_affine(2), (8, 8)).min() == 1


def test_integer_shift_moves_content_and_masks_the_uncovered_columns():
    x = torch.randn(1, 4, 8, 8)
    theta = shift(1, 2, 8)
    y = warp(x, theta)
    assert torch.allclose(y[..., 2:], x[..., :-2], atol=1e-5)
    assert torch.allclose(warp(x, theta, "nearest")[..., 2:], x[..., :-2])
    mask = in_frame_mask(theta, (8, 8))[0, 0]
    assert mask[:, :2].sum() == 0 and mask[:, 2:].min() == 1


def test_random_affine_is_seeded_and_not_identity():
    a = random_affine(4, torch.Generator().manual_seed(3))
    b = random_affine(4, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert (a - identity_affine(4)).abs().amax(dim=(1, 2)).min() > 1e-3
    # scale 0.8–1.25 with shear ≤ 0.15: the linear part's determinant stays within (0.6, 1.6)
    det = torch.linalg.det(a[:, :, :2])
    assert ((det > 0.6) & (det < 1.6)).all()


@pytest.fixture
def scheduler():
    return DDIMScheduler(**SD15_SCHEDULER_CONFIG)


def test_ef_loss_is_zero_for_the_identity_transform(scheduler):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 4, 3, padding=1)  # not equivariant to anything but translation

    def eps_fn(x_t, z_gray):
        return conv(torch.cat([x_t, z_gray], 1))

    z0, zg, noise = torch.randn(3, 2, 4, 8, 8).unbind(0)
    t = torch.tensor([100, 500])
    with torch.no_grad():
        loss = ef_loss(eps_fn, scheduler, z0, zg, noise, t, identity_affine(2))
    assert float(loss) < 1e-10


def test_ef_loss_masks_out_of_frame_pixels(scheduler):
    """A model predicting a constant ε̂ is exactly equivariant to integer shifts inside the frame; in the
    uncovered columns G(F(x)) sees zero padding and predicts −√(1−ᾱ)·c/√ᾱ while F(G(x)) pads with 0.
    Only the mask keeps that difference out of the loss."""
    def eps_fn(x_t, z_gray):
        return torch.full_like(x_t, 0.5)

    z0, zg, noise = torch.randn(3, 1, 4, 8, 8).unbind(0)
    t = torch.tensor([300])
    theta = shift(1, 3, 8)
    assert float(ef_loss(eps_fn, scheduler, z0, zg, noise, t, theta)) < 1e-10
    a = scheduler.alphas_cumprod[t]
    g_x = (scheduler.add_noise(z0, noise, t) - (1 - a).sqrt() * 0.5) / a.sqrt()
    g_fx = (scheduler.add_noise(warp(z0, theta), warp(noise, theta, "nearest"), t) - (1 - a).sqrt() * 0.5) / a.sqrt()
    assert float(masked_mse(g_fx, warp(g_x, theta), torch.ones(1, 1, 8, 8))) > 0.01
    assert float(masked_mse(g_fx, warp(g_x, theta), in_frame_mask(theta, (8, 8)))) < 1e-10


def test_ef_loss_sees_a_non_equivariant_model(scheduler):
    """ε̂ that depends on absolute position (a fixed pattern) violates equivariance under a shift."""
    pattern = torch.randn(1, 4, 8, 8)

    def eps_fn(x_t, z_gray):
        return pattern.expand_as(x_t)

    z0, zg, noise = torch.randn(3, 1, 4, 8, 8).unbind(0)
    assert float(ef_loss(eps_fn, scheduler, z0, zg, noise, torch.tensor([300]), shift(1, 2, 8))) > 0.1


def test_lambda_schedules():
    assert lambda_at(0, 101, "progressive", 1e-3) == 0.0
    assert lambda_at(50, 101, "progressive", 1e-3) == pytest.approx(5e-4)
    assert lambda_at(100, 101, "progressive", 1e-3) == pytest.approx(1e-3)
    assert lambda_at(0, 101, "constant", 1e-3) == 1e-3
    assert lambda_at(70, 101, "zero", 1e-3) == 0.0
    with pytest.raises(ValueError, match="unknown lambda schedule"):
        lambda_at(0, 10, "cubic", 1e-3)
