"""Video engine benchmark (issue 5). Prints, measured in this one run:

1. ``fps``        end-to-end frames/s of ``run_colorize_job`` on an old-film world clip (EXR sequence
                  on disk → shots → automatic keyframes → windows → ab EXRs), with the time of each
                  phase; FLOPs per frame counted with ``torch.utils.flop_counter`` on one window, and
                  the fraction of the device's ceiling they reach (FLOPs/frame × frames/s ÷ peak).
                  The peak is the datasheet dense fp16/bf16 figure for known GPUs, and always a
                  measured large-matmul throughput in the run's dtype.
2. ``memory``     peak RSS of a whole job on 100 and on 1,000 frames of one shot (fresh process
                  each); the engine reads and colorizes window by window, so the two should agree
                  within 10 %.
3. ``resolution`` the same clip at 3840×2160 and at 512×288, end to end; diffusion runs at the
                  model's resolution for both, only reading, gray conversion, guided chroma
                  upsampling, gamut fitting and EXR writing grow with the plate. Target: ≤ 1.3×.
                  With the tiny preset the diffusion costs almost nothing, so the ratio is
                  dominated by that per-pixel work; the script also prints the ratio projected for
                  the SD-1.5-size model from its counted FLOPs at the matmul throughput measured here.

    PYTHONPATH=backend:protocol python bench/bench_video.py                        # tiny preset, CPU
    PYTHONPATH=backend:protocol python bench/bench_video.py --model PATH --device cuda --dtype bf16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "protocol"))

import numpy as np
import torch

# Dense fp16/bf16 tensor-core peaks from the vendors' datasheets (TFLOP/s, without sparsity).
DATASHEET_PEAK_TFLOPS = {
    "H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H200": 989.4,
    "A100": 312.0, "L40S": 362.1, "L4": 121.0, "A10": 125.0, "RTX 4090": 165.2, "RTX 6000 Ada": 364.2,
}


# ----------------------------------------------------------------------------- helpers


def write_gray_sequence(folder: Path, frames: np.ndarray, first: int = 1) -> str:
    """Half-float one-channel EXRs, the way a scanned B&W plate usually arrives."""
    import OpenImageIO as oiio

    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = frames.shape
    for i in range(n):
        path = str(folder / f"plate.{first + i:04d}.exr")
        out = oiio.ImageOutput.create(path)
        spec = oiio.ImageSpec(w, h, 1, "half")
        spec.attribute("compression", "zip")
        out.open(path, spec)
        out.write_image(np.ascontiguousarray(frames[i][..., None], np.float32))
        out.close()
    return str(folder / "plate.####.exr")


def world_gray(frames: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    from coolcolor.world import render_clip

    return render_clip(seed=seed, frames=frames, size=(width, height)).gray


def moving_disc(frames: int, width: int, height: int) -> np.ndarray:
    """Cheap one-shot clip for the long-clip memory run."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((frames, height, width), np.float32)
    for t in range(frames):
        cx = width * (0.2 + 0.6 * (t % 200) / 200)
        out[t] = np.where(np.hypot(x - cx, y - height / 2) < height / 4, 0.8, 0.2 + 0.5 * y / height)
    return out


def run_job(source: str, out: str, pipe, steps: int, keyframes: list[int] | None = None, window: int = 8):
    from coolcolor.video.job import ColorizeJob
    from coolcolor.video.run import run_colorize_job

    job = ColorizeJob(source=source, output_dir=out, prompt="a red car on a sunny street", steps=steps,
                      keyframes=keyframes or [], window=window)
    start = time.perf_counter()
    result = run_colorize_job(job, pipe)
    return time.perf_counter() - start, result


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, dtype: torch.dtype) -> float:
    """Measured dense matmul throughput: the practical ceiling of this device and dtype."""
    n = 4096 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    reps = 50 if device.type == "cuda" else 5
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def datasheet_peak(device: torch.device) -> tuple[str, float | None]:
    if device.type != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name(device)
    for key, peak in DATASHEET_PEAK_TFLOPS.items():
        if all(part in name for part in key.split()):
            return name, peak
    return name, None


def flops_per_frame(pipe, gray: np.ndarray, steps: int) -> float:
    """All FLOPs of one window call (text, VAE, keyframe pass, UNet), per frame of the window."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        pipe(gray, prompt="a red car on a sunny street", keyframe=gray[0], num_inference_steps=steps)
    return counter.get_total_flops() / len(gray)


def sd15_flops_per_frame(steps: int, size: int = 512) -> float:
    """SD-1.5-size CoolColor at ``size``²: UNet (2-way CFG) + VAE encode/decode, counted on meta."""
    from bench_core import sd15_unet_flops
    from diffusers import AutoencoderKL
    from torch.utils.flop_counter import FlopCounterMode

    from coolcolor.model.presets import SD15_VAE_CONFIG

    unet = sd15_unet_flops(size, size)
    with torch.device("meta"):
        vae = AutoencoderKL(**SD15_VAE_CONFIG)
        image = torch.empty(1, 3, size, size)
        latent = torch.empty(1, 4, size // 8, size // 8)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        vae.encode(image)
        vae.decode(latent)
    return 2 * steps * unet + counter.get_total_flops()


# ----------------------------------------------------------------------------- sections


def section_fps(args, pipe, device, dtype) -> None:
    frames, width = args.frames, args.size
    height = args.height or width * 9 // 16 // 8 * 8
    with tempfile.TemporaryDirectory() as tmp:
        gray = world_gray(frames, width, height)
        source = write_gray_sequence(Path(tmp) / "src", gray)
        seconds, result = run_job(source, str(Path(tmp) / "out"), pipe, args.steps, window=args.window)
    t = result.timings
    n = len(result.frames_written)
    print(f"\n[fps] {n} frames {width}×{height}, {args.steps} steps, window {args.window}, "
          f"device {device} {str(dtype).replace('torch.', '')}")
    phases = ("validate_s", "shots_s", "keyframes_s", "read_s", "pipeline_s", "write_s", "colorize_s")
    print("  phases (s): " + ", ".join(f"{k[:-2]} {t.get(k, 0):.2f}" for k in phases))
    fps_total, fps_colorize = n / seconds, n / t["colorize_s"]
    print(f"  end to end: {seconds:.2f} s → {fps_total:.3f} frames/s "
          f"(colorize phase alone: {fps_colorize:.3f} frames/s)")
    window = gray[: args.window].astype(np.float32)
    fpf = flops_per_frame(pipe, window, args.steps)
    measured = matmul_tflops(device, dtype)
    name, sheet = datasheet_peak(device)
    print(f"  FLOPs per frame (counted, one window incl. keyframe pass): {fpf / 1e9:.2f} GFLOP")
    achieved = fpf * fps_colorize / 1e12
    print(f"  achieved {achieved:.4f} TFLOP/s in the colorize phase; measured matmul ceiling "
          f"{measured:.2f} TFLOP/s → {achieved / measured:.1%} of it")
    if sheet:
        print(f"  {name}: datasheet dense peak {sheet:.0f} TFLOP/s → {achieved / sheet:.2%} of the physical ceiling")
    if device.type == "cuda":
        procs = {type(p).__name__ for p in pipe.unet.attn_processors.values()}
        print(f"  attention processors: {', '.join(sorted(procs))}; "
              f"SDPA flash={torch.backends.cuda.flash_sdp_enabled()} mem_eff={torch.backends.cuda.mem_efficient_sdp_enabled()}")


def section_memory(args) -> None:
    print(f"\n[memory] peak RSS of one job, one shot, {args.mem_size[0]}×{args.mem_size[1]}, "
          f"{args.mem_steps} step(s), fresh process each")
    rss = {}
    for frames in (100, 1000):
        cmd = [sys.executable, __file__, "--_child-memory", str(frames), "--mem-size", *map(str, args.mem_size),
               "--mem-steps", str(args.mem_steps), "--device", "cpu"]
        if args.model:
            cmd += ["--model", args.model]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        data = json.loads(out.strip().splitlines()[-1])
        rss[frames] = data["peak_rss_mib"]
        print(f"  {frames:>5} frames: peak RSS {data['peak_rss_mib']:.1f} MiB "
              f"(job {data['seconds']:.1f} s, {data['frames']} frames written)")
    print(f"  ratio 1000/100: {rss[1000] / rss[100]:.3f} (target ≤ 1.10)")


def child_memory(args) -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    from coolcolor.model.resolve import TINY_PRESET, resolve_model

    pipe = resolve_model(args.model or TINY_PRESET, "cpu", "fp32").load_pipeline()
    w, h = args.mem_size
    with tempfile.TemporaryDirectory() as tmp:
        # Frames are generated and written a chunk at a time, so the clip never sits in this process.
        src = Path(tmp) / "src"
        for start in range(0, args._child_memory, 100):
            n = min(100, args._child_memory - start)
            write_gray_sequence(src, moving_disc(start + n, w, h)[start:], first=1 + start)
        seconds, result = run_job(str(src / "plate.####.exr"), str(Path(tmp) / "out"), pipe, args.mem_steps,
                                  keyframes=[1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mib": peak, "seconds": seconds, "frames": len(result.frames_written)}))


def section_resolution(args, pipe, device, dtype) -> None:
    import cv2

    frames = args.res_frames
    small = world_gray(frames, 512, 288, seed=1)
    big = np.stack([cv2.resize(f, (3840, 2160), interpolation=cv2.INTER_CUBIC) for f in small]).clip(0, 1)
    print(f"\n[resolution] {frames} frames at 3840×2160 vs 512×288, {args.steps} steps, model resolution "
          f"{pipe.resolution}, device {device}")
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, clip in (("512", small), ("4K", big)):
            source = write_gray_sequence(Path(tmp) / name, clip)
            run_job(source, str(Path(tmp) / f"warm{name}"), pipe, args.steps, keyframes=[1], window=args.window)
            seconds, result = run_job(source, str(Path(tmp) / f"out{name}"), pipe, args.steps, window=args.window)
            t = result.timings
            times[name] = seconds
            print(f"  {name:>4}: {seconds:.2f} s end to end ({seconds / frames:.3f} s/frame); read {t.get('read_s', 0):.2f}"
                  f", pipeline {t.get('pipeline_s', 0):.2f}, write {t.get('write_s', 0):.2f}, "
                  f"keyframes {t.get('keyframes_s', 0):.2f}")
    ratio = times["4K"] / times["512"]
    print(f"  ratio 4K / 512 with this model: {ratio:.2f}× (target ≤ 1.3×)")
    per_pixel = (times["4K"] - times["512"]) / frames  # seconds per frame the plate size adds
    if args.project_sd15:
        tput = matmul_tflops(device, dtype) * 1e12
        sd_flops = sd15_flops_per_frame(args.steps)
        sd_frame = sd_flops / tput  # lower bound: at matmul speed
        print(f"  SD-1.5-size model at 512 px, {args.steps} steps, 2-way CFG: {sd_flops / 1e12:.1f} TFLOP/frame (counted)")
        proj = (sd_frame + times["4K"] / frames) / (sd_frame + times["512"] / frames)
        print(f"  projection for the SD-1.5-size model: ≥ {sd_frame:.2f} s/frame of diffusion at the measured "
              f"matmul throughput ({tput / 1e12:.2f} TFLOP/s) + {per_pixel:.2f} s/frame for the 4K plate "
              f"→ ≤ {proj:.2f}×")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model spec as for colorize: 'default', a run or checkpoint folder, "
                    "preset:sd15 (SD-1.5's architecture, random weights) (default here: the tiny preset)")
    ap.add_argument("--device", default=None, help="default: cuda when present, else cpu (the resolver's choice)")
    ap.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default=None,
                    help="default fp32 on CPU, fp16 on CUDA (the resolver's choice)")
    ap.add_argument("--sections", default="fps,memory,resolution")
    ap.add_argument("--frames", type=int, default=16, help="[fps] clip length")
    ap.add_argument("--size", type=int, default=512, help="[fps] plate width")
    ap.add_argument("--height", type=int, default=0, help="[fps] plate height (default: 16:9 of the width)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--mem-size", type=int, nargs=2, default=[128, 72], metavar=("W", "H"))
    ap.add_argument("--mem-steps", type=int, default=1)
    ap.add_argument("--res-frames", type=int, default=4)
    ap.add_argument("--no-sd15-projection", dest="project_sd15", action="store_false")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU torch threads (default: up to 2); use 1 on a machine other jobs share")
    ap.add_argument("--_child-memory", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child_memory:
        child_memory(args)
        return
    from coolcolor.model.resolve import TINY_PRESET, resolve_model, torch_dtype

    resolved = resolve_model(args.model or TINY_PRESET, args.device, args.dtype)
    device, dtype = torch.device(resolved.device), torch_dtype(resolved.dtype)
    if device.type == "cpu":
        torch.set_num_threads(args.threads or min(2, os.cpu_count() or 1))
    sections = set(args.sections.split(","))
    pipe = resolved.load_pipeline() if sections & {"fps", "resolution"} else None
    print(f"model: {args.model or 'tiny preset (random weights)'}; device {device}; "
          f"threads {torch.get_num_threads()}")
    if "fps" in sections:
        section_fps(args, pipe, device, dtype)
    if "memory" in sections:
        section_memory(args)
    if "resolution" in sections:
        section_resolution(args, pipe, device, dtype)


if __name__ == "__main__":
    main()
