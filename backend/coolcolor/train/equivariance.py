"""The equivariance loss L_EF (paper §3.3, Eq. 6–7) and the random geometric transforms F.

    L_EF = ‖ G(F(x), t) − F(G(x, t)) ‖²,  G(x, t) = (x_t − √(1−ᾱ_t)·ε̂(x_t, t)) / √ᾱ_t

F is a random affine map (rotation, translation, scaling, shear; a resized crop is a scale + shift)
applied in latent space with ``affine_grid``/``grid_sample``. x = (color latent z0, gray latent, noise
ε): all three are warped by the same F, so G(F(x), t) sees exactly the transformed sample. Latents
are warped bilinearly; the noise with nearest-neighbour sampling, which keeps it unit-variance
(bilinear blending of independent noise would shrink its variance and move it off the schedule).
Pixels that F takes from outside the frame exist in neither side: they are masked out of the loss.

Large t: the x0 prediction divides by √ᾱ_t, which amplifies any ε̂ error 14× at t = 999 of the SD
schedule. We therefore draw the timesteps of the L_EF samples from [0, ef_t_max) (default 600, where
1/√ᾱ ≤ ~2.3) rather than weighting: the loss then measures the model, not the schedule's blow-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


def random_affine(n: int, generator: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """(n, 2, 3) ``affine_grid`` matrices: output coords → input coords, in normalised [-1, 1] units.

    Rotation ±15°, isotropic scale 0.8–1.25 (zoom in = resized crop), shear ±0.15, shift ±0.2.
    """
    def u(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    angle = u(-15, 15) * strength * math.pi / 180
    scale = torch.exp(u(math.log(0.8), math.log(1.25)) * strength)
    shear = u(-0.15, 0.15) * strength
    tx, ty = u(-0.2, 0.2) * strength, u(-0.2, 0.2) * strength
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    sh = torch.eye(2).repeat(n, 1, 1)
    sh[:, 0, 1] = shear
    lin = rot @ sh / scale[:, None, None]
    return torch.cat([lin, torch.stack([tx, ty], -1)[..., None]], -1)


def identity_affine(n: int) -> torch.Tensor:
    return torch.eye(2, 3).repeat(n, 1, 1)


def warp(x: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Apply F to an n×c×h×w tensor; pixels taken from outside the frame become 0."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def in_frame_mask(theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """n×1×h×w, 1 where F samples entirely inside the frame (all bilinear taps in), else 0."""
    ones = torch.ones(theta.shape[0], 1, *size)
    return (warp(ones, theta) > 0.999).float()


def x0_from_eps(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """G: one-step DDIM prediction of x0 (Eq. 6). ``alpha_bar`` is per sample (n,)."""
    a = alpha_bar.to(x_t.dtype).view(-1, 1, 1, 1)
    return (x_t - (1 - a).sqrt() * eps) / a.sqrt()


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, mask_sum: float | None = None) -> torch.Tensor:
    """Mean squared difference over the masked pixels (all channels); 0 when nothing is in frame.

    ``mask_sum`` divides instead of this mask's sum: a data-parallel shard's part of a mean over more
    samples than it holds."""
    m = mask.expand_as(a)
    return ((a - b) ** 2 * m).sum() / (m.sum().clamp(min=1.0) if mask_sum is None else max(mask_sum, 1e-12))


def lambda_at(step: int, total_steps: int, schedule: str, lambda_max: float) -> float:
    """λ at ``step`` (0-based): linear 0 → λ_max over the run ("progressive", as the paper), λ_max
    ("constant") or 0 ("zero")."""
    if schedule == "zero":
        return 0.0
    if schedule == "constant":
        return lambda_max
    if schedule == "progressive":
        return lambda_max * min(1.0, step / max(1, total_steps - 1))
    raise ValueError(f"unknown lambda schedule {schedule!r}")


def ef_loss(eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], scheduler, z0: torch.Tensor,
            z_gray: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, theta: torch.Tensor,
            eps: torch.Tensor | None = None, z_t: torch.Tensor | None = None,
            mask_sum: float | None = None) -> torch.Tensor:
    """L_EF = ‖G(F(x), t) − F(G(x, t))‖² over the in-frame pixels (Eq. 7).

    ``eps_fn(x_t, z_gray)`` is the model's ε̂; ``eps``/``z_t`` of the untransformed sample may be passed
    when the reconstruction pass already computed them (then only the warped pass runs here).
    """
    alpha_bar = scheduler.alphas_cumprod.to(z0.device)[t]
    if z_t is None:
        z_t = scheduler.add_noise(z0, noise, t)
    if eps is None:
        eps = eps_fn(z_t, z_gray)
    g_x = x0_from_eps(z_t, eps, alpha_bar)
    z_t_warped = scheduler.add_noise(warp(z0, theta), warp(noise, theta, "nearest"), t)
    g_fx = x0_from_eps(z_t_warped, eps_fn(z_t_warped, warp(z_gray, theta)), alpha_bar)
    mask = in_frame_mask(theta.cpu(), tuple(z0.shape[-2:])).to(z0.device)
    return masked_mse(g_fx, warp(g_x, theta), mask, mask_sum)
