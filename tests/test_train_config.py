"""Training configs and the ``train`` command line: every bad value is an error naming the key."""

from __future__ import annotations

import argparse
import json

import pytest

from coolcolor.errors import InputError
from coolcolor.train.cli import config_from_args, main
from coolcolor.train.config import TrainConfig


def test_json_and_toml_configs_load_with_overrides(tmp_path):
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"output": "runs/x", "steps": 7, "betas": [0.8, 0.99], "lambda_schedule": "constant"}))
    c = TrainConfig.from_file(j, {"steps": 9})
    assert (c.steps, c.betas, c.lambda_schedule, c.lr) == (9, (0.8, 0.99), "constant", 1e-4)
    t = tmp_path / "c.toml"
    t.write_text('output = "runs/y"\nstage = "vae"\nlr = 1\n'.replace("lr = 1", "lr = 0.001"))
    assert TrainConfig.from_file(t).stage == "vae"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"output": "o", "learning_rate": 1e-4}, "unknown key.*learning_rate"),
        ({"output": "o", "lr": 2.0}, "lr must be in"),
        ({"output": "o", "lr": "fast"}, "lr must be a number"),
        ({"output": "o", "steps": 0}, "steps must be ≥ 1"),
        ({"output": "o", "steps": 1.5}, "steps must be an integer"),
        ({"output": "o", "text_dropout": 1.5}, "text_dropout must be in"),
        ({"output": "o", "lambda_schedule": "cubic"}, "lambda_schedule must be one of"),
        ({"output": "o", "lambda_max": -1}, "lambda_max must be a finite number"),
        ({"output": "o", "ab_weight": float("nan")}, "ab_weight must be a finite number"),
        ({"output": "o", "snr_gamma": -5}, "snr_gamma must be a finite number"),
        ({"output": "o", "resolution": 30}, "resolution must be a positive multiple of 8"),
        ({"output": "o", "ef_t_max": 2000}, "ef_t_max must be in"),
        ({"output": "o", "betas": [0.9]}, "betas must be a list of two numbers"),
        ({"output": "o", "require_color_words": "yes"}, "require_color_words must be true or false"),
        ({"steps": 5}, "output .* is required"),
        ({"output": "o", "init_from": "a", "vae_from": "b"}, "either init_from"),
        ({"output": "o", "stage": "vae", "vae_train": "decoder"}, "give vae_from"),
        ({"output": "o", "vae_train": "encoder"}, "vae_train must be all or decoder"),
        ({"output": "o", "decoder_guide": "yes"}, "decoder_guide must be true or false"),
        ({"output": "o", "optimizer": "sgd"}, "optimizer must be one of adamw, adamw8bit"),
        ({"output": "o", "lora_rank": -4}, "lora_rank must be ≥ 0"),
        ({"output": "o", "stage": "vae", "lora_rank": 4}, "lora_rank is a UNet-stage setting"),
        ({"output": "o", "stage": "vae", "validation_every": 5}, "validation_every is a UNet-stage setting"),
        ({"output": "o", "lora_rank": 4, "real_share": 0.5}, "lora_rank freezes the text encoder"),
        ({"output": "o", "validation_steps": 0}, "validation_steps must be in"),
    ],
)
def test_bad_settings_are_named(data, message):
    with pytest.raises(InputError, match=message):
        TrainConfig.from_dict(data)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        TrainConfig.from_file(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{steps: 3")
    with pytest.raises(InputError, match="not valid JSON"):
        TrainConfig.from_file(broken)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"output": "caf\xe9"}')
    with pytest.raises(InputError, match="cannot read"):
        TrainConfig.from_file(latin)


def test_flags_override_the_file(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"output": "runs/a", "steps": 5}))
    args = argparse.Namespace(config=str(f), set=["lambda_max=0.01", "data=world"], output="runs/b", steps=11)
    c = config_from_args(args)
    assert (c.output, c.steps, c.lambda_max, c.data) == ("runs/b", 11, 0.01, "world")


def test_cli_reports_bad_config_in_one_line(tmp_path, capsys):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"output": str(tmp_path / "run"), "stepz": 5}))
    assert main(["train", "--config", str(f)]) == 1
    err = capsys.readouterr().err
    assert "unknown key(s) stepz" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
