"""LoRA fine-tuning of the UNet (``lora_rank > 0``): low-rank adapters on the attention projections.

What trains: a rank-r adapter (PEFT's LoRA, alpha = r, so the update is B·A unscaled) on ``to_q``, ``to_k``,
``to_v`` and ``to_out.0`` of every attention layer of the UNet — self-attention, cross-attention to the
text, and so also the self-attention layers that keyframe attention turns into cross-frame attention
(``model.attention.keyframe_attention_layers``: they have no weights of their own) — plus the whole
``conv_in``, whose gray half is F_in (paper Eq. 4), which starts at zero and must be learnt in full. The
rest of the UNet and the text encoder are frozen. The adapters' B starts at zero, so step 0 computes
exactly what the base model computes.

What is saved: a plain ``UNet2DConditionModel`` with B·A merged into each projection's weight
(``plain_unet``), so a LoRA run's checkpoints and ``final/`` load with the normal loader, in ``colorize``
and the daemon, like any checkpoint. The adapter weights themselves (and conv_in) go to the checkpoint's
``trainer_state.pt`` (``trainable_state``) for an exact resume: merging is a float sum that cannot be
undone bit for bit.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

from coolcolor.errors import CheckpointError, InputError

TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
ADAPTER = "default"
_BASE = ".base_layer."
_LORA_MARK = (".lora_A.", ".lora_B.")


def add_lora(unet: UNet2DConditionModel, rank: int, seed: int = 0) -> list[torch.nn.Parameter]:
    """Inject rank-``rank`` adapters in place; freeze everything but them and ``conv_in``. Returns the
    trainable parameters (what the optimizer gets).

    PEFT draws the adapters' start values (``lora_A``) from torch's global generator; they are drawn here
    from ``seed`` with that generator forked, so a run is reproducible across processes and the caller's
    random stream is left as it was."""
    try:
        from peft import LoraConfig
    except ImportError as exc:
        raise InputError(f"lora_rank needs PEFT ({exc}); pip install peft") from exc
    unet.requires_grad_(False)
    devices = [unet.device.index or 0] if unet.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True,
                                    target_modules=list(TARGET_MODULES)), ADAPTER)
    unet.conv_in.requires_grad_(True)  # F_in
    return [p for p in unet.parameters() if p.requires_grad]


def is_lora(unet: UNet2DConditionModel) -> bool:
    return bool(getattr(unet, "_hf_peft_config_loaded", False))


def trainable_state(unet: UNet2DConditionModel) -> dict[str, torch.Tensor]:
    """The trained tensors (adapters and conv_in) on the CPU, by parameter name: a LoRA run's resume state."""
    return {n: p.detach().to("cpu").clone() for n, p in unet.named_parameters() if p.requires_grad}


def load_trainable_state(unet: UNet2DConditionModel, state: dict[str, torch.Tensor] | None, where: str) -> None:
    params = {n: p for n, p in unet.named_parameters() if p.requires_grad}
    if state is None or set(state) != set(params):
        raise CheckpointError(f"{where}: the checkpoint holds no LoRA adapters of this rank for this UNet; use a "
                              "new output folder")
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)


def plain_unet(unet: UNet2DConditionModel, overrides: dict[str, torch.Tensor] | None = None) -> UNet2DConditionModel:
    """A plain diffusers UNet (no adapters, eval mode, no gradients) computing what ``unet`` computes, with
    the tensors named in ``overrides`` (e.g. the EMA) used instead of the live ones.

    The result shares storage with ``unet`` wherever no merge or override makes a new tensor, so it costs
    no second copy of the frozen weights; it must only be read.
    """
    state = dict(unet.state_dict())
    if overrides:
        unknown = set(overrides) - set(state)
        if unknown:
            raise ValueError(f"overrides for tensors the UNet does not have: {sorted(unknown)[:3]}")
        state.update(overrides)
    if is_lora(unet):
        state = _merged(unet, state)
    with torch.device("meta"):
        plain = UNet2DConditionModel.from_config(unet.config)
    plain.load_state_dict(state, assign=True)
    return plain.eval().requires_grad_(False)


def _merged(unet: UNet2DConditionModel, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with each adapter folded into its projection: W + scaling·B·A (PEFT's LoRA Linear,
    fan_in_fan_out = False), and the wrapper's ``base_layer`` level removed from the names."""
    from peft.tuners.lora import LoraLayer

    merged: dict[str, torch.Tensor] = {}
    for name, module in unet.named_modules():
        if isinstance(module, LoraLayer):
            a, b = state[f"{name}.lora_A.{ADAPTER}.weight"], state[f"{name}.lora_B.{ADAPTER}.weight"]
            base = state[f"{name}{_BASE}weight"]
            delta = (b.to(torch.float32) @ a.to(torch.float32)) * module.scaling[ADAPTER]
            merged[f"{name}.weight"] = (base.to(torch.float32) + delta).to(base.dtype)
    for key, tensor in state.items():
        if any(mark in key for mark in _LORA_MARK):
            continue
        plain_key = key.replace(_BASE, ".")
        merged.setdefault(plain_key, tensor)
    return merged
