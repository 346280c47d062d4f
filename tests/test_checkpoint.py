"""Checkpoint folders: bit-exact round trip, SD-1.5 conversion, and clear errors for broken folders."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, UNet2DConditionModel

from coolcolor.cli import main as cli_main
from coolcolor.errors import CheckpointError
from coolcolor.model.checkpoint import CONFIG_NAME, CoolColorConfig
from coolcolor.model.unet import f_in_weight
from coolcolor.model.pipeline import CoolColorPipeline


def _state(pipe):
    return {
        f"{part}.{k}": v
        for part in ("unet", "vae", "text_encoder")
        for k, v in getattr(pipe, part).state_dict().items()
    }


def test_save_and_load_round_trip_bit_exact(tiny_pipe, tmp_path, gray_clip):
    tiny_pipe.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == sorted(
        ["unet", "vae", "text_encoder", "tokenizer", "scheduler", CONFIG_NAME]
    )
    loaded = CoolColorPipeline.from_pretrained(tmp_path / "ckpt")
    original, reloaded = _state(tiny_pipe), _state(loaded)
    assert original.keys() == reloaded.keys()
    for key in original:
        assert original[key].dtype == reloaded[key].dtype and torch.equal(original[key], reloaded[key]), key
    assert loaded.config == tiny_pipe.config
    def public(config):
        return {k: v for k, v in config.items() if not k.startswith("_")}

    assert public(loaded.scheduler.config) == public(tiny_pipe.scheduler.config)
    prompt = "a crimson ball on green grass"
    assert loaded.tokenizer(prompt).input_ids == tiny_pipe.tokenizer(prompt).input_ids
    assert loaded.model_hash == tiny_pipe.model_hash
    a = tiny_pipe(gray_clip[:2], prompt=prompt, num_inference_steps=3, seed=7)
    b = loaded(gray_clip[:2], prompt=prompt, num_inference_steps=3, seed=7)
    assert np.array_equal(a.ab, b.ab)
    # saving the loaded model again writes the same coolcolor.json
    loaded.save_pretrained(tmp_path / "again")
    assert (tmp_path / "again" / CONFIG_NAME).read_text() == (tmp_path / "ckpt" / CONFIG_NAME).read_text()


def test_model_hash_changes_with_the_weights(tiny_pipe):
    from coolcolor.model.presets import tiny_pipeline

    assert tiny_pipeline(seed=1).model_hash != tiny_pipe.model_hash
    assert len(tiny_pipe.model_hash) == 64


@pytest.fixture
def saved(tiny_pipe, tmp_path):
    path = tmp_path / "ckpt"
    tiny_pipe.save_pretrained(path)
    return path


@pytest.mark.parametrize(
    "remove, message",
    [
        (CONFIG_NAME, "missing: coolcolor.json"),
        ("unet/config.json", "missing: unet/config.json"),
        ("vae/diffusion_pytorch_model.safetensors", r"vae/ weights"),
        ("scheduler", "scheduler/scheduler_config.json"),
        ("tokenizer", "tokenizer/"),
    ],
)
def test_missing_parts_are_named(saved, remove, message):
    target = saved / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(CheckpointError, match=message):
        CoolColorPipeline.from_pretrained(saved)


def test_not_a_folder(tmp_path):
    with pytest.raises(CheckpointError, match="is not a folder"):
        CoolColorPipeline.from_pretrained(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"format_version": 99}, "format_version 99 is not supported"),
        ({"resolution": 63}, "resolution must be a positive multiple of 8"),
        ({"surprise": 1}, "unknown keys in coolcolor.json: surprise"),
        ({"gray_latent": "something else"}, "gray_latent"),
    ],
)
def test_bad_coolcolor_json_is_named(saved, edit, message):
    config = json.loads((saved / CONFIG_NAME).read_text())
    config.update(edit)
    (saved / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message):
        CoolColorPipeline.from_pretrained(saved)


def test_corrupt_coolcolor_json(saved):
    (saved / CONFIG_NAME).write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read coolcolor.json"):
        CoolColorPipeline.from_pretrained(saved)


def test_a_stock_sd_folder_is_not_a_coolcolor_checkpoint(sd15_folder):
    (sd15_folder / CONFIG_NAME).write_text(CoolColorConfig(resolution=64).to_json())
    with pytest.raises(CheckpointError, match="has no F_in"):
        CoolColorPipeline.from_pretrained(sd15_folder)


def test_init_from_sd15_cli_makes_an_untrained_checkpoint_equal_to_sd(sd15_folder, tmp_path, capsys):
    out = tmp_path / "coolcolor"
    assert cli_main(["init", "--from-sd15", str(sd15_folder), str(out), "--resolution", "64"]) == 0
    assert "wrote untrained CoolColor checkpoint" in capsys.readouterr().out
    pipe = CoolColorPipeline.from_pretrained(out)
    assert pipe.resolution == 64
    assert pipe.config.recipe["state"] == "untrained"
    assert isinstance(pipe.scheduler, DDIMScheduler) and pipe.scheduler.config.clip_sample is False
    assert torch.count_nonzero(f_in_weight(pipe.unet)) == 0
    stock = UNet2DConditionModel.from_pretrained(sd15_folder / "unet")
    assert torch.equal(pipe.unet.conv_in.bias, stock.conv_in.bias)
    assert torch.equal(pipe.unet.conv_in.weight[:, :4], stock.conv_in.weight)
    # the CLIP BPE tokenizer and the CLIP text encoder travel as they are
    assert type(pipe.tokenizer).__name__.startswith("CLIPTokenizer")
    assert type(pipe.text_encoder).__name__ == "CLIPTextModel"
    result = pipe(np.full((1, 32, 32), 0.5, np.float32), prompt="a red ball", num_inference_steps=2)
    assert result.ab.shape == (1, 32, 32, 2)


def test_init_refuses_to_overwrite(sd15_folder, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert cli_main(["init", "--from-sd15", str(sd15_folder), str(out)]) == 1
    assert (out / "precious.txt").read_text() == "keep me"


def test_init_rejects_a_folder_that_is_not_sd15(sd15_folder, tmp_path, capsys):
    config_path = sd15_folder / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["in_channels"] = 9
    config_path.write_text(json.dumps(config))
    assert cli_main(["init", "--from-sd15", str(sd15_folder), str(tmp_path / "out")]) == 1
    assert "SD-1.5 has 4/4" in capsys.readouterr().err
    (sd15_folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    with pytest.raises(CheckpointError, match="not StableDiffusionPipeline"):
        from coolcolor.model.checkpoint import check_sd15_layout

        check_sd15_layout(sd15_folder)
    shutil.rmtree(sd15_folder / "text_encoder")
    with pytest.raises(CheckpointError, match="text_encoder/config.json"):
        check_sd15_layout(sd15_folder)


def _one_cross_attention_up_block(folder, in_channels):
    """Replace ``folder``/unet by one with a single cross-attention up block, saved by diffusers itself."""
    from coolcolor.model.presets import TINY_UNET_CONFIG

    shutil.rmtree(folder / "unet")
    UNet2DConditionModel(**dict(
        TINY_UNET_CONFIG, in_channels=in_channels,
        down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
    )).save_pretrained(folder / "unet")


def test_architecture_is_checked_at_init_and_again_at_load(sd15_folder, saved, tmp_path):
    """Keyframe attention needs two up blocks with attention: ``init`` refuses such an SD folder before
    writing anything, and a checkpoint that has the shape anyway is refused at load, naming both counts."""
    from coolcolor.model.checkpoint import init_from_sd15

    _one_cross_attention_up_block(sd15_folder, 4)
    expected = r"needs at least 2 up blocks with attention \(SD-1.5 has 3\), found 1 \(up blocks: CrossAttnUpBlock2D"
    with pytest.raises(CheckpointError, match=expected):
        init_from_sd15(sd15_folder, tmp_path / "out", resolution=64)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
    _one_cross_attention_up_block(saved, 8)
    with pytest.raises(CheckpointError, match=f"checkpoint {saved}: unet: keyframe attention {expected}"):
        CoolColorPipeline.from_pretrained(saved)
