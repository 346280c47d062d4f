"""The optical-flow baseline for reference keyframes (issue 25, "Measure"): what a user would try first.

The reference frame's a*, b* are carried through the shot by dense optical flow — OpenCV DIS on the gray
frames (``coolcolor.world.metrics.dis_flow``, the flow the flicker metrics use), chained frame to frame — and
put under the plate's L*. Each frame t ≥ 1 looks up its colours by a backward warp: the flow from frame t to
frame t−1 composes onto frame t−1's map back into the reference, so every frame samples the reference once
(``cv2.remap``, bilinear) instead of resampling, and so blurring, the colours again at every link.

``unreliable`` marks the pixels whose chain back to the reference crosses a pixel that fails the
forward–backward check of ``dis_flow`` (occluded or disoccluded, on a motion boundary, or mapped out of the
frame) at any link: where propagation has nothing true to carry, and where a benchmark should look apart.
"""

from __future__ import annotations

import cv2
import numpy as np

from coolcolor.errors import InputError
from coolcolor.world.metrics import dis_flow


def propagate_ab(reference_ab: np.ndarray, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Carry ``reference_ab`` (H×W×2, the a*, b* of frame 0 of ``gray``) along the shot ``gray`` (N×H×W in
    [0, 1]) by chained DIS flow. Returns the a*, b* of every frame (N×H×W×2 float32; frame 0 is the
    reference exactly) and the unreliable pixels (N×H×W bool; none in frame 0)."""
    frames = np.asarray(gray, np.float32)
    ab_ref = np.asarray(reference_ab, np.float32)
    if frames.ndim != 3 or frames.shape[0] < 1:
        raise InputError(f"gray shot must be (frames, H, W), got shape {frames.shape}")
    n, h, w = frames.shape
    if ab_ref.shape != (h, w, 2):
        raise InputError(f"reference a*b* is {ab_ref.shape}, the frames need {(h, w, 2)}")
    ab = np.empty((n, h, w, 2), np.float32)
    unreliable = np.zeros((n, h, w), bool)
    ab[0] = ab_ref
    if n == 1:
        return ab, unreliable
    # dis_flow on the reversed shot: pair k runs from frame n-1-k to frame n-2-k, i.e. frame t's backward
    # flow (to t-1) and its forward-backward check in frame t's pixels, at index n-1-t.
    backward, valid = dis_flow(frames[::-1])
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = xs.copy(), ys.copy()  # where each pixel of the current frame sits in the reference
    for t in range(1, n):
        flow = backward[n - 1 - t]
        sx, sy = xs + flow[..., 0], ys + flow[..., 1]
        map_x = cv2.remap(map_x, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        map_y = cv2.remap(map_y, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        inherited = cv2.remap(unreliable[t - 1].astype(np.uint8), sx, sy, cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_REPLICATE).astype(bool)
        unreliable[t] = inherited | ~valid[n - 1 - t]
        ab[t] = cv2.remap(ab_ref, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return ab, unreliable
