"""Model shapes built from code, with no download: the Stable Diffusion 1.5 architecture (for FLOP
counts on the meta device, SD-shaped test folders and the ``sd15`` preset) and the ``tiny`` preset
(tests, CPU demos). Both presets have random weights (seeded): they measure speed and memory, which do
not depend on the values, and are never an artist's default.

The tiny UNet keeps SD-1.5's *shape* — four levels, attention in the first three down blocks and the
last three up blocks — so "the last two up blocks with attention" means the same layers as in SD.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

from coolcolor.model.checkpoint import Components, CoolColorConfig
from coolcolor.model.unet import add_gray_input, f_in_weight

# Stable Diffusion 1.5 (runwayml/stable-diffusion-v1-5, unet/config.json and vae/config.json).
SD15_UNET_CONFIG: dict[str, Any] = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
)
SD15_VAE_CONFIG: dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    sample_size=512,
    scaling_factor=0.18215,
)
# SD-1.5's text encoder is CLIP ViT-L/14's text tower (openai/clip-vit-large-patch14, config.json text_config).
SD15_TEXT_CONFIG: dict[str, Any] = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    projection_dim=768,
)
SD15_RESOLUTION = 512
SD15_SCHEDULER_CONFIG: dict[str, Any] = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)

TINY_UNET_CONFIG: dict[str, Any] = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    down_block_types=SD15_UNET_CONFIG["down_block_types"],
    up_block_types=SD15_UNET_CONFIG["up_block_types"],
    block_out_channels=(32, 32, 64, 64),
    layers_per_block=1,
    cross_attention_dim=32,
    attention_head_dim=4,
    norm_num_groups=8,
)
TINY_VAE_CONFIG: dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(16, 32, 32),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=64,
    scaling_factor=1.0,
)
# The tiny text encoder (a CLIPTextModel): its width is the UNet's cross-attention width.
TINY_TEXT_CONFIG: dict[str, Any] = dict(
    hidden_size=TINY_UNET_CONFIG["cross_attention_dim"],
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
)
TINY_RESOLUTION = 64

# Words the tiny text stack knows: colors with their synonyms, things found in old films, glue words.
TINY_VOCABULARY = ["a", "an", "the", "and", "with", "of", "on", "in", "under", "over", "near", "by", "at", "to", "is", "are", "its", "their", "some", "two", "three", "this", "that", "red", "crimson", "scarlet", "orange", "amber", "yellow", "golden", "green", "emerald", "olive", "blue", "azure", "navy", "teal", "cyan", "purple", "violet", "lavender", "pink", "magenta", "rose", "brown", "tan", "beige", "chocolate", "white", "ivory", "black", "gray", "grey", "silver", "dark", "light", "pale", "bright", "sky", "ground", "wall", "floor", "grass", "sea", "water", "road", "field", "hill", "tree", "forest", "sun", "cloud", "house", "building", "street", "room", "ball", "circle", "disc", "square", "box", "cube", "triangle", "star", "ring", "car", "hat", "coat", "dress", "shirt", "tie", "man", "woman", "girl", "boy", "face", "hand", "cloth", "wagon", "horse", "flower", "leaf", "stone", "rock", "valley", "mountain", "window", "door", "table", "chair", "cup", "bottle"]
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")


def _word_level(vocab: dict[str, int], max_length: int) -> PreTrainedTokenizerFast:
    """The lower-casing word-level tokenizer of ``vocab`` (word → id), ``[BOS] … [EOS]`` around every text."""
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", vocab["[BOS]"]), ("[EOS]", vocab["[EOS]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
        model_max_length=max_length,
    )


def word_tokenizer(vocabulary: list[str] = TINY_VOCABULARY, max_length: int = 32) -> PreTrainedTokenizerFast:
    """A lower-casing word-level tokenizer, built offline; saved and loaded as ``tokenizer.json``."""
    words = list(SPECIAL_TOKENS) + sorted(set(vocabulary))
    return _word_level({w: i for i, w in enumerate(words)}, max_length)


def extend_word_tokenizer(tokenizer: PreTrainedTokenizerFast, words: list[str]) -> PreTrainedTokenizerFast:
    """The same word-level tokenizer with ``words`` it lacks appended: every known word keeps its id, so a
    trained text encoder stays valid and only the new rows of its embedding need learning."""
    vocab = dict(tokenizer.get_vocab())
    for word in sorted({w.lower() for w in words} - set(vocab)):
        vocab[word] = len(vocab)
    return _word_level(vocab, tokenizer.model_max_length)


def _untrained(preset: str, resolution: int, seed: int, unet: UNet2DConditionModel, vae: AutoencoderKL,
               text_encoder: CLIPTextModel, tokenizer: PreTrainedTokenizerFast) -> Components:
    """A preset's random modules as Components: inference mode, and a recipe that says they are untrained."""
    for module in (unet, vae, text_encoder):
        module.eval().requires_grad_(False)
    config = CoolColorConfig(
        resolution=resolution,
        recipe={"state": "untrained", "preset": preset, "seed": seed},
        provenance={"built_by": f"coolcolor.model.presets.{preset}_components"},
    )
    return Components(unet, vae, text_encoder, tokenizer, DDIMScheduler(**SD15_SCHEDULER_CONFIG), config)


def tiny_components(seed: int = 0) -> Components:
    """A complete CoolColor model small enough for a 20-step sample of a few 64×64 frames in seconds."""
    torch.manual_seed(seed)
    unet = add_gray_input(UNet2DConditionModel(**TINY_UNET_CONFIG))
    # The tiny preset stands in for a *trained* model: with the paper's zero F_in the UNet would ignore
    # the gray frame, every frame would follow the same trajectory, and tests could not see the gray
    # path or the keyframe attention at work. So F_in is random like every other weight here.
    with torch.no_grad():
        f_in_weight(unet).normal_(std=float(unet.conv_in.weight[:, :4].std()))
    vae = AutoencoderKL(**TINY_VAE_CONFIG)
    tokenizer = word_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            max_position_embeddings=tokenizer.model_max_length,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **TINY_TEXT_CONFIG,
        )
    )
    return _untrained("tiny", TINY_RESOLUTION, seed, unet, vae, text_encoder, tokenizer)


def sd15_components(seed: int = 0) -> Components:
    """SD-1.5's UNet (with F_in: 8 input channels), VAE and a CLIP-L-shaped text encoder, random weights.

    What a CoolColor model made from SD-1.5 costs to run and to train, without its weights: the random
    stand-in for GPU figures (``preset:sd15``). The text encoder has CLIP-L's shape (its 49,408-row
    embedding included) but the word-level tokenizer: CLIP's BPE vocabulary is not shipped, and which
    ids a prompt becomes does not change the cost (77 positions either way). Weights are a function of
    ``seed`` alone, drawn on the CPU without disturbing the caller's RNG; about 4.3 GB in fp32.
    """
    tokenizer = word_tokenizer(max_length=SD15_TEXT_CONFIG["max_position_embeddings"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = add_gray_input(UNet2DConditionModel(**SD15_UNET_CONFIG))
        with torch.no_grad():  # random like the rest (see tiny_components); tensor ops: it builds on "meta" too
            f_in_weight(unet).normal_().mul_(unet.conv_in.weight[:, :4].std())
        vae = AutoencoderKL(**SD15_VAE_CONFIG)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            **SD15_TEXT_CONFIG, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id))
    return _untrained("sd15", SD15_RESOLUTION, seed, unet, vae, text_encoder, tokenizer)


# The model specs ``preset:NAME`` (coolcolor.model.resolve) and what builds each.
PRESETS = {"tiny": tiny_components, "sd15": sd15_components}


def preset_components(name: str, seed: int = 0) -> Components:
    return PRESETS[name](seed)


def tiny_pipeline(seed: int = 0, device: str | torch.device = "cpu"):
    """The tiny preset as a ready pipeline (random weights: the colors mean nothing)."""
    from coolcolor.model.pipeline import CoolColorPipeline

    return CoolColorPipeline(tiny_components(seed)).to(device)
