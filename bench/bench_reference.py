"""Reference keyframes (issue 25), not a test: colour one frame, propagate the shot, on world clips.

Held-out world clips (exact ground truth; rendered like ``coolcolor.train.evaluate``: seeds from
``HELD_OUT_SEED_BASE``, old-film damage, prompt = the clip's full caption) are colorized

- **text only**: today's default, frame 0 as the keyframe (the model's own colours);
- **reference + text**: the true colour of frame 0 as a frame reference (and ``kv``: the same with
  ``reference_start=0``, the reference read through the keyframe attention only);
- **two references** (frame 0 and the last frame, true colours), blended ``nearest`` or
  ``inverse_distance`` (``coolcolor.references.reference_weights``): which blend is best;
- **exemplar + text**: the true colour of frame 0 given as an exemplar (not placed in the shot).

and scored on the frames that no reference depicts: ΔE2000 over every pixel at the true L* (mean over
frames, then clips), text adherence of the named layers, and the ΔE of the referenced frame itself
(max |Δa*b*| against the reference after the half-float ab file). Every clip is colorized in windows of
``--window`` frames, as a job does (the reference's K/V cached per worker, like the keyframe's).
Time per frame is the pipeline's wall time divided by the frames it returned, on this machine.

    python bench/bench_reference.py [--clips 8] [--frames 8 32] [--steps 20] [--window 8] [--model default]
        [--modes text reference exemplar two:nearest two:inverse_distance]

``--real [ID ...]``: the same question on real footage (the held-out videos of ``coolcolor.real.catalog``,
clips read as ``coolcolor real bench`` reads them: ``--real-frames`` from the first, centre-cropped to 256×192,
gray = their luminance). The true colour of frame 0 is the reference; ΔE2000 at the true L* is reported by
distance from it (``--bins``) for the film left gray (a* = b* = 0), text only (frame 0 as keyframe, the
catalog's caption), reference + text, and the **optical-flow baseline** (``coolcolor.real.flow_baseline``:
the reference's a*, b* carried by chained DIS flow on the gray frames, L* from the plate); apart on the
pixels where the flow chain fails its forward–backward check (occlusions) and the rest; and the time per
frame with and without the reference in the same run.

    python bench/bench_reference.py --real [vtest tree] [--real-frames 96] [--bins 1-8 9-32 33-96]
        [--json F] [--pictures DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "backend"), str(ROOT / "protocol")]
os.environ.setdefault("OMP_NUM_THREADS", "1")


def colorize(pipe, gray: np.ndarray, truth: np.ndarray, prompt: str, mode: str, steps: int,
             window: int) -> tuple[np.ndarray, float, int]:
    """Colorize a shot (gray N×H×W, truth its colour N×H×W×3) in windows of ``window`` frames, as a job does,
    with frame 0 as the keyframe (``text``) or the truth's frames as references (the other modes, see the
    module docstring). Returns the a*, b* (N×H×W×2), the pipeline's wall seconds and its UNet passes."""
    from coolcolor.model.pipeline import KeyframeKVCache
    from coolcolor.references import ReferenceImage

    n = len(gray)
    cache = KeyframeKVCache(max_entries=4)
    truth = np.asarray(truth, np.float32)
    if mode == "text":
        refs, extra = [], {"keyframe": gray[0]}
    elif mode == "reference":
        refs, extra = [ReferenceImage(truth[0], 0)], {}
    elif mode == "kv":  # the reference through the keyframe K/V only: frames start from pure noise
        refs, extra = [ReferenceImage(truth[0], 0)], {"reference_start": 0.0}
    elif mode == "exemplar":
        refs, extra = [ReferenceImage(truth[0], None)], {}
    else:  # two references, blended
        refs, extra = [ReferenceImage(truth[0], 0), ReferenceImage(truth[n - 1], n - 1)], {
            "reference_blend": mode.split(":")[1]}
    out, passes = [], 0
    t = time.perf_counter()
    for i in range(0, n, window):
        frames = list(range(i, min(n, i + window)))
        kw = dict(extra)
        if refs:
            kw.update(references=refs, frame_numbers=frames)
        result = pipe(gray[frames], prompt=prompt, num_inference_steps=steps, seed=0, preview=False,
                      keyframe_cache=cache, **kw)
        out.append(result.ab)
        passes += result.unet_evaluations
    return np.concatenate(out), time.perf_counter() - t, passes


def delta_e_map(ab: np.ndarray, true_lab: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 of one frame's a*, b* (H×W×2, rounded to half floats as the ab file holds them)
    against the truth's Lab (H×W×3), both at the truth's L*: the colour decision, not the film's damage."""
    from coolcolor.world.metrics import ciede2000

    ab16 = np.asarray(ab).astype(np.float16).astype(np.float32)
    return ciede2000(np.concatenate([true_lab[..., :1], ab16], -1), true_lab)


def world(pipe, args: argparse.Namespace) -> None:
    """The world-clip table (exact ground truth): ΔE2000, adherence and cost per mode and clip length."""
    from coolcolor import color
    from coolcolor.train.evaluate import held_out_clips
    from coolcolor.world.metrics import text_adherence

    def score(clip, ab: np.ndarray, skip: set[int]) -> tuple[float, int, int]:
        keep = [f for f in range(clip.n_frames) if f not in skip]
        true_lab = np.asarray(color.rgb_to_lab(clip.rgb.astype(np.float32)))
        de = [float(delta_e_map(ab[f], true_lab[f]).mean()) for f in keep]
        ab16 = ab.astype(np.float16).astype(np.float32)  # what the ab file holds
        _, rows = text_adherence(ab16[keep], clip.masks[keep], clip.layers, clip.caption_layers[0])
        named = [r["correct"] for r in rows if r["correct"] is not None]
        return float(np.mean(de)), sum(named), len(named)

    modes = args.modes
    labels = {"text": "text only (frame 0 keyframe)", "reference": "reference frame 0 + text",
              "kv": "reference frame 0 + text, K/V only (reference_start 0)",
              "exemplar": "frame 0 as exemplar + text", "two:nearest": "refs 0 & last, nearest",
              "two:inverse_distance": "refs 0 & last, inverse distance"}
    print(f"bench_reference: {args.clips} held-out world clips, {args.size}×{args.size}, old-film damage, "
          f"{args.steps} steps, windows of {args.window}, model {args.model} on {args.device}, 1 thread")
    print("ΔE2000 and adherence on the frames no reference depicts; reference frame: max |Δa*b*| vs the reference; "
          "time ratio: ms / frame over text only's in the same run")
    print()
    print("| frames | mode | ΔE2000 ↓ | adherence | ms / frame | time ratio to text only | UNet passes / frame "
          "| ref frame max abs(Δa*b*) |")
    print("|---|---|---|---|---|---|---|---|")
    for n_frames in args.frames:
        clips = held_out_clips(args.clips, n_frames, args.size)
        text_ms = None
        for mode in modes:
            des, correct, named, seconds, count, own, passes = [], 0, 0, 0.0, 0, 0.0, 0
            for clip in clips:
                ab, s, p = colorize(pipe, clip.gray, clip.rgb, clip.captions[0], mode, args.steps, args.window)
                n = clip.n_frames
                passes += p
                skip = {0, n - 1} if mode.startswith("two") else {0}
                de, c, k = score(clip, ab, skip)
                des.append(de)
                correct, named, seconds, count = correct + c, named + k, seconds + s, count + n
                if mode in ("reference", "kv") or mode.startswith("two"):
                    ref_ab = np.asarray(color.rgb_to_lab(clip.rgb[0].astype(np.float32)))[..., 1:]
                    own = max(own, float(np.abs(ab[0].astype(np.float16).astype(np.float32) - ref_ab).max()))
            own_text = f"{own:.4f}" if mode in ("reference", "kv") or mode.startswith("two") else "—"
            ms = 1000 * seconds / count
            text_ms = ms if mode == "text" else text_ms
            ratio = f"{ms / text_ms:.2f}" if text_ms else "—"
            print(f"| {n_frames} | {labels[mode]} | {np.mean(des):.2f} "
                  f"| {correct / max(named, 1):.1%} ({correct}/{named}) | {ms:.1f} | {ratio} | {passes / count:.1f} | {own_text} |", flush=True)


def parse_bins(texts: list[str]) -> list[tuple[int, int]]:
    """``["1-8", "9-32"]`` → [(1, 8), (9, 32)]: distances from the reference frame, inclusive."""
    bins = []
    for text in texts:
        lo, _, hi = text.partition("-")
        if not (lo.isdigit() and hi.isdigit() and 1 <= int(lo) <= int(hi)):
            raise SystemExit(f"bench_reference: a distance bin is FIRST-LAST with 1 ≤ FIRST ≤ LAST, got {text!r}")
        bins.append((int(lo), int(hi)))
    return bins


def real_footage(pipe, args: argparse.Namespace) -> None:
    """The real-footage table: the true colour of frame 0 as the reference; ΔE2000 by distance from it for
    left gray, text only, reference + text and the optical-flow baseline; occlusions; cost."""
    from coolcolor import color
    from coolcolor.real.bench import DEFAULT_SIZE, VIDEO_START, load_clip, write_json, write_panels
    from coolcolor.real.catalog import load_catalog
    from coolcolor.real.flow_baseline import propagate_ab
    from coolcolor.train.evaluate import vae_round_trip

    catalog = load_catalog()
    items = [catalog.item(i) for i in args.real] if args.real else catalog.select("eval", "video")
    bins = parse_bins(args.bins)
    methods = {"gray": "left gray", "text": "text only", "reference": "reference + text", "flow": "optical flow",
               "vae": "VAE round trip of the truth"}
    colorize(pipe, np.zeros((2, 24, 32), np.float32), np.zeros((2, 24, 32, 3), np.float32), "", "text", 2, 2)  # warm-up
    report: dict = {"settings": {"model": args.model, "device": args.device, "steps": args.steps,
                                 "window": args.window, "size": list(DEFAULT_SIZE), "seed": 0}, "clips": []}
    distance_rows, occlusion_rows, cost_rows = [], [], []
    for item in items:
        shot = item.frames[1] - VIDEO_START if item.frames else args.real_frames
        n = min(args.real_frames, shot)
        clip = load_clip(item, n, DEFAULT_SIZE, catalog=catalog)
        true_lab = np.asarray(color.rgb_to_lab(clip.rgb), np.float64)
        reference_ab = true_lab[0, ..., 1:].astype(np.float32)
        t = time.perf_counter()
        flow_ab, unreliable = propagate_ab(reference_ab, clip.gray)
        flow_s = time.perf_counter() - t
        text_ab, text_s, text_passes = colorize(pipe, clip.gray, clip.rgb, clip.caption, "text", args.steps,
                                                args.window)
        ref_ab, ref_s, ref_passes = colorize(pipe, clip.gray, clip.rgb, clip.caption, "reference", args.steps,
                                             args.window)
        ab = {"gray": np.zeros_like(flow_ab), "text": text_ab, "reference": ref_ab, "flow": flow_ab,
              "vae": vae_round_trip(pipe, clip.rgb, clip.gray)[0]}
        de = {m: np.stack([delta_e_map(ab[m][f], true_lab[f]) for f in range(n)]).astype(np.float32) for m in methods}
        if args.pictures:
            Path(args.pictures).mkdir(parents=True, exist_ok=True)
            last = [np.clip(color.lab_to_rgb(color.replace_luminance(ab[m][-1], clip.gray[-1])), 0, 1)
                    for m in ("text", "reference", "flow")]
            write_panels(Path(args.pictures) / f"reference-{item.id}.jpg", [clip.rgb[0], clip.rgb[-1], *last])
        own = float(np.abs(ref_ab[0].astype(np.float16).astype(np.float32) - reference_ab).max())
        row: dict = {"id": item.id, "frames": n, "source": clip.source, "caption": clip.caption,
                     "reference_frame_max_abs_dab": own, "bins": []}
        for lo, hi in [*bins, (1, n - 1)]:
            hi = min(hi, n - 1)
            if lo > hi:
                continue
            span = slice(lo, hi + 1)
            bad = unreliable[span]
            cell = {"distance": [lo, hi], "unreliable_share": float(bad.mean()),
                    **{m: float(de[m][span].mean()) for m in methods},
                    **{f"{m}_unreliable": float(de[m][span][bad].mean()) if bad.any() else None for m in methods},
                    **{f"{m}_reliable": float(de[m][span][~bad].mean()) if (~bad).any() else None for m in methods}}
            row["bins"].append(cell)
            label = f"{lo}–{hi}" if (lo, hi) != (1, n - 1) else f"all {lo}–{hi}"
            best = min(("text", "reference", "flow", "gray"), key=lambda m: cell[m])
            distance_rows.append(f"| {item.id} | {label} | " + " | ".join(
                (f"**{cell[m]:.2f}**" if m == best else f"{cell[m]:.2f}") for m in methods) + " |")

            def pair(m: str) -> str:
                u, r = cell[f"{m}_unreliable"], cell[f"{m}_reliable"]
                return f"{'n/a' if u is None else f'{u:.2f}'} / {'n/a' if r is None else f'{r:.2f}'}"

            occlusion_rows.append(f"| {item.id} | {label} | {cell['unreliable_share']:.1%} | {pair('flow')} "
                                  f"| {pair('reference')} | {pair('text')} | {pair('gray')} |")
        row.update(ms_per_frame_text=1000 * text_s / n, ms_per_frame_reference=1000 * ref_s / n,
                   unet_passes_per_frame_text=text_passes / n, unet_passes_per_frame_reference=ref_passes / n,
                   ms_per_frame_flow=1000 * flow_s / n)
        cost_rows.append(f"| {item.id} | {n} | {row['ms_per_frame_text']:.1f} | {row['ms_per_frame_reference']:.1f} "
                         f"| {ref_s / text_s:.2f} | {text_passes / n:.1f} | {ref_passes / n:.1f} "
                         f"| {ref_passes / text_passes:.2f} | {row['ms_per_frame_flow']:.1f} | {own:.4f} |")
        report["clips"].append(row)
        print(f"{item.id}: {n} frames done", file=sys.stderr, flush=True)

    w, h = DEFAULT_SIZE
    print(f"bench_reference --real: {', '.join(i.id for i in items)} (held-out catalog videos), frames "
          f"{VIDEO_START}… up to {args.real_frames} or the shot's end, centre crop {w}×{h} "
          f"(model size {pipe.model_size(h, w)[1]}×{pipe.model_size(h, w)[0]}), reference = the true colour of frame "
          f"0, {args.steps} steps, windows of {args.window}, model {args.model} on {args.device}, 1 thread")
    print("ΔE2000 at the truth's L* (mean over pixels and frames), by distance from the reference frame; "
          "best of the four methods in bold; VAE round trip: each frame's true colours through this model's VAE at "
          "its working size and the pipeline's finishing, what its decoder makes of the truth itself")
    print()
    print("| clip | distance (frames) | " + " | ".join(methods.values()) + " |")
    print("|---|---|" + "---|" * len(methods))
    print("\n".join(distance_rows))
    print()
    print("Occlusions: pixels whose flow chain back to the reference fails the forward–backward check "
          "(world.metrics.dis_flow) at some link; ΔE2000 there / elsewhere")
    print()
    print("| clip | distance | failing pixels | optical flow | reference + text | text only | left gray |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(occlusion_rows))
    print()
    print("| clip | frames | ms / frame text only | ms / frame reference + text | time ratio | UNet passes / frame "
          "text | UNet passes / frame ref | passes ratio | ms / frame flow (DIS, CPU) | ref frame max abs(Δa*b*) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(cost_rows))
    if args.json:
        write_json(report, Path(args.json))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--model", default="default", help="a model spec for resolve_model (default: the embedded coolcolor-tiny)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", nargs="+", default=["text", "reference", "exemplar", "two:nearest",
                                                       "two:inverse_distance"])
    parser.add_argument("--real", nargs="*", metavar="ID", default=None,
                        help="real footage instead of world clips: these catalog videos (default: every held-out "
                             "video)")
    parser.add_argument("--real-frames", type=int, default=96, help="--real: frames per clip (at most the shot's)")
    parser.add_argument("--bins", nargs="+", default=["1-8", "9-32", "33-96"],
                        help="--real: distances from the reference frame to report apart")
    parser.add_argument("--json", help="--real: also write every number to this JSON file")
    parser.add_argument("--pictures", help="--real: write per clip the reference | the last frame's truth | text "
                                           "only | reference + text | optical flow into this folder")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from coolcolor.model.resolve import resolve_model

    pipe = resolve_model(args.model, args.device).load_pipeline()
    if args.real is not None:
        real_footage(pipe, args)
    else:
        world(pipe, args)


if __name__ == "__main__":
    main()
