"""F_in (Eq. 4) and keyframe cross-frame attention (Eq. 8)."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0

from coolcolor.errors import CheckpointError
from coolcolor.model.attention import (
    KeyframeAttention,
    KeyframeAttnProcessor,
    install_keyframe_attention,
    keyframe_attention_layers,
)
from coolcolor.model.presets import SD15_UNET_CONFIG, TINY_UNET_CONFIG
from coolcolor.model.unet import add_gray_input, f_in_weight, merge_gray


@pytest.fixture
def stock_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**TINY_UNET_CONFIG).eval()
    with torch.no_grad():  # a trained-looking bias, so a forgotten bias copy would show
        unet.conv_in.bias.normal_()
    return unet


def test_f_in_starts_at_zero_and_the_unet_equals_stock_sd(stock_unet):
    coolcolor_unet = add_gray_input(copy.deepcopy(stock_unet))
    assert coolcolor_unet.config.in_channels == 8
    assert torch.count_nonzero(f_in_weight(coolcolor_unet)) == 0
    assert torch.equal(coolcolor_unet.conv_in.bias, stock_unet.conv_in.bias)  # diffusers #4960
    torch.manual_seed(1)
    noisy = torch.randn(2, 4, 16, 16)
    text = torch.randn(2, 5, 32)
    t = torch.tensor(500)
    with torch.no_grad():
        expected = stock_unet(noisy, t, encoder_hidden_states=text).sample
        for gray in (torch.randn(2, 4, 16, 16) * 3, torch.zeros(2, 4, 16, 16)):
            got = coolcolor_unet(merge_gray(noisy, gray), t, encoder_hidden_states=text).sample
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_f_in_once_trained_makes_the_output_depend_on_gray(stock_unet):
    unet = add_gray_input(stock_unet)
    with torch.no_grad():
        f_in_weight(unet).normal_(std=0.1)
        noisy, text = torch.randn(1, 4, 16, 16), torch.randn(1, 5, 32)
        a = unet(merge_gray(noisy, torch.zeros(1, 4, 16, 16)), 10, encoder_hidden_states=text).sample
        b = unet(merge_gray(noisy, torch.ones(1, 4, 16, 16)), 10, encoder_hidden_states=text).sample
    assert (a - b).abs().max() > 1e-3


def test_add_gray_input_twice_is_refused(stock_unet):
    add_gray_input(stock_unet)
    with pytest.raises(CheckpointError, match="already a CoolColor UNet"):
        add_gray_input(stock_unet)


def test_keyframe_layers_are_attn1_of_the_last_two_attention_up_blocks_of_sd15():
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET_CONFIG)
    expected = [
        f"up_blocks.{b}.attentions.{a}.transformer_blocks.0.attn1.processor" for b in (2, 3) for a in range(3)
    ]
    assert keyframe_attention_layers(unet) == expected
    before = dict(unet.attn_processors)
    assert len(before) == 32
    installed = install_keyframe_attention(unet, KeyframeAttention())
    after = unet.attn_processors
    assert installed == expected
    for name, processor in after.items():
        if name in expected:
            assert isinstance(processor, KeyframeAttnProcessor) and processor.name == name
        else:
            assert processor is before[name], name  # every other processor untouched


def test_keyframe_layers_follow_the_blocks_that_have_attention():
    config = dict(TINY_UNET_CONFIG, up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
    unet = UNet2DConditionModel(**config)
    names = keyframe_attention_layers(unet)
    assert names and all(n.startswith(("up_blocks.1.", "up_blocks.2.")) and ".attn1." in n for n in names)


def _attn1(unet: UNet2DConditionModel):
    return unet.up_blocks[3].attentions[0].transformer_blocks[0].attn1


def test_keyframe_equal_to_the_frame_is_plain_self_attention(stock_unet):
    attn = _attn1(stock_unet)
    state = KeyframeAttention()
    processor = KeyframeAttnProcessor("layer", state)
    torch.manual_seed(3)
    frame = torch.randn(1, 64, attn.query_dim)
    reference = AttnProcessor2_0()(attn, frame)
    with state.storing():
        stored = processor(attn, frame)
    with state.using():
        used = processor(attn, frame)
    torch.testing.assert_close(stored, reference, rtol=0, atol=1e-5)
    torch.testing.assert_close(used, reference, rtol=0, atol=1e-5)


def test_frames_read_the_keyframe_kv_and_not_their_own(stock_unet):
    attn = _attn1(stock_unet)
    state = KeyframeAttention()
    processor = KeyframeAttnProcessor("layer", state)
    torch.manual_seed(4)
    keyframe = torch.randn(2, 64, attn.query_dim)  # (uncond, cond) guidance chunks of the keyframe
    frames = torch.randn(6, 64, attn.query_dim)  # 3 frames × 2 chunks, chunk-major
    with state.storing(chunks=2):
        processor(attn, keyframe)
    with state.using():
        out = processor(attn, frames)

    # Eq. 8 written out: each frame's Q against its chunk's keyframe K/V
    heads, d = attn.heads, attn.inner_dim // attn.heads
    def split(x):
        return x.view(x.shape[0], -1, heads, d).transpose(1, 2)
    q, k, v = split(attn.to_q(frames)), split(attn.to_k(keyframe)), split(attn.to_v(keyframe))
    chunk = torch.arange(6) // 3
    weights = torch.softmax(q @ k[chunk].transpose(-1, -2) / d**0.5, dim=-1)
    expected = attn.to_out[0]((weights @ v[chunk]).transpose(1, 2).reshape(6, 64, heads * d))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)

    # storing from a batch that carries the keyframe first in each chunk gives the same frames' result,
    # and the keyframe rows get plain self-attention
    mixed = torch.cat((keyframe[:1], frames[:3], keyframe[1:], frames[3:]))
    with state.storing(chunks=2):
        mixed_out = processor(attn, mixed)
    torch.testing.assert_close(mixed_out[[1, 2, 3, 5, 6, 7]], out, rtol=0, atol=1e-5)
    torch.testing.assert_close(mixed_out[[0, 4]], AttnProcessor2_0()(attn, keyframe), rtol=0, atol=1e-5)

    # the keyframe's features change the result ...
    with state.storing(chunks=2):
        processor(attn, keyframe + 1)
    with state.using():
        assert (processor(attn, frames) - out).abs().max() > 1e-3
    # ... the frame's own K/V do not: break to_k/to_v and nothing changes while reading the keyframe
    with state.storing(chunks=2):
        processor(attn, keyframe)
    saved_k, saved_v = attn.to_k.weight.clone(), attn.to_v.weight.clone()
    with torch.no_grad():
        attn.to_k.weight.normal_()
        attn.to_v.weight.normal_()
    try:
        with state.using():
            torch.testing.assert_close(processor(attn, frames), out, rtol=0, atol=1e-6)
    finally:
        with torch.no_grad():
            attn.to_k.weight.copy_(saved_k)
            attn.to_v.weight.copy_(saved_v)


def test_using_without_a_stored_keyframe_is_an_error():
    with pytest.raises(RuntimeError, match="run the keyframe first"), KeyframeAttention().using():
        pass


def test_whole_unet_with_itself_as_keyframe_equals_the_plain_unet(stock_unet):
    unet = add_gray_input(stock_unet)
    torch.manual_seed(5)
    x, text = torch.randn(1, 8, 16, 16), torch.randn(1, 5, 32)
    with torch.no_grad():
        plain = unet(x, 300, encoder_hidden_states=text).sample
        state = KeyframeAttention()
        install_keyframe_attention(unet, state)
        with state.storing():
            stored = unet(x, 300, encoder_hidden_states=text).sample
        with state.using():
            used = unet(x, 300, encoder_hidden_states=text).sample
    torch.testing.assert_close(stored, plain, rtol=0, atol=1e-5)
    torch.testing.assert_close(used, plain, rtol=0, atol=1e-5)
