"""Keyframe cross-frame attention (paper §3.4, Eq. 8) as swappable diffusers attention processors.

In the self-attention (``attn1``) of the last two decoder blocks that have attention, every frame's
queries attend to the *keyframe's* keys and values instead of its own:

    Attn_CF(Q^k) = softmax(Q^k (K^key)ᵀ / √d) V^key

Per denoising step the pipeline puts the keyframe first in the first batch of frames and runs it with
the processors in ``store`` mode: K/V are projected from the keyframe's rows only, kept per layer, and
every row of the batch attends to them (for the keyframe itself that is plain self-attention). Later
batches of the same step run in ``use`` mode and read the stored K/V. So K/V are computed once per step
and shared by all frames, never recomputed per frame, and the keyframe costs no UNet call of its own.
All frames of one classifier-free-guidance chunk are folded into the query axis and answered by one
attention call against that chunk's keyframe K/V: no copies of K/V and the FLOPs of ordinary
self-attention (softmax is per query row, so folding does not change any frame's result).

With reference images (issue 25) the keyframe is the artist's colour image instead: the pipeline runs
each reference alone in ``store`` mode and keeps its K/V, then runs the frames in ``blend`` mode, where
each frame's output is the weighted sum of its attention to each reference (weights per frame, by the
frame's distance to the reference; they sum to 1, so one reference of weight 1 is exactly Eq. 8).

State lives on a shared ``KeyframeAttention`` controller rather than in ``cross_attention_kwargs``, which
diffusers filters per processor with a warning on every call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention

from coolcolor.errors import CheckpointError

Mode = Literal["off", "store", "use", "blend"]


@dataclass
class ReferenceBlend:
    """The K/V of each reference (per layer, as ``store`` left them) and each frame's weight for it."""

    kv: list[dict[str, tuple[torch.Tensor, torch.Tensor]]]
    weights: torch.Tensor  # frames × references, rows summing to 1 (frames in batch order, one chunk)


class KeyframeAttention:
    """Shared state of all keyframe processors of one UNet: the mode and the stored keyframe K/V."""

    def __init__(self) -> None:
        self.mode: Mode = "off"
        self.chunks = 1
        self.kv: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.blend: ReferenceBlend | None = None

    @contextmanager
    def storing(self, chunks: int = 1) -> Iterator[None]:
        """Run a batch whose first row in each of ``chunks`` guidance chunks is the keyframe; keep its K/V
        (replacing the last step's) and let every row of the batch attend to them."""
        self.kv.clear()
        self.chunks = chunks
        with self._mode("store"):
            yield

    @contextmanager
    def using(self) -> Iterator[None]:
        """Run other frames against the stored keyframe K/V."""
        if not self.kv:
            raise RuntimeError("keyframe K/V were not stored for this step; run the keyframe first")
        with self._mode("use"):
            yield

    @contextmanager
    def blending(self, blend: ReferenceBlend) -> Iterator[None]:
        """Run frames against several stored reference K/V sets, mixed per frame by ``blend.weights``."""
        if not blend.kv or blend.weights.shape[1] != len(blend.kv):
            raise RuntimeError("reference blend needs one K/V set per weight column")
        self.blend = blend
        try:
            with self._mode("blend"):
                yield
        finally:
            self.blend = None

    @contextmanager
    def _mode(self, mode: Mode) -> Iterator[None]:
        previous, self.mode = self.mode, mode
        try:
            yield
        finally:
            self.mode = previous

    def clear(self) -> None:
        self.kv.clear()
        self.blend = None
        self.mode = "off"


class KeyframeAttnProcessor:
    """Self-attention whose K/V come from the keyframe in ``use`` mode; otherwise plain self-attention.

    Follows the contract of diffusers' ``AttnProcessor2_0`` (spatial/group norm, 4-D inputs, q/k norm,
    residual connection, output rescale) so it can replace it on any self-attention layer.
    """

    def __init__(self, name: str, state: KeyframeAttention) -> None:
        self.name = name
        self.state = state

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None:
            raise ValueError(f"{self.name}: keyframe attention is for self-attention layers (attn1) only")
        mode = self.state.mode
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        batch, tokens, _ = hidden_states.shape
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = _split_heads(attn.to_q(hidden_states), attn.heads)
        head_dim = query.shape[-1]
        if attn.norm_q is not None:
            query = attn.norm_q(query)

        if mode == "off":
            key = _split_heads(attn.to_k(hidden_states), attn.heads)
            value = _split_heads(attn.to_v(hidden_states), attn.heads)
            if attn.norm_k is not None:
                key = attn.norm_k(key)
            if attention_mask is not None:
                attention_mask = attn.prepare_attention_mask(attention_mask, tokens, batch)
                attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        else:
            if attention_mask is not None:
                raise ValueError(f"{self.name}: an attention mask cannot be combined with keyframe K/V")
            if mode == "store":
                chunks = self.state.chunks
                if batch % chunks:
                    raise ValueError(f"{self.name}: batch of {batch} does not split into {chunks} guidance chunks")
                keyframe_rows = hidden_states.reshape(chunks, batch // chunks, tokens, -1)[:, 0]
                key = _split_heads(attn.to_k(keyframe_rows), attn.heads)
                value = _split_heads(attn.to_v(keyframe_rows), attn.heads)
                if attn.norm_k is not None:
                    key = attn.norm_k(key)
                self.state.kv[self.name] = (key, value)
            elif mode == "blend":
                blend = self.state.blend
                assert blend is not None
                out = _attend_blended(query, blend, self.name)
            else:
                key, value = self.state.kv[self.name]
            if mode != "blend":
                out = _attend_folded(query, key, value)

        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(batch, tokens, heads·d) → (batch, heads, tokens, d)."""
    return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def _attend_folded(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Eq. 8 for a batch of frames against one keyframe per guidance chunk.

    ``query`` is (chunks·F, heads, N, d) laid out chunk-major (all unconditional frames, then all
    conditional ones), ``key``/``value`` are (chunks, heads, N_key, d) from the keyframe's own pass.
    """
    chunks = key.shape[0]
    batch, heads, tokens, dim = query.shape
    if batch % chunks:
        raise ValueError(f"batch of {batch} frames does not split into {chunks} guidance chunks")
    frames = batch // chunks
    q = query.view(chunks, frames, heads, tokens, dim).transpose(1, 2).reshape(chunks, heads, frames * tokens, dim)
    out = F.scaled_dot_product_attention(q, key, value)
    return out.view(chunks, heads, frames, tokens, dim).transpose(1, 2).reshape(batch, heads, tokens, dim)


def _attend_blended(query: torch.Tensor, blend: ReferenceBlend, name: str) -> torch.Tensor:
    """Σ_r w[f, r] · Attn_CF(Q^f; K^r, V^r): Eq. 8 against each reference, mixed per frame.

    References of zero weight for every frame of the batch cost nothing."""
    chunks = blend.kv[0][name][0].shape[0]
    frames = query.shape[0] // chunks
    weights = blend.weights.to(query.device, query.dtype)
    if weights.shape[0] != frames:
        raise ValueError(f"{name}: {weights.shape[0]} reference weights for {frames} frames")
    out: torch.Tensor | None = None
    for r, kv in enumerate(blend.kv):
        w = weights[:, r]
        if not bool((w != 0).any()):
            continue
        key, value = kv[name]
        part = _attend_folded(query, key, value) * w.repeat(chunks).view(-1, 1, 1, 1)
        out = part if out is None else out + part
    if out is None:
        raise ValueError(f"{name}: every reference has zero weight for this batch")
    return out


KEYFRAME_ATTENTION_UP_BLOCKS = 2  # the paper's layers: self-attention of the last two up blocks with attention


def up_blocks_with_attention(unet: UNet2DConditionModel) -> list[int]:
    """Indices of the up blocks that hold attention layers (SD-1.5: 1, 2, 3)."""
    return [i for i, block in enumerate(unet.up_blocks) if getattr(block, "attentions", None)]


def keyframe_attention_problem(unet: UNet2DConditionModel) -> str | None:
    """Why keyframe attention cannot be installed on ``unet`` (expected vs found), or None if it can.

    The one architecture rule that ``init`` checks before writing a checkpoint and loading checks again.
    """
    with_attention = up_blocks_with_attention(unet)
    if len(with_attention) < KEYFRAME_ATTENTION_UP_BLOCKS:
        found = ", ".join(type(block).__name__ for block in unet.up_blocks)
        return (
            f"keyframe attention needs at least {KEYFRAME_ATTENTION_UP_BLOCKS} up blocks with attention "
            f"(SD-1.5 has 3), found {len(with_attention)} (up blocks: {found})"
        )
    return None


def keyframe_attention_layers(unet: UNet2DConditionModel) -> list[str]:
    """Processor names of ``attn1`` in the last two up blocks that have attention (SD-1.5: up_blocks.2, .3)."""
    problem = keyframe_attention_problem(unet)
    if problem:
        raise CheckpointError(f"unet: {problem}")
    prefixes = tuple(f"up_blocks.{i}." for i in up_blocks_with_attention(unet)[-KEYFRAME_ATTENTION_UP_BLOCKS:])
    return [
        name
        for name in unet.attn_processors
        if name.startswith(prefixes) and name.endswith(".attn1.processor")
    ]


def install_keyframe_attention(unet: UNet2DConditionModel, state: KeyframeAttention) -> list[str]:
    """Put a ``KeyframeAttnProcessor`` on each target layer, leaving every other processor as it was."""
    targets = keyframe_attention_layers(unet)
    processors = dict(unet.attn_processors)
    for name in targets:
        processors[name] = KeyframeAttnProcessor(name, state)
    unet.set_attn_processor(processors)
    return targets
