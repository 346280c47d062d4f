"""Shared fixtures: the tiny preset and a tiny folder in Stable Diffusion 1.5's diffusers layout."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tiny_pipe():
    from coolcolor.model.presets import tiny_pipeline

    return tiny_pipeline(seed=0)


@pytest.fixture
def gray_clip() -> np.ndarray:
    """Four 48×64 frames of a disc moving over a gradient (not square, to exercise aspect handling)."""
    y, x = np.mgrid[0:48, 0:64].astype(np.float32)
    frames = []
    for t in range(4):
        d = np.hypot(x - 20 - 6 * t, y - 24) / 12
        frames.append(np.where(d < 1, 0.85 - 0.3 * d**2, 0.2 + 0.5 * y / 48))
    return np.stack(frames).astype(np.float32)


def build_sd15_like_folder(path: Path, seed: int = 0) -> Path:
    """A tiny model with Stable Diffusion 1.5's folder layout, classes and configs (CLIP BPE tokenizer,
    PNDM scheduler, 4-channel UNet), written the way diffusers writes the real one."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from coolcolor.model.presets import SD15_SCHEDULER_CONFIG, TINY_UNET_CONFIG, TINY_VAE_CONFIG

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    UNet2DConditionModel(**TINY_UNET_CONFIG).save_pretrained(path / "unet")
    AutoencoderKL(**TINY_VAE_CONFIG).save_pretrained(path / "vae")
    vocab_dir = path / "_vocab"
    vocab_dir.mkdir()
    words = ["a</w>", "red</w>", "ball</w>", "blue</w>", "sky</w>", "r", "e", "d</w>", "re"]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    (vocab_dir / "vocab.json").write_text(json.dumps(vocab))
    (vocab_dir / "merges.txt").write_text("#version: 0.2\nr e\n")
    tokenizer = CLIPTokenizer(vocab_file=str(vocab_dir / "vocab.json"), merges_file=str(vocab_dir / "merges.txt"))
    tokenizer.model_max_length = 16
    tokenizer.save_pretrained(path / "tokenizer")
    CLIPTextModel(
        CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, max_position_embeddings=16)
    ).save_pretrained(path / "text_encoder")
    scheduler_config = {k: v for k, v in SD15_SCHEDULER_CONFIG.items() if k not in ("clip_sample", "prediction_type")}
    PNDMScheduler(**scheduler_config, skip_prk_steps=True).save_pretrained(path / "scheduler")
    (path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return path


@pytest.fixture
def sd15_folder(tmp_path: Path) -> Path:
    return build_sd15_like_folder(tmp_path / "sd15")


@pytest.fixture
def packaged_default(tmp_path: Path, monkeypatch) -> Path:
    """``default``: a tiny model packaged from a VAE run (``vae-run``) and a UNet run on it (``base-run``),
    all in ``tmp_path``, which becomes the working folder: the runs' commands name folders relative to where
    they ran, as the real ones do, so a test can check the reproduce lists packaging writes."""
    from coolcolor.train.config import TrainConfig
    from coolcolor.train.package import package
    from coolcolor.train.trainer import Trainer

    monkeypatch.chdir(tmp_path)
    Trainer(TrainConfig(output="vae-run", stage="vae", architecture="tiny-test", steps=1, batch_size=4, threads=1),
            command="coolcolor train --config vae.json --output vae-run").run(progress=False)
    Trainer(TrainConfig(output="base-run", architecture="tiny-test", vae_from="vae-run", steps=1, batch_size=4,
                        threads=1), command="coolcolor train --config unet.json --output base-run").run(progress=False)
    return package(Path("base-run"), Path("vae-run"), Path("default"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    """A saved tiny-preset checkpoint folder, for tests that pass ``--model`` to a command or a worker."""
    from coolcolor.model.presets import tiny_pipeline

    path = tmp_path_factory.mktemp("model") / "tiny"
    tiny_pipeline(seed=0).save_pretrained(path)
    return str(path)


@pytest.fixture
def main(monkeypatch):
    """``coolcolor``'s entry point with the video commands registered (colorize, submit's job flags)."""
    from coolcolor import cli

    if "coolcolor.video.cli" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "coolcolor.video.cli"))
    return cli.main
