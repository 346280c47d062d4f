"""Validation images during training: a fixed set, written every N steps, with the EMA weights, and without
any effect on the training itself."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from coolcolor.model.pipeline import CoolColorPipeline
from coolcolor.train.config import TrainConfig
from coolcolor.train.data import HELD_OUT_SEED_BASE
from coolcolor.train.trainer import Trainer
from coolcolor.train.validation import validation_set


def tiny_config(out: Path, **kw) -> TrainConfig:
    values = dict(output=str(out), init_from="preset:tiny", resolution=32, steps=3, batch_size=2, lr=1e-2,
                  checkpoint_every=2, log_every=1, threads=1, lambda_schedule="constant", lambda_max=0.1,
                  ef_fraction=0.5, seed=3, ema_decay=0.9, validation_world=2, validation_real=0, validation_steps=2)
    values.update(kw)
    return TrainConfig(**values)


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_validation_images_use_the_final_weights_and_leave_training_unchanged(tmp_path, lora_rank):
    plain = Trainer(tiny_config(tmp_path / "plain", lora_rank=lora_rank))
    plain.run(progress=False)
    checked = Trainer(tiny_config(tmp_path / "checked", lora_rank=lora_rank, validation_every=1))
    final = checked.run(progress=False)
    assert [h["loss"] for h in checked.history] == [h["loss"] for h in plain.history]  # exactly the same curve
    assert CoolColorPipeline.from_pretrained(final).model_hash == \
        CoolColorPipeline.from_pretrained(tmp_path / "plain" / "final").model_hash
    assert not (tmp_path / "plain" / "validation").exists()

    root = tmp_path / "checked" / "validation"
    assert sorted(p.name for p in root.iterdir()) == ["inputs", "step-0000001", "step-0000002", "step-0000003"]
    items = validation_set(checked.config)
    assert [i.name for i in items] == [f"00-world-{HELD_OUT_SEED_BASE}", f"01-world-{HELD_OUT_SEED_BASE + 1}"]
    index = json.loads((root / "step-0000003" / "index.json").read_text())
    assert index["step"] == 3 and index["ema"] is True
    assert [(e["file"], e["prompt"], e["seed"]) for e in index["items"]] == [
        (f"{i.name}.png", i.prompt, i.seed) for i in items]
    page = (root / "step-0000003" / "index.html").read_text()
    assert all(i.prompt in page for i in items)
    # The last step's images are what the final model (the EMA, adapters merged) makes of the same inputs.
    pipe = CoolColorPipeline.from_pretrained(final)
    for item in items:
        expected = pipe(item.gray[None], prompt=item.prompt, num_inference_steps=2, seed=item.seed).rgb[0]
        written = read_png(root / "step-0000003" / f"{item.name}.png")
        assert written.shape == (32, 32, 3)
        assert np.array_equal(written, np.round(np.clip(expected, 0, 1) * 255).astype(np.uint8))
        gray = read_png(root / "inputs" / f"{item.name}.png")
        assert np.array_equal(gray[..., 0], np.round(item.gray * 255).astype(np.uint8))
    earlier = read_png(root / "step-0000001" / f"{items[0].name}.png")
    assert not np.array_equal(earlier, read_png(root / "step-0000003" / f"{items[0].name}.png"))  # it trains


def test_the_validation_set_adds_the_installed_held_out_photographs(tmp_path):
    """Real photographs come from the catalog's held-out (eval) items that are installed; scikit-image's
    and scikit-learn's sample images always are (test dependencies), a deb package's are not in an empty
    data folder, and are skipped."""
    pytest.importorskip("skimage")
    pytest.importorskip("sklearn")
    config = tiny_config(tmp_path / "run", validation_world=1, validation_real=9, real_data=str(tmp_path / "none"))
    items = validation_set(config)
    assert [i.name for i in items] == [f"00-world-{HELD_OUT_SEED_BASE}", "01-real-astronaut", "02-real-coffee",
                                       "03-real-chelsea", "04-real-rocket", "05-real-china", "06-real-flower"]
    astronaut = items[1]
    assert astronaut.prompt.startswith("an astronaut in an orange suit") and astronaut.seed == 1
    assert astronaut.gray.shape == (32, 32) and astronaut.gray.dtype == np.float32
    assert 0 <= astronaut.gray.min() < astronaut.gray.max() <= 1
    assert [i.name for i in validation_set(tiny_config(tmp_path / "run", validation_real=1))][-1] == "02-real-astronaut"


def test_validation_settings_may_change_on_resume(tmp_path):
    Trainer(tiny_config(tmp_path / "run", steps=2)).run(progress=False)
    resumed = Trainer(tiny_config(tmp_path / "run", steps=3, validation_every=3, validation_world=1))
    resumed.run(progress=False)
    assert sorted(p.name for p in (tmp_path / "run" / "validation").iterdir()) == ["inputs", "step-0000003"]
