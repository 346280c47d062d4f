"""The world's masks and forward flow are exact: what a pixel shows at frame t is shown at p + flow in
frame t+1 (where it is not occluded)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from coolcolor.world import Degradations, Motion, render_clip

SIZE = (96, 72)


@pytest.fixture(scope="module", params=[0, 1, 2, 3])
def clip(request):
    # Full motion (translation, rotation, scale, pan, zoom, forced occlusion) and gate weave.
    return render_clip(request.param, 6, SIZE, objects=3, degradations=Degradations(gate_weave=2.0))


def test_flow_is_exact_against_the_analytic_scene(clip):
    """Sampling the scene at frame t+1 at p + flow(p) gives back frame t's layer and L* exactly."""
    h, w = clip.masks.shape[1:]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    for t in range(clip.n_frames - 1):
        _, L_t = clip.scene.sample(t, xs, ys, clip.size)
        ids1, L1 = clip.scene.sample(t + 1, xs + clip.flow[t, ..., 0], ys + clip.flow[t, ..., 1], clip.size)
        same = ids1 == clip.masks[t]
        visible = same & (xs + clip.flow[t, ..., 0] >= -0.5) & (xs + clip.flow[t, ..., 0] <= w - 0.5) \
            & (ys + clip.flow[t, ..., 1] >= -0.5) & (ys + clip.flow[t, ..., 1] <= h - 0.5)
        assert visible.mean() > 0.6
        np.testing.assert_allclose(L1[visible], L_t[visible], atol=2e-3)
        # The rendered frame is the scene sampled at pixel centres.
        np.testing.assert_array_equal(clip.scene.sample(t, xs, ys, clip.size)[0], clip.masks[t])


def test_warping_the_next_frame_reproduces_this_one_on_valid_pixels(clip):
    """Bilinear warp (cv2.remap) of frame t+1 by the flow: a*b* match exactly on valid pixels, the
    gray to interpolation accuracy; valid pixels are exactly the non-occluded, in-frame ones."""
    h, w = clip.masks.shape[1:]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    ab = clip.ab_truth()
    for t in range(clip.n_frames - 1):
        mx, my = xs + clip.flow[t, ..., 0], ys + clip.flow[t, ..., 1]
        v = clip.flow_valid[t]
        warped_ab = cv2.remap(ab[t + 1], mx, my, cv2.INTER_LINEAR)
        np.testing.assert_allclose(warped_ab[v], ab[t][v], atol=1e-3)
        warped_gray = cv2.remap(clip.gray_clean[t + 1], mx, my, cv2.INTER_LINEAR)
        err = np.abs(warped_gray - clip.gray_clean[t])[v]
        assert np.median(err) < 2e-3 and np.percentile(err, 99) < 0.03, (np.median(err), err.max())
        # Masks: the nearest pixel at p + flow in frame t+1 carries the same layer id.
        warped_ids = cv2.remap(clip.masks[t + 1], mx, my, cv2.INTER_NEAREST)
        assert (warped_ids[v] == clip.masks[t][v]).all()


def test_occlusion_happens_and_is_marked_invalid():
    # Two objects with forced occlusion: the front one covers part of the back one at some point.
    c = render_clip(4, 30, SIZE, objects=2, degradations=Degradations.none())
    back = c.objects[0].id
    h, w = c.masks.shape[1:]
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    covered = 0
    for t in range(c.n_frames - 1):
        x1 = np.round(xs + c.flow[t, ..., 0]).astype(int)
        y1 = np.round(ys + c.flow[t, ..., 1]).astype(int)
        inside = (x1 >= 0) & (x1 < w) & (y1 >= 0) & (y1 < h)
        on_back = (c.masks[t] == back) & inside
        nxt = c.masks[t + 1][y1.clip(0, h - 1), x1.clip(0, w - 1)]
        hidden = on_back & (nxt != back)
        covered += int(hidden.sum())
        assert not (c.flow_valid[t] & hidden).any()
    assert covered > 0


def test_flow_includes_rotation_scale_and_camera_motion():
    still = render_clip(1, 2, SIZE, objects=1, motion=Motion.static(), degradations=Degradations.none())
    assert np.abs(still.flow).max() < 1e-4
    for m in (Motion(0, 1, 0, 0, 0, False), Motion(0, 0, 1, 0, 0, False), Motion(0, 0, 0, 1, 0, False),
              Motion(0, 0, 0, 0, 1, False), Motion(1, 0, 0, 0, 0, False)):
        c = render_clip(1, 3, SIZE, objects=1, motion=m, degradations=Degradations.none())
        assert np.abs(c.flow).max() > 1e-2, m
        if m.pan == 0 and m.zoom == 0:  # only the object moves; the backdrop stays
            assert np.abs(c.flow[c.masks[:-1] < c.objects[0].id]).max() < 1e-4, m
