"""The CoolColor sampling pipeline (paper §3.2, §3.4, §3.5): gray frames + prompt → a*, b*.

    gray (N×H×W) ──resize to model size──▶ VAE encode (z_gray) ──┐
    prompt, negative prompt ──▶ text encoder ──────────────────────┤
    seeded noise (one draw, shared by every frame of the clip) ─────┴▶ DDIM, 2-way CFG,
        per step: keyframe pass (stores K/V) ▶ frame batches (read the keyframe's K/V)
    ──▶ VAE decode ──▶ Lab ──▶ a*, b* upsampled to H×W ──▶ L replaced by the input's ──▶ fit to gamut

Only the text is dropped for guidance (the gray latent is always present), so classifier-free
guidance is two UNet evaluations per frame and step. Frames are batched by a memory budget; the
keyframe's K/V of the current step are shared by every batch, so batching does not change results.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from coolcolor import color, faults
from coolcolor.chroma import resize, upsample_ab
from coolcolor.errors import InputError
from coolcolor.model.attention import KeyframeAttention, ReferenceBlend, install_keyframe_attention
from coolcolor.model.checkpoint import (
    Components,
    encode_gray_latents,
    load_components,
    save_components,
)
from coolcolor.model.decoder_guide import decode as decode_latents
from coolcolor.model.prompt_words import PromptWords, prompt_words, token_limit
from coolcolor.model.unet import merge_gray
from coolcolor.references import DEFAULT_BLEND, DEFAULT_REFERENCE_START, ReferenceImage, gray_problem, reference_weights
from coolcolor_protocol.jobspec import MAX_GUIDANCE, MAX_SEED, MAX_STEPS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineProgress:
    """Where a colorization call is: ``phase`` is "encode", "denoise" or "decode"; steps count from 1."""

    phase: str
    step: int
    total_steps: int


@dataclass
class ColorizationResult:
    ab: np.ndarray  # N×H×W×2 float32, CIE a*, b* for the input's own L*, inside the sRGB gamut
    rgb: np.ndarray | None  # N×H×W×3 float32 sRGB preview in [0, 1]; None when not asked for
    keyframe: int | None  # index of the keyframe in the input, None if external or not used
    model_size: tuple[int, int]  # (height, width) the diffusion ran at
    unet_evaluations: int  # UNet sample passes spent, keyframe passes included
    unknown_words: list[str] = field(default_factory=list)  # prompt words the model ignored


ProgressCallback = Callable[[PipelineProgress], None]


class KeyframeKVCache:
    """The per-step keyframe K/V of recent calls, so a worker denoises a shot's keyframe once, not once
    per window (scale-out issue, item 5).

    Pass one to ``CoolColorPipeline.__call__(keyframe_cache=…)`` with an external keyframe *image*.
    The keyframe then always runs alone in its own first batch of each step, and the frames always
    read its stored K/V (never a mixed batch). The keyframe's trajectory depends only on itself, so a
    call that finds it cached and skips that pass gives exactly the same numbers as a call that
    computes it. That keeps the results bit-identical wherever a window runs. Compared with the
    uncached call, only the batch composition changes (float rounding, within the batching tests'
    tolerance). Memory: one K/V set per step and keyframe, for at most ``max_entries`` keyframes.
    """

    def __init__(self, max_entries: int = 2) -> None:
        self.max_entries = max(1, max_entries)
        self.entries: dict[tuple, list[dict[str, tuple[torch.Tensor, torch.Tensor]]]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, signature: tuple) -> list[dict[str, tuple[torch.Tensor, torch.Tensor]]] | None:
        steps = self.entries.get(signature)
        if steps is not None:
            self.entries[signature] = self.entries.pop(signature)  # most recent last
        return steps

    def put(self, signature: tuple, steps: list[dict[str, tuple[torch.Tensor, torch.Tensor]]]) -> None:
        self.entries[signature] = steps
        while len(self.entries) > self.max_entries:
            self.entries.pop(next(iter(self.entries)))


class CoolColorPipeline:
    """Holds the model parts; ``pipe(gray, prompt=…)`` colorizes one shot of frames."""

    def __init__(self, components: Components) -> None:
        self.components = components
        self.unet = components.unet
        self.vae = components.vae
        self.decoder_guide = components.decoder_guide
        self.text_encoder = components.text_encoder
        self.tokenizer = components.tokenizer
        self.scheduler = components.scheduler
        self.config = components.config
        self.keyframe_attention = KeyframeAttention()
        self.keyframe_layers = install_keyframe_attention(self.unet, self.keyframe_attention)
        # Prompts whose ignored words were already said (by ``prompt_warning`` or the truncation log):
        # every window and keyframe encodes the prompt again, and the user needs to read it once.
        self._prompts_reported: set[str] = set()

    # ----------------------------------------------------------------- loading, saving, placement
    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> CoolColorPipeline:
        """Load a checkpoint folder (diffusers layout + coolcolor.json). fp16 by default on CUDA."""
        if dtype is None:
            dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
        return cls(load_components(path, device=device, dtype=dtype))

    def save_pretrained(self, path: str | os.PathLike) -> None:
        save_components(self.components, path)

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> CoolColorPipeline:
        """Move (and cast) the model; ``model_hash`` stays the identity of the weights before a cast."""
        self.components.cast(device, dtype)
        return self

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def resolution(self) -> int:
        """The long side, in pixels, at which the model works."""
        return self.config.resolution

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @functools.cached_property
    def model_hash(self) -> str:
        """The canonical weights hash (``Components.weights_hash``): the same on every device and in
        every dtype; provenance in outputs, manifests, the daemon's cache key and job resume."""
        return self.components.weights_hash()

    # ----------------------------------------------------------------- sizes and batching
    def model_size(self, height: int, width: int) -> tuple[int, int]:
        """Working size: long side = ``resolution``, aspect kept, both sides multiples of 8."""
        multiple = max(8, self.vae_scale_factor)
        scale = self.resolution / max(height, width)
        return tuple(max(multiple, round(side * scale / multiple) * multiple) for side in (height, width))

    def bytes_per_frame(self, size: tuple[int, int], guidance_ways: int) -> int:
        """Estimated peak memory of one frame in one UNet call (activations, not weights).

        The up path keeps every down-block output as a skip connection; on top of that the widest level
        holds a handful of transient tensors (resnet, attention projections, feed-forward ×8). The factor
        16 was checked against measured peaks of the tiny and SD-1.5 shapes and errs on the high side.
        """
        latent_h, latent_w = (side // self.vae_scale_factor for side in size)
        cfg = self.unet.config
        skips, widest = 0, 0
        for level, channels in enumerate(cfg.block_out_channels):
            tokens = (latent_h >> level) * (latent_w >> level)
            skips += (cfg.layers_per_block + 1) * tokens * channels
            widest = max(widest, tokens * channels)
        element = torch.finfo(self.dtype).bits // 8
        return guidance_ways * element * (skips + 16 * widest)

    def decode_bytes_per_frame(self, size: tuple[int, int]) -> int:
        """Estimated peak memory of decoding one frame: the decoder's last, full-resolution stage holds a
        few tensors of ``block_out_channels[0]`` channels at the model size (≈ 2.4× a UNet pass for SD)."""
        element = torch.finfo(self.vae.dtype).bits // 8
        channels = self.vae.config.block_out_channels[0]
        if self.decoder_guide is not None:  # its full-size features live beside the decoder's
            channels += 2 * self.decoder_guide.config.width
        return 6 * element * size[0] * size[1] * channels

    def default_memory_budget(self) -> int:
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return int(free * 0.6)
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return int(min(available * 0.25, 8 << 30))

    def frames_per_batch(self, size: tuple[int, int], guidance_ways: int, memory_budget_bytes: int | None) -> int:
        budget = self.default_memory_budget() if memory_budget_bytes is None else memory_budget_bytes
        return max(1, budget // self.bytes_per_frame(size, guidance_ways))

    # ----------------------------------------------------------------- model stages
    def prompt_words(self, prompt: str) -> PromptWords:
        """Which words of ``prompt`` this model cannot read: unknown to its tokenizer, or cut by its token
        limit (``PromptWords.warning()`` is the message to show)."""
        if not isinstance(prompt, str):
            raise InputError(f"prompt must be a string, got {type(prompt).__name__}")
        return prompt_words(self.tokenizer, prompt, token_limit(self.tokenizer, self.text_encoder))

    def prompt_warning(self, prompt: str) -> str | None:
        """``prompt_words(prompt).warning()`` for a caller that shows it (the CLI); the pipeline then does
        not log the same words again when it encodes the prompt."""
        self._prompts_reported.add(prompt)
        return self.prompt_words(prompt).warning()

    def unknown_words(self, prompt: str) -> list[str]:
        """The prompt's words the model ignores (unknown words, then words past the token limit), as
        written, in prompt order: what the CLI warns about and the daemon returns."""
        return self.prompt_words(prompt).ignored

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """Text embedding (1×tokens×width). An empty prompt is the unconditional embedding, and so is a
        prompt of which the model knows no word: a row of [UNK] tokens was never trained and would
        steer the colors at random."""
        max_length = token_limit(self.tokenizer, self.text_encoder)
        words = prompt_words(self.tokenizer, prompt, max_length)
        if words.truncated and prompt not in self._prompts_reported:
            self._prompts_reported.add(prompt)  # one line, once: not the prompt itself, not per window
            logger.warning("prompt longer than %d tokens: %d word(s) past the limit are ignored (%s)", max_length,
                           len(words.truncated), _first_words(words.truncated))
        text = "" if words.all_unknown else prompt
        tokens = self.tokenizer(
            text, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
        )
        ids = tokens.input_ids.to(self.device)
        return self.text_encoder(ids)[0].to(self.dtype)

    @torch.no_grad()
    def encode_gray(self, gray: torch.Tensor) -> torch.Tensor:
        """z_gray for gray frames (n×h×w in [0, 1]) at model size; the convention in coolcolor.json."""
        return encode_gray_latents(self.vae, gray).to(self.dtype)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, gray: torch.Tensor | None = None) -> torch.Tensor:
        """Latents → sRGB n×h×w×3 in [0, 1] (float32). ``gray``: the n input frames at the model size
        (n×h×w in [0, 1]), which a model with a decoder guide needs and any other model ignores."""
        z = latents.to(self.vae.dtype) / self.vae.config.scaling_factor
        if self.decoder_guide is not None and gray is None:
            raise InputError("this model's decoder is guided by the gray frames: pass them to decode()")
        image = decode_latents(self.vae, z, self.decoder_guide, None if gray is None else gray.to(self.device, self.vae.dtype))
        return ((image.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)

    def _guided_eps(
        self, latents: torch.Tensor, gray_latents: torch.Tensor, t: torch.Tensor, text: torch.Tensor,
        guidance_scale: float,
    ) -> torch.Tensor:
        """ε̂ with classifier-free guidance; ``text`` is (uncond, cond) stacked, or cond alone."""
        n = latents.shape[0]
        ways = text.shape[0]
        x = merge_gray(latents.repeat(ways, 1, 1, 1), gray_latents.repeat(ways, 1, 1, 1))
        emb = text.repeat_interleave(n, dim=0)
        eps = self.unet(x, t, encoder_hidden_states=emb).sample
        self._unet_evaluations += x.shape[0]
        if ways == 1:
            return eps
        uncond, cond = eps.chunk(2)
        return uncond + guidance_scale * (cond - uncond)

    # ----------------------------------------------------------------- the call
    @torch.no_grad()
    def __call__(
        self,
        gray: np.ndarray | torch.Tensor,
        prompt: str = "",
        negative_prompt: str = "",
        keyframe: int | np.ndarray | torch.Tensor | None = None,
        num_inference_steps: int = 20,
        guidance_scale: float = 5.0,
        seed: int = 0,
        memory_budget_bytes: int | None = None,
        progress: ProgressCallback | None = None,
        preview: bool = True,
        keyframe_cache: KeyframeKVCache | None = None,
        references: Sequence[ReferenceImage] = (),
        frame_numbers: Sequence[int] | None = None,
        reference_blend: str = DEFAULT_BLEND,
        reference_start: float = DEFAULT_REFERENCE_START,
    ) -> ColorizationResult:
        """Colorize one shot.

        ``gray``: N×H×W floats in [0, 1] (sRGB-encoded luminance). ``keyframe``: None (frames are
        independent), an index into ``gray``, or an H×W gray image from elsewhere in the shot (e.g. the
        keyframe of a long shot processed in windows). ``progress`` is called at each stage and step and
        may raise to cancel; the exception propagates unchanged. ``preview=False`` skips the
        full-resolution RGB (a Lab → sRGB conversion per plate pixel) when only the ab layer is wanted.

        ``references`` (issue 25): colour images that replace the keyframe (``keyframe`` must be None).
        ``frame_numbers`` places the frames of ``gray`` in the shot (default 0…N−1), in the numbering of
        ``ReferenceImage.frame``; frames read the references weighed by ``reference_blend``
        (``coolcolor.references.reference_weights``), and a frame that a reference depicts is the
        reference's a*, b* exactly (L* stays the plate's). ``reference_start`` (0 ≤ s < 1): the share of
        the schedule the frames skip, starting from their frame references' latent noised to that level
        (see ``_colorize_with_references``).
        """
        frames = _check_gray(gray, "gray")
        n, height, width = frames.shape
        key_index, key_image = _check_keyframe(keyframe, n, (height, width))
        _check_settings(prompt, negative_prompt, num_inference_steps, guidance_scale, seed)
        if references is not None and not (isinstance(references, (list, tuple)) and not references):
            if keyframe is not None:
                raise InputError("keyframe and references cannot be combined: the references are the keyframes")
            if isinstance(reference_start, bool) or not isinstance(reference_start, (int, float)) or not (
                    0 <= reference_start < 1):
                raise InputError(f"reference_start must be a number in [0, 1), got {reference_start!r}")
            return self._colorize_with_references(
                frames, _check_references(references, (height, width)), _check_frame_numbers(frame_numbers, n),
                prompt, negative_prompt, num_inference_steps, guidance_scale, seed, memory_budget_bytes,
                progress, preview, keyframe_cache, reference_blend, reference_start)
        report = progress or (lambda _event: None)
        self._unet_evaluations = 0
        device = self.device
        size, full, small, ways, per_batch, text = self._prepare_run(
            frames, prompt, negative_prompt, guidance_scale, memory_budget_bytes, report)
        gray_latents = torch.cat([self.encode_gray(small[i : i + per_batch]) for i in range(0, n, per_batch)])

        # What to denoise, as gray latents. With a keyframe it comes first, so that it leads the first batch of every step
        # (which stores its K/V); an indexed keyframe is not denoised a second time among the others.
        order = [i for i in range(n) if i != key_index]
        gray_rows = gray_latents[order]
        if key_index is not None:
            gray_rows = torch.cat((gray_latents[key_index : key_index + 1], gray_rows))
        elif key_image is not None:
            key_small = resize_frames(torch.from_numpy(key_image)[None], size).to(device)
            gray_rows = torch.cat((self.encode_gray(key_small), gray_rows))
        use_keyframe = key_index is not None or key_image is not None
        batches = [slice(i, i + per_batch) for i in range(0, len(gray_rows), per_batch)]
        cached_kv: list | None = None  # the keyframe's K/V per step, from an earlier call
        fresh_kv: list | None = None  # ... being recorded by this call
        signature: tuple = ()
        if keyframe_cache is not None and key_image is not None:
            signature = (hash(key_image.tobytes()), key_image.shape, prompt, negative_prompt, num_inference_steps,
                         float(guidance_scale), seed, size, str(self.dtype), str(device))
            cached_kv = keyframe_cache.get(signature)
            if cached_kv is not None:
                keyframe_cache.hits += 1
                gray_rows = gray_rows[1:]  # the keyframe is not denoised again
                use_keyframe = False  # nothing to split off at the end
            else:
                keyframe_cache.misses += 1
                fresh_kv = []
            start = 0 if cached_kv is not None else 1  # the keyframe alone in the first batch
            batches = ([] if cached_kv is not None else [slice(0, 1)]) + [
                slice(i, min(i + per_batch, len(gray_rows))) for i in range(start, len(gray_rows), per_batch)]

        generator = torch.Generator("cpu").manual_seed(seed)
        noise = torch.randn((1, *gray_rows.shape[1:]), generator=generator, dtype=torch.float32)
        noise = (noise * self.scheduler.init_noise_sigma).to(device=device, dtype=self.dtype)
        latents = noise.repeat(len(gray_rows), 1, 1, 1)  # one draw for the whole shot: cheap consistency

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        attention = self.keyframe_attention
        try:
            for step, t in enumerate(timesteps, start=1):
                if cached_kv is not None:
                    attention.kv.clear()
                    attention.kv.update(cached_kv[step - 1])
                for b, batch in enumerate(batches):
                    if cached_kv is not None:
                        mode = attention.using()
                    elif not use_keyframe:
                        mode = contextlib.nullcontext()
                    else:
                        mode = attention.storing(chunks=ways) if b == 0 else attention.using()
                    with mode:
                        eps = self._guided_eps(latents[batch], gray_rows[batch], t, text, guidance_scale)
                    latents[batch] = self.scheduler.step(eps, t, latents[batch]).prev_sample
                    if fresh_kv is not None and b == 0:
                        fresh_kv.append(dict(attention.kv))
                faults.hit("mid_step")
                report(PipelineProgress("denoise", step, len(timesteps)))
            if fresh_kv is not None and keyframe_cache is not None:
                keyframe_cache.put(signature, fresh_kv)
        finally:
            attention.clear()  # a cancelled call must not leave K/V behind for the next

        if use_keyframe:
            key_latent, latents = latents[:1], latents[1:]
            if key_index is not None:
                latents = torch.cat((latents[:key_index], key_latent, latents[key_index:]))

        ab = np.empty((n, height, width, 2), np.float32)
        rgb = np.empty((n, height, width, 3), np.float32) if preview else None
        budget = self.default_memory_budget() if memory_budget_bytes is None else memory_budget_bytes
        per_decode = max(1, budget // self.decode_bytes_per_frame(size))
        for i in range(0, n, per_decode):
            chunk = slice(i, i + per_decode)
            self.finish_latents(latents[chunk], full[chunk], ab[chunk], None if rgb is None else rgb[chunk], small[chunk])
            report(PipelineProgress("decode", min(i + per_decode, n), n))
        return ColorizationResult(ab, rgb, key_index, size, self._unet_evaluations, self.unknown_words(prompt))

    @torch.no_grad()
    def _prepare_run(self, frames: np.ndarray, prompt: str, negative_prompt: str, guidance_scale: float,
                     memory_budget_bytes: int | None, report) -> tuple:
        """What every colorization starts from, with or without references: the model-size frames, the
        classifier-free-guidance ways, frames per UNet batch, and the prompt embeddings (negative first)."""
        _, height, width = frames.shape
        size = self.model_size(height, width)
        full = torch.from_numpy(frames)
        small = resize_frames(full, size).to(self.device)
        ways = 2 if guidance_scale > 1 else 1
        per_batch = self.frames_per_batch(size, ways, memory_budget_bytes)
        report(PipelineProgress("encode", 1, 1))
        text = self.encode_prompt(prompt)
        if ways == 2:
            text = torch.cat((self.encode_prompt(negative_prompt), text))
        return size, full, small, ways, per_batch, text

    def _colorize_with_references(
        self, frames: np.ndarray, references: list[ReferenceImage], positions: list[int], prompt: str,
        negative_prompt: str, num_inference_steps: int, guidance_scale: float, seed: int,
        memory_budget_bytes: int | None, progress: ProgressCallback | None, preview: bool,
        keyframe_cache: KeyframeKVCache | None, blend: str, start: float,
    ) -> ColorizationResult:
        """The keyframe K/V, and the frames' starting point, from the artist's colours (issue 25).

        Each reference is VAE-encoded (posterior mode) at the model size, brought to each step's noise
        level by the forward process (paper Eq. 1: ``scheduler.add_noise`` with the clip's own seeded
        noise, so the reference and the frames share one noise draw), and run through the UNet alone
        beside its own gray latent (its luminance), storing the keyframe layers' K/V. The frames then
        attend to those K/V, mixed per frame by distance. The reference's own noise prediction is not
        used: it is re-noised from its clean latent at every step.

        K/V alone move the colours little with a model trained without cross-frame attention (the
        embedded one: bench/bench_reference.py measured ΔE2000 no better than text only), so the frames
        also *start* from the references: with ``start`` = s > 0 they skip the first s of the schedule
        and begin at that step's noise level from their frame references' latent (weighted like the
        attention) under the clip's noise — SDEdit (Meng et al. 2022) with the reference as the guide;
        the gray latent and the text redraw what moved or what the reference does not show during the
        remaining steps. Exemplars steer through K/V only (they are not the shot's geometry).

        Frames that a reference depicts are
        not denoised at all; their output is the reference's a*, b* at full size with the plate's L*
        (not refitted to the gamut: it is the artist's frame). The text still steers every frame
        through cross-attention, where the references do not show a region.
        """
        n, height, width = frames.shape
        report = progress or (lambda _event: None)
        self._unet_evaluations = 0
        device = self.device
        depicted = {r.frame: r for r in references if r.frame is not None}
        order = [i for i in range(n) if positions[i] not in depicted]
        size, full, small, ways, per_batch, text = self._prepare_run(
            frames, prompt, negative_prompt, guidance_scale, memory_budget_bytes, report)
        latents = torch.empty(0)
        if order:
            small_rows = small[order]
            gray_rows = torch.cat([self.encode_gray(small_rows[i : i + per_batch])
                                   for i in range(0, len(order), per_batch)])
            noise = _seeded_noise(seed, gray_rows.shape[1:], self.scheduler.init_noise_sigma).to(device, self.dtype)
            latents = noise.repeat(len(order), 1, 1, 1)
            weights = torch.from_numpy(reference_weights([positions[i] for i in order],
                                                         [r.frame for r in references], blend))
            prepared = [self._prepare_reference(r, size, seed) for r in references]

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        # at least one step is always denoised (one step: the start is not moved, the K/V steer alone)
        skip = min(int(round(start * len(timesteps))), len(timesteps) - 1)
        if order and skip:
            placed = [r for r, ref in enumerate(references) if ref.frame is not None]
            if placed:
                w = weights[:, placed]
                w = (w / w.sum(1, keepdim=True).clamp_min(1e-8)).to(device, self.dtype)
                z = torch.cat([prepared[r]["latent"] for r in placed])
                z_mix = torch.einsum("fr,rchw->fchw", w, z)
                latents = self.scheduler.add_noise(z_mix, latents, timesteps[skip].reshape(1))
                timesteps = timesteps[skip:]
        attention = self.keyframe_attention
        try:
            if order:
                reference_kv = [self._reference_kv(p, timesteps, text, keyframe_cache,
                                                   (prompt, negative_prompt, num_inference_steps,
                                                    float(guidance_scale), seed, skip, str(self.dtype), str(device)))
                                for p in prepared]
            for step, t in enumerate(timesteps if order else [], start=1):
                for i in range(0, len(order), per_batch):
                    batch = slice(i, i + per_batch)
                    used = [r for r in range(len(references)) if bool((weights[batch, r] != 0).any())]
                    mix = ReferenceBlend([reference_kv[r][step - 1] for r in used], weights[batch][:, used])
                    with attention.blending(mix):
                        eps = self._guided_eps(latents[batch], gray_rows[batch], t, text, guidance_scale)
                    latents[batch] = self.scheduler.step(eps, t, latents[batch]).prev_sample
                faults.hit("mid_step")
                report(PipelineProgress("denoise", step, len(timesteps)))
        finally:
            attention.clear()

        ab = np.empty((n, height, width, 2), np.float32)
        rgb = np.empty((n, height, width, 3), np.float32) if preview else None
        budget = self.default_memory_budget() if memory_budget_bytes is None else memory_budget_bytes
        per_decode = max(1, budget // self.decode_bytes_per_frame(size))
        for i in range(0, len(order), per_decode):
            rows = order[i : i + per_decode]
            ab_part = np.empty((len(rows), height, width, 2), np.float32)
            rgb_part = np.empty((len(rows), height, width, 3), np.float32) if preview else None
            self.finish_latents(latents[i : i + per_decode], full[rows], ab_part, rgb_part, small[rows])
            ab[rows] = ab_part
            if rgb is not None:
                rgb[rows] = rgb_part
            report(PipelineProgress("decode", min(i + per_decode, len(order)), n))
        for i in range(n):
            if positions[i] in depicted:
                ab[i] = _reference_ab(depicted[positions[i]].rgb)
                if rgb is not None:
                    lab = color.replace_luminance(torch.from_numpy(ab[i]), full[i])
                    rgb[i] = color.lab_to_rgb(lab).clamp(0, 1).numpy()
        report(PipelineProgress("decode", n, n))
        return ColorizationResult(ab, rgb, None, size, self._unet_evaluations, self.unknown_words(prompt))

    def _prepare_reference(self, reference: ReferenceImage, frame_size: tuple[int, int], seed: int) -> dict:
        """A reference at the model size: its clean colour latent, its gray latent, its noise. A frame
        reference takes the frames' model size (the plate's shape); an exemplar its own aspect."""
        h, w = reference.rgb.shape[:2]
        size = frame_size if reference.frame is not None else self.model_size(h, w)
        rgb = torch.from_numpy(reference.rgb).permute(2, 0, 1)[None].float()
        small_rgb = (resize(rgb, size) if tuple(rgb.shape[-2:]) != size else rgb).clamp(0, 1).to(self.device)
        z = self.vae.encode((small_rgb * 2 - 1).to(self.vae.dtype)).latent_dist.mode() * self.vae.config.scaling_factor
        gray = color.srgb_to_gray(small_rgb[0].permute(1, 2, 0))[None]
        return {"latent": z.to(self.dtype), "gray": self.encode_gray(gray),
                "noise": _seeded_noise(seed, z.shape[1:], self.scheduler.init_noise_sigma).to(self.device, self.dtype),
                "id": (hash(reference.rgb.tobytes()), reference.rgb.shape, reference.frame, size)}

    def _reference_kv(self, prepared: dict, timesteps: torch.Tensor, text: torch.Tensor,
                      cache: KeyframeKVCache | None, settings: tuple) -> list[dict]:
        """The reference's keyframe-layer K/V at every step (from ``cache`` when a window before this one
        computed them: they depend on the reference and the settings only, never on the frames)."""
        signature = ("reference", prepared["id"], *settings)
        if cache is not None:
            found = cache.get(signature)
            if found is not None:
                cache.hits += 1
                return found
            cache.misses += 1
        attention = self.keyframe_attention
        ways = text.shape[0]
        steps = []
        for t in timesteps:
            noisy = self.scheduler.add_noise(prepared["latent"], prepared["noise"], t.reshape(1))
            x = merge_gray(noisy.repeat(ways, 1, 1, 1), prepared["gray"].repeat(ways, 1, 1, 1))
            with attention.storing(chunks=ways):
                self.unet(x, t, encoder_hidden_states=text)
            self._unet_evaluations += ways
            steps.append(dict(attention.kv))
        attention.kv.clear()
        if cache is not None:
            cache.put(signature, steps)
        return steps

    @torch.no_grad()
    def finish_latents(self, latents: torch.Tensor, gray_full: torch.Tensor, ab_out: np.ndarray,
                       rgb_out: np.ndarray | None = None, gray_small: torch.Tensor | None = None) -> None:
        """Decode n model-size latents and finish them at the frames' full size (paper §3.5) into ``ab_out``
        (n×H×W×2) and, if given, ``rgb_out`` (n×H×W×3 sRGB). ``gray_full``: the n input frames, n×H×W.

        Full-resolution finishing runs on the pipeline's device, in float32: on a GPU the 4K upsample and
        gamut fit cost milliseconds instead of dominating the frame. Evaluation uses it too, to finish VAE
        round trips exactly like colorizations. ``gray_small``: the frames at the model size, as the model
        saw them, which a decoder guide reads; computed from ``gray_full`` when not given.
        """
        if self.decoder_guide is not None and gray_small is None:
            model_size = (latents.shape[-2] * self.vae_scale_factor, latents.shape[-1] * self.vae_scale_factor)
            gray_small = resize_frames(gray_full, model_size)
        decoded = self.decode(latents, gray_small).float()
        ab_small = color.rgb_to_lab(decoded)[..., 1:]
        for j in range(decoded.shape[0]):
            lab = _finish_frame(ab_small[j : j + 1], gray_full[j : j + 1].to(self.device))
            ab_out[j] = lab[0, ..., 1:].cpu().numpy()
            if rgb_out is not None:
                rgb_out[j] = color.lab_to_rgb(lab[0]).clamp(0, 1).cpu().numpy()


# --------------------------------------------------------------------- helpers
def _seeded_noise(seed: int, shape: tuple, sigma: float) -> torch.Tensor:
    """The clip's one noise draw (1×C×h×w): the same numbers for the frames and a same-size reference."""
    generator = torch.Generator("cpu").manual_seed(seed)
    return torch.randn((1, *shape), generator=generator, dtype=torch.float32) * sigma


def _reference_ab(rgb: np.ndarray) -> np.ndarray:
    """A frame reference's own output: its a*, b* exactly (H×W×2 float32)."""
    return np.asarray(color.rgb_to_lab(np.ascontiguousarray(rgb, dtype=np.float32)), np.float32)[..., 1:]


def _check_references(references: object, size: tuple[int, int]) -> list[ReferenceImage]:
    if isinstance(references, ReferenceImage) or not isinstance(references, (list, tuple)):
        raise InputError(f"references must be a list of ReferenceImage, got {type(references).__name__}")
    out, frames = [], set()
    for i, ref in enumerate(references):
        if not isinstance(ref, ReferenceImage):
            raise InputError(f"references[{i}] must be a ReferenceImage, got {type(ref).__name__}")
        rgb = ref.rgb.detach().cpu().numpy() if isinstance(ref.rgb, torch.Tensor) else ref.rgb
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[-1] != 3 or min(rgb.shape[:2]) < 1:
            raise InputError(f"references[{i}] must be an H×W×3 colour image, got {getattr(rgb, 'shape', rgb)!r}")
        rgb = _check_gray(rgb.reshape(rgb.shape[0], rgb.shape[1] * 3), f"references[{i}]", ndim=2).reshape(rgb.shape)
        problem = gray_problem(rgb)
        if problem:
            raise InputError(f"references[{i}] {problem}")
        if ref.frame is not None:
            if isinstance(ref.frame, (bool, np.bool_)) or not isinstance(ref.frame, (int, np.integer)):
                raise InputError(f"references[{i}].frame must be a frame number or None, got {ref.frame!r}")
            if rgb.shape[:2] != size:
                raise InputError(f"references[{i}] for frame {ref.frame} is {rgb.shape[0]}×{rgb.shape[1]}, the frames "
                                 f"are {size[0]}×{size[1]}")
            if int(ref.frame) in frames:
                raise InputError(f"two references for frame {ref.frame}")
            frames.add(int(ref.frame))
        out.append(ReferenceImage(rgb, None if ref.frame is None else int(ref.frame)))
    return out


def _check_frame_numbers(frame_numbers: object, n: int) -> list[int]:
    if frame_numbers is None:
        return list(range(n))
    numbers = list(frame_numbers)  # type: ignore[call-overload]
    if len(numbers) != n or not all(isinstance(f, (int, np.integer)) and not isinstance(f, bool) for f in numbers):
        raise InputError(f"frame_numbers must be {n} integers, one per frame, got {frame_numbers!r}")
    return [int(f) for f in numbers]


def _finish_frame(ab_small: torch.Tensor, gray_full: torch.Tensor) -> torch.Tensor:
    """Paper §3.5 at full resolution: upsample a*, b*, take L from the original, keep it in gamut."""
    gray_full = gray_full.to(ab_small.dtype)
    lightness = color.gray_to_lightness(gray_full)  # once: the guide and the output's L* (§3.5)
    ab_full = upsample_ab(ab_small, gray_full, lightness=lightness)
    return color.fit_chroma_to_gamut(torch.cat((lightness.unsqueeze(-1), ab_full), dim=-1))


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """n×H×W → n×h×w float32 in [0, 1], antialiased when shrinking: how frames reach the model's size,
    shared with training so the model sees the same resampling in both."""
    x = frames.float().unsqueeze(1)
    if tuple(x.shape[-2:]) != size:
        x = resize(x, size)
    return x.squeeze(1).clamp(0, 1)


def _check_gray(gray: object, name: str, ndim: int = 3) -> np.ndarray:
    """Validate frames and return them as float32 numpy; every rejection names the problem."""
    if isinstance(gray, torch.Tensor):
        gray = gray.detach().cpu().numpy()
    if not isinstance(gray, np.ndarray):
        raise InputError(f"{name} must be a numpy array or torch tensor, got {type(gray).__name__}")
    shape_text = "N×H×W" if ndim == 3 else "H×W"
    if gray.ndim != ndim:
        raise InputError(f"{name} must be {shape_text} (gray frames), got shape {gray.shape}")
    if gray.size == 0:
        raise InputError(f"{name} is empty (shape {gray.shape}); at least one frame of at least 1×1 is needed")
    if not np.issubdtype(gray.dtype, np.floating):
        raise InputError(f"{name} must hold floats in [0, 1], got dtype {gray.dtype}; divide integer pixels by their maximum")
    if not np.isfinite(gray).all():
        bad = np.argwhere(~np.isfinite(gray))[0]
        raise InputError(f"{name} has NaN or Inf pixels (first at index {tuple(int(i) for i in bad)})")
    low, high = float(gray.min()), float(gray.max())
    if low < 0 or high > 1:
        raise InputError(f"{name} must lie in [0, 1], found values from {low:.4g} to {high:.4g}")
    return np.ascontiguousarray(gray, dtype=np.float32)


def _first_words(words: list[str], limit: int = 8) -> str:
    """``a, b, c, … and 4 more``: a list of words short enough for one log line."""
    shown = ", ".join(words[:limit])
    return shown if len(words) <= limit else f"{shown}, … and {len(words) - limit} more"


def _check_keyframe(
    keyframe: object, frames: int, size: tuple[int, int]
) -> tuple[int | None, np.ndarray | None]:
    if keyframe is None:
        return None, None
    if isinstance(keyframe, (np.ndarray, torch.Tensor)) and np.ndim(keyframe) == 2:
        image = _check_gray(keyframe, "keyframe image", ndim=2)
        if image.shape != size:
            raise InputError(f"keyframe image is {image.shape[0]}×{image.shape[1]}, the frames are {size[0]}×{size[1]}")
        return None, image
    if isinstance(keyframe, (bool, np.bool_)) or not isinstance(keyframe, (int, np.integer)):
        raise InputError(f"keyframe must be a frame index or an H×W gray image, got {type(keyframe).__name__}")
    if not 0 <= keyframe < frames:
        raise InputError(f"keyframe index {keyframe} is out of range for {frames} frame(s) (0…{frames - 1})")
    return int(keyframe), None


def _check_settings(prompt: object, negative: object, steps: object, guidance: object, seed: object) -> None:
    for name, value in (("prompt", prompt), ("negative_prompt", negative)):
        if not isinstance(value, str):
            raise InputError(f"{name} must be a string, got {type(value).__name__}")
    # the limits are the job contract's (coolcolor_protocol.jobspec): one set for the wire, the engine and here
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= MAX_STEPS:
        raise InputError(f"num_inference_steps must be an integer in 1…{MAX_STEPS}, got {steps!r}")
    if not isinstance(guidance, (int, float)) or not np.isfinite(guidance) or not 0 <= guidance <= MAX_GUIDANCE:
        raise InputError(f"guidance_scale must be a finite number in 0…{MAX_GUIDANCE:g}, got {guidance!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed must be a non-negative integer ≤ {MAX_SEED}, got {seed!r}")
