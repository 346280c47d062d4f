"""Old-film world throughput: is on-the-fly training data cheap enough? (target: 64 frames at 128×128
in ≤ 1 s on this machine). Prints numbers measured in this run.

    PYTHONPATH=backend:protocol python bench/bench_world.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from coolcolor.world import Degradations, evaluate, render_clip, render_image


def timed(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    print(f"CPU threads: torch {torch.get_num_threads()}, os.cpu_count {os.cpu_count()}; median of {args.repeats}")

    def row(label: str, seconds: float, count: int | None = None, unit: str = "frames/s") -> None:
        rate = f"{count / seconds:8.1f} {unit}" if count else ""
        print(f"{label:<58}{seconds:8.3f} s {rate}")

    seeds = iter(range(10_000))
    for label, deg in (("old film, all damage at strength 1", None), ("clean", Degradations.none())):
        t, _ = timed(lambda d=deg: render_clip(next(seeds), 64, (128, 128), degradations=d), args.repeats)
        row(f"render_clip 64 x 128x128, {label}", t, 64)
    t, _ = timed(lambda: render_clip(next(seeds), 16, (256, 256)), args.repeats)
    row("render_clip 16 x 256x256, old film", t, 16)
    n = 64
    t, _ = timed(lambda: [render_image(next(seeds), (64, 64)) for _ in range(n)], args.repeats)
    row(f"render_image x{n} at 64x64, old film", t, n, "images/s")
    t, _ = timed(lambda: render_clip(next(seeds), 1, (3840, 2160)), max(1, args.repeats // 2))
    row("render_clip 1 x 3840x2160 (4K), old film", t)

    clip = render_clip(1, 64, (128, 128))
    t, _ = timed(lambda: evaluate(clip.rgb, clip), args.repeats)
    row("evaluate RGB prediction, 64 x 128x128, ground-truth flow", t, 64)
    t, _ = timed(lambda: evaluate(clip.ab_truth(), clip), max(1, args.repeats // 2))
    row("evaluate a*b* prediction, 64 x 128x128, ground-truth flow", t, 64)
    t, _ = timed(lambda: evaluate(clip.rgb, clip, flow="dis"), max(1, args.repeats // 2))
    row("evaluate RGB prediction, 64 x 128x128, DIS flow", t, 64)
    with tempfile.TemporaryDirectory() as d:
        t, _ = timed(lambda: clip.save(os.path.join(d, "c")), max(1, args.repeats // 2))
        row("Clip.save 64 x 128x128 (16-bit PNGs + npz)", t, 64)


if __name__ == "__main__":
    main()
