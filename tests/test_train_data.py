"""Training data: the world source, the captioned-folder source with the paper's filters, the vocabulary."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest
import torch

from coolcolor.errors import InputError
from coolcolor.train.data import HELD_OUT_SEED_BASE, FolderSource, WorldSource, has_color_word
from coolcolor.train.model import architecture, tokenizer_for
from coolcolor.world import render_image


def colorful(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((40, 48, 3), np.uint8)
    img[:, :16] = (255, 0, 0)
    img[:, 16:32] = (0, 200, 0)
    img[:, 32:] = (0, 0, 255)
    return (img * rng.uniform(0.8, 1.0)).astype(np.uint8)


def write(path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def test_world_batches_are_deterministic_and_shaped():
    source = WorldSource(resolution=16, seed=3)
    a, b = source.batch(5, 3), source.batch(5, 3)
    assert a["rgb"].shape == (3, 3, 16, 16) and a["gray"].shape == (3, 16, 16)
    assert torch.equal(a["rgb"], b["rgb"]) and torch.equal(a["gray"], b["gray"]) and a["captions"] == b["captions"]
    assert not torch.equal(source.batch(6, 3)["rgb"], a["rgb"])
    assert float(a["gray"].min()) >= 0 and float(a["rgb"].max()) <= 1
    assert all(source.world_seed(s, i) < HELD_OUT_SEED_BASE for s in range(20) for i in range(4))


def test_world_captions_never_tokenize_to_unknown_words():
    tokenizer = tokenizer_for(architecture("coolcolor-tiny"))
    for seed in range(150):
        for caption in render_image(seed, (8, 8)).captions:
            ids = tokenizer(caption).input_ids
            assert tokenizer.unk_token_id not in ids, caption
            assert len(ids) <= tokenizer.model_max_length


def test_color_word_filter():
    assert has_color_word("A Crimson ball on the grass")
    assert has_color_word("a snow-white egg")
    assert not has_color_word("a ball on the grass")


def test_folder_source_applies_filters_and_logs_every_skipped_file(tmp_path, caplog):
    write(tmp_path / "good.png", colorful())
    (tmp_path / "good.txt").write_text("red, green and blue stripes", encoding="utf-8")
    write(tmp_path / "nocolorword.png", colorful(1))
    (tmp_path / "nocolorword.txt").write_text("some stripes", encoding="utf-8")
    write(tmp_path / "dull.png", np.full((20, 20, 3), 128, np.uint8))
    (tmp_path / "dull.txt").write_text("a gray wall", encoding="utf-8")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "broken.txt").write_text("a red thing", encoding="utf-8")
    write(tmp_path / "latin.png", colorful(2))
    (tmp_path / "latin.txt").write_bytes("un ballon rouge caf\xe9".encode("latin-1"))
    write(tmp_path / "uncaptioned.png", colorful(3))
    with caplog.at_level(logging.WARNING, logger="coolcolor.train.data"):
        source = FolderSource(tmp_path, resolution=16, seed=0)
    assert [i.path.name for i in source.items] == ["good.png"]
    text = caplog.text
    assert "broken.png: not a readable image" in text
    assert "latin.png: caption file latin.txt is not UTF-8" in text
    assert "nocolorword.png: caption names no color" in text
    assert "dull.png: colorfulness 0.0 below the threshold" in text
    assert "uncaptioned.png: no caption" in text
    rgb, gray, caption = source.sample(0, 0)
    assert rgb.shape == (3, 16, 16) and gray.shape == (16, 16) and caption == "red, green and blue stripes"
    # gray is the luminance of the color image: a pure-blue stripe is dark, green bright
    assert float(gray[:, -1].mean()) < float(gray[:, 7].mean())


def test_folder_source_captioner_and_manifest(tmp_path):
    write(tmp_path / "a.png", colorful())
    write(tmp_path / "b.png", colorful(1))
    source = FolderSource(tmp_path, 16, 0, captioner=lambda rgb: f"a blue picture {rgb.shape[1]} wide")
    assert sorted(i.caption for i in source.items) == ["a blue picture 48 wide"] * 2
    manifest = tmp_path / "captions.jsonl"
    manifest.write_text(json.dumps({"file": "a.png", "caption": "a red flag"}) + "\nnot json\n", encoding="utf-8")
    source = FolderSource(tmp_path, 16, 0, manifest="captions.jsonl")
    assert [(i.path.name, i.caption) for i in source.items] == [("a.png", "a red flag")]
    assert source.rejected["bad manifest line"] == 1


def test_folder_source_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        FolderSource(tmp_path / "nope", 16, 0)
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(InputError, match="no usable images.*not a readable image"):
        FolderSource(tmp_path, 16, 0)


def test_a_file_that_breaks_during_training_is_skipped(tmp_path, caplog):
    for name in ("a", "b"):
        write(tmp_path / f"{name}.png", colorful())
        (tmp_path / f"{name}.txt").write_text(f"{name} red box", encoding="utf-8")
    source = FolderSource(tmp_path, 16, 0)
    (tmp_path / "a.png").write_bytes(b"truncated")
    with caplog.at_level(logging.WARNING, logger="coolcolor.train.data"):
        captions = {source.sample(0, i)[2] for i in range(6)}
    assert captions == {"b red box"}
    assert "a.png: not a readable image" in caplog.text
