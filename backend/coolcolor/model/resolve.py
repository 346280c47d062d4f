"""The one place that decides which model runs, on which device, in which dtype (docs/architecture.md#the-model).

``coolcolor colorize``, ``coolcolor serve`` and the benches all call :func:`resolve_model`, so a
model named the same way is found the same way, and the device defaults the same way everywhere:

* model ``spec``: ``None`` → ``$COOLCOLOR_MODEL`` if set, else ``"default"``; ``"default"`` (or
  ``"coolcolor-tiny"``) → the embedded default model; a training run folder (``RUN/final`` holds the
  finished checkpoint); a checkpoint folder (or its ``coolcolor.json``); :data:`TINY_PRESET` → the
  random-weight tiny preset that tests and benches use; :data:`SD15_PRESET` → SD-1.5's architecture
  with random weights, for GPU speed and memory figures (``coolcolor.model.presets``).
* ``device``: ``None`` → ``cuda`` when torch sees a GPU, else ``cpu``; an explicit device must exist.
* ``dtype``: ``None`` → fp16 on CUDA, fp32 elsewhere; ``fp32``/``fp16``/``bf16`` (or torch's names).

The model's identity (``ResolvedModel.hash``) is the canonical weights hash: it does not depend on
the device or dtype chosen here, so a job started on a GPU in fp16 resumes on a CPU in fp32.
Resolving the spec needs no torch (:func:`resolve_model_source`), so the daemon can check its
``--model`` before the slow imports and answer ``hello`` while the model loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coolcolor.errors import CheckpointError, CoolColorError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from coolcolor.model.pipeline import CoolColorPipeline

MODEL_ENV = "COOLCOLOR_MODEL"
DEFAULT_SPEC = "default"
TINY_PRESET = "preset:tiny"  # random weights (seed 0): tests and benches, never an artist's default
SD15_PRESET = "preset:sd15"  # SD-1.5's shapes, random weights (seed 0): GPU figures, never an artist's default
PRESET_PREFIX = "preset:"
PRESET_NAMES = ("tiny", "sd15")  # = coolcolor.model.presets.PRESETS, named here without importing torch
_CONFIG_NAME = "coolcolor.json"  # = checkpoint.CONFIG_NAME, without importing torch

# canonical short name → the names accepted for it
DTYPE_NAMES: dict[str, tuple[str, ...]] = {
    "fp32": ("fp32", "float32", "float"),
    "fp16": ("fp16", "float16", "half"),
    "bf16": ("bf16", "bfloat16"),
}


def resolve_model_source(spec: str | os.PathLike | None = None) -> tuple[str, str | None]:
    """``(name, checkpoint folder)`` for a model spec, or ``("preset:NAME", None)``; no torch needed.

    Raises ``CheckpointError`` naming the path and what it lacks.
    """
    if spec is None or str(spec) == "":
        spec = os.environ.get(MODEL_ENV) or DEFAULT_SPEC
    text = str(spec)
    if text.startswith(PRESET_PREFIX):
        if text.removeprefix(PRESET_PREFIX) not in PRESET_NAMES:
            raise CheckpointError(f"unknown model preset {text!r}; known: "
                                  f"{', '.join(PRESET_PREFIX + n for n in PRESET_NAMES)}")
        return text, None
    from coolcolor.default_model import DEFAULT_MODEL_NAME, default_model_path

    if text in (DEFAULT_SPEC, DEFAULT_MODEL_NAME):
        return DEFAULT_MODEL_NAME, str(default_model_path())  # CheckpointError if the package data is missing
    path = Path(text).expanduser()
    if path.is_file() and path.name == _CONFIG_NAME:
        path = path.parent
    if not path.exists():
        raise CheckpointError(f"model folder not found: {text} (give 'default', a training run folder or a "
                              "CoolColor checkpoint folder)")
    if not path.is_dir():
        raise CheckpointError(f"model {text} is a file, not a checkpoint folder")
    if (path / "final" / _CONFIG_NAME).is_file():  # a training run folder
        return path.resolve().name, str((path / "final").resolve())
    if (path / _CONFIG_NAME).is_file():
        return path.resolve().name, str(path.resolve())
    raise CheckpointError(f"model folder {text} has no {_CONFIG_NAME}: it is neither a CoolColor checkpoint nor a "
                          f"training run folder (final/{_CONFIG_NAME})")


def resolve_device(device: str | None = None) -> str:
    """``cuda`` when present else ``cpu`` for ``None``; an explicit device is checked to exist."""
    import torch

    if device is None or device == "":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise CoolColorError(f"unknown device {device!r}: use cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise CoolColorError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu")
        if parsed.index is not None and parsed.index >= count:
            raise CoolColorError(f"device {device!r} asked for, but torch sees {count} CUDA GPU(s)")
    elif parsed.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise CoolColorError(f"device {device!r} asked for, but MPS is not available")
    elif parsed.type != "cpu":
        raise CoolColorError(f"unsupported device {device!r}: use cpu, cuda or cuda:N")
    return str(parsed)


def dtype_name(dtype: str | None) -> str | None:
    """The canonical short name (fp32, fp16, bf16) of a dtype name; ``None`` stays ``None``."""
    if dtype is None or dtype == "":
        return None
    text = str(dtype).lower().removeprefix("torch.")
    for short, names in DTYPE_NAMES.items():
        if text in names:
            return short
    raise CoolColorError(f"unknown dtype {dtype!r}: use fp32, fp16 or bf16")


def resolve_dtype(dtype: str | None, device: str) -> str:
    """fp16 on CUDA and fp32 elsewhere for ``None``; otherwise the canonical name of ``dtype``."""
    return dtype_name(dtype) or ("fp16" if device.startswith("cuda") else "fp32")


def torch_dtype(name: str) -> torch.dtype:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name(name) or "fp32"]


@dataclass
class ResolvedModel:
    """A model chosen, with where it runs. ``hash`` is the canonical weights hash (see module doc)."""

    name: str  # "coolcolor-tiny", the checkpoint's or run's folder name, or "preset:NAME"
    path: str | None  # the checkpoint folder; None for a preset
    device: str
    dtype: str  # "fp32" | "fp16" | "bf16"
    _hash: str | None = field(default=None, repr=False, compare=False)

    @property
    def hash(self) -> str:
        """Computed from the weights as stored (fp32 values), once; loading the pipeline fills it too."""
        if self._hash is None:
            if self.path is None:
                from coolcolor.model.presets import preset_components

                self._hash = preset_components(self.name.removeprefix(PRESET_PREFIX), seed=0).weights_hash()
            else:
                from coolcolor.model.checkpoint import checkpoint_weights_hash

                self._hash = checkpoint_weights_hash(self.path)
        return self._hash

    def load_pipeline(self) -> CoolColorPipeline:
        """The pipeline on ``device`` in ``dtype`` (``CheckpointError`` naming what is wrong)."""
        from coolcolor.model.pipeline import CoolColorPipeline

        dtype = torch_dtype(self.dtype)
        if self.path is None:
            from coolcolor.model.presets import preset_components

            pipe = CoolColorPipeline(preset_components(self.name.removeprefix(PRESET_PREFIX), seed=0))
            pipe.to(self.device, dtype)
        else:
            pipe = CoolColorPipeline.from_pretrained(self.path, device=self.device, dtype=dtype)
        self._hash = pipe.model_hash
        return pipe

    def load_tokenizer(self) -> Any:
        """Only the tokenizer (``coolcolor words``, the daemon's ``known_words``): no weights are read."""
        if self.path is None:
            from coolcolor.model.presets import tiny_components

            return tiny_components(seed=0).tokenizer
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(Path(self.path) / "tokenizer")

    def describe(self) -> dict[str, Any]:
        """What the daemon logs and returns in ``hello_reply.model`` (hash included once known)."""
        return {"name": self.name, "path": self.path, "hash": self._hash, "device": self.device, "dtype": self.dtype}


def resolve_model(spec: str | os.PathLike | None = None, device: str | None = None,
                  dtype: str | None = None) -> ResolvedModel:
    """Choose the model, device and dtype (see the module docstring); loads nothing yet."""
    name, path = resolve_model_source(spec)
    resolved_device = resolve_device(device)
    return ResolvedModel(name=name, path=path, device=resolved_device, dtype=resolve_dtype(dtype, resolved_device))
