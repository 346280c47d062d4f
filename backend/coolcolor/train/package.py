"""Turn a finished run into the shipped default model: copy ``final/`` and record its history.

    python -m coolcolor.train.package RUN VAE_RUN DEST [--results results.json] [--code-commit SHA]

VAE_RUN is the VAE that ships: the UNet's own, or a decoder fine-tune of it (same encoder, checked).
It may also be an already packaged model (a folder with ``coolcolor.json``, e.g. the shipped default):
its VAE ships again, with the VAE history that model recorded — how a new UNet is trained on the
shipped VAE (``--set vae_from=backend/coolcolor/default_model/coolcolor-tiny``) without its run folders.

``coolcolor.json`` gets, under ``recipe``, the UNet run's command/seed/steps/λ schedule (already there)
plus the VAE stage's command and config; under ``provenance``, the commands that reproduce it (run
from the repository root at ``code_commit``), the wall-clock seconds each run took, the hash of the
weights those commands produce (the model hash its outputs carry), and the measured results, if given.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

import torch

from coolcolor.errors import CheckpointError
from coolcolor.model.checkpoint import CONFIG_NAME, CoolColorConfig, load_components


def package(run: Path, vae_run: Path, dest: Path, results: Path | None = None, code_commit: str | None = None) -> Path:
    """``vae_run`` is the VAE stage whose VAE ships: the one the UNet was trained on, or a decoder fine-tune
    of it (``vae_train = decoder``), which must keep the UNet's encoder bit for bit."""
    source = run / "final"
    if not (source / CONFIG_NAME).is_file():
        raise CheckpointError(f"{run}: no finished model (expected {source / CONFIG_NAME})")
    packaged = (vae_run / CONFIG_NAME).is_file()
    shipped_vae = vae_run / "vae" if packaged else vae_run / "final" / "vae"
    if not (shipped_vae / "config.json").is_file():
        raise CheckpointError(f"{vae_run}: no finished VAE (expected {shipped_vae / 'config.json'})")
    _check_same_encoder(source / "vae", shipped_vae)
    config = CoolColorConfig.from_file(source / CONFIG_NAME)
    vae_recipe, vae_commands, vae_seconds = (_packaged_vae_history(vae_run) if packaged else _run_vae_history(vae_run))
    config.recipe["vae"] = vae_recipe
    config.provenance = {
        "trained_by": "coolcolor.train (this repository)",
        "data": "old-film world rendered on the fly, world seeds < 1e9 (held-out evaluation seeds ≥ 1e9)",
        "reproduce": [*vae_commands, *_base_commands(config.recipe), _fine_tune_command(config.recipe)],
        "training_seconds": {**vae_seconds, **_base_seconds(config.recipe), "unet": _run_seconds(run)},
    }
    if code_commit:
        config.provenance["code_commit"] = code_commit
    if results:
        config.provenance["results"] = json.loads(results.read_text(encoding="utf-8"))
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    shutil.rmtree(tmp / "vae")
    shutil.copytree(shipped_vae, tmp / "vae")
    config.provenance["weights_hash"] = load_components(tmp).weights_hash()
    (tmp / CONFIG_NAME).write_text(config.to_json(), encoding="utf-8")
    for f in tmp.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)  # safetensors writes 0600; package data must be readable
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest


def _run_vae_history(vae_run: Path) -> tuple[dict, list[str], dict[str, float | None]]:
    """The VAE recipe, the commands that reproduce it and their seconds, from VAE-stage run folders."""
    vae_runs = _vae_chain(vae_run)
    vae_config = json.loads((vae_run / "config.json").read_text(encoding="utf-8"))
    recipe = {"command": _command(vae_run), "seed": vae_config["seed"], "steps": vae_config["steps"],
              "train_config": vae_config}
    if len(vae_runs) > 1:
        recipe["from"] = [json.loads((r / "config.json").read_text(encoding="utf-8")) for r in vae_runs[:-1]]
    return recipe, [_command(r) for r in vae_runs], {f"vae:{r.name}": _run_seconds(r) for r in vae_runs}


def _packaged_vae_history(model: Path) -> tuple[dict, list[str], dict[str, float | None]]:
    """The same, as a packaged model recorded it: its ``recipe.vae``, the VAE stages' commands (its
    reproduce list before the UNet's own commands) and their seconds."""
    config = CoolColorConfig.from_file(model / CONFIG_NAME)
    recipe = (config.recipe or {}).get("vae")
    provenance = config.provenance or {}
    if not recipe:
        raise CheckpointError(f"{model}: the packaged model records no VAE recipe (recipe.vae), so its VAE's "
                              "history cannot travel with it")
    own = {config.recipe.get("command"), *_base_commands(config.recipe)}
    if config.recipe.get("command"):
        own.add(_fine_tune_command(config.recipe))
    commands = [c for c in provenance.get("reproduce", []) if c not in own]
    seconds = {k: v for k, v in (provenance.get("training_seconds") or {}).items() if k.startswith("vae:")}
    return recipe, commands, seconds


def _command(run: Path) -> str:
    return (run / "command.txt").read_text(encoding="utf-8").strip()


def _vae_chain(vae_run: Path) -> list[Path]:
    """The VAE-stage runs behind ``vae_run`` (its ``vae_from``, and so on), oldest first.

    ``vae_from`` paths are as the command gave them, relative to the folder the commands ran in (the
    repository root), which is where packaging runs too."""
    chain = [vae_run]
    while (start := json.loads((chain[0] / "config.json").read_text(encoding="utf-8")).get("vae_from")):
        if len(chain) > 8 or not (Path(start) / "config.json").is_file():
            raise CheckpointError(f"{chain[0]}: its vae_from {start} is not a VAE-stage run folder here")
        chain.insert(0, Path(start))
    return chain


def _check_same_encoder(unet_vae: Path, shipped_vae: Path) -> None:
    """A UNet only fits the latents of the encoder it was trained on: refuse any other."""
    from diffusers import AutoencoderKL

    a, b = AutoencoderKL.from_pretrained(unet_vae), AutoencoderKL.from_pretrained(shipped_vae)
    enc_a = {k: v for k, v in a.state_dict().items() if k.startswith(("encoder.", "quant_conv."))}
    enc_b = {k: v for k, v in b.state_dict().items() if k.startswith(("encoder.", "quant_conv."))}
    same = enc_a.keys() == enc_b.keys() and all(torch.equal(enc_a[k], enc_b[k]) for k in enc_a)
    if not same or a.config.scaling_factor != b.config.scaling_factor:
        raise CheckpointError(f"{shipped_vae}: its encoder is not the one the UNet was trained on ({unet_vae}); "
                              "only a decoder fine-tune (vae_train = decoder) of that VAE can ship with it")


def _run_seconds(run: Path) -> float | None:
    """Training wall-clock time of a run folder: the ``seconds`` of its last log line."""
    log = run / "log.jsonl"
    if not log.is_file():
        return None
    lines = [ln for ln in log.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return json.loads(lines[-1]).get("seconds") if lines else None


def _fine_tune_command(recipe: dict) -> str:
    """The run's command as the reproduce list must give it. A fine-tune names the model it started from
    (``init_from``), often the packaged default itself, which packaging is about to replace; reproduced,
    it must start from what the list's previous command trains (that run's output folder's ``final``)."""
    command = recipe["command"]
    base = recipe.get("init_recipe")
    if not (recipe.get("init_from") and isinstance(base, dict) and base.get("command")):
        return command
    output = (base.get("train_config") or {}).get("output")
    if not output:
        raise CheckpointError("the fine-tune's base model records no output folder, so the reproduce list cannot "
                              f"say where its command leaves the base model: {base['command']}")
    return f"{command} --set init_from={shlex.quote(str(Path(output) / 'final'))}"


def _base_seconds(recipe: dict) -> dict[str, float]:
    """The UNet seconds a fine-tune's base model took, as that model recorded them, if it was packaged: its own
    and, when it was itself a fine-tune, its base's (``unet:base``), so a chain of fine-tunes adds up."""
    init_from = recipe.get("init_from")
    if not init_from or not (Path(init_from) / CONFIG_NAME).is_file():
        return {}
    seconds = (CoolColorConfig.from_file(Path(init_from) / CONFIG_NAME).provenance or {}).get("training_seconds") or {}
    if seconds.get("unet") is None:
        return {}
    return {"unet:base": round(float(seconds["unet"]) + float(seconds.get("unet:base") or 0.0), 1)}


def _base_commands(recipe: dict) -> list[str]:
    """Commands of the runs a fine-tune started from (``init_recipe`` chain), oldest first."""
    base = recipe.get("init_recipe")
    return [*_base_commands(base), _fine_tune_command(base)] if isinstance(base, dict) and base.get("command") else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coolcolor.train.package")
    parser.add_argument("run", type=Path)
    parser.add_argument("vae_run", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--results", type=Path)
    parser.add_argument("--code-commit", help="the repository commit the runs were trained at")
    args = parser.parse_args(argv)
    print(package(args.run, args.vae_run, args.dest, args.results, args.code_commit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
