"""Model shapes the trainer builds from scratch, and the vocabulary of the word-level tokenizer.

``coolcolor-tiny`` keeps the SD-1.5 UNet *shape* (four levels, attention in the first three down
blocks and the last three up blocks, so keyframe attention hooks the same layers as in SD) at a size
that trains on a CPU: 8×8 latents (32-px working size, VAE factor 4). The text encoder is a small
CLIPTextModel trained jointly with the UNet on a word-level tokenizer whose vocabulary covers every word
the old-film world's captions use; unlike a frozen sentence encoder it fits the ≤ 50 MB budget and
learns exactly the color/noun binding the task needs.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from tokenizers import pre_tokenizers
from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

from coolcolor.errors import InputError
from coolcolor.model.checkpoint import Components, CoolColorConfig
from coolcolor.model.presets import (
    SD15_SCHEDULER_CONFIG,
    TINY_TEXT_CONFIG,
    TINY_UNET_CONFIG,
    TINY_VAE_CONFIG,
    TINY_VOCABULARY,
    extend_word_tokenizer,
    word_tokenizer,
)
from coolcolor.model.unet import add_gray_input, f_in_weight

# Each architecture is the tiny preset's shapes (coolcolor.model.presets, the one source) with what it changes
# written out: 8×8 latents of a 32-px working size, 48 tokens.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "coolcolor-tiny": {
        "unet": dict(TINY_UNET_CONFIG, sample_size=8, block_out_channels=(32, 64, 64, 128), cross_attention_dim=64),
        "vae": dict(TINY_VAE_CONFIG, sample_size=32),
        "text": dict(TINY_TEXT_CONFIG, hidden_size=64, intermediate_size=128, num_attention_heads=4),
        "max_tokens": 48,
    },
    # The core's test preset, used by the trainer's tests (fast): presets.tiny_components' shapes, one text layer.
    "tiny-test": {
        "unet": dict(TINY_UNET_CONFIG, sample_size=8),
        "vae": dict(TINY_VAE_CONFIG, sample_size=32),
        "text": dict(TINY_TEXT_CONFIG, num_hidden_layers=1),
        "max_tokens": 48,
    },
}

# An experiment (docs/training.md#latent-channels-a-higher-ceiling-the-unet-did-not-learn-to-use-in-time):
# 16 latent channels raise the VAE's adherence ceiling from 75 % to 87 %, but the UNet binds color words far more
# slowly: 30 % adherence at 5000 steps, 47 % at 11000.
_TINY = ARCHITECTURES["coolcolor-tiny"]
ARCHITECTURES["coolcolor-tiny-c16"] = {**_TINY, "unet": dict(_TINY["unet"], in_channels=16, out_channels=16),
                                       "vae": dict(_TINY["vae"], latent_channels=16)}


def architecture(name: str) -> dict[str, Any]:
    if name not in ARCHITECTURES:
        raise InputError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def world_vocabulary() -> list[str]:
    """Every word (as the tokenizer splits it) of the world's captions, plus the core's tiny vocabulary.

    Taken from the world's own tables (palette synonyms, shape and region nouns, caption templates) so
    that a caption never tokenizes to [UNK]; a test checks it over many rendered captions.
    """
    from coolcolor.world.captions import CAPTION_TEMPLATES
    from coolcolor.world.catalog import LAYOUTS, SHAPES, WIDE_LAYOUTS, WIDE_SHAPES
    from coolcolor.world.palette import PALETTE
    from coolcolor.world.wide import WIDE_CAPTION_WORDS

    texts = [w for c in PALETTE for w in c.synonyms]
    texts += [n for nouns in (*SHAPES.values(), *WIDE_SHAPES.values()) for n in nouns]
    texts += [n for layout in (*LAYOUTS.values(), *WIDE_LAYOUTS.values()) for region in layout for n in region]
    texts += list(WIDE_CAPTION_WORDS)
    texts += [t.replace("{objects}", " ").replace("{regions}", " ") for t in CAPTION_TEMPLATES]
    texts += ["a an the in and , ; :"] + list(TINY_VOCABULARY)
    split = pre_tokenizers.Whitespace()
    words = {w.lower() for text in texts for w, _ in split.pre_tokenize_str(text)}
    return sorted(words)


def grow_vocabulary(components: Components, captions: list[str]) -> list[str]:
    """Teach the model's word-level tokenizer the words of ``captions`` it lacks (returned, sorted).

    Known words keep their ids; the text encoder's embedding gets one new row per new word, each the mean of
    the trained rows (deterministic, so a training command still reproduces), learned by the run that brings
    the captions.
    """
    split = pre_tokenizers.Whitespace()
    known = set(components.tokenizer.get_vocab())
    new = sorted({w.lower() for text in captions for w, _ in split.pre_tokenize_str(text)} - known)
    if new:
        components.tokenizer = extend_word_tokenizer(components.tokenizer, new)
        known_rows = components.text_encoder.get_input_embeddings().weight.shape[0]
        components.text_encoder.resize_token_embeddings(len(components.tokenizer), mean_resizing=False)
        with torch.no_grad():
            weight = components.text_encoder.get_input_embeddings().weight
            weight[known_rows:] = weight[:known_rows].mean(0)
    return new


def tokenizer_for(arch: dict[str, Any]) -> PreTrainedTokenizerFast:
    return word_tokenizer(world_vocabulary(), max_length=arch["max_tokens"])


def new_vae(arch: dict[str, Any], seed: int) -> AutoencoderKL:
    """A fresh VAE whose initial weights are a function of ``seed`` alone (so a training command reproduces)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderKL(**arch["vae"])


def new_components(arch_name: str, vae: AutoencoderKL, resolution: int, seed: int) -> Components:
    """A fresh model around a trained VAE: random UNet (F_in random too) and text encoder."""
    arch = architecture(arch_name)
    tokenizer = tokenizer_for(arch)
    # Initial weights are a function of ``seed`` alone, without disturbing the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = add_gray_input(UNet2DConditionModel(**arch["unet"]))
        # add_gray_input zeroes F_in so a *pretrained* UNet starts unchanged; from scratch there is nothing
        # to preserve, and a zero F_in would only slow down learning to read the gray frame.
        with torch.no_grad():
            f_in_weight(unet).normal_(std=float(unet.conv_in.weight[:, : unet.config.out_channels].std()))
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                max_position_embeddings=tokenizer.model_max_length,
                pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **arch["text"],
            )
        )
    config = CoolColorConfig(resolution=resolution, recipe={"state": "training", "architecture": arch_name})
    return Components(unet, vae, text_encoder, tokenizer, DDIMScheduler(**SD15_SCHEDULER_CONFIG), config)


def architecture_signature(components: Components) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed by a run: the shapes of every part."""
    keep = ("block_out_channels", "down_block_types", "up_block_types", "layers_per_block", "in_channels",
            "out_channels", "cross_attention_dim", "latent_channels", "hidden_size", "num_hidden_layers",
            "intermediate_size", "num_attention_heads", "vocab_size")
    sig: dict[str, Any] = {}
    for part in ("unet", "vae", "text_encoder"):
        cfg = getattr(components, part).config
        get = cfg.get if isinstance(cfg, dict) else (lambda k, c=cfg: getattr(c, k, None))
        sig[part] = {k: (list(v) if isinstance(v, tuple) else v) for k in keep if (v := get(k)) is not None}
    return sig
