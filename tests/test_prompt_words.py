"""Prompt words a model cannot read: unknown to a word-level tokenizer, or cut by a CLIP token limit."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from coolcolor.model.prompt_words import prompt_words


@pytest.fixture(scope="module")
def default_pipe():
    from coolcolor.model.resolve import resolve_model

    return resolve_model("default", device="cpu").load_pipeline()


def test_default_model_names_the_words_it_does_not_know(default_pipe):
    prompt = "an astronaut in a white suit in front of a red flag"
    assert default_pipe.unknown_words(prompt) == ["astronaut", "suit", "flag"]
    words = default_pipe.prompt_words(prompt)
    assert words.truncated == [] and not words.all_unknown
    assert "astronaut, suit, flag" in words.warning() and "ignored" in words.warning()
    # Punctuation, case and hyphenated palette words are read; the README sample is fully known.
    assert default_pipe.unknown_words("A violet bar, and a Snow-White cross!") == []
    assert default_pipe.prompt_words("a violet bar and a tangerine cross").warning() is None


def test_all_unknown_prompt_runs_as_unconditional(tiny_pipe):
    words = tiny_pipe.prompt_words("astronaut spaceship")
    assert words.all_unknown and "unconditional" in words.warning()
    assert torch.equal(tiny_pipe.encode_prompt("astronaut spaceship"), tiny_pipe.encode_prompt(""))
    # A prompt with one known word is not unconditional.
    assert not torch.equal(tiny_pipe.encode_prompt("astronaut red"), tiny_pipe.encode_prompt(""))
    gray = np.linspace(0.1, 0.9, 3 * 16 * 16, dtype=np.float32).reshape(3, 16, 16)
    unknown = tiny_pipe(gray, prompt="astronaut spaceship", num_inference_steps=2, preview=False)
    empty = tiny_pipe(gray, prompt="", num_inference_steps=2, preview=False)
    assert unknown.unknown_words == ["astronaut", "spaceship"] and empty.unknown_words == []
    np.testing.assert_array_equal(unknown.ab, empty.ab)


def byte_level_clip_tokenizer(folder, max_length: int = 16):
    """A CLIP BPE tokenizer that, like the real one, spells every byte (so no word is unknown), with
    merges that make "red", "ball", "blue" and "sky" one token each."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    merges = ["r e", "re d</w>", "b a", "ba l", "bal l</w>", "b l", "bl u", "blu e</w>", "s k", "sk y</w>"]
    merged = ["re", "red</w>", "ba", "bal", "ball</w>", "bl", "blu", "blue</w>", "sk", "sky</w>"]
    tokens = ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars), *merged]
    tok = CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[tuple(m.split()) for m in merges])
    tok.model_max_length = max_length
    tok.save_pretrained(folder)  # and back, as a model folder would hold it
    return CLIPTokenizer.from_pretrained(folder)


def test_coolcolor_words_lists_exactly_the_words_the_model_reads(default_pipe, capsys, tmp_path):
    """Issue 27: unknown words are dropped, so an artist needs to see which words the model knows."""
    from transformers import CLIPTokenizerFast

    from coolcolor import cli
    from coolcolor.model.prompt_words import known_words

    assert cli.main(["words"]) == 0
    out, err = capsys.readouterr()
    listed = out.split()
    assert err.strip() == f"coolcolor words: {len(listed)} words known to coolcolor-tiny; a prompt's other words are ignored"
    assert {"red", "ball", "sky", "tangerine"} <= set(listed) and not {"astronaut", "suit", "flag"} & set(listed)
    assert all(default_pipe.prompt_words(word).unknown == [] for word in listed)  # each one is read
    assert default_pipe.unknown_words(" ".join(["astronaut", *listed[:5]])) == ["astronaut"]
    # A sub-word tokenizer (SD-1.5's CLIP BPE) spells any word: there is no list, only the limit.
    clip = byte_level_clip_tokenizer(tmp_path / "clip")
    assert known_words(clip) is None and known_words(CLIPTokenizerFast.from_pretrained(tmp_path / "clip")) is None


def test_clip_tokenizer_reports_words_past_the_token_limit(tmp_path):
    tok = byte_level_clip_tokenizer(tmp_path / "clip")
    assert len(tok("red", add_special_tokens=False).input_ids) == 1
    # 12 tokens of "a red ball", then "blue blue" fill the 14 left beside BOS/EOS; "sky sky" is cut.
    prompt = "a red ball " * 4 + "blue blue sky sky"
    words = prompt_words(tok, prompt)
    assert words.max_tokens == 16 and words.unknown == [] and words.truncated == ["sky"]
    assert "16-token limit" in words.warning() and not words.all_unknown
    ids = tok(prompt, max_length=16, truncation=True).input_ids
    assert tok.convert_tokens_to_ids("sky</w>") not in ids and ids.count(tok.convert_tokens_to_ids("blue</w>")) == 2
    assert prompt_words(tok, "a red ball " * 4 + "blue blue").ignored == []
    # An unusual word is spelt in pieces, never unknown: it counts its pieces towards the limit.
    assert prompt_words(tok, "astronaut").ignored == []
    assert prompt_words(tok, "red " * 13 + "astronaut").truncated == ["astronaut"]
    # A word read early and repeated past the limit is reported, but the prompt is not all unknown.
    long = prompt_words(tok, "red " * 20)
    assert long.truncated == ["red"] and not long.all_unknown


def test_pipeline_token_limit_is_the_text_encoders(sd15_folder, tmp_path):
    from coolcolor.model.checkpoint import init_from_sd15
    from coolcolor.model.pipeline import CoolColorPipeline

    pipe = CoolColorPipeline.from_pretrained(init_from_sd15(sd15_folder, tmp_path / "cc", resolution=64))
    assert pipe.prompt_words("a").max_tokens == 16  # the folder's tokenizer and text encoder both stop at 16
    pipe.text_encoder.config.max_position_embeddings = 8
    assert pipe.prompt_words("a").max_tokens == 8


def test_word_level_counts_match_whole_prompt_tokenization(default_pipe):
    tok = default_pipe.tokenizer
    prompt = "the crimson ball, an azure box; and snow-white sky"
    words = prompt_words(tok, prompt, max_tokens=9)  # 7 tokens after BOS/EOS
    whole = tok(prompt, add_special_tokens=False).input_ids
    assert len(whole) > 7
    kept = tok.convert_ids_to_tokens(whole[:7])
    assert kept == ["the", "crimson", "ball", ",", "an", "azure", "box"]
    assert words.truncated == ["and", "snow-white", "sky"]  # ";" took the last place, "box" fits


def test_a_long_prompt_is_logged_once_in_one_line_without_the_prompt(tiny_pipe, caplog):
    """Issue 27: the truncation line printed the whole prompt, again for every encoding (keyframe, window)."""
    prompt = "a red ball\non a green field " + "a red ball " * 30
    assert tiny_pipe.prompt_words(prompt).truncated
    with caplog.at_level(logging.WARNING, logger="coolcolor.model.pipeline"):
        tiny_pipe.encode_prompt(prompt)
        tiny_pipe.encode_prompt(prompt)
    lines = [r.getMessage() for r in caplog.records if r.name == "coolcolor.model.pipeline"]
    assert len(lines) == 1 and "\n" not in lines[0] and prompt[:40] not in lines[0], lines
    assert "past the limit are ignored" in lines[0]
    # A caller that shows the warning itself (the CLI) is not followed by the log line.
    other = prompt + " green"
    caplog.clear()
    assert "token limit" in tiny_pipe.prompt_warning(other)
    with caplog.at_level(logging.WARNING, logger="coolcolor.model.pipeline"):
        tiny_pipe.encode_prompt(other)
    assert not [r for r in caplog.records if r.name == "coolcolor.model.pipeline"]


def test_colorize_warns_about_unknown_words_and_still_runs(tmp_path, capsys, monkeypatch):
    from tests.test_video_cli import write_sequence

    from coolcolor import cli
    from coolcolor.model.presets import tiny_pipeline
    from coolcolor.video.exr import read_ab_exr

    if "coolcolor.video.cli" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "coolcolor.video.cli"))
    model = tmp_path / "tiny"
    tiny_pipeline(seed=0).save_pretrained(model)
    source = write_sequence(tmp_path / "src", range(1, 3))
    base = [source, "--steps", "1", "--model", str(model), "--device", "cpu"]
    assert cli.main(["colorize", *base, "--prompt", "a red astronaut", "-o", str(tmp_path / "o1")]) == 0
    err = capsys.readouterr().err
    assert "warning: the model does not know the word(s) astronaut: they are ignored" in err
    # The manifest and every ab file's provenance record them.
    manifest = json.loads((tmp_path / "o1" / "manifest.json").read_text())
    assert manifest["unknown_words"] == ["astronaut"]
    _, header = read_ab_exr(str(tmp_path / "o1" / "ab.0001.exr"))
    assert json.loads(header["unknown_words"]) == ["astronaut"]
    assert cli.main(["colorize", *base, "--prompt", "astronaut", "-o", str(tmp_path / "o2")]) == 0
    captured = capsys.readouterr()
    assert "runs as unconditional" in captured.err and "2 frame(s) written" in captured.out
    assert cli.main(["colorize", *base, "--prompt", "a red ball", "-o", str(tmp_path / "o3")]) == 0
    assert "warning" not in capsys.readouterr().err
    # No prompt, or an empty one: said on stderr, as unknown words are (issue 27).
    for n, prompt in enumerate(([], ["--prompt", ""], ["--prompt", " , "])):
        assert cli.main(["colorize", *base, *prompt, "-o", str(tmp_path / f"empty{n}")]) == 0
        warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
        assert warnings == ["coolcolor colorize: warning: the prompt is empty: the job runs unconditionally (no text "
                            "guidance: the colors the model finds most likely); describe the colors with --prompt"]
    assert json.loads((tmp_path / "o3" / "manifest.json").read_text())["unknown_words"] == []


def test_folder_captions_of_only_unknown_words_are_skipped(tmp_path, caplog, default_pipe):
    import cv2

    from coolcolor.train.data import FolderSource

    stripes = np.zeros((20, 20, 3), np.uint8)
    stripes[:, :7, 2], stripes[:, 7:14, 1], stripes[:, 14:, 0] = 255, 255, 255
    for name, caption in (("known", "a red ball and a green sky"), ("unknown", "astronaut spacesuit"),
                          ("some", "astronaut near a blue box")):
        cv2.imwrite(str(tmp_path / f"{name}.png"), stripes)
        (tmp_path / f"{name}.txt").write_text(caption, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="coolcolor.train.data"):
        source = FolderSource(tmp_path, resolution=16, seed=0, require_color_words=False,
                              tokenizer=default_pipe.tokenizer)
    assert sorted(i.path.name for i in source.items) == ["known.png", "some.png"]
    assert "unknown.png: caption holds only words the model does not know: 'astronaut spacesuit'" in caplog.text
    # Without a tokenizer (the VAE stage reads no captions) nothing is dropped for its words.
    assert len(FolderSource(tmp_path, resolution=16, seed=0, require_color_words=False).items) == 3
