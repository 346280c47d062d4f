"""The exponential moving average (EMA) of the UNet's trained weights (``ema_decay > 0``).

Like diffusers' ``EMAModel`` (``training_utils.py``), with its default warm-up: the k-th update uses the
decay d = min(ema_decay, (1 + k)/(10 + k)), so the early averages are not dominated by the random start.
Unlike it, the averages are kept by parameter name, for the trained parameters only (with LoRA: the
adapters and conv_in), and the update count is the trainer's step (saved in the checkpoint already), so a
checkpoint's ``ema`` entry is just ``{name: CPU tensor}`` — the format checkpoints have always had.
"""

from __future__ import annotations

import torch

from coolcolor.errors import CheckpointError


class WeightEMA:
    """Averages of ``module``'s trainable parameters (same dtype and device as them), by parameter name."""

    def __init__(self, module: torch.nn.Module, max_decay: float) -> None:
        self.module = module
        self.max_decay = max_decay
        self.averages: dict[str, torch.Tensor] = {
            n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}

    def decay_at(self, step: int) -> float:
        return min(self.max_decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """average ← d·average + (1 − d)·θ for the ``step``-th update (0 for the first), in one fused call."""
        decay = self.decay_at(step)
        names = list(self.averages)
        params = dict(self.module.named_parameters())
        torch._foreach_lerp_([self.averages[n] for n in names], [params[n].detach() for n in names], 1 - decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averages as CPU copies (what a checkpoint's ``trainer_state.pt`` keeps under ``ema``)."""
        return {n: t.detach().to("cpu").clone() for n, t in self.averages.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor] | None, where: str) -> None:
        """Continue from a checkpoint's averages; ``where`` names the checkpoint in the error if they are
        missing or belong to other parameters."""
        if state is None or set(state) != set(self.averages):
            raise CheckpointError(f"{where}: the checkpoint holds no EMA of this UNet's weights; use a new "
                                  "output folder")
        for name, tensor in state.items():
            self.averages[name].copy_(tensor)

    @torch.no_grad()
    def copy_to(self) -> None:
        """Overwrite the module's trained parameters with their averages (the final model is the average)."""
        params = dict(self.module.named_parameters())
        for name, average in self.averages.items():
            params[name].copy_(average)
