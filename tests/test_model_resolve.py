"""One resolver chooses the model, the device and the dtype for colorize, serve and the benches."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from coolcolor.daemon.testing import DaemonProcess, child_env
from coolcolor.default_model import DEFAULT_MODEL_DIR
from coolcolor.errors import CheckpointError, CoolColorError
from coolcolor.model.resolve import (
    MODEL_ENV,
    SD15_PRESET,
    TINY_PRESET,
    resolve_device,
    resolve_dtype,
    resolve_model,
    resolve_model_source,
)


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
    from coolcolor.model.presets import tiny_pipeline

    path = tmp_path_factory.mktemp("resolve") / "run" / "final"
    tiny_pipeline(seed=0).save_pretrained(path)
    return path


def test_default_spec_names_the_embedded_model(monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    for spec in (None, "", "default", "coolcolor-tiny"):
        assert resolve_model_source(spec) == ("coolcolor-tiny", str(DEFAULT_MODEL_DIR))


def test_environment_variable_chooses_the_model_when_no_spec_is_given(monkeypatch, saved_tiny):
    monkeypatch.setenv(MODEL_ENV, str(saved_tiny))
    assert resolve_model_source(None) == ("final", str(saved_tiny.resolve()))
    assert resolve_model_source("default")[0] == "coolcolor-tiny"  # an explicit spec wins


def test_run_folder_checkpoint_folder_and_its_json_resolve_to_the_same_checkpoint(saved_tiny):
    run = saved_tiny.parent
    assert resolve_model_source(str(run)) == ("run", str(saved_tiny.resolve()))
    assert resolve_model_source(str(saved_tiny))[1] == str(saved_tiny.resolve())
    assert resolve_model_source(str(saved_tiny / "coolcolor.json"))[1] == str(saved_tiny.resolve())
    assert resolve_model_source(TINY_PRESET) == (TINY_PRESET, None)


def test_the_sd15_preset_is_sd15s_architecture_with_random_weights():
    """Built on the meta device (no 4.3 GB of weights): the parameter counts of SD-1.5's UNet (+ F_in's
    4×320×3×3 weights), its VAE and CLIP ViT-L/14's text tower, as the published models have them."""
    from coolcolor.model.presets import preset_components

    assert resolve_model_source(SD15_PRESET) == (SD15_PRESET, None)
    with torch.device("meta"):
        components = preset_components("sd15")
    counts = {part: sum(p.numel() for p in getattr(components, part).parameters())
              for part in ("unet", "vae", "text_encoder")}
    assert counts == {"unet": 859_520_964 + 4 * 320 * 9, "vae": 83_653_863, "text_encoder": 123_060_480}
    assert components.unet.config.in_channels == 8 and components.tokenizer.model_max_length == 77
    assert components.config.resolution == 512 and components.config.recipe["state"] == "untrained"
    with pytest.raises(CheckpointError, match="unknown model preset 'preset:sd21'; known: preset:tiny, preset:sd15"):
        resolve_model_source("preset:sd21")


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "model folder not found: .*missing"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "has no coolcolor.json"),
    (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "is a file, not a checkpoint folder"),
])
def test_bad_model_specs_are_one_line_errors(tmp_path, make, message):
    with pytest.raises(CheckpointError, match=message) as info:
        resolve_model_source(str(make(tmp_path)))
    assert "\n" not in str(info.value)


def test_device_and_dtype_defaults_follow_the_machine():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = resolve_model()
    assert resolved.device == expected
    assert resolved.dtype == ("fp16" if expected == "cuda" else "fp32")
    assert resolve_dtype(None, "cpu") == "fp32" and resolve_dtype(None, "cuda:0") == "fp16"
    assert resolve_dtype("bfloat16", "cpu") == "bf16" and resolve_dtype("torch.float16", "cpu") == "fp16"


def test_bad_devices_and_dtypes_are_refused_by_name():
    with pytest.raises(CoolColorError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(CoolColorError, match="unknown dtype 'int8'"):
        resolve_model(dtype="int8")
    if not torch.cuda.is_available():
        with pytest.raises(CoolColorError, match="torch sees no CUDA GPU"):
            resolve_device("cuda")
    else:
        with pytest.raises(CoolColorError, match="CUDA GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_loaded_pipeline_is_on_the_resolved_device_and_dtype(saved_tiny):
    resolved = resolve_model(str(saved_tiny), device="cpu", dtype="bf16")
    pipe = resolved.load_pipeline()
    assert pipe.device.type == "cpu" and pipe.dtype == torch.bfloat16
    assert resolved.describe() == {"name": "final", "path": str(saved_tiny.resolve()), "hash": pipe.model_hash,
                                   "device": "cpu", "dtype": "bf16"}
    preset = resolve_model(TINY_PRESET, device="cpu").load_pipeline()
    assert preset.dtype == torch.float32 and preset.model_hash == pipe.model_hash  # the same weights


def test_colorize_has_no_auto_keyframe_flag(tmp_path):
    """Automatic keyframes are what happens without --keyframe; the flag that was never read is gone."""
    out = subprocess.run([sys.executable, "-m", "coolcolor.cli", "colorize", "x.%04d.png", "-o", str(tmp_path),
                          "--auto-keyframe"], capture_output=True, text=True, env=child_env(), timeout=120)
    assert out.returncode == 2 and "unrecognized arguments: --auto-keyframe" in out.stderr
    assert "Traceback" not in out.stderr


def test_serve_with_no_model_serves_the_embedded_default_and_says_which(tmp_path):
    expected = resolve_model("default", device="cpu")
    with DaemonProcess(str(tmp_path), args=("--device", "cpu"), tiny=False) as daemon:
        with daemon.client(timeout=30) as c:
            model = c.hello()["model"]
    assert model["state"] == "ready" and model["name"] == "coolcolor-tiny"
    assert model["path"] == str(DEFAULT_MODEL_DIR) and model["device"] == "cpu" and model["dtype"] == "fp32"
    assert model["hash"] == expected.hash
    assert f"serving model coolcolor-tiny (path {DEFAULT_MODEL_DIR}, hash {expected.hash})" in daemon.log()


def test_serve_refuses_a_bad_model_or_device_in_one_line(tmp_path):
    for args, message in ((["--model", str(tmp_path / "nope")], "model folder not found"),
                          (["--device", "gpu0"], "unknown device 'gpu0'")):
        out = subprocess.run([sys.executable, "-m", "coolcolor.daemon", "serve", "--state-dir", str(tmp_path / "s"),
                              "--connection-file", str(tmp_path / "c.json"), *args], capture_output=True, text=True,
                             env=child_env(), timeout=120)
        assert out.returncode == 1 and message in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
