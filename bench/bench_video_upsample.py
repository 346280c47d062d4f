"""Chroma round-trip oracle: how much color does upsampling only a*, b* cost? (issue 5, item 5)

A full-resolution color image is the ground truth. Its a*, b* are taken at the model's resolution
(the RGB image shrunk with antialiasing, as a perfect model would see and paint it), brought back to
full resolution by each upsampler, recombined with the full-resolution L* and fitted to the gamut
exactly as the pipeline does; ΔE2000 against the ground truth is the loss the method causes.

Images: the old-film world's clips when ``coolcolor.world`` is importable, else procedural scenes
(colored shapes with hard edges, textured luminance, gradients, thin lines). For the world, the guided
filter is run twice: guided by the clean L* and by the damaged plate (grain, scratches, flicker) that
a real job has — ΔE then still compares against the clean truth, recombined with the clean L*, so it
measures only the chroma the upsampler produced. Prints one table measured in one run.

    PYTHONPATH=backend:protocol python bench/bench_video_upsample.py [--size 1024] [--low 128 256] [--sweep]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from skimage.color import deltaE_ciede2000

from coolcolor import chroma, color
from coolcolor.video.encoding import lightness_to_gray


def procedural_scenes(count: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """sRGB images in [0, 1]: shapes of random hue over gradients, with luminance texture."""
    import cv2

    rng = np.random.default_rng(seed)
    scenes = []
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(count):
        c0, c1 = rng.random(3), rng.random(3)
        t = (x / width * rng.uniform(0.3, 1) + y / height * rng.uniform(0.3, 1)) / 2
        img = (c0 * (1 - t[..., None]) + c1 * t[..., None]).astype(np.float32)
        for _ in range(rng.integers(8, 16)):
            col = tuple(float(v) for v in rng.random(3))
            kind = rng.integers(0, 3)
            if kind == 0:
                cv2.circle(img, (int(rng.integers(0, width)), int(rng.integers(0, height))),
                           int(rng.integers(width // 30, width // 5)), col, -1, lineType=cv2.LINE_AA)
            elif kind == 1:
                p = rng.integers(0, [width, height], size=(2, 2))
                cv2.rectangle(img, tuple(map(int, p[0])), tuple(map(int, p[1])), col, -1)
            else:
                pts = rng.integers(0, [width, height], size=(int(rng.integers(3, 6)), 2)).astype(np.int32)
                cv2.fillPoly(img, [pts], col, lineType=cv2.LINE_AA)
        for _ in range(6):  # thin lines: worst case for chroma bleeding
            col = tuple(float(v) for v in rng.random(3))
            p = rng.integers(0, [width, height], size=(2, 2))
            cv2.line(img, tuple(map(int, p[0])), tuple(map(int, p[1])), col, int(rng.integers(1, 4)), cv2.LINE_AA)
        grain = rng.normal(0, 0.03, (height, width, 1)).astype(np.float32)
        scenes.append(np.clip(img * (1 + grain), 0, 1))
    return scenes


def world_scenes(count: int, height: int, width: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """(ground-truth color, damaged gray plate) of one frame from each of ``count`` world scenes."""
    try:
        from coolcolor.world import render_clip
    except ImportError:
        return None
    clips = [render_clip(seed=seed, frames=1, size=(width, height)) for seed in range(count)]
    return [(c.rgb[0], c.gray[0]) for c in clips]


def roundtrip(rgb: np.ndarray, low: int, method, guide_gray: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """ΔE2000 map of the round trip, and the seconds the upsampler itself took.

    ``guide_gray``: guide the upsampling with this plate (e.g. the grainy, scratched scan) instead of
    the clean luminance; the result is still recombined with the clean L*, so ΔE measures only what
    the upsampler did to the chroma.
    """
    h, w = rgb.shape[:2]
    scale = low / max(h, w)
    size = (max(8, round(h * scale / 8) * 8), max(8, round(w * scale / 8) * 8))
    lab = color.rgb_to_lab(torch.from_numpy(rgb))
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    small = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    ab_low = color.rgb_to_lab(small[0].permute(1, 2, 0).clamp(0, 1))[None, ..., 1:]
    gray = lightness_to_gray(lab[..., 0])[None]
    guide = gray if guide_gray is None else torch.from_numpy(np.asarray(guide_gray, np.float32))[None]
    t = time.perf_counter()
    ab_full = method(ab_low, guide)
    seconds = time.perf_counter() - t
    out = color.fit_chroma_to_gamut(color.replace_luminance(ab_full, gray))[0]
    return deltaE_ciede2000(lab.numpy(), out.numpy()), seconds


def bilinear(ab, gray):
    _, h, w = gray.shape
    return F.interpolate(ab.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)


def guided(r, eps):
    def method(ab, gray):
        guide = (color.gray_to_lightness(gray[0]) / 100)[None, None]
        return chroma.guided_upsample(ab[0].permute(2, 0, 1)[None], guide, r=r, eps=eps).permute(0, 2, 3, 1)
    return method


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024, help="long side of the ground-truth images")
    ap.add_argument("--low", type=int, nargs="+", default=[128, 256], help="model resolutions (long side)")
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--sweep", action="store_true", help="also try other radius/eps settings")
    ap.add_argument("--procedural", action="store_true", help="procedural scenes even if the world exists")
    args = ap.parse_args()
    torch.set_num_threads(2)
    h, w = args.size * 9 // 16, args.size
    scenes = None if args.procedural else world_scenes(args.images, h, w)
    source = "old-film world (coolcolor.world.render_clip)"
    if scenes is None:
        scenes = [(rgb, None) for rgb in procedural_scenes(args.images, h, w)]
        source = "procedural scenes"
    methods = {"bilinear": bilinear, f"guided r={chroma.GUIDED_RADIUS} eps={chroma.GUIDED_EPS:g} (default)":
               guided(chroma.GUIDED_RADIUS, chroma.GUIDED_EPS)}
    if args.sweep:
        for r in (1, 2, 4):
            for eps in (1e-4, 1e-3, 1e-2):
                methods[f"guided r={r} eps={eps:g}"] = guided(r, eps)
    guides = ["clean L*"] + (["damaged plate"] if scenes[0][1] is not None else [])
    print(f"images: {len(scenes)} × {w}×{h} from {source}")
    print(f"{'model res':>9}  {'guide':<13} {'method':<34} {'ΔE00 mean':>9} {'ΔE00 p95':>9} {'ΔE00 p99':>9} "
          f"{'upsample ms':>11}")
    for low in args.low:
        for guide in guides:
            for name, method in methods.items():
                if guide != "clean L*" and name == "bilinear":
                    continue  # bilinear ignores the guide
                des, ms = [], []
                for rgb, damaged in scenes:
                    de, seconds = roundtrip(rgb, low, method, damaged if guide != "clean L*" else None)
                    ms.append(seconds * 1000)
                    des.append(de.ravel())
                de = np.concatenate(des)
                print(f"{low:>9}  {guide:<13} {name:<34} {de.mean():9.3f} {np.percentile(de, 95):9.3f} "
                      f"{np.percentile(de, 99):9.3f} {np.median(ms):11.1f}")


if __name__ == "__main__":
    main()
