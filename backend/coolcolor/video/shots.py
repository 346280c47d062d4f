"""Shots: cut detection with PySceneDetect, so keyframes and windows never straddle a cut.

Frames arrive one at a time (memory flat in clip length) as the model's gray, shrunk to at most
``ANALYSIS_WIDTH`` pixels wide. PySceneDetect's ``AdaptiveDetector`` compares each frame's content
change with the average change of its neighbours, which keeps the flicker and weave of old film
from being read as cuts; ``luma_only`` because the frames are gray.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import cv2
import numpy as np

ANALYSIS_WIDTH = 320
DEFAULT_MIN_SHOT_FRAMES = 8


@dataclass(frozen=True)
class Shot:
    first: int
    last: int  # inclusive

    @property
    def frames(self) -> range:
        return range(self.first, self.last + 1)

    def to_dict(self) -> dict:
        return asdict(self)


def _analysis_image(gray: np.ndarray) -> np.ndarray:
    h, w = gray.shape
    if w > ANALYSIS_WIDTH:
        gray = cv2.resize(gray, (ANALYSIS_WIDTH, max(1, round(h * ANALYSIS_WIDTH / w))), interpolation=cv2.INTER_AREA)
    g8 = np.clip(np.round(gray * 255), 0, 255).astype(np.uint8)
    return cv2.merge((g8, g8, g8))


class ShotDetector:
    """Feed frames in order with ``add``; ``shots`` gives the shots of everything fed so far."""

    def __init__(self, min_shot_frames: int = DEFAULT_MIN_SHOT_FRAMES, adaptive_threshold: float = 3.0,
                 min_content_val: float = 15.0) -> None:
        from scenedetect.detectors import AdaptiveDetector

        self._detector = AdaptiveDetector(
            adaptive_threshold=adaptive_threshold,
            min_scene_len=int(min_shot_frames),
            min_content_val=min_content_val,
            luma_only=True,
        )
        self._frames: list[int] = []  # source frame number of each position fed
        self._cuts: list[int] = []  # positions where a new shot starts

    def add(self, frame: int, gray: np.ndarray) -> None:
        from scenedetect import FrameTimecode

        position = len(self._frames)
        self._frames.append(frame)
        cuts = self._detector.process_frame(FrameTimecode(position, fps=24.0), _analysis_image(gray))
        self._cuts.extend(c.frame_num for c in cuts)

    def shots(self) -> list[Shot]:
        if not self._frames:
            return []
        from scenedetect import FrameTimecode

        tail = self._detector.post_process(FrameTimecode(len(self._frames) - 1, fps=24.0))
        starts = sorted({0, *self._cuts, *(c.frame_num for c in tail)})
        starts = [s for s in starts if 0 <= s < len(self._frames)]
        ends = [*(s - 1 for s in starts[1:]), len(self._frames) - 1]
        return [Shot(self._frames[a], self._frames[b]) for a, b in zip(starts, ends, strict=True)]


def detect_shots(frames: Iterable[tuple[int, np.ndarray]], min_shot_frames: int = DEFAULT_MIN_SHOT_FRAMES) -> list[Shot]:
    """Shots of a clip given as (frame number, H×W gray in [0, 1]) in order."""
    detector = ShotDetector(min_shot_frames)
    for frame, gray in frames:
        detector.add(frame, gray)
    return detector.shots()
