"""Core benchmark (issue 2). Prints, measured in this one run:

1. seconds per frame of one pipeline call (text, VAE encode, UNet, VAE decode; no file IO) with
   keyframe attention off and on, and their ratio — the tiny preset by default, any model spec with
   ``--model`` (``preset:sd15``: SD-1.5's architecture, random weights, for GPU figures);
2. UNet evaluations per frame in both modes;
3. FLOPs of one UNet evaluation of the SD-1.5 architecture (with F_in and keyframe processors) at
   512×512, counted on the meta device — no weights needed; the analytic figure is ≈ 0.80 TFLOP.

    python bench/bench_core.py [--frames 8] [--steps 20] [--repeats 3]
    python bench/bench_core.py --model preset:sd15 --size 512 --device cuda --dtype fp16 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

import numpy as np
import torch


def time_per_frame(pipe, gray, steps: int, repeats: int) -> dict[str, tuple[float, float]]:
    """Median seconds per frame and UNet evaluations per frame, keyframe attention off and on.

    The two modes alternate within each repeat, so that load from other processes on the machine
    falls on both alike and the ratio stays meaningful.
    """
    pipe(gray[:1], num_inference_steps=1)  # warm-up: first-call allocations and kernels
    modes = {"off": None, "on": 0}
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    evaluations: dict[str, int] = {}
    for _ in range(repeats):
        for mode, keyframe in modes.items():
            start = time.perf_counter()
            result = pipe(gray, prompt="a red ball on green grass", num_inference_steps=steps, keyframe=keyframe)
            seconds[mode].append(time.perf_counter() - start)
            evaluations[mode] = result.unet_evaluations
    n = len(gray)
    return {mode: (statistics.median(seconds[mode]) / n, evaluations[mode] / n) for mode in modes}


def sd15_unet_flops(height: int = 512, width: int = 512) -> float:
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    from coolcolor.model.attention import KeyframeAttention, install_keyframe_attention
    from coolcolor.model.presets import SD15_UNET_CONFIG
    from coolcolor.model.unet import add_gray_input, merge_gray

    with torch.device("meta"):
        unet = add_gray_input(UNet2DConditionModel(**SD15_UNET_CONFIG))
        noisy = torch.empty(1, 4, height // 8, width // 8)
        text = torch.empty(1, 77, 768)
        timestep = torch.tensor([500])
    install_keyframe_attention(unet, KeyframeAttention())
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:  # not inference_mode: it hides ops from the counter (pytorch #126268)
        unet(merge_gray(noisy, noisy), timestep, encoder_hidden_states=text)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="preset:tiny", help="model spec as for colorize (default: preset:tiny)")
    parser.add_argument("--size", type=int, default=64, help="frame width and height in px")
    parser.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    parser.add_argument("--dtype", default=None, help="default: fp16 on CUDA, fp32 on CPU")
    parser.add_argument("--threads", type=int, default=2, help="CPU torch threads (at most)")
    args = parser.parse_args()

    from coolcolor.model.resolve import resolve_model

    torch.set_num_threads(min(args.threads, torch.get_num_threads()))
    resolved = resolve_model(args.model, args.device, args.dtype)
    pipe = resolved.load_pipeline()
    gray = np.random.default_rng(0).random((args.frames, args.size, args.size)).astype(np.float32)
    timings = time_per_frame(pipe, gray, args.steps, args.repeats)
    (off, evals_off), (on, evals_on) = timings["off"], timings["on"]
    flops = sd15_unet_flops()

    print(f"{args.model}, {args.frames} frames of {args.size}×{args.size} (diffusion at "
          f"{'×'.join(map(str, pipe.model_size(args.size, args.size)))}), {args.steps} DDIM steps, CFG 2-way, "
          f"device {resolved.device} {resolved.dtype}, {torch.get_num_threads()} CPU threads, median of "
          f"{args.repeats}, load average {os.getloadavg()[0]:.1f}")
    print(f"  keyframe attention off : {off * 1000:8.1f} ms/frame   {evals_off:5.1f} UNet evaluations/frame")
    print(f"  keyframe attention on  : {on * 1000:8.1f} ms/frame   {evals_on:5.1f} UNet evaluations/frame")
    print(f"  ratio on/off           : {on / off:8.3f}")
    print(f"SD-1.5 UNet (+F_in, keyframe processors) at 512×512: {flops / 1e12:.3f} TFLOP per evaluation "
          f"(analytic reference 0.803)")
    print(f"  → {args.steps} steps × 2 (CFG) per frame: {args.steps * 2 * flops / 1e12:.1f} TFLOP of UNet work per frame")


if __name__ == "__main__":
    main()
