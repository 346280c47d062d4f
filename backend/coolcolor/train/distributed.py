"""Data-parallel training over several processes (one per GPU) with Hugging Face ``accelerate``.

A run launched by ``accelerate launch -m coolcolor.train.cli train …`` (or ``coolcolor train --gpus N``,
which runs exactly that) has ``processes`` copies of the trainer. ``batch_size`` is per process, so the
global batch at step k is ``batch_size × processes`` samples: the samples (k, 0 … G−1) of the data source,
process r taking the contiguous shard r·batch_size … (r+1)·batch_size − 1.

Every random draw of a step (VAE posterior noise, caption dropout, timesteps, diffusion noise, the
warps of L_EF) is made for the whole global batch from the run's one generator, identically in every
process, and each process keeps its shard's rows. With the losses scaled so that the mean over
processes is the global batch's loss, the gradients DDP averages are the gradients of one process
training the global batch: the loss curves agree within float tolerance, and one process is exactly
today's trainer (no wrapper, no communication, the same draws).

One process (no launcher, or a launcher with one process) does not touch ``accelerate`` at all.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from coolcolor.errors import InputError

logger = logging.getLogger(__name__)


def launched_processes() -> int:
    """How many processes a launcher (accelerate launch, torchrun) started for this run; 1 without one."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


@dataclass(frozen=True)
class Shard:
    """Which rows of the global batch this process trains: ``rank·local … (rank+1)·local − 1``."""

    rank: int = 0
    processes: int = 1

    def rows(self, local: int) -> slice:
        return slice(self.rank * local, (self.rank + 1) * local)

    def first_rows(self, count: int, local: int) -> int:
        """How many of the global batch's first ``count`` rows are in this shard (they are its first ones)."""
        return max(0, min(local, count - self.rank * local))

    def randn(self, local: int, shape: Sequence[int], generator: torch.Generator,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """This shard's rows of a draw of ``(local·processes, *shape)``: the same numbers one process
        training the global batch draws for these samples."""
        return torch.randn((local * self.processes, *shape), generator=generator, dtype=dtype)[self.rows(local)]


def resolve_device(setting: str) -> torch.device:
    """The config's ``device`` for one process: ``auto`` is CUDA when there is one."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


class OneProcess:
    """Training in this process alone: the modules as they are, ``loss.backward()``, no communication."""

    processes = 1
    rank = 0
    is_main = True

    def __init__(self, device_setting: str) -> None:
        self.device = resolve_device(device_setting)
        self.shard = Shard()

    def prepare(self, modules: Sequence[torch.nn.Module], optimizer: torch.optim.Optimizer):
        return list(modules), optimizer

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def mean(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return values

    def any(self, flag: bool) -> bool:
        return flag

    def wait(self) -> None:
        pass


class AcceleratedProcesses:
    """One of several processes started by ``accelerate launch``: DDP-wrapped modules (their forward runs
    through the wrapper, which averages the gradients during backward), the optimizer prepared by the
    ``Accelerator``, losses averaged over processes for the log, checkpoints written by the main process."""

    def __init__(self, device_setting: str) -> None:
        from accelerate import Accelerator

        if device_setting not in ("auto", "cpu", "cuda"):
            raise InputError(f"device {device_setting!r}: with several processes the launcher gives each its "
                             "device; set device = auto, cuda or cpu")
        cpu = device_setting == "cpu" or (device_setting == "auto" and not torch.cuda.is_available())
        mp = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
        if mp != "no":
            logger.warning("accelerate's mixed precision %r is not used: the config's mixed_precision decides", mp)
        # The trainer runs its own autocast and GradScaler (config.mixed_precision), as in one process.
        self.accelerator = Accelerator(cpu=cpu, mixed_precision="no")
        self.device = self.accelerator.device
        self.processes = self.accelerator.num_processes
        self.rank = self.accelerator.process_index
        self.is_main = self.accelerator.is_main_process
        self.shard = Shard(self.rank, self.processes)

    def prepare(self, modules: Sequence[torch.nn.Module], optimizer: torch.optim.Optimizer):
        """DDP wrappers of the modules that have trainable weights (DDP refuses a frozen one; a frozen
        module needs no averaging, so it stays as it is), and the prepared optimizer."""
        trainable = [any(p.requires_grad for p in m.parameters()) for m in modules]
        prepared = self.accelerator.prepare(*[m for m, t in zip(modules, trainable, strict=True) if t], optimizer)
        prepared = list(prepared) if isinstance(prepared, (tuple, list)) else [prepared]
        wrapped = iter(prepared[:-1])
        return [next(wrapped) if t else m for m, t in zip(modules, trainable, strict=True)], prepared[-1]

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def mean(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The mean over processes of each value: the global batch's losses (see the module's docstring)."""
        names = list(values)
        stacked = torch.stack([values[n].detach().float().reshape(()) for n in names]).to(self.device)
        means = self.accelerator.reduce(stacked, reduction="mean").cpu()
        return {n: means[i] for i, n in enumerate(names)}

    def any(self, flag: bool) -> bool:
        """True in every process when ``flag`` is true in one (a stop must happen at the same step in all)."""
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        return bool(self.accelerator.reduce(value, reduction="sum").item() > 0)

    def wait(self) -> None:
        self.accelerator.wait_for_everyone()


Processes = OneProcess | AcceleratedProcesses


def processes_for(device_setting: str, stage: str) -> Processes:
    """This run's process group: ``AcceleratedProcesses`` when a launcher started several, else ``OneProcess``."""
    n = launched_processes()
    if n == 1:
        return OneProcess(device_setting)
    if stage != "unet":
        raise InputError(f"stage {stage}: data parallel training ({n} processes) trains the unet stage; run the "
                         f"{stage} stage in one process (without --gpus / accelerate launch)")
    return AcceleratedProcesses(device_setting)


def cuda_gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def free_port() -> int:
    """A TCP port nobody listens on now: the processes' rendezvous, so two runs on one machine can coexist."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_command(processes: int, train_args: Iterable[str], port: int | None = None) -> list[str]:
    """The ``accelerate launch`` command that ``coolcolor train --gpus N`` runs: N processes, one per GPU
    (or per CPU process group member when the config says device = cpu), each running
    ``python -m coolcolor.train.cli train`` with the same arguments (without ``--gpus``).

    Every launcher setting is given, so a user's accelerate config file cannot change the run."""
    import sys

    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(port or free_port()), "-m", "coolcolor.train.cli", "train", *train_args]


def check_gpus(gpus: int) -> None:
    """``--gpus N`` needs N CUDA GPUs here; a one-line error before anything is written otherwise."""
    have = cuda_gpus()
    if gpus > have:
        raise InputError(f"--gpus {gpus} asked but this machine has {have} CUDA GPU{'' if have == 1 else 's'}")
