"""Training configuration: one dataclass, read from JSON or TOML, validated field by field.

Unknown keys and out-of-range values are errors naming the key: a typo in a config must not silently
train something else for two hours.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from coolcolor.errors import InputError

STAGES = ("vae", "unet")
LAMBDA_SCHEDULES = ("progressive", "constant", "zero")
OPTIMIZERS = ("adamw", "adamw8bit")


@dataclass
class TrainConfig:
    """Everything a run depends on. ``output`` holds checkpoints, the log and the final model."""

    output: str = ""
    stage: str = "unet"  # "vae": reconstruction stage of the VAE; "unet": diffusion (UNet + text encoder)
    data: str = "world"  # "world" (rendered on the fly) or a folder of color images with captions
    manifest: str = ""  # JSONL manifest inside/next to the folder (optional; else sidecar .txt captions)
    captioner: str = ""  # local BLIP folder for images without a caption (optional)
    min_colorfulness: float = 15.0  # folder data: drop images less colorful than this (Hasler–Süsstrunk)
    require_color_words: bool = True  # folder data: drop captions that name no color
    resolution: int = 32  # model working size (long side, pixels)
    architecture: str = "coolcolor-tiny"  # model shape for a fresh UNet stage (see train.model)
    vae_from: str = ""  # a finished VAE-stage run folder (its final/vae): the unet stage's VAE, or the vae stage's start
    vae_train: str = "all"  # vae stage: "all", or "decoder" (encoder frozen: latents, and so any UNet, stay valid)
    decoder_guide: bool = False  # vae stage, vae_train = decoder: train a gray-guided decoder (model.decoder_guide)
    init_from: str = ""  # unet stage: fine-tune this CoolColor checkpoint instead of building a new model
    # (or "preset:sd15" / "preset:tiny": random weights of that shape, to measure what training costs)
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-4
    warmup_steps: int = 0
    lr_schedule: str = "constant"  # "constant" after warm-up, or "cosine" decay to 10% at the last step
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    # unet stage: keep an exponential moving average of the UNet's weights, decay min(ema_decay, (1+k)/(10+k))
    # at the k-th update (diffusers' EMAModel warm-up); the final model gets the average. 0 = off
    ema_decay: float = 0.0
    # unet stage: memory options (docs/production-training.md#memory-options). lora_rank > 0 trains LoRA
    # adapters (rank r, alpha r) on the UNet's attention projections plus F_in's conv_in, with the rest of the
    # UNet and the text encoder frozen (train.lora); 0 = full fine-tuning. "adamw8bit": bitsandbytes' 8-bit
    # AdamW (train.optim), optimizer state in 1 byte per value instead of 8
    lora_rank: int = 0
    optimizer: str = "adamw"
    # unet stage: every validation_every steps (0 = never) colorize a fixed set of gray inputs — that many
    # held-out world frames and held-out real photographs (those installed) — into OUTPUT/validation/step-N/
    validation_every: int = 0
    validation_world: int = 4
    validation_real: int = 2
    validation_steps: int = 20
    seed: int = 0
    text_dropout: float = 0.1
    snr_gamma: float = 0.0  # unet stage: Min-SNR-γ loss weights min(SNR_t, γ)/SNR_t (Hang et al. 2023); 0 = off
    lambda_schedule: str = "progressive"  # λ for L_EF: linear ramp 0 → lambda_max, constant, or zero
    lambda_max: float = 1e-3
    ef_t_max: int = 600  # L_EF only on timesteps t < ef_t_max (x0 prediction amplifies errors by 1/√ᾱ_t)
    ef_fraction: float = 0.25  # share of each batch that also gets the warped pass for L_EF
    degradation_max: float = 2.0  # world data: old-film damage strength drawn from U(0, max) per image
    clean_fraction: float = 0.25  # world data: share of undamaged gray inputs
    # world data: which world (coolcolor.world.spec.WorldSpec): {"version": 1|2|3, "leave_out": true, or
    # "exclude_shapes"/"exclude_layouts"/"exclude_synonyms": [...]}; {} = version 1, nothing left out
    world: dict[str, Any] = field(default_factory=dict)
    world_v1_share: float = 0.0  # world version 2 or 3: share of stills drawn by version 1 (same items left out)
    # world data: share of each batch drawn from real photographs and cut-outs (coolcolor.real.source); the
    # tokenizer then grows by the words of their captions
    real_share: float = 0.0
    real_data: str = ""  # where `coolcolor real install` put the real-footage files ("" = its default folder)
    cutout_share: float = 0.5  # real views that are a cut-out laid over a photograph (the rest: photograph crops)
    kl_weight: float = 1e-6  # vae stage
    ab_weight: float = 0.0  # vae stage: weight of an L1 loss on CIELab a*, b* (÷100) of the reconstructions
    mixed_precision: str = "auto"  # "auto" (bf16 on CUDA), "no", "bf16", "fp16"
    gradient_checkpointing: str = "auto"  # "auto" (on CUDA), "yes", "no"
    device: str = "auto"
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    threads: int = 0  # CPU threads for torch (0: leave torch's default)
    # DataLoader worker processes that decode and augment (per training process); -1 = auto: 0 on CPU (batches
    # made in the training process), on CUDA the CPUs per process, at most 8. Batches do not depend on it
    loader_workers: int = -1
    notes: dict[str, Any] = field(default_factory=dict)  # free-form, copied into coolcolor.json

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TrainConfig:
        if not isinstance(data, dict):
            raise InputError(f"{where}: must be a table/object of settings")
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(names))}")
        values: dict[str, Any] = {}
        defaults = cls()
        for key, raw in data.items():
            default = getattr(defaults, key)
            values[key] = _coerce(key, raw, default, where)
        config = cls(**values)
        config.validate(where)
        return config

    @classmethod
    def from_file(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        """Read a JSON (or ``.toml``) config; ``overrides`` (e.g. command-line flags) win over the file."""
        p = Path(path)
        if p.is_dir():
            raise InputError(f"config file {p} is a folder, not a file")
        if not p.is_file():
            raise InputError(f"config file {p} does not exist")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"config file {p}: cannot read ({exc})") from exc
        toml = p.suffix.lower() == ".toml"
        try:
            data = tomllib.loads(text) if toml else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"config file {p}: not valid {'TOML' if toml else 'JSON'} ({exc})") from exc
        if not isinstance(data, dict):
            raise InputError(f"config file {p}: must hold an object of settings")
        return cls.from_dict({**data, **(overrides or {})}, str(p))

    def validate(self, where: str = "config") -> None:
        def bad(key: str, what: str) -> InputError:
            return InputError(f"{where}: {key} {what}, got {getattr(self, key)!r}")

        if not self.output:
            raise InputError(f"{where}: output (the run folder) is required")
        if self.stage not in STAGES:
            raise bad("stage", f"must be one of {', '.join(STAGES)}")
        if self.lambda_schedule not in LAMBDA_SCHEDULES:
            raise bad("lambda_schedule", f"must be one of {', '.join(LAMBDA_SCHEDULES)}")
        if self.resolution < 8 or self.resolution % 8:
            raise bad("resolution", "must be a positive multiple of 8")
        for key in ("steps", "batch_size", "checkpoint_every", "keep_checkpoints", "log_every"):
            if getattr(self, key) < 1:
                raise bad(key, "must be ≥ 1")
        for key in ("warmup_steps", "threads", "seed", "lora_rank", "validation_every", "validation_world",
                    "validation_real"):
            if getattr(self, key) < 0:
                raise bad(key, "must be ≥ 0")
        if self.loader_workers < -1:
            raise bad("loader_workers", "must be ≥ 0, or -1 (auto)")
        if not (0 < self.lr < 1):
            raise bad("lr", "must be in (0, 1)")
        for key in ("text_dropout", "ef_fraction", "clean_fraction", "world_v1_share", "real_share", "cutout_share"):
            if not 0 <= getattr(self, key) <= 1:
                raise bad(key, "must be in [0, 1]")
        for key in ("lambda_max", "weight_decay", "grad_clip", "kl_weight", "ab_weight", "snr_gamma", "degradation_max", "min_colorfulness"):
            v = getattr(self, key)
            if not math.isfinite(v) or v < 0:
                raise bad(key, "must be a finite number ≥ 0")
        if not 0 <= self.ema_decay < 1:
            raise bad("ema_decay", "must be in [0, 1) (0: no EMA)")
        if self.ema_decay and self.stage != "unet":
            raise InputError(f"{where}: ema_decay averages the UNet's weights; it needs stage = unet")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        if not 1 <= self.validation_steps <= 1000:
            raise bad("validation_steps", "must be in 1…1000")
        for key in ("lora_rank", "validation_every"):
            if getattr(self, key) and self.stage != "unet":
                raise InputError(f"{where}: {key} is a UNet-stage setting; it needs stage = unet")
        if self.lora_rank and self.real_share:
            raise InputError(f"{where}: lora_rank freezes the text encoder, but real_share adds words whose "
                             "embeddings must train; use full fine-tuning (lora_rank = 0) with real_share")
        if not all(0 <= b < 1 for b in self.betas) or len(self.betas) != 2:
            raise bad("betas", "must be two numbers in [0, 1)")
        if not 1 <= self.ef_t_max <= 1000:
            raise bad("ef_t_max", "must be in 1…1000")
        if self.lr_schedule not in ("constant", "cosine"):
            raise bad("lr_schedule", "must be constant or cosine")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise bad("mixed_precision", "must be auto, no, bf16 or fp16")
        if self.gradient_checkpointing not in ("auto", "yes", "no"):
            raise bad("gradient_checkpointing", "must be auto, yes or no")
        if self.vae_train not in ("all", "decoder"):
            raise bad("vae_train", "must be all or decoder")
        if self.decoder_guide and (self.stage != "vae" or self.vae_train != "decoder"):
            raise InputError(f"{where}: decoder_guide trains with the decoder of a trained VAE; set stage = vae "
                             "and vae_train = decoder")
        if self.stage == "vae" and self.vae_train == "decoder" and not self.vae_from:
            raise InputError(f"{where}: vae_train = decoder fine-tunes a trained VAE's decoder; give vae_from")
        from coolcolor.world.spec import WorldSpec

        spec = WorldSpec.from_json(self.world, f"{where}: world")
        if self.world_v1_share and spec.version < 2:
            raise InputError(f"{where}: world_v1_share mixes version 1 into a version-2 or -3 world; world.version is {spec.version}")
        if spec.feature:
            raise InputError(f"{where}: world.feature is for evaluation clips; training leaves items out, it does not feature them")
        if self.real_share and self.data != "world":
            raise InputError(f"{where}: real_share mixes real photographs into the world's stills; it needs "
                             "data = world")
        if self.stage == "unet" and self.init_from and self.vae_from:
            raise InputError(f"{where}: give either init_from (fine-tune) or vae_from (new model), not both")


def _coerce(key: str, raw: Any, default: Any, where: str) -> Any:
    """Accept a JSON/TOML value for ``key`` if it has the default's type (ints for floats are fine)."""
    def wrong(kind: str) -> InputError:
        return InputError(f"{where}: {key} must be {kind}, got {raw!r}")

    if isinstance(default, bool):
        if not isinstance(raw, bool):
            raise wrong("true or false")
        return raw
    if isinstance(default, int):
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise wrong("an integer")
        return raw
    if isinstance(default, float):
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise wrong("a number")
        return float(raw)
    if isinstance(default, str):
        if not isinstance(raw, str):
            raise wrong("a string")
        return raw
    if isinstance(default, tuple):
        if not isinstance(raw, (list, tuple)) or len(raw) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw
        ):
            raise wrong("a list of two numbers")
        return (float(raw[0]), float(raw[1]))
    if isinstance(default, dict):
        if not isinstance(raw, dict):
            raise wrong("a table/object")
        return raw
    raise wrong(type(default).__name__)
