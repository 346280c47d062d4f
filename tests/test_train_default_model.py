"""The embedded default model ``coolcolor-tiny``: shipped, small, offline, reproducible, and it colors."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from coolcolor.default_model import DEFAULT_MODEL_DIR, default_model_path
from coolcolor.model.presets import tiny_pipeline
from coolcolor.model.resolve import resolve_model
from coolcolor.train.evaluate import evaluate_pipeline, evaluate_vae_ceiling, held_out_clips, markdown_table
from coolcolor.world import render_clip


def test_default_model_is_small_and_records_its_training():
    folder = default_model_path()
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size <= 50 * 2**20
    config = json.loads((folder / "coolcolor.json").read_text())
    recipe = config["recipe"]
    assert recipe["state"] == "trained" and recipe["architecture"] == "coolcolor-tiny"
    assert "coolcolor train --config" in recipe["command"] and isinstance(recipe["seed"], int)
    assert "coolcolor train --config" in recipe["vae"]["command"]
    # the decoder guide's run starts from the VAE run the list trains before it, never from this folder
    guide_runs = [c for c in config["provenance"]["reproduce"] if "coolcolor-tiny-vae-guide.json" in c]
    assert len(guide_runs) == 1 and "default_model" not in guide_runs[0]
    assert not list(folder.rglob("trainer_state.pt"))
    # The reproduce commands run from a checkout's root: no machine-specific absolute paths.
    assert all("/work/" not in c and " /" not in c for c in config["provenance"]["reproduce"])


def test_default_model_weights_are_the_ones_its_provenance_names():
    from coolcolor.model.checkpoint import weights_hash

    pipe = resolve_model("default", device="cpu").load_pipeline()
    # The same identity its outputs carry (EXR headers, manifests, the daemon's cache key).
    assert pipe.config.provenance["weights_hash"] == pipe.model_hash
    # Every part with weights, the gray-guided decoder included (model.decoder_guide).
    assert pipe.decoder_guide is not None
    assert pipe.model_hash == weights_hash(pipe.unet, pipe.vae, pipe.text_encoder, pipe.decoder_guide)


def test_default_model_loads_offline_and_colors_a_clip(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = resolve_model("default", device="cpu").load_pipeline()
    clip = render_clip(1_000_000_123, 2, (48, 40))
    result = pipe(clip.gray, prompt=clip.captions[0], keyframe=0, num_inference_steps=4, seed=1)
    assert result.rgb.shape == (2, 40, 48, 3) and np.isfinite(result.ab).all()
    assert float(np.abs(result.ab).mean()) > 2.0  # it colors, it does not return gray


def test_missing_default_model_is_a_clear_error(monkeypatch, tmp_path):
    import coolcolor.default_model as dm
    from coolcolor.errors import CheckpointError

    monkeypatch.setattr(dm, "DEFAULT_MODEL_DIR", tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="default model coolcolor-tiny is not installed"):
        dm.default_model_path()
    assert DEFAULT_MODEL_DIR.name == "coolcolor-tiny" and os.path.isdir(DEFAULT_MODEL_DIR)


def test_evaluation_reports_every_metric_on_held_out_clips():
    clips = held_out_clips(1, 2, 32)
    assert clips[0].seed >= 1_000_000_000
    scores = evaluate_pipeline(tiny_pipeline(0), clips, keyframe=True, steps=2)
    assert scores["named_layers"] == len(clips[0].caption_layers[0])
    assert 0 <= scores["text_adherence"] <= 1 and scores["delta_e2000"] > 0 and scores["flicker_ab_rms"] >= 0
    table = markdown_table({"settings": {"clips": 1, "frames": 2, "size": 32, "steps": 2, "guidance": 5.0,
                                         "seeds": [1, 1], "degradation": "old_film(1.0)"},
                            "truth": {"colorfulness": 30.0, "flicker_ab_rms": 0.1},
                            "models": {"m": {"keyframe_off": scores, "keyframe_on": scores,
                                             "vae_ceiling": evaluate_vae_ceiling(tiny_pipeline(0), clips)}}})
    assert "| m | on |" in table and "ground truth" in table and "| m: its VAE on the true colors (ceiling) |" in table


class _LosslessVAE:
    """Stands in for a VAE that reconstructs perfectly: the latent is the image itself (scaled)."""

    dtype = torch.float32
    config = SimpleNamespace(block_out_channels=(8, 8, 8), scaling_factor=0.5)

    def encode(self, x):
        return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: x.clone()))

    def decode(self, z):
        return SimpleNamespace(sample=z)


def test_vae_ceiling_of_a_lossless_vae_is_the_working_size_alone():
    """Only the shrink to 32 px and the finishing stand between the truth and the output: on clean clips every
    named color survives and ΔE2000 stays small; a lossy VAE (the tiny random one) loses colors."""
    clips = held_out_clips(3, 2, 64, degradation=0.0)
    pipe = tiny_pipeline(0)
    pipe.vae = _LosslessVAE()
    lossless = evaluate_vae_ceiling(pipe, clips)
    assert lossless["named_layers"] == sum(len(c.caption_layers[0]) for c in clips)
    assert lossless["text_adherence"] == 1.0 and lossless["delta_e2000"] < 3.0
    random_vae = evaluate_vae_ceiling(tiny_pipeline(0), clips)
    assert random_vae["delta_e2000"] > 3 * lossless["delta_e2000"]
