"""Training throughput of an architecture: seconds per step for data, λ = 0 steps and L_EF steps.

    PYTHONPATH=backend python bench/bench_train_step.py --architecture coolcolor-tiny --batch 32 --steps 5

Uses a freshly initialised VAE (throughput does not depend on its weights). Prints the numbers measured
in this one run; the machine's other load counts, so compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from coolcolor.train.config import TrainConfig
from coolcolor.train.model import architecture, new_vae
from coolcolor.train.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--architecture", default="coolcolor-tiny")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        new_vae(architecture(args.architecture), seed=0).save_pretrained(f"{tmp}/vae")
        rows = []
        for schedule in ("zero", "constant"):
            trainer = Trainer(TrainConfig(output=f"{tmp}/run-{schedule}", architecture=args.architecture,
                                          vae_from=f"{tmp}/vae", resolution=args.resolution, batch_size=args.batch,
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
    print(f"{args.architecture}: UNet {params:.2f} M parameters, batch {args.batch} at {args.resolution}px, "
          f"device {trainer.device}, torch threads {torch.get_num_threads()}")
    for schedule, data_s, step_s in rows:
        label = "L_recon only (λ = 0)" if schedule == "zero" else "L_recon + λ·L_EF"
        print(f"  {label:<24} data {data_s:.2f} s/batch, train {step_s:.2f} s/step, "
              f"{args.batch / (data_s + step_s):.1f} images/s")


if __name__ == "__main__":
    main()
