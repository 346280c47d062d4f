"""The CoolColor UNet: a stock diffusers ``UNet2DConditionModel`` plus F_in (paper Eq. 4).

F_in merges the VAE latent of the gray frame into the UNet input. We realise it as the extra input
channels of a widened ``conv_in``: a convolution over ``cat(z_t, z_gray)`` is exactly
``conv_in(z_t) + F_in(z_gray)``, so the gray half of the kernel *is* F_in. Starting it at zero
(and keeping the pretrained bias, which InstructPix2Pix's recipe forgets, diffusers #4960) makes the
untrained CoolColor UNet compute exactly what Stable Diffusion computes, whatever the gray latent.

Keeping F_in inside ``conv_in`` means the UNet stays a plain ``UNet2DConditionModel`` with
``in_channels = 2 × latent channels``: diffusers' own ``save_pretrained``/``from_pretrained`` round-trip
it, and ``torch.compile`` sees one convolution, not a hook.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from coolcolor.errors import CheckpointError

F_IN_LAYOUT = "conv_in[:, latent_channels:]"


def latent_channels(unet: UNet2DConditionModel) -> int:
    """Channels of the noisy latent (= the UNet's output channels)."""
    return int(unet.config.out_channels)


def has_gray_input(unet: UNet2DConditionModel) -> bool:
    return int(unet.config.in_channels) == 2 * latent_channels(unet)


def add_gray_input(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """Widen ``conv_in`` in place with a zero-initialised F_in for the gray latent; returns ``unet``."""
    c = latent_channels(unet)
    old = unet.conv_in
    if old.in_channels != c:
        raise CheckpointError(
            f"conv_in already takes {old.in_channels} channels (expected {c} for a stock UNet); "
            "is this already a CoolColor UNet?"
        )
    new = nn.Conv2d(
        2 * c,
        old.out_channels,
        kernel_size=old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        bias=old.bias is not None,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :c].copy_(old.weight)
        if old.bias is not None:
            new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=2 * c)
    return unet


def f_in_weight(unet: UNet2DConditionModel) -> torch.Tensor:
    """F_in's kernel (a view into ``conv_in``), for inspection and tests."""
    return unet.conv_in.weight[:, latent_channels(unet) :]


def merge_gray(noisy_latents: torch.Tensor, gray_latents: torch.Tensor) -> torch.Tensor:
    """The UNet input for Eq. 4: noisy latent and gray latent stacked on channels."""
    if noisy_latents.shape != gray_latents.shape:
        raise ValueError(
            f"noisy latents {tuple(noisy_latents.shape)} and gray latents {tuple(gray_latents.shape)} differ"
        )
    return torch.cat((noisy_latents, gray_latents), dim=1)
