"""Loading what training starts from and what it made: the VAE (and its decoder guide) of a finished
VAE-stage run, the checkpoint a fine-tune starts from, a finished run's model.

The trainer's ``vae_from`` and ``init_from`` settings name these; each is read here, and a folder that is
not what the setting needs is one line saying so.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL

from coolcolor.errors import CheckpointError
from coolcolor.model.checkpoint import CONFIG_NAME, Components, check_sd15_layout, load_components
from coolcolor.model.decoder_guide import GUIDE_PART, DecoderGuide, check_guide_fits


def vae_folder(path: Path) -> Path:
    """Where the VAE of ``path`` is: a finished VAE-stage run folder's ``final/vae``, a model's ``vae/``, or
    a ``vae`` folder itself."""
    for candidate in (path / "final" / "vae", path / "vae", path):
        if (candidate / "config.json").is_file():
            return candidate
    raise CheckpointError(f"vae_from {path}: no finished VAE there (expected {path}/final/vae/config.json)")


def load_vae(path: Path) -> AutoencoderKL:
    folder = vae_folder(path)
    try:
        return AutoencoderKL.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"VAE folder {folder}: cannot load ({exc})") from exc


def load_guide(path: Path, vae: AutoencoderKL) -> DecoderGuide | None:
    """The decoder guide saved beside the VAE ``load_vae`` loads from ``path`` (its sibling
    ``decoder_guide/``), if there is one."""
    folder = vae_folder(path).parent / GUIDE_PART
    if not (folder / "config.json").is_file():
        return None
    try:
        guide = DecoderGuide.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"decoder guide {folder}: cannot load ({exc})") from exc
    check_guide_fits(guide, vae, str(folder))
    return guide


def load_init_checkpoint(folder: Path) -> Components:
    """The checkpoint a fine-tune starts from. A Stable Diffusion folder is named as one, with the command
    that converts it (or, for another architecture, what makes it not SD-1.5), rather than as a checkpoint
    that lacks coolcolor.json."""
    if folder.is_dir() and not (folder / CONFIG_NAME).is_file() and (folder / "model_index.json").is_file():
        try:
            check_sd15_layout(folder)
        except CheckpointError as exc:
            raise CheckpointError(f"init_from {folder} is neither a CoolColor checkpoint nor a Stable Diffusion 1.5 "
                                  f"folder to convert: {exc}") from exc
        raise CheckpointError(f"init_from {folder} is a Stable Diffusion 1.5 folder, not a CoolColor checkpoint; "
                              f"convert it first with `coolcolor init --from-sd15 {folder} OUT` and train with "
                              "init_from=OUT")
    return load_components(folder)


def load_trained(path: str | Path) -> Components:
    """A trained run's model (``OUTPUT/final`` or a checkpoint folder)."""
    p = Path(path)
    return load_components(p / "final" if (p / "final" / "coolcolor.json").is_file() else p)
