"""The trainer's architectures are the presets' shapes (one source), and the shipped default model has them."""

from __future__ import annotations

from typing import Any

from coolcolor.default_model import DEFAULT_MODEL_DIR
from coolcolor.model.checkpoint import load_components
from coolcolor.model.presets import tiny_components
from coolcolor.train.model import ARCHITECTURES, architecture_signature, new_components, new_vae


def _signature(name: str) -> dict[str, Any]:
    return architecture_signature(new_components(name, new_vae(ARCHITECTURES[name], 0), 32, 0))


def _without_vocabulary(signature: dict[str, Any]) -> dict[str, Any]:
    """The shapes; the vocabulary grows with the captions a run brings (train.model.grow_vocabulary)."""
    return {part: {k: v for k, v in shapes.items() if k != "vocab_size"} for part, shapes in signature.items()}


def test_the_shipped_default_model_has_the_coolcolor_tiny_architecture():
    shipped = architecture_signature(load_components(str(DEFAULT_MODEL_DIR)))
    assert _without_vocabulary(shipped) == _without_vocabulary(_signature("coolcolor-tiny"))


def test_tiny_test_is_the_tiny_preset_with_one_text_layer():
    preset = _without_vocabulary(architecture_signature(tiny_components(0)))
    test_arch = _without_vocabulary(_signature("tiny-test"))
    assert preset["text_encoder"].pop("num_hidden_layers") == 2
    assert test_arch["text_encoder"].pop("num_hidden_layers") == 1
    assert test_arch == preset
