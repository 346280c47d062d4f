"""Bring a*, b* from the model's resolution to the plate's resolution.

Chroma is low-frequency and the luminance is taken from the full-resolution original (paper §3.5),
so diffusion only ever runs at the model's resolution and only the two chroma channels are upsampled.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample_ab(ab: torch.Tensor, gray_full: torch.Tensor) -> torch.Tensor:
    """Upsample ``ab`` (N×h×w×2) to the size of ``gray_full`` (N×H×W, sRGB-encoded in [0, 1]).

    Plain bilinear for now; the video engine replaces this with a luminance-guided upsampler.
    """
    n, h, w = gray_full.shape
    if ab.shape[1:3] == (h, w):
        return ab
    x = ab.permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return x.permute(0, 2, 3, 1).contiguous()
