"""Turn a finished run into the shipped default model: copy ``final/`` and record its history.

    python -m coolcolor.train.package RUN VAE_RUN DEST [--results results.json] [--code-commit SHA]

VAE_RUN is the VAE that ships: the UNet's own, or a decoder fine-tune of it (same encoder, checked),
with its decoder guide if the run trained one (``decoder_guide``). It may also be an already packaged
model (a folder with ``coolcolor.json``, e.g. the shipped default): its VAE ships again, with the VAE
history that model recorded — how a new UNet is trained on the shipped VAE
(``--set vae_from=backend/coolcolor/default_model/coolcolor-tiny``) without its run folders. A decoder
fine-tune may start from a packaged model too; its history then continues that model's.

RUN may likewise be a packaged model: its UNet and text encoder ship again with the UNet history it
recorded — how a new decoder is packaged with the shipped UNet without that UNet's run folder.

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
from coolcolor.model.decoder_guide import GUIDE_PART


def package(run: Path, vae_run: Path, dest: Path, results: Path | None = None, code_commit: str | None = None) -> Path:
    """``vae_run`` is the VAE stage whose VAE ships: the one the UNet was trained on, or a decoder fine-tune
    of it (``vae_train = decoder``), which must keep the UNet's encoder bit for bit."""
    unet_packaged = (run / CONFIG_NAME).is_file()
    source = run if unet_packaged else run / "final"
    if not (source / CONFIG_NAME).is_file():
        raise CheckpointError(f"{run}: no finished model (expected {source / CONFIG_NAME})")
    packaged = (vae_run / CONFIG_NAME).is_file()
    vae_folder = vae_run if packaged else vae_run / "final"
    shipped_vae = vae_folder / "vae"
    if not (shipped_vae / "config.json").is_file():
        raise CheckpointError(f"{vae_run}: no finished VAE (expected {shipped_vae / 'config.json'})")
    _check_same_encoder(source / "vae", shipped_vae)
    config = CoolColorConfig.from_file(source / CONFIG_NAME)
    vae_recipe, vae_commands, vae_seconds = (_packaged_vae_history(vae_run) if packaged else _run_vae_history(vae_run))
    if unet_packaged:
        unet_commands, unet_seconds = _packaged_unet_history(run)
    else:
        unet_commands = [*_base_commands(config.recipe), _fine_tune_command(config.recipe)]
        unet_seconds = {**_base_seconds(config.recipe), "unet": _run_seconds(run)}
    config.recipe["vae"] = vae_recipe
    config.provenance = {
        "trained_by": "coolcolor.train (this repository)",
        "data": "old-film world rendered on the fly, world seeds < 1e9 (held-out evaluation seeds ≥ 1e9)",
        "reproduce": [*vae_commands, *unet_commands],
        "training_seconds": {**vae_seconds, **unet_seconds},
    }
    if _uses_real_data(config.recipe):
        config.provenance["data"] += ("; real photographs and cut-outs of the real-footage catalog's training items "
                                      "(coolcolor/real/catalog.json; its evaluation items are never trained on)")
        config.provenance["reproduce"].insert(0, "coolcolor real install")
        config.provenance["real_data"] = real_data_record()
    if code_commit:
        config.provenance["code_commit"] = code_commit
    if results:
        config.provenance["results"] = json.loads(results.read_text(encoding="utf-8"))
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    for part in ("vae", GUIDE_PART):  # the decoder and its guide were trained together: both or neither travel
        shutil.rmtree(tmp / part, ignore_errors=True)
        if (vae_folder / part / "config.json").is_file():
            shutil.copytree(vae_folder / part, tmp / part)
    config.provenance["weights_hash"] = load_components(tmp).weights_hash()
    (tmp / CONFIG_NAME).write_text(config.to_json(), encoding="utf-8")
    for f in tmp.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)  # safetensors writes 0600; package data must be readable
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest


def _uses_real_data(recipe: dict | None) -> bool:
    """Whether any UNet stage of the model (its run or a base it was fine-tuned from) drew real views."""
    while isinstance(recipe, dict) and recipe:
        if ((recipe.get("train_config") or {}).get("real_share") or 0) > 0:
            return True
        recipe = recipe.get("init_recipe")
    return False


def real_data_record() -> dict:
    """The model card's record of the real training data: every file by package, path, sha256 and licence."""
    from coolcolor.real.catalog import load_catalog

    catalog = load_catalog()
    return {
        "install": "coolcolor real install (Debian packages via apt-get download + dpkg-deb; pip packages as installed)",
        "packages": {name: {"kind": p.kind, "version": p.version, "licence": p.licence}
                     for name, p in catalog.packages.items()},
        "held_out_for_evaluation": [i.id for i in catalog.select("eval")],
        "training_files": [{"id": i.id, "package": i.package, "path": i.path, "sha256": i.sha256,
                            "licence": catalog.licence(i)} for i in catalog.select("train")],
    }


def _run_vae_history(vae_run: Path) -> tuple[dict, list[str], dict[str, float | None]]:
    """The VAE recipe, the commands that reproduce it and their seconds, from VAE-stage run folders."""
    vae_runs, packaged_start = _vae_chain(vae_run)
    vae_config = json.loads((vae_run / "config.json").read_text(encoding="utf-8"))
    recipe = {"command": _command(vae_run), "seed": vae_config["seed"], "steps": vae_config["steps"],
              "train_config": vae_config}
    earlier = [json.loads((r / "config.json").read_text(encoding="utf-8")) for r in vae_runs[:-1]]
    commands = [_command(r) for r in vae_runs]
    seconds = {f"vae:{r.name}": _run_seconds(r) for r in vae_runs}
    if packaged_start is not None:
        # The chain began at a packaged model, which packaging may be about to replace: reproduced, its first
        # run must start from what the packaged model's own last VAE command leaves (that run's output folder).
        base_recipe, base_commands, base_seconds = _packaged_vae_history(packaged_start)
        if base_recipe.get("command") in commands:  # packaged already: its history would count the runs twice
            raise CheckpointError(f"{packaged_start} already holds {vae_run}'s VAE, so it is no longer the model the run "
                                  f"started from; restore that model first (e.g. git checkout) and package again")
        output = (base_recipe.get("train_config") or {}).get("output")
        if not output:
            raise CheckpointError(f"{packaged_start}: its VAE recipe records no output folder, so the reproduce list "
                                  f"cannot say where {commands[0]!r} starts from")
        earlier = [*base_recipe.get("from", []), base_recipe["train_config"], *earlier]
        commands = [*base_commands, _with_setting(commands[0], "vae_from", output), *commands[1:]]
        seconds = {**base_seconds, **seconds}
    if earlier:
        recipe["from"] = earlier
    return recipe, commands, seconds


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


def _packaged_unet_history(model: Path) -> tuple[list[str], dict[str, float | None]]:
    """A packaged model's UNet commands (its reproduce list after the VAE stages) and their seconds."""
    provenance = CoolColorConfig.from_file(model / CONFIG_NAME).provenance or {}
    _, vae_commands, _ = _packaged_vae_history(model)
    commands = [c for c in provenance.get("reproduce", []) if c not in vae_commands]
    seconds = {k: v for k, v in (provenance.get("training_seconds") or {}).items() if not k.startswith("vae:")}
    return commands, seconds


def _command(run: Path) -> str:
    return (run / "command.txt").read_text(encoding="utf-8").strip()


def _vae_chain(vae_run: Path) -> tuple[list[Path], Path | None]:
    """The VAE-stage runs behind ``vae_run`` (its ``vae_from``, and so on), oldest first, and the packaged
    model the oldest started from, if one did.

    ``vae_from`` paths are as the command gave them, relative to the folder the commands ran in (the
    repository root), which is where packaging runs too."""
    chain = [vae_run]
    while (start := json.loads((chain[0] / "config.json").read_text(encoding="utf-8")).get("vae_from")):
        if (Path(start) / CONFIG_NAME).is_file():
            return chain, Path(start)
        if len(chain) > 8 or not (Path(start) / "config.json").is_file():
            raise CheckpointError(f"{chain[0]}: its vae_from {start} is not a VAE-stage run folder here")
        chain.insert(0, Path(start))
    return chain, None


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
    return _with_setting(command, "init_from", str(Path(output) / "final"))


def _with_setting(command: str, key: str, value: str) -> str:
    """``command`` with ``--set key=value``: the command's own ``--set key=…`` replaced, else appended."""
    words = shlex.split(command)
    for i in range(len(words) - 1):
        if words[i] == "--set" and words[i + 1].startswith(f"{key}="):
            words[i + 1] = f"{key}={value}"
            return shlex.join(words)
    return f"{command} --set {key}={shlex.quote(value)}"


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
