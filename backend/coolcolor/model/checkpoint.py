"""Checkpoint folders (docs/architecture.md#the-model): diffusers layout + ``coolcolor.json``.

    unet/  vae/  text_encoder/  tokenizer/  scheduler/  coolcolor.json  [decoder_guide/]

Every part is written and read by its own library's ``save_pretrained``/``from_pretrained``, so a
CoolColor checkpoint is an ordinary diffusers folder that any tool of the field can open; only
``coolcolor.json`` is ours, and the optional ``decoder_guide/`` (a gray-guided decoder,
``model.decoder_guide``) is a diffusers ``ModelMixin`` part like the others. Nothing here ever
reaches for the network: paths are local folders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder must never turn into a hub lookup

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from coolcolor.errors import CheckpointError
from coolcolor.model.attention import keyframe_attention_problem
from coolcolor.model.decoder_guide import GUIDE_PART, DecoderGuide, check_guide_fits
from coolcolor.model.unet import F_IN_LAYOUT, add_gray_input, has_gray_input

CONFIG_NAME = "coolcolor.json"
FORMAT_VERSION = 1
MODEL_PARTS = ("unet", "vae", "text_encoder")
PARTS = (*MODEL_PARTS, "tokenizer", "scheduler")
GRAY_LATENT_CONVENTION = "vae.encode(gray as RGB in [-1, 1]).latent_dist.mode() * vae.config.scaling_factor"


def encode_gray_latents(vae: AutoencoderKL, gray: torch.Tensor) -> torch.Tensor:
    """z_gray for gray frames (n×h×w in [0, 1]) by ``GRAY_LATENT_CONVENTION``: the one definition that
    training and sampling share, recorded in every checkpoint's coolcolor.json."""
    x = (gray * 2 - 1).unsqueeze(1).expand(-1, 3, -1, -1).to(vae.dtype)
    return vae.encode(x).latent_dist.mode() * vae.config.scaling_factor


@dataclass
class CoolColorConfig:
    """What ``coolcolor.json`` records beyond the diffusers parts: how to feed the model, and its history."""

    resolution: int
    format_version: int = FORMAT_VERSION
    f_in_layout: str = F_IN_LAYOUT
    gray_latent: str = GRAY_LATENT_CONVENTION
    recipe: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_file(cls, path: Path) -> CoolColorConfig:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: cannot read coolcolor.json ({exc})") from exc
        if not isinstance(data, dict):
            raise CheckpointError(f"{path}: coolcolor.json must hold a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"{path}: unknown keys in coolcolor.json: {', '.join(unknown)}")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: format_version {version!r} is not supported (this build reads {FORMAT_VERSION})"
            )
        for key, expected in (("f_in_layout", F_IN_LAYOUT), ("gray_latent", GRAY_LATENT_CONVENTION)):
            if data.get(key, expected) != expected:
                raise CheckpointError(f"{path}: {key} {data[key]!r} differs from this build's {expected!r}")
        resolution = data.get("resolution")
        if not isinstance(resolution, int) or resolution < 8 or resolution % 8:
            raise CheckpointError(f"{path}: resolution must be a positive multiple of 8, got {resolution!r}")
        return cls(**data)


@dataclass
class Components:
    """The loaded parts of a checkpoint."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    scheduler: DDIMScheduler
    config: CoolColorConfig
    # Optional: steers the VAE decoder with the gray frame (model.decoder_guide); None decodes as plain SD.
    decoder_guide: DecoderGuide | None = None
    # The canonical hash of the weights as stored, kept when they were cast to a lossy dtype (fp16,
    # bf16), whose values no longer give it back. None while the modules hold the fp32 values.
    stored_hash: str | None = field(default=None, repr=False, compare=False)

    def weights_hash(self) -> str:
        """The model's identity: what EXR headers, job manifests, the daemon's cache and
        ``coolcolor.json``'s provenance all name it by (``weights_hash`` over UNet, VAE, text encoder).
        Canonical: the same on every device and in every dtype the model was loaded in."""
        if self.stored_hash is not None:
            return self.stored_hash
        return weights_hash(*self.modules())

    def modules(self) -> tuple[torch.nn.Module, ...]:
        """The parts with weights, in the order the weights hash takes them (a guide, when there is one, last)."""
        guide = () if self.decoder_guide is None else (self.decoder_guide,)
        return (self.unet, self.vae, self.text_encoder, *guide)

    def cast(self, device: str | torch.device, dtype: torch.dtype | None = None) -> None:
        """Move (and cast) the modules; the identity is taken first when the cast would lose it."""
        if dtype is not None and dtype != torch.float32 and self.stored_hash is None:
            self.stored_hash = self.weights_hash()
        for module in self.modules():
            _place(module, device, dtype)


def _weights_present(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


def missing_parts(path: Path, *, with_coolcolor_json: bool) -> list[str]:
    """What a checkpoint folder lacks, one readable entry per missing piece."""
    missing = []
    for part in MODEL_PARTS:
        folder = path / part
        if not (folder / "config.json").is_file():
            missing.append(f"{part}/config.json")
        if not _weights_present(folder):
            missing.append(f"{part}/ weights (*.safetensors or *.bin)")
    if not any((path / "tokenizer" / name).is_file() for name in ("tokenizer_config.json", "tokenizer.json", "vocab.json")):
        missing.append("tokenizer/ (tokenizer_config.json, tokenizer.json or vocab.json)")
    if not (path / "scheduler" / "scheduler_config.json").is_file():
        missing.append("scheduler/scheduler_config.json")
    if with_coolcolor_json and not (path / CONFIG_NAME).is_file():
        missing.append(CONFIG_NAME)
    return missing


def _require_folder(path: str | os.PathLike, what: str, *, with_coolcolor_json: bool) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{what} {folder} is not a folder")
    missing = missing_parts(folder, with_coolcolor_json=with_coolcolor_json)
    if missing:
        raise CheckpointError(f"{what} {folder} is missing: {'; '.join(missing)}")
    return folder


def ddim_scheduler(config: dict[str, Any]) -> DDIMScheduler:
    """DDIM from any SD scheduler config, with ``clip_sample=False`` (SD latents are not bounded to ±1)."""
    return DDIMScheduler.from_config(config, clip_sample=False, set_alpha_to_one=False)


def load_components(
    path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> Components:
    """The parts on ``device`` in ``dtype`` (fp32 by default).

    Each part is read in fp32 and cast afterwards, so that the canonical hash (``Components.weights_hash``)
    is taken from the stored values whatever ``dtype`` the model runs in: one part at a time, so the
    fp32 copy never exceeds one part's size.
    """
    folder = _require_folder(path, "checkpoint", with_coolcolor_json=True)
    config = CoolColorConfig.from_file(folder / CONFIG_NAME)
    dtype = dtype or torch.float32
    lossy = dtype != torch.float32
    digest = hashlib.sha256()

    def placed(index: int, module: torch.nn.Module) -> Any:
        if lossy:
            _hash_module(digest, index, module)
        return _place(module, device, dtype)

    try:
        unet = placed(0, UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32))
        vae = placed(1, AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32))
        text_encoder = placed(2, AutoModel.from_pretrained(folder / "text_encoder", dtype=torch.float32))
        tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
        scheduler = ddim_scheduler(DDIMScheduler.load_config(folder / "scheduler"))
        guide = None
        if (folder / GUIDE_PART / "config.json").is_file():
            guide = placed(3, DecoderGuide.from_pretrained(folder / GUIDE_PART, torch_dtype=torch.float32))
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {folder}: cannot load ({exc})") from exc
    if not has_gray_input(unet):
        raise CheckpointError(
            f"checkpoint {folder}: unet takes {unet.config.in_channels} input channels, not "
            f"{2 * unet.config.out_channels}; it has no F_in (convert SD-1.5 with `coolcolor init --from-sd15`)"
        )
    check_compatible(unet, vae, text_encoder, f"checkpoint {folder}")
    if guide is not None:
        check_guide_fits(guide, vae, f"checkpoint {folder}")
    components = Components(unet, vae, text_encoder, tokenizer, scheduler, config, decoder_guide=guide,
                            stored_hash=digest.hexdigest() if lossy else None)
    for module in components.modules():
        module.eval().requires_grad_(False)
    return components


def _place(module: Any, device: str | torch.device, dtype: torch.dtype | None) -> Any:
    """``module.to(device, dtype)`` without diffusers' warning about casting with ``to()``: it lists no
    module to keep in fp32 for these models (``_keep_in_fp32_modules`` is empty), so it says nothing."""
    import logging

    quiet = logging.getLogger("diffusers.models.modeling_utils")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return module.to(device) if dtype is None else module.to(device=device, dtype=dtype)
    finally:
        quiet.setLevel(level)


def checkpoint_weights_hash(path: str | os.PathLike) -> str:
    """The canonical hash of a checkpoint folder's weights (loads them on the CPU in fp32)."""
    return load_components(path).weights_hash()


def check_compatible(unet: UNet2DConditionModel, vae: AutoencoderKL, text_encoder: PreTrainedModel, where: str) -> None:
    """The parts must fit each other and the sampler: keyframe attention's layers, latent channels, text width.

    Run by ``init`` before it writes anything and by every load, so a folder of the wrong architecture is
    refused with a message naming what was expected and what was found, never deep inside sampling.
    """
    problem = keyframe_attention_problem(unet)
    if problem:
        raise CheckpointError(f"{where}: unet: {problem}")
    if vae.config.latent_channels != unet.config.out_channels:
        raise CheckpointError(
            f"{where}: vae latent_channels {vae.config.latent_channels} != unet out_channels {unet.config.out_channels}"
        )
    width = getattr(text_encoder.config, "hidden_size", None)
    if width != unet.config.cross_attention_dim:
        raise CheckpointError(
            f"{where}: text encoder width {width} != unet cross_attention_dim {unet.config.cross_attention_dim}"
        )


def save_components(components: Components, path: str | os.PathLike) -> Path:
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    components.unet.save_pretrained(folder / "unet")
    components.vae.save_pretrained(folder / "vae")
    components.text_encoder.save_pretrained(folder / "text_encoder")
    components.tokenizer.save_pretrained(folder / "tokenizer")
    components.scheduler.save_pretrained(folder / "scheduler")
    if components.decoder_guide is not None:
        components.decoder_guide.save_pretrained(folder / GUIDE_PART)
    (folder / CONFIG_NAME).write_text(components.config.to_json(), encoding="utf-8")
    return folder


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{what}: cannot read {path.name} ({exc})") from exc


def check_sd15_layout(sd_dir: str | os.PathLike) -> Path:
    """Raise ``CheckpointError`` naming what makes ``sd_dir`` not a Stable Diffusion 1.5 diffusers folder."""
    folder = _require_folder(sd_dir, "SD-1.5 folder", with_coolcolor_json=False)
    what = f"SD-1.5 folder {folder}"
    index = folder / "model_index.json"
    if index.is_file():
        name = _read_json(index, what).get("_class_name")
        if name != "StableDiffusionPipeline":
            raise CheckpointError(f"{what}: model_index.json names {name!r}, not StableDiffusionPipeline")
    unet = _read_json(folder / "unet" / "config.json", what)
    if unet.get("_class_name") != "UNet2DConditionModel":
        raise CheckpointError(f"{what}: unet is {unet.get('_class_name')!r}, not UNet2DConditionModel")
    if unet.get("in_channels") != 4 or unet.get("out_channels") != 4:
        raise CheckpointError(
            f"{what}: unet has in/out channels {unet.get('in_channels')}/{unet.get('out_channels')}, SD-1.5 has 4/4"
        )
    vae = _read_json(folder / "vae" / "config.json", what)
    if vae.get("_class_name") != "AutoencoderKL" or vae.get("latent_channels") != 4:
        raise CheckpointError(f"{what}: vae must be an AutoencoderKL with 4 latent channels")
    return folder


def init_from_sd15(sd_dir: str | os.PathLike, out_dir: str | os.PathLike, resolution: int = 512) -> Path:
    """Turn a stock SD-1.5 diffusers folder into an untrained CoolColor checkpoint (zero F_in).

    Everything is checked before anything is written, and the checkpoint appears all at once (written
    beside ``out_dir``, then renamed), so a failure — a full disk included — leaves no half checkpoint.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 8 or resolution % 8:
        raise CheckpointError(f"resolution must be a positive multiple of 8, got {resolution!r}")
    source = check_sd15_layout(sd_dir)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"output {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        raise CheckpointError(f"output folder {out} exists and is not empty; refusing to overwrite it")
    try:
        unet = UNet2DConditionModel.from_pretrained(source / "unet")
        vae = AutoencoderKL.from_pretrained(source / "vae")
        text_encoder = AutoModel.from_pretrained(source / "text_encoder")
        tokenizer = AutoTokenizer.from_pretrained(source / "tokenizer")
        scheduler = ddim_scheduler(DDIMScheduler.load_config(source / "scheduler"))
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"SD-1.5 folder {source}: cannot load ({exc})") from exc
    check_compatible(unet, vae, text_encoder, f"SD-1.5 folder {source}")
    add_gray_input(unet)
    config = CoolColorConfig(
        resolution=resolution,
        recipe={"state": "untrained", "initialised_from": "stable-diffusion-1.5"},
        provenance={"source": str(source.resolve())},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")  # the umask's mode, unlike mkdtemp
    try:
        save_components(Components(unet, vae, text_encoder, tokenizer, scheduler, config), partial)
        os.replace(partial, out)  # onto a missing or empty folder: atomic on POSIX
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out


def weights_hash(*modules: torch.nn.Module) -> str:
    """The canonical weights hash: sha256 over every parameter and buffer (name, shape, fp32 bytes) of
    ``modules`` in a fixed order.

    Floating-point tensors are hashed as fp32 values, so the hash depends on neither the file format,
    the folder, the device nor an fp32→fp32 round trip; for modules cast to fp16/bf16 the identity of
    the stored weights is kept by ``load_components`` / ``Components.cast`` before the cast.
    """
    digest = hashlib.sha256()
    for index, module in enumerate(modules):
        _hash_module(digest, index, module)
    return digest.hexdigest()


def _hash_module(digest: Any, index: int, module: torch.nn.Module) -> None:
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu")
        if t.is_floating_point():
            t = t.to(torch.float32)
        t = t.contiguous().reshape(-1)
        digest.update(f"{index}:{name}:{t.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
