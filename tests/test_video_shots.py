"""Cut detection (PySceneDetect) on gray frames."""

from __future__ import annotations

import numpy as np

from coolcolor.video.shots import Shot, ShotDetector, detect_shots


def scene_a(t: int) -> np.ndarray:
    y, x = np.mgrid[0:72, 0:96].astype(np.float32)
    disc = np.hypot(x - 30 - 2 * t, y - 36) < 14
    return np.where(disc, 0.85, 0.15 + 0.5 * y / 72).astype(np.float32)


def scene_b(t: int) -> np.ndarray:
    y, x = np.mgrid[0:72, 0:96].astype(np.float32)
    checker = ((x + t) // 12 + y // 12) % 2 == 0
    return np.where(checker, 0.8, 0.25).astype(np.float32) * (0.6 + 0.4 * x / 96)


def test_hard_cut_splits_the_clip_at_the_right_frame():
    frames = [(100 + i, scene_a(i)) for i in range(12)] + [(112 + i, scene_b(i)) for i in range(12)]
    assert detect_shots(frames) == [Shot(100, 111), Shot(112, 123)]


def test_flicker_and_motion_are_not_cuts():
    rng = np.random.default_rng(0)
    frames = []
    for i in range(30):
        flicker = 1 + rng.uniform(-0.06, 0.06)  # old-film exposure flicker
        grain = rng.normal(0, 0.02, (72, 96)).astype(np.float32)
        frames.append((i, np.clip(scene_a(i) * flicker + grain, 0, 1)))
    assert detect_shots(frames) == [Shot(0, 29)]


def test_two_cuts_and_numbering_follows_the_source():
    clip = [scene_a(i) for i in range(10)] + [scene_b(i) for i in range(10)] + [scene_a(i)[::-1] for i in range(10)]
    det = ShotDetector()
    for i, g in enumerate(clip):
        det.add(1001 + i, g)
    assert det.shots() == [Shot(1001, 1010), Shot(1011, 1020), Shot(1021, 1030)]
    assert [list(s.frames)[:2] for s in det.shots()] == [[1001, 1002], [1011, 1012], [1021, 1022]]


def test_short_and_empty_clips():
    assert detect_shots([]) == []
    assert detect_shots([(5, scene_a(0))]) == [Shot(5, 5)]
