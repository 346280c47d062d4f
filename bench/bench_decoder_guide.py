"""What does the gray-guided decoder cost? Decode time with a guide vs without, measured in one run.

The guide (``coolcolor.model.decoder_guide``) adds a few convolutions at the decoder's output size and
at each stage. Two shapes: the shipped model's (``coolcolor-tiny``: 8×8 latents → 32 px, the default
model's VAE) and, with ``--sd``, SD-1.5's VAE decoder (random weights, built in code: 64×64 latents →
512 px). Prints seconds per frame and the ratio guided / plain for each.

    PYTHONPATH=backend:protocol python bench/bench_decoder_guide.py [--frames 8] [--repeats 5] [--sd]
"""

from __future__ import annotations

import argparse
import time

import torch
from diffusers import AutoencoderKL

from coolcolor.model.decoder_guide import decode, new_decoder_guide


def seconds_per_frame(vae: AutoencoderKL, guide, z: torch.Tensor, gray: torch.Tensor, repeats: int) -> float:
    with torch.no_grad():
        decode(vae, z, guide, gray)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            decode(vae, z, guide, gray)
    return (time.perf_counter() - start) / repeats / z.shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sd", action="store_true", help="also the SD-1.5 shape (about 80 s a frame on one CPU thread)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from coolcolor.default_model import default_model_path

    shapes = [("coolcolor-tiny (8×8 → 32 px)", AutoencoderKL.from_pretrained(default_model_path() / "vae"), 8)]
    if args.sd:
        from coolcolor.model.presets import SD15_VAE_CONFIG

        shapes.append(("SD-1.5 VAE (64×64 → 512 px)", AutoencoderKL(**SD15_VAE_CONFIG), 64))

    print(f"{args.frames} frames, {args.repeats} repeats, {args.threads} torch thread(s)\n")
    print("| decoder | plain s/frame | guided s/frame | guided / plain |")
    print("|---|---|---|---|")
    for name, vae, latent in shapes:
        vae.eval()
        generator = torch.Generator().manual_seed(0)
        z = torch.randn(args.frames, vae.config.latent_channels, latent, latent, generator=generator)
        side = latent * 2 ** (len(vae.config.block_out_channels) - 1)
        gray = torch.rand(args.frames, side, side, generator=generator)
        guide = new_decoder_guide(vae, seed=0).eval()
        plain = seconds_per_frame(vae, None, z, gray, args.repeats)
        guided = seconds_per_frame(vae, guide, z, gray, args.repeats)
        print(f"| {name} | {plain:.4f} | {guided:.4f} | {guided / plain:.2f}× |")


if __name__ == "__main__":
    main()
