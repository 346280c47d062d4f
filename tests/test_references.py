"""Reference keyframes in the engine (issue 25), on the tiny random preset: a frame reference's own output is
its a*, b*; references change the other frames; blending weights; windows and the K/V cache; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coolcolor import color
from coolcolor.errors import InputError
from coolcolor.model.attention import ReferenceBlend, _attend_blended, _attend_folded
from coolcolor.model.pipeline import KeyframeKVCache
from coolcolor.references import ReferenceImage, gray_problem, reference_weights

STEPS = 4
SAME = 0.02  # float32 reassociation between batch shapes (as in test_pipeline)


def _colour(gray: np.ndarray, tint=(1.0, 0.55, 0.25)) -> np.ndarray:
    """A colour image with the frame's structure: the gray, tinted (warm by default)."""
    return np.clip(np.stack([gray * c for c in tint], -1), 0, 1).astype(np.float32)


def _run(pipe, gray, **kwargs):
    kwargs.setdefault("prompt", "a red ball on green grass")
    kwargs.setdefault("num_inference_steps", STEPS)
    return pipe(gray, **kwargs)


def _graded(gray: np.ndarray, ab=(25.0, 35.0)) -> np.ndarray:
    """What a colorist's grade of the frame is: the plate's L* with colour (a*, b*) fitted to the gamut."""
    lab = np.concatenate([color.gray_to_lightness(gray)[..., None], np.broadcast_to(np.float32(ab), gray.shape + (2,))], -1)
    return np.clip(color.lab_to_rgb(color.fit_chroma_to_gamut(lab.astype(np.float32))), 0, 1).astype(np.float32)


def test_a_frame_reference_is_its_own_output_and_keeps_the_plates_lightness(tiny_pipe, gray_clip):
    ref = _graded(gray_clip[2])
    result = _run(tiny_pipe, gray_clip, references=[ReferenceImage(ref, 2)])
    expected = color.rgb_to_lab(ref)[..., 1:]
    assert np.array_equal(result.ab[2], expected)  # the artist's frame, bit for bit before the half-float file
    assert np.abs(result.ab[2].astype(np.float16).astype(np.float32) - expected).max() < 0.07  # half at |ab| < 128
    preview_lightness = color.rgb_to_lab(result.rgb[2])[..., 0]
    assert np.abs(preview_lightness - color.gray_to_lightness(gray_clip[2])).max() < 0.5  # L* is the plate's


@pytest.fixture(scope="module")
def clip3():
    """Three frames of the shared disc clip (tests/conftest.py ``gray_clip``), kept short: CPU time."""
    y, x = np.mgrid[0:48, 0:64].astype(np.float32)
    frames = [np.where(np.hypot(x - 20 - 6 * t, y - 24) < 12, 0.8, 0.2 + 0.5 * y / 48) for t in range(3)]
    return np.stack(frames).astype(np.float32)


@pytest.fixture(scope="module")
def plain(tiny_pipe, clip3):
    """No reference, frames independent: what the references are measured against."""
    return _run(tiny_pipe, clip3)


def test_a_reference_changes_the_other_frames_also_through_kv_alone(tiny_pipe, clip3, plain):
    warm = _run(tiny_pipe, clip3, references=[ReferenceImage(_colour(clip3[0]), 0)])
    assert np.abs(warm.ab[1:] - plain.ab[1:]).mean() > 1.0
    # reference_start=0: the frames start from noise as without a reference; only the keyframe attention
    # reads the reference, and that alone changes them
    kv_only = _run(tiny_pipe, clip3, references=[ReferenceImage(_colour(clip3[0]), 0)], reference_start=0.0)
    assert np.abs(kv_only.ab[1:] - plain.ab[1:]).max() > 1e-2


def test_one_step_with_a_frame_reference_denoises_that_step(tiny_pipe, clip3):
    """The start skips round(0.7 × steps) steps, but never all of them: with one step the start stays put
    (an IndexError past the schedule before) and the reference still steers the other frames."""
    one = _run(tiny_pipe, clip3, references=[ReferenceImage(_colour(clip3[0]), 0)], num_inference_steps=1)
    assert one.ab.shape == (3, 48, 64, 2) and np.isfinite(one.ab).all()
    assert np.array_equal(one.ab[0], color.rgb_to_lab(_colour(clip3[0]))[..., 1:])


def test_an_exemplar_of_another_size_steers_every_frame(tiny_pipe, clip3, plain):
    still = _colour(np.linspace(0.1, 0.9, 40 * 30, dtype=np.float32).reshape(30, 40))
    result = _run(tiny_pipe, clip3, references=[ReferenceImage(still, None)])
    assert result.ab.shape == plain.ab.shape
    assert np.abs(result.ab - plain.ab).max() > 1e-2  # it is read (through the keyframe K/V) by every frame
    assert all(np.abs(result.ab[i] - plain.ab[i]).max() > 1e-3 for i in range(3))


def test_reference_weights_nearest_and_inverse_distance():
    refs = [0, None, 10]
    nearest = reference_weights([0, 2, 5, 8, 10, 14], refs, "nearest")
    assert nearest.tolist() == [[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]]  # tie → earlier
    inverse = reference_weights([0, 2, 5, 14], refs, "inverse_distance")
    far = (1 / 14) / (1 / 14 + 1 / 4)  # frame 14: 14 from reference 0, 4 from reference 10
    assert np.allclose(inverse, [[1, 0, 0], [0.8, 0, 0.2], [0.5, 0, 0.5], [far, 0, 1 - far]])
    assert np.allclose(inverse.sum(1), 1)
    # exemplars only: shared equally; a lone frame reference takes everything
    assert reference_weights([3, 7], [None, None]).tolist() == [[0.5, 0.5], [0.5, 0.5]]
    assert reference_weights([3, 7], [5]).tolist() == [[1], [1]]
    with pytest.raises(InputError, match="blend must be one of"):
        reference_weights([0], [0], "average")


def test_blended_attention_is_the_weighted_sum_of_each_references_attention():
    torch.manual_seed(0)
    query = torch.randn(2 * 3, 2, 5, 4)  # 2 guidance chunks × 3 frames, 2 heads, 5 tokens, d=4
    kv = [{"l": (torch.randn(2, 2, 7, 4), torch.randn(2, 2, 7, 4))} for _ in range(2)]
    weights = torch.tensor([[1.0, 0.0], [0.25, 0.75], [0.0, 1.0]])
    out = _attend_blended(query, ReferenceBlend(kv, weights), "l")
    a = _attend_folded(query, *kv[0]["l"])
    b = _attend_folded(query, *kv[1]["l"])
    w = weights.repeat(2, 1)
    expected = w[:, 0].view(-1, 1, 1, 1) * a + w[:, 1].view(-1, 1, 1, 1) * b
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(out[0], a[0], atol=1e-6) and torch.allclose(out[2], b[2], atol=1e-6)


def test_two_references_blend_by_distance(tiny_pipe, gray_clip):
    """Four frames, references on 0 and 3: frames 1 and 2 lie between them."""
    refs = [ReferenceImage(_colour(gray_clip[0]), 0), ReferenceImage(_colour(gray_clip[3], (0.2, 0.5, 1.0)), 3)]
    nearest = _run(tiny_pipe, gray_clip, references=refs, reference_blend="nearest")
    inverse = _run(tiny_pipe, gray_clip, references=refs, reference_blend="inverse_distance")
    for result in (nearest, inverse):  # both ends are the references themselves
        assert np.array_equal(result.ab[0], color.rgb_to_lab(refs[0].rgb)[..., 1:])
        assert np.array_equal(result.ab[3], color.rgb_to_lab(refs[1].rgb)[..., 1:])
    assert np.abs(nearest.ab[1:3] - inverse.ab[1:3]).max() > 1e-2  # the middle frames mix the two


def test_windows_and_the_kv_cache_do_not_change_the_pixels(tiny_pipe, gray_clip):
    refs = [ReferenceImage(_colour(gray_clip[0]), 0), ReferenceImage(_colour(gray_clip[3], (0.2, 0.5, 1.0)), 3)]
    whole = _run(tiny_pipe, gray_clip, references=refs)
    cache = KeyframeKVCache(max_entries=4)
    parts = [_run(tiny_pipe, gray_clip[i : i + 2], references=refs, frame_numbers=[i, i + 1], keyframe_cache=cache)
             for i in (0, 2)]
    assert cache.misses == 2 and cache.hits == 2  # each reference's K/V computed once for both windows
    assert np.abs(np.concatenate([p.ab for p in parts]) - whole.ab).max() < SAME
    assert parts[1].unet_evaluations < whole.unet_evaluations  # no reference pass: both were cached


def test_nothing_to_denoise_when_every_frame_is_a_reference(tiny_pipe, gray_clip):
    refs = [ReferenceImage(_colour(gray_clip[i]), i) for i in range(2)]
    result = _run(tiny_pipe, gray_clip[:2], references=refs)
    assert result.unet_evaluations == 0
    assert np.array_equal(result.ab[1], color.rgb_to_lab(refs[1].rgb)[..., 1:])


@pytest.mark.parametrize("references, kwargs, message", [
    ("gray", {}, r"references\[0\] is gray"),
    ("small", {}, r"references\[0\] for frame 0 is 24×32, the frames are 48×64"),
    ("twice", {}, "two references for frame 1"),
    ("warm", {"keyframe": 0}, "keyframe and references cannot be combined"),
    ("warm", {"reference_start": 1.0}, r"reference_start must be a number in \[0, 1\)"),
    ("warm", {"frame_numbers": [0, 1]}, "frame_numbers must be 4 integers"),
    ("array", {}, "references must be a list of ReferenceImage"),
    ("range", {}, r"references\[0\] must lie in \[0, 1\]"),
])
def test_bad_references_are_named_in_one_line(tiny_pipe, gray_clip, references, kwargs, message):
    warm = _colour(gray_clip[0])
    refs = {
        "gray": [ReferenceImage(np.repeat(gray_clip[0][..., None], 3, -1), 0)],
        "small": [ReferenceImage(warm[::2, ::2], 0)],
        "twice": [ReferenceImage(warm, 1), ReferenceImage(warm, 1)],
        "warm": [ReferenceImage(warm, 0)],
        "array": warm,
        "range": [ReferenceImage(warm * 2, 0)],
    }[references]
    with pytest.raises(InputError, match=message) as info:
        _run(tiny_pipe, gray_clip, references=refs, **kwargs)
    assert "\n" not in str(info.value)


def test_gray_problem_tolerates_a_tinted_image_and_refuses_a_neutral_one():
    gray = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    assert gray_problem(np.repeat(gray[..., None], 3, -1)) is not None
    assert gray_problem(_colour(gray)) is None
