"""The embedded default model ``coolcolor-tiny``, shipped as package data and loaded with no network.

Its ``coolcolor.json`` records how it was trained (commands, seeds, steps, λ schedule) and what it
measured on held-out world clips. See ``coolcolor.train`` for the trainer that made it. Load it with
``coolcolor.model.resolve.resolve_model("default")``.
"""

from __future__ import annotations

from pathlib import Path

from coolcolor.errors import CheckpointError

DEFAULT_MODEL_NAME = "coolcolor-tiny"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / DEFAULT_MODEL_NAME


def default_model_path() -> Path:
    """The folder of the shipped model; a clear error if the installation lacks it."""
    if not (DEFAULT_MODEL_DIR / "coolcolor.json").is_file():
        raise CheckpointError(
            f"the default model {DEFAULT_MODEL_NAME} is not installed at {DEFAULT_MODEL_DIR} "
            "(package data missing); reinstall coolcolor or pass a model folder")
    return DEFAULT_MODEL_DIR

