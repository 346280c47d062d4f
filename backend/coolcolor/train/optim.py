"""The trainer's optimizer: AdamW, or bitsandbytes' 8-bit AdamW (``optimizer = "adamw8bit"``).

8-bit AdamW keeps both moments of every large tensor block-wise quantized to one byte each (Dettmers et
al. 2022), so the optimizer state of SD-1.5's 860 M UNet parameters takes about 1.7 GB instead of 6.9 GB:
what lets a 24 GB card fine-tune the whole UNet. bitsandbytes is an optional dependency (the
``gpu-train`` extra, ~125 MB); ``check_optimizer`` runs before a run writes anything, so a missing
package is one line, not a half-made run folder. bitsandbytes 0.50.2 runs its 8-bit optimizer on the CPU
too (checked here: tests/test_train_memory.py), so the option is tested without a GPU.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from coolcolor.errors import InputError
from coolcolor.train.config import TrainConfig

BNB_HINT = "pip install 'coolcolor[gpu-train]' (or pip install bitsandbytes)"


def check_optimizer(config: TrainConfig) -> None:
    """Raise ``InputError`` now if ``config.optimizer`` cannot be built on this machine."""
    if config.optimizer == "adamw8bit":
        _bitsandbytes()


def _bitsandbytes():
    try:
        import bitsandbytes
    except ImportError as exc:  # not installed, or its native library does not load here
        raise InputError(f"optimizer adamw8bit needs bitsandbytes, which is not usable here ({exc}); "
                         f"{BNB_HINT}") from exc
    return bitsandbytes


def build_optimizer(params: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """The run's optimizer over ``params`` with the config's lr, betas and weight decay."""
    params = list(params)
    kwargs = dict(lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    if config.optimizer == "adamw8bit":
        # bnb.optim.AdamW8bit (bitsandbytes docs, "8-bit optimizers"): tensors under min_8bit_size (4096)
        # values keep 32-bit state, as bitsandbytes chooses by default.
        return _bitsandbytes().optim.AdamW8bit(params, **kwargs)
    return torch.optim.AdamW(params, **kwargs)
