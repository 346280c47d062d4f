"""Real-footage training data: the catalog's rules, the views RealSource makes, and vocabulary growth.

Everything here runs on small images made in the test (a catalog of its own), so no package data is needed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from coolcolor.errors import InputError
from coolcolor.model.presets import extend_word_tokenizer, tiny_components, word_tokenizer
from coolcolor.real.catalog import load_catalog, parse_catalog, verified_path
from coolcolor.real.source import RealSource, colour_name, with_article
from coolcolor.train.config import TrainConfig
from coolcolor.train.data import MixedSource, WorldSource
from coolcolor.train.model import grow_vocabulary
from coolcolor.world import luminance_gray


def _write(path: Path, image: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def small_catalog(tmp_path):
    """Two photographs (left half red / right half blue; all green) and one blue disc cut-out with alpha."""
    root = tmp_path / "data"
    halves = np.zeros((120, 160, 3), np.uint8)
    halves[:, :80] = (0, 0, 220)  # BGR: red
    halves[:, 80:] = (220, 0, 0)  # blue
    green = np.full((100, 100, 3), (0, 180, 0), np.uint8)
    disc = np.zeros((64, 64, 4), np.uint8)
    cv2.circle(disc, (32, 32), 28, (230, 40, 20, 255), -1)  # BGRA: blue, opaque inside the circle
    files = {"photo/halves.png": halves, "photo/green.png": green, "cut/ball.png": disc}
    sums = {name: _write(root / "pkg" / name, image) for name, image in files.items()}
    doc = {
        "packages": {"pkg": {"kind": "deb", "version": "1", "licence": "CC0"}},
        "items": [
            {"id": "halves", "package": "pkg", "path": "photo/halves.png", "sha256": sums["photo/halves.png"],
             "role": "train", "kind": "photo", "caption": "a red wall beside a blue wall"},
            {"id": "green", "package": "pkg", "path": "photo/green.png", "sha256": sums["photo/green.png"],
             "role": "train", "kind": "photo", "caption": "green grass"},
            {"id": "ball", "package": "pkg", "path": "cut/ball.png", "sha256": sums["cut/ball.png"],
             "role": "train", "kind": "cutout", "noun": "ball"},
        ],
    }
    return parse_catalog(doc), root


def test_shipped_catalog_holds_out_every_evaluation_file():
    catalog = load_catalog()
    evaluation = catalog.select("eval")
    training = catalog.select("train")
    assert evaluation and training
    assert not {i.sha256 for i in evaluation} & {i.sha256 for i in training}
    assert not {(i.package, i.path) for i in evaluation} & {(i.package, i.path) for i in training}
    assert all(i.wrong_caption and i.caption != i.wrong_caption for i in evaluation)
    assert all(catalog.licence(i) for i in catalog.items)


def test_catalog_refuses_the_same_file_twice_and_unknown_packages(small_catalog):
    catalog, _ = small_catalog
    doc = {"packages": {"pkg": {"kind": "deb", "version": "1", "licence": "CC0"}},
           "items": [{"id": "a", "package": "pkg", "path": "x.png", "sha256": "0" * 64, "role": "train",
                      "kind": "photo", "caption": "red"},
                     {"id": "b", "package": "pkg", "path": "y.png", "sha256": "0" * 64, "role": "eval",
                      "kind": "photo", "caption": "red", "wrong_caption": "blue"}]}
    with pytest.raises(InputError, match="items a and b are the same file"):
        parse_catalog(doc)
    doc["items"] = doc["items"][:1]
    doc["items"][0]["package"] = "other"
    with pytest.raises(InputError, match="unknown package 'other'"):
        parse_catalog(doc)


def test_a_changed_file_is_refused_by_its_hash(small_catalog):
    catalog, root = small_catalog
    item = catalog.item("green")
    assert verified_path(item, root, catalog) == root / "pkg" / "photo/green.png"
    (root / "pkg" / "photo/green.png").write_bytes(b"not the image")
    with pytest.raises(InputError, match="does not match its sha256"):
        verified_path(item, root, catalog)
    (root / "pkg" / "photo/green.png").unlink()
    with pytest.raises(InputError, match="coolcolor real install"):
        verified_path(item, root, catalog)


@pytest.mark.parametrize("rgb, name", [((1, 0, 0), "red"), ((0, 0.7, 0), "green"), ((0, 0, 1), "blue"),
                                       ((1, 1, 0), "yellow"), ((1, 0.5, 0), "orange"), ((0.45, 0.25, 0.05), "brown"),
                                       ((0.5, 0, 0.5), "purple"), ((1, 0.7, 0.75), "pink"), ((1, 1, 1), "white"),
                                       ((0.5, 0.5, 0.5), "gray"), ((0.02, 0.02, 0.02), "black")])
def test_colour_name_of_plain_colours(rgb, name):
    assert colour_name(np.array([[rgb]], np.float32)) == name


def test_colour_name_takes_the_colour_covering_most_opaque_pixels():
    image = np.zeros((10, 10, 3), np.float32)
    image[:, :3] = (1, 0, 0)  # 30 % red
    image[:, 3:] = (0, 0, 1)  # 70 % blue, but transparent
    alpha = np.zeros((10, 10), np.float32)
    alpha[:, :4] = 1  # the red and one column of blue are opaque
    assert colour_name(image) == "blue"
    assert colour_name(image, alpha) == "red"
    assert with_article("orange", "pig") == "an orange pig"
    assert with_article("red", "cherries") == "red cherries"


def test_real_views_are_deterministic_and_their_gray_is_the_views_luminance(small_catalog):
    catalog, root = small_catalog
    source = RealSource(16, seed=3, data_dir=root, cutout_share=0.0, degradation_max=0.0, catalog=catalog)
    rgb, gray, caption = source.sample(5, 1)
    again = source.sample(5, 1)
    assert torch.equal(rgb, again[0]) and torch.equal(gray, again[1]) and caption == again[2]
    assert rgb.shape == (3, 16, 16) and gray.shape == (16, 16)
    assert caption in {"a red wall beside a blue wall", "green grass"}
    # undamaged: the gray is the luminance of the colour target (both shrunk the same way)
    expected = torch.from_numpy(luminance_gray(rgb.permute(1, 2, 0).numpy()))
    assert float((gray - expected).abs().mean()) < 0.02
    # different indices draw different views
    assert any(not torch.equal(rgb, source.sample(5, i)[0]) for i in range(2, 8))


def test_cutout_views_carry_the_measured_colour_and_noun(small_catalog):
    catalog, root = small_catalog
    source = RealSource(16, seed=0, data_dir=root, cutout_share=1.0, catalog=catalog)
    assert [c.caption for c in source.cutouts] == ["a blue ball"]
    for index in range(6):
        rgb, _, caption = source.sample(0, index)
        assert caption == "a blue ball"
        blue = (rgb[2] > rgb[0] + 0.3) & (rgb[2] > rgb[1] + 0.3)
        assert int(blue.sum()) > 0  # the ball is in view
    assert set(source.captions()) == {"a red wall beside a blue wall", "green grass", "a blue ball"}


def test_mixed_batches_keep_each_sources_samples(small_catalog):
    catalog, root = small_catalog
    real = RealSource(16, seed=1, data_dir=root, catalog=catalog)
    world = WorldSource(16, seed=1)
    mixed = MixedSource(world, real, real_share=0.5, seed=1)
    batch = mixed.batch(2, 8)
    captions = set(real.captions())
    from_real = [i for i, c in enumerate(batch["captions"]) if c in captions]
    assert 0 < len(from_real) < 8
    for i in range(8):  # each sample is exactly what its source alone gives for (step, index)
        source = real if i in from_real else world
        assert torch.equal(batch["rgb"][i], source.sample(2, i)[0])
    assert MixedSource(world, real, 0.5, seed=1).batch(2, 8)["captions"] == batch["captions"]


def test_growing_the_vocabulary_keeps_known_ids_and_grows_the_text_encoder():
    components = tiny_components(seed=0)
    before = dict(components.tokenizer.get_vocab())
    rows = components.text_encoder.get_input_embeddings().weight.detach().clone()
    new = grow_vocabulary(components, ["a Quokka flamingo", "red flamingo"])
    assert new == ["flamingo", "quokka"]
    vocab = components.tokenizer.get_vocab()
    assert all(vocab[w] == i for w, i in before.items())
    embedding = components.text_encoder.get_input_embeddings().weight
    assert embedding.shape[0] == len(vocab)
    assert torch.equal(embedding[: len(rows)], rows)  # trained rows untouched
    assert torch.allclose(embedding[len(rows):], rows.mean(0).expand(2, -1))  # new rows: the mean, no RNG
    ids = components.tokenizer("a quokka flamingo")["input_ids"]
    assert components.tokenizer.unk_token_id not in ids
    assert grow_vocabulary(components, ["a quokka flamingo"]) == []


def test_extended_tokenizer_round_trips_through_save(tmp_path):
    tokenizer = extend_word_tokenizer(word_tokenizer(["red", "blue"]), ["zebra"])
    tokenizer.save_pretrained(tmp_path)
    from transformers import PreTrainedTokenizerFast

    loaded = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    assert loaded("a red zebra")["input_ids"] == tokenizer("a red zebra")["input_ids"]


def test_real_share_needs_world_data():
    with pytest.raises(InputError, match="real_share"):
        TrainConfig.from_dict({"output": "x", "data": "some/folder", "real_share": 0.5})
    with pytest.raises(InputError, match="real_share must be in"):
        TrainConfig.from_dict({"output": "x", "real_share": 1.5})
    assert TrainConfig.from_dict({"output": "x", "real_share": 0.5}).real_share == 0.5
