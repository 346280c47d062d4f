"""Training batches from ``DataLoader`` worker processes, in step order, the same whatever the worker count.

Each item of the dataset is one step's batch for this process: the samples ``(step, first … first+size−1)``
of the run's data source, where ``first`` is this process's shard of the global batch. A sample is a pure
function of (seed, step, index) (``coolcolor.train.data``), so which worker decodes it changes nothing;
the ``DataLoader`` hands batches back in the order of its sampler (the steps), so the batch at step k is
the same with 0 or 8 workers, and a run resumed at step k starts its sampler there and sees the batches
the killed run would have seen.

With 0 workers the batches are made in the training process, as before workers existed. On CUDA,
batches come in pinned memory (the copy to the GPU can overlap the step) and each worker keeps two
batches ready (the ``DataLoader``'s prefetch).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from coolcolor.train.data import collate

PREFETCH_BATCHES = 2  # per worker
AUTO_MAX_WORKERS = 8  # per process


class StepBatches(Dataset):
    """Item ``step``: this process's ``size`` samples of the global batch at that step."""

    def __init__(self, source: Any, size: int, first: int = 0) -> None:
        self.source, self.size, self.first = source, size, first

    def __getitem__(self, step: int) -> dict:
        return collate([self.source.sample(step, self.first + i) for i in range(self.size)])


def _one_thread(worker: int) -> None:
    """A worker decodes on one core; parallelism comes from the workers (torch's own thread count is
    already set to 1 in workers by the ``DataLoader``)."""
    import cv2

    cv2.setNumThreads(1)


def resolve_workers(setting: int, device: torch.device, processes: int = 1) -> int:
    """``loader_workers`` = -1 (auto): none on CPU (the cores train), else the CPUs per process, at most 8."""
    if setting >= 0:
        return setting
    if device.type != "cuda":
        return 0
    return max(1, min(AUTO_MAX_WORKERS, (os.cpu_count() or 1) // max(1, processes)))


def step_batches(source: Any, size: int, start: int, stop: int, workers: int, device: torch.device,
                 first: int = 0) -> DataLoader:
    """The batches of steps ``start … stop−1`` (``size`` samples from index ``first`` each), in order."""
    return DataLoader(
        StepBatches(source, size, first), batch_size=None, sampler=range(start, stop), num_workers=workers,
        pin_memory=device.type == "cuda", prefetch_factor=PREFETCH_BATCHES if workers else None,
        worker_init_fn=_one_thread if workers else None,
        # its own generator: making an iterator draws a base seed, which must not move the global torch RNG
        # (saved in checkpoints); no sample uses the workers' seeds
        generator=torch.Generator().manual_seed(0),
    )
