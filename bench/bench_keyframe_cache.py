"""Keyframe once per worker (not a test): UNet passes and time of a shot colorized window by window,
with and without ``KeyframeKVCache``, and the largest difference in a*/b* between the two.

    python bench/bench_keyframe_cache.py [--frames 16] [--window 4] [--steps 8] [--model DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "backend"), str(ROOT / "protocol")]
os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--model", default="default", help="a model spec for resolve_model (default: the embedded coolcolor-tiny)")
    args = parser.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from coolcolor.model.resolve import resolve_model
    from coolcolor.model.pipeline import KeyframeKVCache

    pipe = resolve_model(args.model, "cpu").load_pipeline()
    y, x = np.mgrid[0:96, 0:128].astype(np.float32)
    clip = np.stack([np.where(np.hypot(x - 30 - 3 * t, y - 48) < 20, 0.8, 0.2 + 0.5 * y / 96)
                     for t in range(args.frames + 1)]).astype(np.float32)
    key, frames = clip[0], clip[1:]
    settings = dict(prompt="a red ball", keyframe=key, num_inference_steps=args.steps, seed=1, preview=False)
    pipe(frames[:1], **settings)  # warm-up
    rows = {}
    outputs = {}
    for name, cache in (("per window", None), ("cached", KeyframeKVCache())):
        t = time.perf_counter()
        evaluations, abs_ = 0, []
        for i in range(0, args.frames, args.window):
            extra = {} if cache is None else {"keyframe_cache": cache}
            result = pipe(frames[i : i + args.window], **settings, **extra)
            evaluations += result.unet_evaluations
            abs_.append(result.ab)
        rows[name] = (time.perf_counter() - t, evaluations)
        outputs[name] = np.concatenate(abs_)
    windows = -(-args.frames // args.window)
    print(f"bench_keyframe_cache: {args.frames} frames in {windows} windows of {args.window}, {args.steps} steps, "
          f"{args.model} on CPU, 1 thread")
    for name, (seconds, evaluations) in rows.items():
        print(f"  {name:<11} {evaluations:5d} UNet sample passes  {seconds:7.2f} s")
    (t0, e0), (t1, e1) = rows["per window"], rows["cached"]
    print(f"  saved: {e0 - e1} passes ({(e0 - e1) / e0 * 100:.1f} %, expected {(windows - 1) / (args.frames + windows) * 100:.1f} %), "
          f"{t0 - t1:.2f} s ({(t0 - t1) / t0 * 100:.1f} %)")
    print(f"  max |Δ a*b*| cached vs per window: {np.abs(outputs['cached'] - outputs['per window']).max():.4f}")


if __name__ == "__main__":
    main()
