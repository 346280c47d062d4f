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
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--model", default="default", help="a model spec for resolve_model (default: the embedded coolcolor-tiny)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", nargs="+", default=["text", "reference", "exemplar", "two:nearest",
                                                       "two:inverse_distance"])
    args = parser.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from coolcolor import color
    from coolcolor.model.resolve import resolve_model
    from coolcolor.model.pipeline import KeyframeKVCache
    from coolcolor.references import ReferenceImage
    from coolcolor.train.evaluate import held_out_clips
    from coolcolor.world.metrics import ciede2000, text_adherence

    pipe = resolve_model(args.model, args.device).load_pipeline()

    def run(clip, mode: str) -> tuple[np.ndarray, float, int, int]:
        n = clip.n_frames
        cache = KeyframeKVCache(max_entries=4)
        truth = clip.rgb.astype(np.float32)
        if mode == "text":
            refs, extra = [], {"keyframe": clip.gray[0]}
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
        for i in range(0, n, args.window):
            frames = list(range(i, min(n, i + args.window)))
            kw = dict(extra)
            if refs:
                kw.update(references=refs, frame_numbers=frames)
            result = pipe(clip.gray[frames], prompt=clip.captions[0], num_inference_steps=args.steps, seed=0,
                          preview=False, keyframe_cache=cache if mode == "text" else cache, **kw)
            out.append(result.ab)
            passes += result.unet_evaluations
        return np.concatenate(out), time.perf_counter() - t, n, passes

    def score(clip, ab: np.ndarray, skip: set[int]) -> tuple[float, int, int]:
        keep = [f for f in range(clip.n_frames) if f not in skip]
        true_lab = np.asarray(color.rgb_to_lab(clip.rgb.astype(np.float32)))
        ab16 = ab.astype(np.float16).astype(np.float32)  # what the ab file holds
        de = [float(ciede2000(np.concatenate([true_lab[f, ..., :1], ab16[f]], -1), true_lab[f]).mean()) for f in keep]
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
    print("ΔE2000 and adherence on the frames no reference depicts; reference frame: max |Δa*b*| vs the reference")
    print()
    print("| frames | mode | ΔE2000 ↓ | adherence | ms / frame | UNet passes / frame | ref frame max abs(Δa*b*) |")
    print("|---|---|---|---|---|---|---|")
    for n_frames in args.frames:
        clips = held_out_clips(args.clips, n_frames, args.size)
        for mode in modes:
            des, correct, named, seconds, count, own, passes = [], 0, 0, 0.0, 0, 0.0, 0
            for clip in clips:
                ab, s, n, p = run(clip, mode)
                passes += p
                skip = {0, n - 1} if mode.startswith("two") else {0}
                de, c, k = score(clip, ab, skip)
                des.append(de)
                correct, named, seconds, count = correct + c, named + k, seconds + s, count + n
                if mode in ("reference", "kv") or mode.startswith("two"):
                    ref_ab = np.asarray(color.rgb_to_lab(clip.rgb[0].astype(np.float32)))[..., 1:]
                    own = max(own, float(np.abs(ab[0].astype(np.float16).astype(np.float32) - ref_ab).max()))
            own_text = f"{own:.4f}" if mode in ("reference", "kv") or mode.startswith("two") else "—"
            print(f"| {n_frames} | {labels[mode]} | {np.mean(des):.2f} | {correct / max(named, 1):.1%} ({correct}/{named}) "
                  f"| {1000 * seconds / count:.1f} | {passes / count:.1f} | {own_text} |", flush=True)


if __name__ == "__main__":
    main()
