"""Memory options of the UNet stage: LoRA (PEFT) and 8-bit AdamW (bitsandbytes), on the tiny preset.

Each option trains a few steps and its checkpoint is loaded by the normal loader and by ``colorize``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from coolcolor.errors import CheckpointError
from coolcolor.model.attention import keyframe_attention_layers
from coolcolor.model.checkpoint import load_components
from coolcolor.model.presets import tiny_components
from coolcolor.train.config import TrainConfig
from coolcolor.train.lora import TARGET_MODULES, plain_unet
from coolcolor.train.trainer import Trainer

UNET_FILE = Path("unet") / "diffusion_pytorch_model.safetensors"


def tiny_config(out: Path, **kw) -> TrainConfig:
    values = dict(output=str(out), init_from="preset:tiny", resolution=32, steps=3, batch_size=2, lr=1e-2,
                  checkpoint_every=10, log_every=1, threads=1, lambda_schedule="constant", lambda_max=0.1,
                  ef_fraction=0.5, seed=3)
    values.update(kw)
    return TrainConfig(**values)


def colorizes(main, model: Path, tmp_path: Path) -> None:
    """``coolcolor colorize`` loads ``model`` and writes a colorized frame."""
    import cv2
    import numpy as np

    (tmp_path / "src").mkdir()
    y, x = np.mgrid[0:24, 0:32]
    for f in (1, 2):
        gray = np.where(np.hypot(x - 10 - 2 * f, y - 12) < 6, 0.8, 0.2 + 0.5 * y / 24)
        assert cv2.imwrite(str(tmp_path / "src" / f"shot.{f:04d}.png"), np.round(gray * 65535).astype(np.uint16))
    source = str(tmp_path / "src" / "shot.%04d.png")
    out = tmp_path / "colorized"
    assert main(["colorize", source, "--prompt", "a red ball", "--steps", "1", "--model", str(model), "-o", str(out),
                 "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.glob("ab.*.exr")) == ["ab.0001.exr", "ab.0002.exr"]


def test_lora_trains_adapters_and_f_in_only_and_saves_a_merged_plain_unet(tmp_path, main):
    trainer = Trainer(tiny_config(tmp_path / "run", lora_rank=4, checkpoint_every=2))
    final = trainer.run(progress=False)
    unet = trainer.components.unet
    in_optimizer = [p for g in trainer.optimizer.param_groups for p in g["params"]]
    trained = {n for n, p in unet.named_parameters() if any(p is q for q in in_optimizer)}
    assert len(trained) == len(in_optimizer)  # only UNet parameters: the text encoder is frozen
    adapters = {n for n, _ in unet.named_parameters() if ".lora_A." in n or ".lora_B." in n}
    assert trained == adapters | {"conv_in.weight", "conv_in.bias"}
    base = tiny_components(0)
    n_all = sum(p.numel() for p in base.unet.parameters()) + sum(p.numel() for p in base.text_encoder.parameters())
    n_trained = sum(p.numel() for p in in_optimizer)
    assert n_trained < 0.05 * n_all, (n_trained, n_all)
    # every attention projection has an adapter, the keyframe-attention layers' included
    attention = [n for n, m in base.unet.named_modules() if type(m).__name__ == "Attention"]
    for layer in attention:
        for target in TARGET_MODULES:
            assert f"{layer}.{target}.lora_A.default.weight" in trained, (layer, target)
    keyframe = {name.removesuffix(".processor") for name in keyframe_attention_layers(base.unet)}
    assert keyframe and keyframe <= set(attention)

    loaded = load_components(final)  # the normal loader: a plain UNet, adapters merged
    saved = load_file(final / UNET_FILE)
    assert not [k for k in saved if "lora" in k or "base_layer" in k]
    stock = base.unet.state_dict()
    assert set(saved) == set(stock)
    q = "mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight"
    assert not torch.equal(saved[q], stock[q])  # the adapters moved the projection
    assert not torch.equal(saved["conv_in.weight"], stock["conv_in.weight"])  # F_in trained
    frozen = "down_blocks.0.resnets.0.conv1.weight"
    assert torch.equal(saved[frozen], stock[frozen])
    assert loaded.text_encoder.state_dict().keys() == base.text_encoder.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(loaded.text_encoder.state_dict().values(),
                                                  base.text_encoder.state_dict().values(), strict=True))
    # the merged UNet computes what the adapted one computes
    x = torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(0))
    text = torch.randn(2, 8, base.text_encoder.config.hidden_size, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([10, 700])
    with torch.no_grad():
        expected = unet.eval()(x, t, encoder_hidden_states=text).sample
        assert torch.allclose(loaded.unet(x, t, encoder_hidden_states=text).sample, expected, atol=1e-5)
    # the intermediate checkpoint is a plain model too
    assert not [k for k in load_file(tmp_path / "run" / "checkpoints" / "step-0000002" / UNET_FILE) if "lora" in k]
    colorizes(main, final, tmp_path)


def test_lora_with_ema_resumes_exactly_and_refuses_another_base(tmp_path, model_dir):
    def final_unet(run: Path) -> dict[str, torch.Tensor]:
        return load_file(run / "final" / UNET_FILE)

    kw = dict(lora_rank=4, ema_decay=0.9)
    straight = Trainer(tiny_config(tmp_path / "a", **kw))
    straight.run(progress=False)
    names = [n for n, _ in straight.components.unet.named_parameters()]
    assert set(straight.ema.averages) == {n for n in names if ".lora_" in n} | {"conv_in.weight", "conv_in.bias"}
    Trainer(tiny_config(tmp_path / "b", steps=2, **kw)).run(progress=False)
    resumed = Trainer(tiny_config(tmp_path / "b", **kw))
    resumed.run(progress=False)
    assert resumed.history[0]["loss"] == pytest.approx(straight.history[2]["loss"], rel=1e-6)
    a, b = final_unet(tmp_path / "a"), final_unet(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the final model is the average, merged from the EMA adapters; the last checkpoint holds the last ones
    ema_unet = plain_unet(straight.components.unet, straight.ema.averages).state_dict()
    last = load_file(tmp_path / "a" / "checkpoints" / "step-0000003" / UNET_FILE)
    q = "mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight"
    assert torch.equal(a[q], ema_unet[q]) and not torch.equal(a[q], last[q])

    base = tmp_path / "base"
    shutil.copytree(model_dir, base)
    Trainer(tiny_config(tmp_path / "c", init_from=str(base), steps=1, lora_rank=4)).run(progress=False)
    weights = load_file(base / UNET_FILE)
    weights["conv_out.bias"] = weights["conv_out.bias"] + 1
    from safetensors.torch import save_file

    save_file(weights, base / UNET_FILE)
    with pytest.raises(CheckpointError, match="LoRA adapters were trained on other base UNet weights"):
        Trainer(tiny_config(tmp_path / "c", init_from=str(base), steps=2, lora_rank=4)).run(progress=False)


def test_adamw8bit_trains_on_the_cpu_with_8bit_state_and_resumes(tmp_path, main):
    pytest.importorskip("bitsandbytes")
    straight = Trainer(tiny_config(tmp_path / "a", optimizer="adamw8bit"))
    final = straight.run(progress=False)
    assert type(straight.optimizer).__name__ == "AdamW8bit"
    states = [s for s in straight.optimizer.state.values() if "state1" in s]
    big = [s for s in states if s["state1"].numel() >= 4096]
    assert big and all(s["state1"].dtype == torch.uint8 and s["state2"].dtype == torch.uint8 for s in big)
    losses = [h["loss"] for h in straight.history]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert load_components(final).weights_hash() != tiny_components(0).weights_hash()  # it trained
    Trainer(tiny_config(tmp_path / "b", optimizer="adamw8bit", steps=2)).run(progress=False)
    resumed = Trainer(tiny_config(tmp_path / "b", optimizer="adamw8bit"))
    resumed.run(progress=False)
    assert resumed.history[0]["loss"] == pytest.approx(losses[2], rel=1e-6)
    colorizes(main, final, tmp_path)


def test_adamw8bit_without_bitsandbytes_is_one_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    from coolcolor.cli import main as cli_main

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import bitsandbytes now raises ImportError
    out = tmp_path / "run"
    assert cli_main(["train", "--output", str(out), "--set", "init_from=preset:tiny", "--set", "optimizer=adamw8bit",
                     "--steps", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "optimizer adamw8bit needs bitsandbytes" in err and "coolcolor[gpu-train]" in err
    assert not out.exists()


def test_lora_adapters_start_from_the_run_seed_not_the_callers_random_state():
    """PEFT draws lora_A from torch's global generator: two runs with the same seed must start alike, whatever
    ran before them, and the caller's stream must not move (a resumed or a validation-on run depends on it)."""
    pytest.importorskip("peft")
    from coolcolor.model.presets import preset_components
    from coolcolor.train.lora import add_lora

    starts = []
    for before in (1, 2):
        torch.manual_seed(before)
        unet = preset_components("tiny").unet
        state = torch.get_rng_state()
        add_lora(unet, 4, seed=7)
        assert torch.equal(torch.get_rng_state(), state)
        starts.append({n: p.detach().clone() for n, p in unet.named_parameters() if "lora_A" in n})
    assert starts[0] and starts[0].keys() == starts[1].keys()
    assert all(torch.equal(starts[0][n], starts[1][n]) for n in starts[0])
