"""bench/gpu.sh, the one script for GPU figures, keeps working: its CPU smoke path runs every section
(the tiny preset at 64 px) and prints each figure; without a GPU the full run says so in one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "backend"), str(ROOT / "protocol")]))
    return subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=3600)


def test_the_cpu_smoke_path_prints_every_figure():
    done = run_script("--cpu-smoke")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"keyframe attention off : +[\d.]+ ms/frame", out), out
    assert re.search(r"keyframe attention on  : +[\d.]+ ms/frame", out), out
    assert re.search(r"\[fps\] 4 frames 64×64, 2 steps", out), out
    assert re.search(r"end to end: [\d.]+ s → [\d.]+ frames/s", out), out
    assert re.search(r"ratio 4K / 512 with this model: [\d.]+×", out), out
    assert re.search(r"\| fp32 \| full step \(train_step\) \| [\d.]+ \| [\d.]+ GB \|", out), out
    assert "bench/gpu.sh: done in" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the full run would start")
def test_without_a_gpu_the_full_run_is_one_line():
    done = run_script()
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "bench/gpu.sh: torch sees no CUDA GPU here; run it on a GPU machine, or use --cpu-smoke"]
    assert run_script("--fast").returncode == 2
