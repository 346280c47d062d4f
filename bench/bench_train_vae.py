"""Reconstruction quality of a trained VAE on held-out world stills: what the diffusion can at best reach.

    PYTHONPATH=backend python bench/bench_train_vae.py /work/runs/coolcolor-tiny-vae/final/vae

Prints mean ΔE2000 of the a*, b* (at the true L*, as the pipeline replaces L by the input's), the RGB L1
of color stills, the L1 of gray stills, and the latent std (1 after scaling). A VAE with a decoder guide
beside it (``../decoder_guide/``, as in a packaged model) decodes through it, reading each still's gray
(the pipeline's sRGB gray of the same luminance): without it that decoder would be measured wrong.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL

from coolcolor.color import rgb_to_lab, srgb_to_gray
from coolcolor.model.decoder_guide import GUIDE_PART, DecoderGuide, check_guide_fits, decode
from coolcolor.train.data import HELD_OUT_SEED_BASE, downsample_rgb
from coolcolor.world import ciede2000, render_image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("vae", help="vae folder (diffusers AutoencoderKL)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=32)
    args = parser.parse_args()
    vae = AutoencoderKL.from_pretrained(args.vae).eval()
    guide_folder = Path(args.vae).parent / GUIDE_PART
    guide = None
    if (guide_folder / "config.json").is_file():
        guide = DecoderGuide.from_pretrained(guide_folder).eval()
        check_guide_fits(guide, vae, str(guide_folder))
    r = args.resolution
    rgb = torch.stack([downsample_rgb(render_image(HELD_OUT_SEED_BASE + i, (2 * r, 2 * r)).rgb[0], r)
                       for i in range(args.images)])
    start = time.time()
    with torch.no_grad():
        z = vae.encode(rgb * 2 - 1).latent_dist.mode()
        out = ((decode(vae, z, guide, srgb_to_gray(rgb.permute(0, 2, 3, 1))) + 1) / 2).clamp(0, 1)
        gray = rgb.mean(1, keepdim=True).expand(-1, 3, -1, -1)
        gout = ((decode(vae, vae.encode(gray * 2 - 1).latent_dist.mode(), guide, gray[:, 0]) + 1) / 2).clamp(0, 1)
    seconds = time.time() - start
    lab_true = rgb_to_lab(rgb.permute(0, 2, 3, 1).numpy())
    lab_out = rgb_to_lab(out.permute(0, 2, 3, 1).numpy())
    lab_out[..., 0] = lab_true[..., 0]
    de = ciede2000(lab_out.reshape(-1, 3), lab_true.reshape(-1, 3))
    print(f"images: {args.images} held-out stills at {r}x{r}; decoder guide: {guide_folder if guide else 'none'}")
    print(f"a*b* ΔE2000 (at true L*): mean {float(np.mean(de)):.2f}, median {float(np.median(de)):.2f}")
    print(f"RGB L1 color: {float((out - rgb).abs().mean()):.4f}; gray L1: {float((gout - gray).abs().mean()):.4f}")
    print(f"latent std × scaling_factor: {float(z.std() * vae.config.scaling_factor):.3f}; encode+decode {seconds:.2f} s")


if __name__ == "__main__":
    main()
