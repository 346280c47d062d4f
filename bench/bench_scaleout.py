"""Scale-out bench (not a test): frames/s of one job run locally (LocalSegmentRunner), on 1 and 2 Ray workers (RaySegmentRunner).

    python bench/bench_scaleout.py [--frames 32] [--window 4] [--steps 4] [--model DIR]

Prints frames/s and the ratios, Ray's overhead per window against local execution (dispatch,
records, the driver's checks), and a projection for N GPUs from the measured per-window cost and
overhead. One torch thread everywhere (the driver's local run and each Ray worker). Pool start-up
(each actor loads the model) is reported apart: it is paid once per pool, not per job.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "backend"), str(ROOT / "protocol"), str(ROOT / "tests")]
os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--model", help="checkpoint folder (default: the tiny preset, saved to a temp folder)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from coolcolor.model.pipeline import CoolColorPipeline
    from coolcolor.video.job import ColorizeJob
    from coolcolor.video.run import run_colorize_job, run_job
    from coolcolor.scaleout.ray_cluster import RaySegmentRunner, start_local_ray
    from test_video_job import one_shot_sequence

    tmp = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    model = args.model
    if model is None:
        from coolcolor.model.presets import tiny_pipeline

        model = str(tmp / "tiny")
        tiny_pipeline(seed=0).save_pretrained(model)
    source = one_shot_sequence(tmp / "src", range(1, args.frames + 1))
    windows = -(-args.frames // args.window)

    def job(name: str) -> ColorizeJob:
        return ColorizeJob(source=source, output_dir=str(tmp / name), keyframes=[1], steps=args.steps,
                           window=args.window, seed=1)

    rows = {}
    pipe = CoolColorPipeline.from_pretrained(model, device="cpu")
    run_colorize_job(job("warm"), pipe)  # first-call costs out of the figure
    t = time.perf_counter()
    local = run_colorize_job(job("local"), pipe)
    rows["local"] = (time.perf_counter() - t, local.timings["colorize_s"], 0.0)
    del pipe

    start_local_ray(num_cpus=2)
    for workers in (1, 2):
        t = time.perf_counter()
        pool = RaySegmentRunner(model, workers=workers)
        startup = time.perf_counter() - t
        run_job(job(f"warm{workers}"), pool)
        t = time.perf_counter()
        result = run_job(job(f"ray{workers}"), pool)
        rows[f"ray x{workers}"] = (time.perf_counter() - t, result.timings["colorize_s"], startup)
        pool.close()

    print(f"bench_scaleout: {args.frames} frames, window {args.window} ({windows} windows), {args.steps} steps, "
          f"tiny model on CPU, 1 torch thread per worker, {os.cpu_count()} cores")
    print(f"{'executor':<10} {'job s':>8} {'colorize s':>11} {'frames/s':>9} {'vs local':>9} {'pool start s':>13}")
    base = args.frames / rows["local"][1]
    for name, (total, colorize, startup) in rows.items():
        fps = args.frames / colorize
        print(f"{name:<10} {total:8.2f} {colorize:11.2f} {fps:9.3f} {fps / base:9.2f} {startup:13.1f}")
    per_window_local = rows["local"][1] / windows
    overhead = (rows["ray x1"][1] - rows["local"][1]) / windows
    print(f"per window: local {per_window_local * 1000:.0f} ms, Ray overhead {overhead * 1000:+.0f} ms "
          f"({overhead / per_window_local * 100:+.1f} %)")
    print("projection (N GPUs, each running windows at the measured per-window cost + overhead, driver not the limit):")
    for n in (1, 2, 4, 8, 16, 32):
        fps = n * args.window / (per_window_local + max(0.0, overhead))
        print(f"  N={n:<3} {fps:8.2f} frames/s   (x{fps / base:.2f} of local)")
    print(f"files under {tmp}")


if __name__ == "__main__":
    main()
