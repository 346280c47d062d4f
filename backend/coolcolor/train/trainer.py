"""The trainer (paper §3.3, §4.1): L = L_recon + λ·L_EF, and the VAE's reconstruction stage.

Run folder::

    OUTPUT/config.json            the run's settings (a resumed run must agree on everything that shapes it)
    OUTPUT/log.jsonl              one line per logged step: losses, λ, lr, elapsed seconds
    OUTPUT/checkpoints/step-NNNNNNN/  model parts (diffusers layout) + trainer_state.pt
    OUTPUT/final/                 the finished model (unet stage: a CoolColor checkpoint; vae stage: vae/)

Checkpoints are written to a temporary folder and renamed into place, so a kill at any moment leaves
the previous checkpoint intact; ``trainer_state.pt`` holds the optimizer, the step and every RNG
state, and the data is a pure function of (seed, step), so a resumed run continues the same loss curve.
SIGTERM and Ctrl-C save a checkpoint at the current step before stopping.

Targets: the color latent is ``vae.encode(rgb·2−1).latent_dist.sample() · scaling_factor`` (a draw,
as in SD training); the gray latent uses the pipeline's convention (``GRAY_LATENT_CONVENTION``, the
distribution's mode), so training and sampling feed F_in the same thing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from coolcolor import color, faults
from coolcolor.errors import CheckpointError, InputError, describe_os_error
from coolcolor.model.checkpoint import encode_gray_latents, save_components, weights_hash
from coolcolor.model.decoder_guide import GUIDE_PART, DecoderGuide, decode, new_decoder_guide
from coolcolor.model.presets import preset_components
from coolcolor.model.resolve import PRESET_PREFIX, resolve_model_source
from coolcolor.model.unet import merge_gray
from coolcolor.train import lora, validation
from coolcolor.train.config import TrainConfig
from coolcolor.real.source import RealSource
from coolcolor.train.data import FolderSource, MixedSource, WorldSource, blip_captioner
from coolcolor.train.distributed import Shard, processes_for
from coolcolor.train.ema import WeightEMA
from coolcolor.train.equivariance import ef_loss, in_frame_mask, lambda_at, random_affine
from coolcolor.train.loader import resolve_workers, step_batches
from coolcolor.train.model import architecture, architecture_signature, grow_vocabulary, new_components, new_vae
from coolcolor.train.optim import build_optimizer, check_optimizer
from coolcolor.train.trained import load_guide, load_init_checkpoint, load_vae
from coolcolor.world.spec import WorldSpec

logger = logging.getLogger(__name__)

STATE_NAME = "trainer_state.pt"
# Settings a resumed run may change: they do not alter what was trained so far.
RESUMABLE_CHANGES = frozenset({"steps", "checkpoint_every", "keep_checkpoints", "log_every", "threads", "device",
                               "notes", "loader_workers", "validation_every", "validation_world",
                               "validation_real", "validation_steps"})


def color_latents(vae: AutoencoderKL, rgb: torch.Tensor, generator: torch.Generator,
                  shard: Shard = Shard()) -> torch.Tensor:
    """z0 for n×3×h×w sRGB in [0, 1]: a draw from the VAE posterior, times the scaling factor.

    The posterior noise is ``shard``'s rows of the global batch's draw (diffusers' ``sample`` draws the
    same numbers for one process: ``randn`` of the mean's shape, then mean + std·noise)."""
    dist = vae.encode((rgb * 2 - 1).to(vae.dtype)).latent_dist
    noise = shard.randn(rgb.shape[0], dist.mean.shape[1:], generator, dist.mean.dtype).to(dist.mean.device)
    return (dist.mean + dist.std * noise) * vae.config.scaling_factor


def _min_snr_mse(eps: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor, gamma: float) -> torch.Tensor:
    """ε-MSE with Min-SNR-γ weights: nearly clean timesteps (SNR > γ) count less, so training time goes to the
    noisy ones where a frame's colors are decided. Weights are at most 1, so the loss stays ≤ the plain MSE."""
    snr = alpha_bar / (1 - alpha_bar)
    weight = snr.clamp(max=gamma) / snr
    per_sample = ((eps - noise) ** 2).flatten(1).mean(1)
    return (weight.to(per_sample.dtype) * per_sample).mean()


def _ab(x: torch.Tensor) -> torch.Tensor:
    """CIELab a*, b* (n×h×w×2) of n×3×h×w images in the VAE's [-1, 1] range (clipped to the sRGB cube)."""
    return color.rgb_to_lab(((x + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1))[..., 1:]


def _atomic_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class Trainer:
    """One training run (either stage). ``run()`` trains to ``config.steps``, resuming if possible."""

    def __init__(self, config: TrainConfig, command: str = "") -> None:
        config.validate()
        check_optimizer(config)  # before anything is written: a missing bitsandbytes is one line
        self.config = config
        self.command = command or " ".join(sys.argv)
        self.out = Path(config.output)
        self.ckpt_dir = self.out / "checkpoints"
        # this process alone, or one of several started by accelerate launch (coolcolor.train.distributed)
        self.dist = processes_for(config.device, config.stage)
        self.device = self.dist.device
        cuda = self.device.type == "cuda"
        mp = config.mixed_precision
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
            "bf16" if (mp == "auto" and cuda) else mp)
        self.grad_ckpt = config.gradient_checkpointing == "yes" or (config.gradient_checkpointing == "auto" and cuda)
        self.generator = torch.Generator("cpu").manual_seed(config.seed)
        self.step = 0
        self.base_recipe: dict[str, Any] | None = None
        self.history: list[dict[str, float]] = []
        self._stop = False

    # ------------------------------------------------------------------ setup
    def _source(self):
        c = self.config
        if c.data == "world":
            world = WorldSource(c.resolution, c.seed, c.degradation_max, c.clean_fraction,
                                WorldSpec.from_json(c.world, "world"), c.world_v1_share)
            return MixedSource(world, self._real_source(), c.real_share, c.seed) if c.real_share else world
        captioner = blip_captioner(c.captioner) if c.captioner else None
        tokenizer = self.components.tokenizer if getattr(self, "components", None) is not None else None
        return FolderSource(c.data, c.resolution, c.seed, c.manifest, c.min_colorfulness, c.require_color_words,
                            captioner, tokenizer)

    def _real_source(self) -> RealSource:
        """The run's real views, loaded once (the tokenizer grows by their captions before training)."""
        if getattr(self, "_real", None) is None:
            c = self.config
            self._real = RealSource(c.resolution, c.seed, c.real_data, c.cutout_share, c.degradation_max,
                                    c.clean_fraction)
        return self._real

    def _build(self) -> None:
        c = self.config
        self.guide: DecoderGuide | None = None
        if c.stage == "vae":
            self.vae = load_vae(Path(c.vae_from)) if c.vae_from else new_vae(architecture(c.architecture), c.seed)
            self.components = None
            self.trainable: list[torch.nn.Module] = [self.vae]
            if c.vae_train == "decoder":
                # SD's ft-MSE recipe: a better decoder for the same latents, so UNets trained on this VAE still fit.
                self.vae.requires_grad_(False)
                self.trainable = [self.vae.decoder, self.vae.post_quant_conv]
            if c.decoder_guide:
                # Continue the start's guide if it has one; a new guide decodes exactly like no guide.
                self.guide = load_guide(Path(c.vae_from), self.vae) or new_decoder_guide(self.vae, c.seed)
                self.trainable.append(self.guide)
        else:
            if c.init_from.startswith(PRESET_PREFIX):  # random weights: for measuring cost (bench_train_step)
                resolve_model_source(c.init_from)  # an unknown preset is one line naming the known ones
                self.components = preset_components(c.init_from.removeprefix(PRESET_PREFIX))
                self.base_recipe = self.components.config.recipe
            elif c.init_from:
                self.components = load_init_checkpoint(Path(c.init_from))
                self.base_recipe = self.components.config.recipe
            else:
                if not c.vae_from:
                    raise InputError("unet stage: give vae_from (a finished VAE-stage run) or init_from (a checkpoint)")
                vae = load_vae(Path(c.vae_from))
                self.components = new_components(c.architecture, vae, c.resolution, c.seed)
                # A decoder trained with a guide decodes right only with it: the run's checkpoints carry it along.
                self.components.decoder_guide = load_guide(Path(c.vae_from), vae)
                if self.components.decoder_guide is not None:
                    self.components.decoder_guide.eval().requires_grad_(False)
            comp = self.components
            if c.real_share:
                new = grow_vocabulary(comp, self._real_source().captions())
                logger.info("vocabulary: %d word(s) added for the real captions", len(new))
            self.vae = comp.vae
            self.vae.eval().requires_grad_(False)
            # LoRA trains adapters in the UNet only (train.lora); the text encoder stays as it is.
            self.trainable = [comp.unet] if c.lora_rank else [comp.unet, comp.text_encoder]
            if c.lora_rank:
                comp.text_encoder.eval().requires_grad_(False).to(self.device)
            self.alphas_cumprod = comp.scheduler.alphas_cumprod.to(self.device)
        for m in self.trainable:
            m.train().requires_grad_(True)
        self.vae.to(self.device)
        for m in self.trainable:
            m.to(self.device)
        # The base UNet a LoRA run's adapters sit on: a resume checks it is still the same weights.
        self.lora_base: str | None = None
        if c.lora_rank and self.components is not None:
            self.lora_base = weights_hash(self.components.unet)
            lora.add_lora(self.components.unet, c.lora_rank, seed=c.seed)
        if self.grad_ckpt and self.components is not None:
            self.components.unet.enable_gradient_checkpointing()
            if self.components.text_encoder in self.trainable:
                self.components.text_encoder.gradient_checkpointing_enable()
        params = [p for m in self.trainable for p in m.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(params, c)
        # what the forward passes call: DDP wrappers with several processes, the modules themselves in one
        self.forward_modules, self.optimizer = self.dist.prepare(self.trainable, self.optimizer)
        # EMA of the UNet's trained weights (fp32, beside them on the device); the final model is the average
        self.ema: WeightEMA | None = None
        if c.ema_decay and self.components is not None:
            self.ema = WeightEMA(self.components.unet, c.ema_decay)
        self._validation_items: list[validation.ValidationItem] | None = None
        self.scaler = torch.amp.GradScaler("cuda") if self.autocast_dtype == torch.float16 else None

    def signature(self) -> dict[str, Any]:
        if self.components is not None:
            return architecture_signature(self.components)
        return {"vae": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.vae.config.items()
                        if k in ("block_out_channels", "latent_channels", "layers_per_block")}}

    # ------------------------------------------------------------------ checkpoints
    def checkpoints(self) -> list[Path]:
        if not self.ckpt_dir.is_dir():
            return []
        return sorted(p for p in self.ckpt_dir.glob("step-*") if (p / STATE_NAME).is_file())

    def save_checkpoint(self) -> Path:
        """Written by the main process (the weights are the same in all); every process returns when it is
        in place."""
        final = self.ckpt_dir / f"step-{self.step:07d}"
        if self.dist.is_main:
            self._replace_checkpoint(final)
        self.dist.wait()
        return final

    def _replace_checkpoint(self, final: Path) -> None:
        """The checkpoint written whole into a temporary folder, then renamed into place; old ones pruned."""
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.ckpt_dir / f".tmp-step-{self.step:07d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        with _whole_or_nothing(tmp, f"checkpoint {final}", self.checkpoints()):
            self._write_checkpoint(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in self.checkpoints()[: -self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def _write_checkpoint(self, tmp: Path) -> None:
        self._save_model(tmp, final=False)
        state = {
            "step": self.step, "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "config": self.config.to_dict(), "signature": self.signature(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "processes": self.dist.processes, "global_batch": self.config.batch_size * self.dist.processes,
            "lora": lora.trainable_state(self.components.unet) if self.lora_base else None,
            "lora_base": self.lora_base,
        }
        torch.save(state, tmp / STATE_NAME)

    def _save_model(self, folder: Path, final: bool) -> None:
        if self.components is None:
            folder.mkdir(parents=True, exist_ok=True)
            self.vae.save_pretrained(folder / "vae")
            if self.guide is not None:
                self.guide.save_pretrained(folder / GUIDE_PART)
            return
        self.components.config.recipe = self.recipe(final)
        if self.lora_base:  # adapters merged into a plain UNet: the checkpoint loads like any other
            save_components(dataclasses.replace(self.components, unet=lora.plain_unet(self.components.unet)), folder)
        else:
            save_components(self.components, folder)

    def recipe(self, final: bool) -> dict[str, Any]:
        c = self.config
        return {
            "state": "trained" if final else "training", "architecture": c.architecture, "stage": c.stage,
            "command": self.command, "seed": c.seed, "steps": self.step, "batch_size": c.batch_size,
            "data": c.data, "lr": c.lr, "lr_schedule": c.lr_schedule,
            "lambda": {"schedule": c.lambda_schedule, "max": c.lambda_max, "ef_t_max": c.ef_t_max,
                       "ef_fraction": c.ef_fraction},
            "text_dropout": c.text_dropout, "init_from": c.init_from, "vae_from": c.vae_from,
            "processes": self.dist.processes, "global_batch": c.batch_size * self.dist.processes,
            "ema_decay": c.ema_decay,
            "train_config": c.to_dict(), "init_recipe": self.base_recipe,
        }

    def _resume(self) -> None:
        ckpts = self.checkpoints()
        if not ckpts:
            return
        latest = ckpts[-1]
        try:
            state = torch.load(latest / STATE_NAME, map_location="cpu", weights_only=False)
        except Exception as exc:  # a corrupt file must be named, not crash the run with a pickle trace
            raise CheckpointError(f"{latest / STATE_NAME}: cannot read trainer state ({exc})") from exc
        if state.get("signature") != self.signature():
            raise CheckpointError(
                f"{latest}: checkpoint of another architecture (saved {state.get('signature')}, this run builds "
                f"{self.signature()}); use a new output folder or the matching config")
        saved = TrainConfig.from_dict(state["config"]).to_dict()
        # batch_size is per process: it may change with the process count when the global batch stays
        changed = sorted(k for k, v in self.config.to_dict().items()
                         if saved.get(k) != v and k not in RESUMABLE_CHANGES | {"batch_size"})
        if changed:
            raise InputError(f"{latest}: cannot resume with changed setting(s) {', '.join(changed)} "
                             f"(only {', '.join(sorted(RESUMABLE_CHANGES))} may change); use a new output folder")
        saved_processes = int(state.get("processes", 1))
        saved_global = int(state.get("global_batch", saved["batch_size"]))
        if saved_global != self.config.batch_size * self.dist.processes:
            per_process = (f"; batch_size {saved_global // self.dist.processes} keeps it"
                           if saved_global % self.dist.processes == 0 else "")
            raise InputError(f"{latest}: trained with a global batch of {saved_global} ({saved_processes} "
                             f"process(es) × batch_size {saved_global // saved_processes}); this run has "
                             f"{self.dist.processes} × {self.config.batch_size}{per_process}")
        self._load_weights(latest)
        if self.lora_base:
            if state.get("lora_base") != self.lora_base:
                raise CheckpointError(f"{latest}: its LoRA adapters were trained on other base UNet weights than "
                                      f"{self.config.init_from or 'this run'}'s; use a new output folder")
            lora.load_trainable_state(self.components.unet, state.get("lora"), str(latest))
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state.get("ema"), str(latest))
        self.step = int(state["step"])
        if self.dist.is_main:
            self._truncate_log()
        logger.info("resumed from %s at step %d", latest, self.step)

    def _load_weights(self, folder: Path) -> None:
        from safetensors.torch import load_file

        parts: dict[str, torch.nn.Module] = {"vae": self.vae} if self.components is None else {
            "unet": self.components.unet, "text_encoder": self.components.text_encoder}
        if self.lora_base:  # unet/ holds the merged weights; the adapters come from trainer_state.pt
            del parts["unet"]
        if self.guide is not None:
            parts[GUIDE_PART] = self.guide
        for name, module in parts.items():
            files = sorted((folder / name).glob("*.safetensors"))
            if not files:
                raise CheckpointError(f"{folder}: {name}/ has no weights")
            state: dict[str, torch.Tensor] = {}
            for f in files:
                state.update(load_file(f))
            try:
                module.load_state_dict(state)
            except RuntimeError as exc:
                raise CheckpointError(f"{folder}: {name} weights do not fit this architecture ({exc})") from exc

    def _truncate_log(self) -> None:
        log = self.out / "log.jsonl"
        if log.is_file():
            keep = [ln for ln in log.read_text(encoding="utf-8").splitlines() if ln and json.loads(ln)["step"] <= self.step]
            tmp = log.with_suffix(".tmp")
            tmp.write_text("".join(k + "\n" for k in keep), encoding="utf-8")
            os.replace(tmp, log)

    # ------------------------------------------------------------------ training
    def lr_at(self, step: int) -> float:
        c = self.config
        lr = c.lr * min(1.0, (step + 1) / c.warmup_steps) if c.warmup_steps else c.lr
        if c.lr_schedule == "cosine":
            progress = min(1.0, step / max(1, c.steps - 1))
            lr *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
        return lr

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def losses(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        """The step's losses on ``batch`` (the trainable parts in train mode; no optimizer step)."""
        if self.components is None:
            return self._vae_losses(batch)
        c, comp, g = self.config, self.components, self.generator
        dev, shard = self.device, self.dist.shard
        rgb, gray = batch["rgb"].to(dev, non_blocking=True), batch["gray"].to(dev, non_blocking=True)
        # Every draw is made for the global batch (n × processes samples) and this process keeps its rows:
        # one process training the global batch draws the same numbers (coolcolor.train.distributed).
        n = rgb.shape[0]
        total, rows = n * shard.processes, shard.rows(n)
        with torch.no_grad():
            z0 = color_latents(self.vae, rgb, g, shard).float()
            zg = encode_gray_latents(self.vae, gray).float()
        drop = (torch.rand(total, generator=g) < c.text_dropout)[rows]
        captions = ["" if d else cap for d, cap in zip(drop.tolist(), batch["captions"], strict=True)]
        ids = comp.tokenizer(captions, padding="max_length", max_length=comp.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(dev)
        # The first k samples are the L_EF samples, with t < ef_t_max. They are drawn the same way whatever
        # the λ schedule, so runs that differ only in λ see the same data, noise and timesteps.
        k_total = round(c.ef_fraction * total)
        t = torch.randint(0, comp.scheduler.config.num_train_timesteps, (total,), generator=g)
        t[:k_total] = torch.randint(0, c.ef_t_max, (k_total,), generator=g)
        noise = shard.randn(n, z0.shape[1:], g).to(dev)
        theta_all = random_affine(max(k_total, 1), g)
        k = shard.first_rows(k_total, n)  # this shard's L_EF samples: its first k
        theta = theta_all[rows][:k] if k else theta_all[:1]
        t = t[rows].to(dev)
        z_t = comp.scheduler.add_noise(z0, noise, t)
        lam = lambda_at(step, c.steps, c.lambda_schedule, c.lambda_max)
        unet, text_encoder = self._forward(comp.unet), self._forward(comp.text_encoder)
        with self._autocast():
            text = text_encoder(ids)[0]
            eps = unet(merge_gray(z_t, zg), t, encoder_hidden_states=text).sample.float()
            recon = F.mse_loss(eps, noise) if not c.snr_gamma else _min_snr_mse(eps, noise, self.alphas_cumprod[t],
                                                                                 c.snr_gamma)
            out = {"recon": recon, "lambda": torch.tensor(lam)}
            if lam > 0 and k > 0:

                def eps_fn(x_t: torch.Tensor, z_gray: torch.Tensor) -> torch.Tensor:
                    return unet(merge_gray(x_t, z_gray), t[:k], encoder_hidden_states=text[:k]).sample.float()

                # L_EF is one masked mean over all the global batch's L_EF samples: a shard divides its
                # sum by the whole batch's mask (known from θ), times the processes DDP averages over
                mask_sum = None if shard.processes == 1 else float(
                    in_frame_mask(theta_all[:k_total], tuple(z0.shape[-2:])).sum() * z0.shape[1] / shard.processes)
                ef = ef_loss(eps_fn, comp.scheduler, z0[:k], zg[:k], noise[:k], t[:k], theta.to(dev),
                             eps=eps[:k], z_t=z_t[:k], mask_sum=mask_sum)
                out["ef"] = ef
                out["loss"] = recon + lam * ef
            else:
                out["ef"] = torch.tensor(0.0)
                out["loss"] = recon
        return out

    def _forward(self, module: torch.nn.Module) -> torch.nn.Module:
        """What a forward pass of ``module`` calls: its DDP wrapper when it is trained by several processes."""
        for trained, forward in zip(self.trainable, self.forward_modules, strict=True):
            if trained is module:
                return forward
        return module

    def _vae_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """Reconstruction of color frames and of gray frames (the VAE encodes both at sampling time).

        The product keeps only a*, b* of what the decoder makes (L* comes from the original), so
        ``ab_weight`` adds an L1 loss on the reconstructions' CIELab a*, b*: an RGB loss alone lets a small
        object's chroma blur into its surroundings, which costs little RGB error but flips its named color.
        """
        rgb = batch["rgb"].to(self.device)
        gray = batch["gray"].to(self.device)
        # Gray frames are only ever encoded (the UNet's condition): a decoder-only run skips them.
        n_gray = 0 if self.config.vae_train == "decoder" else rgb.shape[0] // 4
        x = torch.cat([rgb[n_gray:], gray[:n_gray, None].expand(-1, 3, -1, -1)]) * 2 - 1
        with self._autocast():
            dist = self.vae.encode(x).latent_dist
            # A guided decoder sees the input the pipeline gives it: the (damaged) gray frame of the target.
            y = decode(self.vae, dist.sample(self.generator), self.guide, gray[n_gray:]).float()
        rec = F.l1_loss(y, x) + F.mse_loss(y, x)
        kl = dist.kl().mean().float() / x[0].numel()
        out = {"recon": rec, "kl": kl, "loss": rec + self.config.kl_weight * kl}
        if self.config.ab_weight:
            out["ab"] = F.l1_loss(_ab(y), _ab(x)) / 100
            out["loss"] = out["loss"] + self.config.ab_weight * out["ab"]
        return out

    def train_step(self, batch: dict) -> dict[str, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        out = self.losses(batch, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if self.scaler:
            self.dist.backward(self.scaler.scale(out["loss"]))
            self.scaler.unscale_(self.optimizer)
        else:
            self.dist.backward(out["loss"])
        out = self.dist.mean(out)  # with several processes: the global batch's losses, the same in each
        if not torch.isfinite(out["loss"]):
            raise CheckpointError(f"loss is {float(out['loss'])} at step {self.step}; stopping before saving it "
                                  f"(the last checkpoint in {self.ckpt_dir} is intact)")
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.step)
        self.step += 1
        faults.hit("train_step")
        return {k: float(v.detach()) for k, v in out.items()}

    def run(self, progress: bool = True) -> Path:
        """Train (resuming from the run folder's latest checkpoint) and write ``OUTPUT/final``.

        ``threads`` applies for the run only. On a machine shared with other jobs one thread is far faster
        than several: measured here, a VAE step took 2.7 s with 2 threads and 0.3 s with 1 (OpenMP workers
        waiting on each other when a core is taken).
        """
        previous_threads = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            return self._run(progress)
        finally:
            torch.set_num_threads(previous_threads)

    def _run(self, progress: bool) -> Path:
        c = self.config
        self._build()  # bad input (a wrong init_from, a missing VAE) fails before the run folder exists
        self.out.mkdir(parents=True, exist_ok=True)
        self._resume()
        source = self._source()
        main = self.dist.is_main  # with several processes, one writes the run folder
        if main:
            _atomic_json(self.out / "config.json", c.to_dict())
            (self.out / "command.txt").write_text(self.command + "\n", encoding="utf-8")
        workers = resolve_workers(c.loader_workers, self.device, self.dist.processes)
        batches = iter(step_batches(source, c.batch_size, self.step, c.steps, workers, self.device,
                                    first=self.dist.shard.rank * c.batch_size))
        from tqdm import tqdm

        bar = tqdm(total=c.steps, initial=self.step, disable=not (progress and main), dynamic_ncols=True,
                   desc=f"train {c.stage}")
        # Several processes stop on a flag, at a step they agree on (a KeyboardInterrupt would strike each
        # at another point); one process keeps Ctrl-C as an immediate KeyboardInterrupt.
        stop_signals = (signal.SIGTERM,) if self.dist.processes == 1 else (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.getsignal(sig) for sig in stop_signals}
        with contextlib.suppress(ValueError):  # not the main thread: no signal handling
            for sig in stop_signals:
                signal.signal(sig, self._on_term)
        log_path = self.out / "log.jsonl" if main else Path(os.devnull)
        start, log = time.time(), log_path.open("a", encoding="utf-8")
        try:
            while self.step < c.steps:
                if self.dist.any(self._stop):
                    raise KeyboardInterrupt
                values = self.train_step(next(batches))
                values["step"] = self.step
                self.history.append(values)
                bar.update(1)
                bar.set_postfix({"loss": f"{values['loss']:.4f}", **({"λ": f"{values['lambda']:.1e}"} if "lambda" in values else {})})
                if self.step % c.log_every == 0 or self.step == c.steps:
                    values.update(lr=self.lr_at(self.step - 1), seconds=round(time.time() - start, 1))
                    log.write(json.dumps(values) + "\n")
                    log.flush()
                if self.step % c.checkpoint_every == 0 and self.step < c.steps:
                    self.save_checkpoint()
                if c.validation_every and self.step % c.validation_every == 0 and main:  # one writer
                    self.write_validation()
        except KeyboardInterrupt:
            log.flush()
            path = self.save_checkpoint()
            bar.close()
            logger.warning("stopped at step %d; checkpoint saved to %s", self.step, path)
            raise
        finally:
            log.close()
            for sig, handler in previous.items():
                with contextlib.suppress(ValueError):
                    signal.signal(sig, handler)
        bar.close()
        self.save_checkpoint()
        final = self.finish() if main else self.out / "final"
        self.dist.wait()
        return final

    def write_validation(self) -> Path:
        """Colorize the run's validation set with the weights the final model would get now (see
        ``train.validation``); training's RNG streams and modules are left as they were."""
        assert self.components is not None
        if self._validation_items is None:
            self._validation_items = validation.validation_set(self.config)
        unet = lora.plain_unet(self.components.unet, None if self.ema is None else self.ema.averages)
        return validation.write_validation(self.out, self.step, self.components, unet, self._validation_items,
                                           self.config.validation_steps, self.ema is not None, self.device)

    def _on_term(self, signum, frame) -> None:
        self._stop = True

    def finish(self) -> Path:
        """Write ``OUTPUT/final`` atomically: the model, eval-mode, without optimizer state."""
        final, tmp = self.out / "final", self.out / f".tmp-final-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        if self.components is None and self.config.vae_train == "all":  # a frozen encoder keeps its factor
            set_scaling_factor(self.vae, self._source(), self.config.resolution, self.device)
        for m in self.trainable:
            m.eval().requires_grad_(False)
        if self.ema is not None:  # the final model is the average
            self.ema.copy_to()
        with _whole_or_nothing(tmp, f"final model {final}", self.checkpoints()):
            self._save_model(tmp, final=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return final


@contextlib.contextmanager
def _whole_or_nothing(tmp: Path, what: str, kept: list[Path]):
    """Writing ``tmp`` (renamed into place afterwards): on any failure it is removed, and a failed write (a
    full disk) becomes one line that says what could not be written and which checkpoint is intact."""
    try:
        yield
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            last = f"the last checkpoint, {kept[-1]}, is intact" if kept else "no earlier checkpoint exists"
            raise CheckpointError(f"cannot write the {what} ({describe_os_error(exc)}); nothing of it was kept and "
                                  f"{last}") from exc
        raise


def set_scaling_factor(vae: AutoencoderKL, source, resolution: int, device: torch.device, batches: int = 4) -> float:
    """SD's recipe: scaling_factor = 1 / std of the latents, so the diffusion sees unit-variance data."""
    generator = torch.Generator("cpu").manual_seed(0)  # the factor is part of the model: it must reproduce
    with torch.no_grad():
        vae.eval()
        z = torch.cat([vae.encode(source.batch(10_000_000 + b, 32)["rgb"].to(device) * 2 - 1).latent_dist.sample(
            generator) for b in range(batches)])
    factor = float(1.0 / z.std())
    vae.register_to_config(scaling_factor=factor)
    return factor
