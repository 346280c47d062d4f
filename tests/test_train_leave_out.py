"""Leave-out evaluation in ``coolcolor train-eval``: unseen-shape/layout/synonym clips, per-family and
per-size adherence, and an honest label when the model was not trained with the items left out."""

from __future__ import annotations

import json

import numpy as np

from coolcolor.model.presets import tiny_pipeline
from coolcolor.train.evaluate import (
    LEAVE_OUT_SEED_BASE,
    evaluate_leave_out,
    evaluate_pipeline,
    held_out_clips,
    leave_out_world,
    size_bin,
    training_world,
    training_worlds,
)
from coolcolor.world.spec import DEFAULT_LEAVE_OUT, WorldSpec


class _Truth:
    """A stand-in pipeline that returns the clip's true colors (every named layer right) or gray."""

    def __init__(self, gray_family: str = "") -> None:
        self.gray_family = gray_family

    def __call__(self, gray, prompt, **_kw):
        from types import SimpleNamespace

        clip = self.clip_for(gray)
        rgb = clip.rgb.copy()
        if self.gray_family:
            ids = [lay.id for lay in clip.layers if lay.shape == self.gray_family]
            sel = np.isin(clip.masks, ids)
            rgb[sel] = clip.gray_clean[sel][:, None]  # neutral: the layer's color is lost
        return SimpleNamespace(rgb=rgb)

    def clip_for(self, gray):
        return next(c for c in self.clips if np.array_equal(c.gray, gray))


def test_breakdowns_count_each_named_layer_once_by_family_and_size():
    clips = held_out_clips(3, 2, 32)
    pipe = _Truth(gray_family="")
    pipe.clips = clips
    out = evaluate_pipeline(pipe, clips, keyframe=False)
    assert out["text_adherence"] == 1.0
    assert sum(n for _, n in out["by_family"].values()) == out["named_layers"]
    assert sum(n for _, n in out["by_size"].values()) == out["named_layers"]
    # Gray out one (colorful) family: the misses show up under that family and nowhere else.
    family = next(lay.shape for c in clips for lay in c.layers
                  if lay.kind == "object" and np.hypot(*lay.palette.ab) > 20)
    pipe = _Truth(gray_family=family)
    pipe.clips = clips
    out = evaluate_pipeline(pipe, clips, keyframe=False)
    for name, (correct, named) in out["by_family"].items():
        if name == family:
            assert correct < named
        else:
            assert correct == named, name


def test_size_bins_cover_every_share():
    assert [size_bin(x) for x in (0.0, 0.019, 0.02, 0.1, 0.3, 0.4, 1.0)] == \
        ["< 2 %", "< 2 %", "2–5 %", "5–15 %", "15–40 %", "≥ 40 %", "≥ 40 %"]


def test_a_model_trained_without_leave_out_is_only_a_baseline():
    pipe = tiny_pipeline(0)
    assert training_world(pipe) == WorldSpec()
    spec, trained_without = leave_out_world(training_world(pipe))
    assert not trained_without and spec == WorldSpec(**DEFAULT_LEAVE_OUT)
    pipe.config.recipe = {"train_config": {"world": {"version": 2, "exclude_shapes": ["heart"]}}}
    spec, trained_without = leave_out_world(training_worlds(pipe))
    assert trained_without and spec.exclude_shapes == ("heart",) and spec.version == 2
    # Fine-tuned from a model that saw hearts: not unseen any more.
    pipe.config.recipe["init_recipe"] = {"train_config": {"world": {}}}
    spec, trained_without = leave_out_world(training_worlds(pipe))
    assert not trained_without and spec.exclude_shapes == ("heart",)


def test_leave_out_sets_feature_the_held_out_items():
    pipe = _Truth()
    specs = {kind: WorldSpec(**DEFAULT_LEAVE_OUT).featuring(kind) for kind in ("shape", "layout", "synonym")}
    pipe.clips = [c for kind, spec in specs.items()
                  for c in held_out_clips(2, 2, 32, world=spec, seed_base=LEAVE_OUT_SEED_BASE[kind])]
    pipe.config = tiny_pipeline(0).config
    out = evaluate_leave_out(pipe, clips=2, frames=2, size=32)
    assert out["model_trained_without_them"] is False
    for kind in ("shape", "layout", "synonym"):
        result = out["sets"][kind]
        assert result["text_adherence"] == 1.0 and result["held_out_layers"][1] >= 1
        assert result["seeds"][0] == LEAVE_OUT_SEED_BASE[kind]
    assert "ring" in out["sets"]["shape"]["by_family"]
    assert any(k.startswith("region: sea") for k in out["sets"]["layout"]["by_family"])


def test_train_eval_cli_prints_the_leave_out_table_and_labels_a_baseline(tmp_path, capsys):
    from coolcolor.cli import main

    model = tmp_path / "tiny"
    tiny_pipeline(0).save_pretrained(model)
    report = tmp_path / "r.json"
    assert main(["train-eval", f"tiny={model}", "--clips", "1", "--frames", "2", "--size", "32", "--steps", "1",
                 "--leave-out", "--threads", "1", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "| unseen shape | 1010000000–1010000000 |" in out and "| unseen synonym |" in out
    assert "it saw them in training): a baseline only" in out and "adherence by the layer's share of the frame" in out
    data = json.loads(report.read_text())
    assert set(data["models"]["tiny"]["leave_out"]["sets"]) == {"shape", "layout", "synonym"}
    assert main(["train-eval", f"tiny={model}", "--leave-out-clips", "0"]) != 0
    assert "--leave-out-clips must be ≥ 1" in capsys.readouterr().err


def test_leave_out_clips_from_another_world_version_keep_the_models_held_out_items():
    """``--leave-out-world-version``: a model trained on world 2 is measured on world 1's leave-out clips
    (where the shipped baseline was measured) with its own exclusions, still unseen."""
    pipe = _Truth()
    pipe.config = tiny_pipeline(0).config
    pipe.config.recipe = {"train_config": {"world": {"version": 2, "leave_out": True}}}
    trained, _ = leave_out_world(training_worlds(pipe))
    on_v1 = {kind: WorldSpec(**{**trained.to_json(), "version": 1}).featuring(kind) for kind in ("shape", "layout", "synonym")}
    pipe.clips = [c for kind, spec in on_v1.items()
                  for c in held_out_clips(1, 2, 32, world=spec, seed_base=LEAVE_OUT_SEED_BASE[kind])]
    out = evaluate_leave_out(pipe, clips=1, frames=2, size=32, world_version=1)  # _Truth knows only the v1 clips
    assert out["world"]["version"] == 1 and out["model_trained_without_them"] is True
    assert out["world"]["exclude_shapes"] == list(trained.exclude_shapes)
    assert all(out["sets"][kind]["text_adherence"] == 1.0 for kind in on_v1)
