"""A gray-guided VAE decoder: the gray frame tells the decoder *where* the edges are (issue 16, item 3).

At the tiny model's 32-px working size one latent pixel covers 4×4 pixels, so a thin or small object
shares its latent with the backdrop and the plain decoder smears its chroma over both: the VAE alone
loses the named color of about a fifth of the layers
(docs/training.md#the-default-model-on-held-out-world-clips). But the decoder's job is only ever to say
*which color goes where* in a frame whose lightness we already have: the gray input.
``DecoderGuide`` reads that gray frame at the decoder's output size and adds its features to the output of the
decoder's mid block and of every up block, through zero-initialised 1×1 convolutions — ControlNet's zero
convolutions, and the paper's own zero-initialised F_in — so a new guide decodes exactly like the decoder it was
added to, and training only ever moves away from there.
Luminance-aware decoders of this kind are what L-CAD (Chang et al., NeurIPS 2023) uses for the same
reason.

Only the decoder changes: the encoder, so the latents and any UNet trained on them, stay as they were,
and the guide ships as its own diffusers part (``decoder_guide/``, ``save_pretrained`` /
``from_pretrained``) beside an unchanged ``vae/``. A checkpoint without one decodes as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from coolcolor.errors import CheckpointError

GUIDE_PART = "decoder_guide"


def decoder_stage_channels(vae: AutoencoderKL) -> tuple[int, ...]:
    """Channels of the decoder's mid block and of each up block's output, in the order they run."""
    widths = list(reversed(vae.config.block_out_channels))
    return (widths[0], *widths)


class DecoderGuide(ModelMixin, ConfigMixin):
    """Gray frame (n×1×h×w in [0, 1], the decoder's output size) → one additive feature map per decoder stage."""

    @register_to_config
    def __init__(self, stage_channels: tuple[int, ...] = (32, 32, 32, 16), width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1), nn.SiLU()
        )
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.SiLU()) for _ in stage_channels
        )
        self.zero_convs = nn.ModuleList(nn.Conv2d(width, c, 1) for c in stage_channels)
        for conv in self.zero_convs:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, gray: torch.Tensor, sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """The additions for stages of spatial ``sizes`` (one per stage), each pooled from the full-size features."""
        features = self.stem(gray * 2 - 1)
        out = []
        for stage, zero, size in zip(self.stages, self.zero_convs, sizes, strict=True):
            pooled = features if tuple(features.shape[-2:]) == size else F.adaptive_avg_pool2d(features, size)
            out.append(zero(stage(pooled)))
        return out


def check_guide_fits(guide: DecoderGuide, vae: AutoencoderKL, where: str) -> None:
    """Refuse, naming ``where``, a guide that cannot steer ``vae``'s decoder (parts that do not belong together)."""
    expected = decoder_stage_channels(vae)
    found = tuple(guide.config.stage_channels)
    if found != expected:
        raise CheckpointError(
            f"{where}: decoder_guide stage_channels {list(found)} do not fit the vae decoder's {list(expected)}"
        )


def new_decoder_guide(vae: AutoencoderKL, seed: int, width: int = 16) -> DecoderGuide:
    """A fresh guide for ``vae`` whose initial weights are a function of ``seed`` alone; decodes like no guide."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DecoderGuide(stage_channels=decoder_stage_channels(vae), width=width)


def decode(vae: AutoencoderKL, z: torch.Tensor, guide: DecoderGuide | None = None,
           gray: torch.Tensor | None = None) -> torch.Tensor:
    """VAE latents (unscaled, n×c×h×w) → images in [-1, 1]: the one decode that training, sampling and
    evaluation share. With a guide, ``gray`` (n×h'×w' in [0, 1], the output size) steers every stage."""
    if guide is None:
        return vae.decode(z).sample
    if gray is None:
        raise ValueError("a decoder guide needs the gray frames at the decoder's output size")
    decoder = vae.decoder
    if vae.post_quant_conv is not None:
        z = vae.post_quant_conv(z)
    sample = decoder.conv_in(z)
    blocks = [decoder.mid_block, *decoder.up_blocks]
    # Each stage's output size: the mid block keeps the latent size, each up block but the last doubles it.
    sizes, size = [], tuple(sample.shape[-2:])
    for block in blocks:
        if getattr(block, "upsamplers", None):
            size = (size[0] * 2, size[1] * 2)
        sizes.append(size)
    additions = guide(gray.unsqueeze(1).to(sample.dtype), sizes)
    for block, addition in zip(blocks, additions, strict=True):
        sample = block(sample, None) + addition
    sample = decoder.conv_act(decoder.conv_norm_out(sample))
    return decoder.conv_out(sample)
