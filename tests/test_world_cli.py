"""``coolcolor world render`` / ``coolcolor world eval``."""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import pytest

import coolcolor.cli
from coolcolor.errors import InputError
from coolcolor.world import Clip
from coolcolor.world import cli as world_cli


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="coolcolor")
    world_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def main_with_world(monkeypatch):
    """The real ``coolcolor`` entry point with the world commands registered (error printing included)."""
    monkeypatch.setattr(coolcolor.cli, "COMMAND_MODULES", ("coolcolor.world.cli",))
    return coolcolor.cli.main


def test_render_writes_a_viewable_clip(tmp_path, capsys):
    out = tmp_path / "clip"
    assert run(["world", "render", "--seed", "4", "--frames", "5", "--size", "80x60", str(out)]) == 0
    text = capsys.readouterr().out
    assert "wrote 5 frames of 80x60" in text and "caption 0:" in text
    meta = json.loads((out / "clip.json").read_text())
    assert meta["size"] == [80, 60] and meta["frames"] == 5 and meta["seed"] == 4
    for sub, channels in (("color", 3), ("gray", 1), ("gray_clean", 1)):
        img = cv2.imread(str(out / sub / f"{sub}.0005.png"), cv2.IMREAD_UNCHANGED)
        assert img.shape[:2] == (60, 80) and img.dtype == np.uint16
        assert (img.ndim == 3) == (channels == 3)
    with np.load(out / "truth.npz") as truth:
        assert truth["masks"].shape == (5, 60, 80) and truth["flow"].shape == (4, 60, 80, 2)
    assert Clip.load(out).captions == meta["captions"]


def test_render_options(tmp_path):
    out = tmp_path / "c"
    run(["world", "render", "--seed", "1", "--frames", "2", "--size", "32x32", "--colors", "crimson,blue",
         "--damage", "0", "--static", str(out)])
    c = Clip.load(out)
    assert [o.color for o in c.objects] == ["red", "blue"]
    np.testing.assert_allclose(c.gray, c.gray_clean)
    assert np.abs(c.flow).max() < 1e-3
    run(["world", "render", "--seed", "1", "--frames", "2", "--size", "32x32", "--damage", "0",
         "--degrade", "grain=2", str(out)])
    c = Clip.load(out)
    assert c.degradations.grain == 2.0 and c.degradations.blur == 0.0


def test_eval_prints_table_and_json(tmp_path, capsys):
    gt = tmp_path / "gt"
    run(["world", "render", "--seed", "2", "--frames", "4", "--size", "48x48", str(gt)])
    capsys.readouterr()
    assert run(["world", "eval", str(gt), str(gt)]) == 0
    table = capsys.readouterr().out
    assert "text adherence" in table and "1.000" in table
    np.save(tmp_path / "ab.npy", Clip.load(gt).ab_truth())
    assert run(["world", "eval", str(tmp_path / "ab.npy"), str(gt), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["text_adherence"] == 1.0 and result["luminance_error_max"] is None
    assert result["delta_e2000"] < 0.01 and result["flicker_ab_rms"] < 0.01


@pytest.mark.parametrize("argv, message", [
    (["world", "render", "--size", "0x64", "OUT"], "size must be two positive integers"),
    (["world", "render", "--size", "64", "OUT"], "not of the form WIDTHxHEIGHT"),
    (["world", "render", "--frames", "0", "OUT"], "frame count must be a positive integer, got 0"),
    (["world", "render", "--colors", "red,mauve", "OUT"], "unknown palette color 'mauve'"),
    (["world", "render", "--degrade", "rain=1", "OUT"], "unknown degradation 'rain'"),
])
def test_render_bad_input(argv, message, tmp_path):
    argv = [str(tmp_path / "o") if a == "OUT" else a for a in argv]
    with pytest.raises(InputError, match=message):
        run(argv)


def test_errors_reach_the_user_as_one_line(main_with_world, tmp_path, capsys):
    gt = tmp_path / "gt"
    assert main_with_world(["world", "render", "--frames", "3", "--size", "32x24", str(gt)]) == 0
    np.save(tmp_path / "short.npy", np.zeros((2, 24, 32, 3), np.float32))
    capsys.readouterr()
    assert main_with_world(["world", "eval", str(tmp_path / "short.npy"), str(gt)]) == 1
    err = capsys.readouterr().err
    assert "prediction has 2 frames of 32x24 but the ground truth has 3 frames of 32x24" in err
    assert "Traceback" not in err
