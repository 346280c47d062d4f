"""Training cost: seconds per step and peak memory, per memory option of the trainer (issue 26 §3).

    PYTHONPATH=backend:protocol python bench/bench_train_step.py --preset sd15 --size 64 --batch 1   # this CPU
    PYTHONPATH=backend:protocol python bench/bench_train_step.py --preset sd15 --size 512 --batch 4  # a GPU
    PYTHONPATH=backend:protocol python bench/bench_train_step.py --architecture coolcolor-tiny --batch 32

``--preset``: the model ``preset:NAME`` (random weights: a step costs the same whatever the values),
trained by ``Trainer.train_step`` itself on the world's stills at ``--size``, with L_EF on (λ constant),
for each memory option the trainer has: gradient checkpointing off/on, bf16 autocast off/on, and with
both on, 8-bit AdamW and LoRA rank 16 (by default all on a GPU, the two fp32 ones on the CPU). Each option runs in a fresh process, so its peak memory is its own: on the
CPU the process's peak resident memory (``ru_maxrss``, weights included), on a GPU
``torch.cuda.max_memory_allocated``. A full step (weights, gradients and AdamW's two moments, all fp32:
16 bytes per trained parameter + 4 per frozen one, before activations) that does not fit ``--max-gb`` is
not run: the loss alone (forward, no gradients) is measured instead, and the table says so.

``--architecture`` (the older mode): a from-scratch architecture of ``coolcolor.train.model`` with a fresh
VAE; data seconds per batch, and step seconds with λ = 0 and with L_EF.

The numbers are those of this one run; other load on the machine counts, so compare runs on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "protocol"))

import torch

# label → the trainer's settings for it (docs/production-training.md#memory-options)
BF16_CKPT = {"mixed_precision": "bf16", "gradient_checkpointing": "yes"}
OPTIONS: dict[str, dict] = {
    "fp32": {"mixed_precision": "no", "gradient_checkpointing": "no"},
    "fp32 + gradient checkpointing": {"mixed_precision": "no", "gradient_checkpointing": "yes"},
    "bf16 autocast": {"mixed_precision": "bf16", "gradient_checkpointing": "no"},
    "bf16 autocast + gradient checkpointing": BF16_CKPT,
    "bf16 + gradient checkpointing + 8-bit AdamW": {**BF16_CKPT, "optimizer": "adamw8bit"},
    "bf16 + gradient checkpointing + LoRA rank 16": {**BF16_CKPT, "lora_rank": 16},
}
GB = 1e9


def parameter_counts(preset: str) -> tuple[int, int]:
    """(all parameters, trained parameters: UNet + text encoder) of ``preset:NAME`` (SD-1.5 counted on meta)."""
    import contextlib

    from coolcolor.model.presets import preset_components

    with torch.device("meta") if preset == "sd15" else contextlib.nullcontext():
        c = preset_components(preset)
    total = sum(p.numel() for m in (c.unet, c.vae, c.text_encoder) for p in m.parameters())
    trained = sum(p.numel() for m in (c.unet, c.text_encoder) for p in m.parameters())
    return total, trained


def step_gb(preset: str, label: str, total: int, trained: int) -> float:
    """Weights (4 bytes each) + per trained parameter its gradient (4) and AdamW's moments (8; 2 in 8-bit),
    before activations: what decides whether ``label``'s full step is run."""
    settings = OPTIONS[label]
    if settings.get("lora_rank"):
        import contextlib

        from coolcolor.model.presets import preset_components
        from coolcolor.train.lora import add_lora

        with torch.device("meta") if preset == "sd15" else contextlib.nullcontext():
            trained = sum(p.numel() for p in add_lora(preset_components(preset).unet, settings["lora_rank"]))
    moments = 2 if settings.get("optimizer") == "adamw8bit" else 8
    return (4 * total + (4 + moments) * trained) / GB


def available_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory / GB
    with open("/proc/meminfo", encoding="ascii") as f:
        info = {line.split(":")[0]: int(line.split()[1]) for line in f}
    return info["MemAvailable"] * 1024 / GB


def measure_option(args: argparse.Namespace, label: str, mode: str) -> dict:
    """One option in this process: ``Trainer.train_step`` (mode "full") or the loss alone ("forward")."""
    from coolcolor.train.config import TrainConfig
    from coolcolor.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(output=tmp, init_from=f"preset:{args.preset}", resolution=args.size,
                             batch_size=args.batch, lambda_schedule="constant", device=args.device, steps=10**6,
                             seed=0, **OPTIONS[label])
        trainer = Trainer(config)
        trainer._build()
        source = trainer._source()
        t = time.perf_counter()
        batches = [source.batch(s, args.batch) for s in range(args.steps + 1)]
        data_s = (time.perf_counter() - t) / len(batches)
        device = trainer.device
        built_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)

        def step(batch: dict) -> None:
            if mode == "full":
                trainer.train_step(batch)
            else:
                with torch.no_grad():
                    trainer.losses(batch, trainer.step)
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        times = []
        for batch in batches:  # the first is the warm-up
            start = time.perf_counter()
            step(batch)
            times.append(time.perf_counter() - start)
        peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / GB
    return {"option": label, "mode": mode, "seconds_per_step": statistics.median(times[1:]), "warmup_s": times[0],
            "data_s_per_batch": data_s, "peak_gb": peak, "model_rss_gb": built_rss, "device": str(device),
            "threads": torch.get_num_threads()}


def run_presets(args: argparse.Namespace) -> list[dict]:
    device = torch.device(args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu")
    labels = args.options.split(",") if args.options else (
        list(OPTIONS) if device.type == "cuda" else ["fp32", "fp32 + gradient checkpointing"])
    unknown = [x for x in labels if x not in OPTIONS]
    if unknown:
        sys.exit(f"bench_train_step: unknown option(s) {unknown}; known: {', '.join(OPTIONS)}")
    total, trained = parameter_counts(args.preset)
    full_gb = (4 * total + 12 * trained) / GB
    budget = args.max_gb if args.max_gb else available_gb(device) * 0.9
    print(f"preset:{args.preset}: {total / 1e6:.1f} M parameters ({trained / 1e6:.1f} M trained: UNet + text "
          f"encoder), batch {args.batch} at {args.size} px, device {device}, load average {os.getloadavg()[0]:.1f}")
    print(f"  a full fp32 AdamW step needs ≈ {full_gb:.2f} GB before activations (weights, gradients, two "
          f"moments); budget {budget:.1f} GB → "
          + ("full steps measured" if full_gb <= budget else
             "NOT RUN here: the loss alone (forward, no gradients) is measured instead"))
    rows = []
    for label in labels:
        option_gb = step_gb(args.preset, label, total, trained)
        mode = "full" if option_gb <= budget else "forward"
        if option_gb != full_gb:
            print(f"  {label}: ≈ {option_gb:.2f} GB before activations → "
                  + ("full steps measured" if mode == "full" else "the loss alone is measured"))
        cmd = [sys.executable, __file__, "--preset", args.preset, "--size", str(args.size), "--batch",
               str(args.batch), "--steps", str(args.steps), "--device", str(device), "--threads", str(args.threads),
               "--_child", label, "--_mode", mode]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            print(f"  {label}: failed ({tail})")
            rows.append({"option": label, "mode": mode, "error": tail})
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    memory = "peak GPU memory allocated" if device.type == "cuda" else "peak process RSS (weights included)"
    print(f"\n| option | measured | s/step (median of {args.steps}) | {memory} |")
    print("|---|---|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['option']} | failed | – | – |")
            continue
        what = "full step (train_step)" if r["mode"] == "full" else "loss only, no backward"
        print(f"| {r['option']} | {what} | {r['seconds_per_step']:.3f} | {r['peak_gb']:.2f} GB |")
    if rows and "threads" in rows[0]:
        print(f"(torch threads {rows[0]['threads']}; data {rows[0]['data_s_per_batch']:.3f} s/batch, not in the step "
              "time)")
    full = [r for r in rows if r.get("mode") == "full" and "error" not in r]
    if full and args.size == 512:
        best = min(full, key=lambda r: r["seconds_per_step"])
        hours = best["seconds_per_step"] * (32 / args.batch) * 8000 / 3600
        print(f"PROJECTION (not measured): the paper's recipe, 8000 steps × batch 32 at 512 px, at the fastest "
              f"option's ({best['option']}) {best['seconds_per_step']:.3f} s per batch-{args.batch} step, assuming time ∝ batch: "
              f"≈ {hours:.1f} h on one {device} device, ≈ {hours / 8:.1f} h on eight if data parallel scaled "
              "perfectly")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return rows


def run_architecture(args: argparse.Namespace) -> None:
    from coolcolor.train.config import TrainConfig
    from coolcolor.train.model import architecture, new_vae
    from coolcolor.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        new_vae(architecture(args.architecture), seed=0).save_pretrained(f"{tmp}/vae")
        rows = []
        for schedule in ("zero", "constant"):
            trainer = Trainer(TrainConfig(output=f"{tmp}/run-{schedule}", architecture=args.architecture,
                                          vae_from=f"{tmp}/vae", resolution=args.size, batch_size=args.batch,
                                          lambda_schedule=schedule, device=args.device))
            trainer._build()
            source = trainer._source()
            t = time.perf_counter()
            batches = [source.batch(s, args.batch) for s in range(args.steps + 1)]
            data_s = (time.perf_counter() - t) / len(batches)
            trainer.train_step(batches[0])  # warm-up
            t = time.perf_counter()
            for b in batches[1:]:
                trainer.train_step(b)
            rows.append((schedule, data_s, (time.perf_counter() - t) / args.steps))
    params = sum(p.numel() for p in trainer.components.unet.parameters()) / 1e6
    print(f"{args.architecture}: UNet {params:.2f} M parameters, batch {args.batch} at {args.size}px, "
          f"device {trainer.device}, torch threads {torch.get_num_threads()}")
    for schedule, data_s, step_s in rows:
        label = "L_recon only (λ = 0)" if schedule == "zero" else "L_recon + λ·L_EF"
        print(f"  {label:<24} data {data_s:.2f} s/batch, train {step_s:.2f} s/step, "
              f"{args.batch / (data_s + step_s):.1f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--preset", choices=["sd15", "tiny"], help="model preset (random weights)")
    which.add_argument("--architecture", help="from-scratch architecture of coolcolor.train.model (older mode)")
    parser.add_argument("--size", "--resolution", dest="size", type=int, default=None,
                        help="training resolution in px (default: 64 for --preset, 32 for --architecture)")
    parser.add_argument("--batch", type=int, default=None, help="default: 1 for --preset, 32 for --architecture")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per option, after one warm-up step")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--options", default="", help=f"comma-separated subset of: {', '.join(OPTIONS)}")
    parser.add_argument("--max-gb", type=float, default=0.0,
                        help="memory a full step may use (default: 90%% of the available RAM, or of the GPU's memory)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: a shared machine)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_mode", default="full", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.architecture:
        args.size, args.batch = args.size or 32, args.batch or 32
        args.steps = max(args.steps, 1)
        run_architecture(args)
        return
    args.preset = args.preset or "tiny"
    args.size, args.batch = args.size or 64, args.batch or 1
    if args._child:
        print(json.dumps(measure_option(args, args._child, args._mode)))
        return
    run_presets(args)


if __name__ == "__main__":
    main()
