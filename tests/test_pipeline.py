"""The sampling pipeline on the tiny preset: sizes, luminance, determinism, batching, keyframes, errors."""

from __future__ import annotations

import numpy as np
import pytest

from coolcolor import color
from coolcolor.errors import InputError
from coolcolor.model.pipeline import PipelineProgress

STEPS = 4
# Results computed with different batch shapes differ by float32 reassociation only; 0.02 a*/b* units
# is 1/100 of a just-noticeable difference (ΔE ≈ 2), while real effects below are ≥ 1e-2 … 1e1.
SAME = 0.02


def _colorize(pipe, gray, **kwargs):
    kwargs.setdefault("prompt", "a red ball on green grass")
    kwargs.setdefault("num_inference_steps", STEPS)
    return pipe(gray, **kwargs)


def test_output_is_at_input_resolution_with_the_input_luminance(tiny_pipe, gray_clip):
    result = _colorize(tiny_pipe, gray_clip)
    n, h, w = gray_clip.shape
    assert result.ab.shape == (n, h, w, 2) and result.ab.dtype == np.float32
    assert result.rgb.shape == (n, h, w, 3) and result.rgb.min() >= 0 and result.rgb.max() <= 1
    assert result.model_size == (48, 64)  # long side = 64 (tiny), aspect kept, multiples of 8
    # the ab layer recombined with the plate's own L is inside the sRGB gamut: what the editor will show
    lab = color.replace_luminance(result.ab, gray_clip)
    recombined = color.lab_to_rgb(lab)
    assert recombined.min() > -1e-4 and recombined.max() < 1 + 1e-4
    # and the preview keeps the input's L*
    assert np.abs(color.rgb_to_lab(result.rgb)[..., 0] - color.gray_to_lightness(gray_clip)).max() < 1e-2
    assert np.abs(result.ab).max() > 0.5  # it does add color


def test_preview_can_be_skipped_without_changing_the_ab_layer(tiny_pipe, gray_clip):
    with_preview = _colorize(tiny_pipe, gray_clip[:2], num_inference_steps=2)
    without = _colorize(tiny_pipe, gray_clip[:2], num_inference_steps=2, preview=False)
    assert without.rgb is None
    assert np.array_equal(without.ab, with_preview.ab)


def test_any_input_size_is_resized_internally_and_returned_at_full_size(tiny_pipe):
    gray = np.linspace(0, 1, 2 * 90 * 200, dtype=np.float32).reshape(2, 90, 200)
    result = _colorize(tiny_pipe, gray, num_inference_steps=2)
    assert result.ab.shape == (2, 90, 200, 2)
    assert result.model_size == (32, 64)  # 90/200·64 = 28.8 → nearest multiple of 8
    assert tiny_pipe.model_size(1080, 1920) == (32, 64) and tiny_pipe.model_size(2160, 3840) == (32, 64)


def test_same_seed_same_result_other_seed_other_result(tiny_pipe, gray_clip):
    a = _colorize(tiny_pipe, gray_clip, seed=11, keyframe=1)
    b = _colorize(tiny_pipe, gray_clip, seed=11, keyframe=1)
    c = _colorize(tiny_pipe, gray_clip, seed=12, keyframe=1)
    assert np.array_equal(a.ab, b.ab) and np.array_equal(a.rgb, b.rgb)
    assert np.abs(a.ab - c.ab).max() > 1e-3


def test_prompt_and_guidance_change_the_result(tiny_pipe, gray_clip):
    a = _colorize(tiny_pipe, gray_clip[:1], prompt="a red ball")
    b = _colorize(tiny_pipe, gray_clip[:1], prompt="a blue ball")
    assert np.abs(a.ab - b.ab).max() > 1e-3
    empty = _colorize(tiny_pipe, gray_clip[:1], prompt="")  # unconditional is allowed
    assert np.isfinite(empty.ab).all()


def test_unet_evaluations_two_per_frame_and_step_with_guidance(tiny_pipe, gray_clip):
    n = len(gray_clip)
    assert _colorize(tiny_pipe, gray_clip).unet_evaluations == 2 * STEPS * n
    # keyframe mode: the keyframe is denoised once (leading the first batch), the others read its K/V
    assert _colorize(tiny_pipe, gray_clip, keyframe=2).unet_evaluations == 2 * STEPS * n
    # an external keyframe costs one extra pass per step
    assert _colorize(tiny_pipe, gray_clip, keyframe=gray_clip[0]).unet_evaluations == 2 * STEPS * (n + 1)
    assert _colorize(tiny_pipe, gray_clip, guidance_scale=1.0).unet_evaluations == STEPS * n


def test_batching_by_memory_budget_does_not_change_results(tiny_pipe, gray_clip):
    size = tiny_pipe.model_size(*gray_clip.shape[1:])
    one_frame = tiny_pipe.bytes_per_frame(size, guidance_ways=2)
    assert tiny_pipe.frames_per_batch(size, 2, one_frame * 2) == 2
    assert tiny_pipe.frames_per_batch(size, 2, 1) == 1  # never zero
    decoded: list[int] = []
    decode_hook = tiny_pipe.vae.decoder.register_forward_pre_hook(lambda _m, args: decoded.append(args[0].shape[0]))
    try:
        _colorize(tiny_pipe, gray_clip, num_inference_steps=1, memory_budget_bytes=tiny_pipe.decode_bytes_per_frame(size))
    finally:
        decode_hook.remove()
    assert decoded == [1, 1, 1, 1]  # the decoder is batched by its own, larger, per-frame estimate

    batch_sizes: list[int] = []
    handle = tiny_pipe.unet.register_forward_pre_hook(lambda _m, args: batch_sizes.append(args[0].shape[0]))
    try:
        small = _colorize(tiny_pipe, gray_clip, keyframe=0, memory_budget_bytes=one_frame * 2)
        small_batches = list(batch_sizes)
        batch_sizes.clear()
        big = _colorize(tiny_pipe, gray_clip, keyframe=0, memory_budget_bytes=one_frame * 100)
        big_batches = list(batch_sizes)
    finally:
        handle.remove()
    # per step: keyframe + 3 other frames in batches of ≤ 2 frames, ×2 for guidance
    assert small_batches == [4, 4] * STEPS
    assert big_batches == [8] * STEPS
    np.testing.assert_allclose(small.ab, big.ab, atol=SAME)


def test_keyframe_kv_computed_once_per_step_whatever_the_batching(tiny_pipe, gray_clip):
    name = tiny_pipe.keyframe_layers[0]
    attn = tiny_pipe.unet.get_submodule(name.removesuffix(".processor"))
    calls: list[int] = []
    handle = attn.to_k.register_forward_hook(lambda _m, args, _out: calls.append(args[0].shape[0]))
    try:
        size = tiny_pipe.model_size(*gray_clip.shape[1:])
        budget = tiny_pipe.bytes_per_frame(size, 2)  # one frame per batch: 3 batches per step
        _colorize(tiny_pipe, gray_clip, keyframe=0, memory_budget_bytes=budget)
    finally:
        handle.remove()
    # only the keyframe's rows (uncond + cond) of the first batch are projected to K, once per step
    assert calls == [2] * STEPS


def test_keyframe_attention_changes_the_other_frames_but_not_the_keyframe(tiny_pipe, gray_clip):
    off = _colorize(tiny_pipe, gray_clip)
    on = _colorize(tiny_pipe, gray_clip, keyframe=0)
    other = _colorize(tiny_pipe, gray_clip, keyframe=3)
    np.testing.assert_allclose(on.ab[0], off.ab[0], atol=SAME)  # the keyframe itself is plain self-attention
    assert np.abs(on.ab[1:] - off.ab[1:]).max() > 10 * SAME
    assert np.abs(on.ab[1] - other.ab[1]).max() > 10 * SAME  # which keyframe matters
    assert on.keyframe == 0 and off.keyframe is None


def test_external_keyframe_image_behaves_like_the_same_frame_by_index(tiny_pipe, gray_clip):
    by_index = _colorize(tiny_pipe, gray_clip, keyframe=0)
    by_image = _colorize(tiny_pipe, gray_clip, keyframe=gray_clip[0].copy())
    assert by_image.keyframe is None
    np.testing.assert_allclose(by_image.ab, by_index.ab, atol=SAME)


def test_progress_reports_every_stage_and_can_cancel(tiny_pipe, gray_clip):
    events: list[PipelineProgress] = []
    _colorize(tiny_pipe, gray_clip, progress=events.append, keyframe=0)
    assert events[0].phase == "encode"
    assert [e.step for e in events if e.phase == "denoise"] == list(range(1, STEPS + 1))
    assert events[-1] == PipelineProgress("decode", len(gray_clip), len(gray_clip))

    class Stop(Exception):
        pass

    def cancel_at_step_2(event: PipelineProgress) -> None:
        if event.phase == "denoise" and event.step == 2:
            raise Stop

    with pytest.raises(Stop):
        _colorize(tiny_pipe, gray_clip, keyframe=0, progress=cancel_at_step_2)
    assert tiny_pipe.keyframe_attention.mode == "off" and not tiny_pipe.keyframe_attention.kv
    # and the pipeline is fine afterwards
    assert _colorize(tiny_pipe, gray_clip[:1], num_inference_steps=1).ab.shape[0] == 1


@pytest.mark.parametrize(
    "gray, message",
    [
        ([[[0.5]]], "must be a numpy array or torch tensor, got list"),
        (np.zeros((8, 8), np.float32), r"must be N×H×W \(gray frames\), got shape \(8, 8\)"),
        (np.zeros((0, 8, 8), np.float32), "is empty"),
        (np.zeros((1, 8, 8), np.uint8), "must hold floats in \\[0, 1\\], got dtype uint8"),
        (np.full((1, 8, 8), np.nan, np.float32), r"NaN or Inf pixels \(first at index \(0, 0, 0\)\)"),
        (np.full((1, 8, 8), np.inf, np.float32), "NaN or Inf"),
        (np.full((1, 8, 8), 1.5, np.float32), "must lie in \\[0, 1\\], found values from 1.5 to 1.5"),
    ],
)
def test_bad_frames_are_named(tiny_pipe, gray, message):
    with pytest.raises(InputError, match=message):
        tiny_pipe(gray)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"keyframe": 4}, r"keyframe index 4 is out of range for 4 frame\(s\) \(0…3\)"),
        ({"keyframe": -1}, "out of range"),
        ({"keyframe": 1.0}, "keyframe must be a frame index or an H×W gray image, got float"),
        ({"keyframe": True}, "got bool"),
        ({"keyframe": np.zeros((8, 8), np.float32)}, "keyframe image is 8×8, the frames are 48×64"),
        ({"num_inference_steps": 0}, "num_inference_steps must be an integer in 1…500"),
        ({"guidance_scale": -1.0}, "guidance_scale must be a finite number"),
        ({"guidance_scale": float("nan")}, "guidance_scale must be a finite number"),
        ({"prompt": None}, "prompt must be a string"),
        ({"seed": -3}, "seed must be a non-negative integer"),
    ],
)
def test_bad_settings_are_named(tiny_pipe, gray_clip, kwargs, message):
    with pytest.raises(InputError, match=message):
        tiny_pipe(gray_clip, **kwargs)


def test_a_cached_keyframe_gives_the_same_numbers_with_fewer_unet_passes(tiny_pipe, gray_clip):
    """Scale-out item 5: a worker keeps the keyframe's per-step K/V across windows of a shot."""
    from coolcolor.model.pipeline import KeyframeKVCache

    key = gray_clip[1]
    settings = dict(prompt="a red ball", keyframe=key, num_inference_steps=3, seed=5, guidance_scale=5.0)
    plain = tiny_pipe(gray_clip[2:], **settings)  # the uncached call: keyframe in a mixed first batch
    cache = KeyframeKVCache()
    first = tiny_pipe(gray_clip[2:], keyframe_cache=cache, **settings)  # records the keyframe's K/V
    second = tiny_pipe(gray_clip[2:], keyframe_cache=cache, **settings)  # reuses them
    other_window = tiny_pipe(gray_clip[:1], keyframe_cache=cache, **settings)
    fresh = tiny_pipe(gray_clip[:1], keyframe_cache=KeyframeKVCache(), **settings)
    assert (cache.misses, cache.hits) == (1, 2)
    np.testing.assert_array_equal(second.ab, first.ab)  # bit-identical: hit or miss
    np.testing.assert_array_equal(other_window.ab, fresh.ab)
    np.testing.assert_allclose(first.ab, plain.ab, atol=SAME)  # only batch composition changed
    ways, steps = 2, 3
    assert first.unet_evaluations == plain.unet_evaluations
    assert second.unet_evaluations == plain.unet_evaluations - ways * steps  # the keyframe's passes saved
