"""Automatic keyframe choice: candidates, colorfulness ranking, CLIP score from a local folder."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from coolcolor import color
from coolcolor.errors import InputError
from coolcolor.video.keyframes import ClipScorer, candidate_frames, cheap_steps, rank_keyframes


@dataclass
class _Result:
    rgb: np.ndarray


class FakePipeline:
    """Returns, for frame i of a call, a preview whose colorfulness is ``levels[i]``-ordered."""

    def __init__(self, saturations):
        self.saturations = saturations
        self.calls = []

    def model_size(self, h, w):
        return (8, 8)

    def __call__(self, gray, **kwargs):
        self.calls.append((gray.shape, kwargs))
        rgb = np.empty((gray.shape[0], 8, 8, 3), np.float32)
        for i, s in enumerate(self.saturations):
            rgb[i] = 0.5
            rgb[i, :4, :, 0] += s / 2  # a red half: colorfulness grows with s
        return _Result(rgb)


def test_candidate_frames_spread_over_the_shot():
    assert candidate_frames(10, 12) == [10, 11, 12]
    c = candidate_frames(100, 199, 5)
    assert c == [110, 130, 150, 170, 190]
    assert candidate_frames(0, 0) == [0]
    assert cheap_steps(20) == 5 and cheap_steps(50) == 12 and cheap_steps(3) == 3 and cheap_steps(6) == 4


def test_ranked_by_colorfulness_with_cheap_settings():
    pipe = FakePipeline([0.1, 0.6, 0.3])
    grays = {4: np.zeros((20, 30), np.float32), 9: np.zeros((20, 30), np.float32), 14: np.zeros((20, 30), np.float32)}
    ranking = rank_keyframes(pipe, grays, "a red door", steps=20, seed=3)
    assert ranking.method == "colorfulness"
    assert ranking.chosen == 9
    assert [c.frame for c in ranking.candidates] == [9, 14, 4]
    assert [c.rank for c in ranking.candidates] == [1, 2, 3]
    shape, kwargs = pipe.calls[0]
    assert shape == (3, 8, 8)  # candidates go in at the model's size
    assert kwargs["num_inference_steps"] == 5 and kwargs["keyframe"] is None and kwargs["seed"] == 3
    cf = [c.colorfulness for c in ranking.candidates]
    assert cf == sorted(cf, reverse=True) and cf[-1] > 0
    json.dumps(ranking.to_dict())  # goes into the manifest


def test_clip_and_colorfulness_are_combined_by_rank():
    pipe = FakePipeline([0.6, 0.5, 0.1])  # colorfulness order: 0, 1, 2
    grays = {f: np.zeros((8, 8), np.float32) for f in (1, 2, 3)}
    clip_scores = np.array([10.0, 30.0, 20.0])  # CLIP order: 1, 2, 0
    ranking = rank_keyframes(pipe, grays, "x", clip_scorer=lambda rgb, text: clip_scores)
    # Borda: frame1 0+2=2, frame2 1+0=1, frame3 2+1=3 → 2, 1, 3
    assert ranking.method == "clip+colorfulness"
    assert [c.frame for c in ranking.candidates] == [2, 1, 3]
    assert [c.clip_score for c in ranking.candidates] == [30.0, 10.0, 20.0]


def test_no_candidates_is_an_error():
    with pytest.raises(InputError, match="no candidate frames"):
        rank_keyframes(FakePipeline([]), {}, "x")


def test_real_tiny_pipeline_ranking_matches_its_previews(tiny_pipe, gray_clip):
    grays = {10 + i: g for i, g in enumerate(gray_clip)}
    ranking = rank_keyframes(tiny_pipe, grays, "a red ball on green grass", steps=8, seed=0)
    preview = tiny_pipe(gray_clip, prompt="a red ball on green grass", num_inference_steps=4, seed=0)
    expected = np.argsort(-color.colorfulness(preview.rgb), kind="stable")
    assert [c.frame for c in ranking.candidates] == [10 + int(i) for i in expected]


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    """A tiny random CLIP model + processor saved the way a downloaded one is."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPTokenizer,
        CLIPVisionConfig,
    )

    path = tmp_path_factory.mktemp("clip")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "red</w>": 3, "ball</w>": 4, "x</w>": 5}
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(vocab_file=str(path / "vocab.json"), merges_file=str(path / "merges.txt"))
    config = CLIPConfig(
        text_config=CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, max_position_embeddings=16).to_dict(),
        vision_config=CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32,
                                       num_hidden_layers=1, num_attention_heads=2).to_dict(),
        projection_dim=8,
    )
    import torch

    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(path)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    processor.save_pretrained(path)
    return str(path)


def test_clip_scorer_from_a_local_folder(tiny_clip_dir):
    scorer = ClipScorer(tiny_clip_dir)
    rgb = np.random.default_rng(0).random((3, 40, 50, 3)).astype(np.float32)
    scores = scorer(rgb, "a red ball")
    assert scores.shape == (3,) and np.all(scores >= 0) and np.all(scores <= 100)
    again = scorer(rgb[::-1].copy(), "a red ball")
    assert np.allclose(again, scores[::-1], atol=1e-4)  # per-image, order-independent


def test_clip_scorer_missing_folder():
    with pytest.raises(InputError, match="CLIP model folder not found"):
        ClipScorer("/nonexistent/clip")
