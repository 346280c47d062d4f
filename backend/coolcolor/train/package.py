"""Turn a finished run into the shipped default model: copy ``final/`` and record its history.

    python -m coolcolor.train.package RUN VAE_RUN DEST [--results results.json] [--code-commit SHA]

``coolcolor.json`` gets, under ``recipe``, the UNet run's command/seed/steps/λ schedule (already there)
plus the VAE stage's command and config; under ``provenance``, the commands that reproduce it (run
from the repository root at ``code_commit``), the wall-clock seconds each run took, the hash of the
weights those commands produce (the model hash its outputs carry), and the measured results, if given.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from coolcolor.errors import CheckpointError
from coolcolor.model.checkpoint import CONFIG_NAME, CoolColorConfig, load_components


def package(run: Path, vae_run: Path, dest: Path, results: Path | None = None, code_commit: str | None = None) -> Path:
    source = run / "final"
    if not (source / CONFIG_NAME).is_file():
        raise CheckpointError(f"{run}: no finished model (expected {source / CONFIG_NAME})")
    config = CoolColorConfig.from_file(source / CONFIG_NAME)
    vae_config = json.loads((vae_run / "config.json").read_text(encoding="utf-8"))
    config.recipe["vae"] = {"command": (vae_run / "command.txt").read_text(encoding="utf-8").strip(),
                            "seed": vae_config["seed"], "steps": vae_config["steps"], "train_config": vae_config}
    config.provenance = {
        "trained_by": "coolcolor.train (this repository)",
        "data": "old-film world rendered on the fly, world seeds < 1e9 (held-out evaluation seeds ≥ 1e9)",
        "reproduce": [config.recipe["vae"]["command"], *_base_commands(config.recipe), config.recipe["command"]],
        "training_seconds": {"vae": _run_seconds(vae_run), "unet": _run_seconds(run)},
        "weights_hash": load_components(source).weights_hash(),
    }
    if code_commit:
        config.provenance["code_commit"] = code_commit
    if results:
        config.provenance["results"] = json.loads(results.read_text(encoding="utf-8"))
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    (tmp / CONFIG_NAME).write_text(config.to_json(), encoding="utf-8")
    for f in tmp.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)  # safetensors writes 0600; package data must be readable
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest


def _run_seconds(run: Path) -> float | None:
    """Training wall-clock time of a run folder: the ``seconds`` of its last log line."""
    log = run / "log.jsonl"
    if not log.is_file():
        return None
    lines = [ln for ln in log.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return json.loads(lines[-1]).get("seconds") if lines else None


def _base_commands(recipe: dict) -> list[str]:
    """Commands of the runs a fine-tune started from (``init_recipe`` chain), oldest first."""
    base = recipe.get("init_recipe")
    return [*_base_commands(base), base["command"]] if isinstance(base, dict) and base.get("command") else []


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
