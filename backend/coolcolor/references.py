"""Reference images (issue 25): the artist's coloured frame, or an exemplar still, as the keyframe.

A job may carry colour images whose colours the shot should follow. A *frame reference* is a graded
(or painted) image of one frame of the shot: that frame's output is the reference's a*, b* exactly,
and the other frames read its keys and values in the keyframe attention (paper Eq. 8) instead of a
keyframe the model colored itself. An *exemplar* is a colour still that is not a frame of the shot
(a photograph of the same place or costume): every frame of the shot reads it, nothing is copied.

This module is the engine side of the contract (``coolcolor_protocol.jobspec`` holds the fields and
limits): decoding and checking a reference file, and how a frame weighs several references.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coolcolor import color
from coolcolor.errors import InputError
from coolcolor_protocol.jobspec import file_sha256  # the one content hash (the plugins hash references with it)

BLENDS = ("nearest", "inverse_distance")
# Measured on world clips with true-colour references on the first and last frame (bench/bench_reference.py,
# 4 clips × 8 frames, 10 steps): ΔE2000 2.47 (nearest) vs 2.49 (inverse distance), adherence 17/22 vs
# 18/22 — no difference beyond noise. Inverse distance is the default because it changes smoothly from
# one reference to the next (no jump at the midpoint, i.e. no flicker there); "nearest" is what keyframes do.
DEFAULT_BLEND = "inverse_distance"
# The share of the schedule frames skip, starting from their frame references' latent at that noise level
# (SDEdit). Measured on held-out world clips with the true colour of frame 0 (10 steps, 4 clips, ΔE2000 on
# the other frames; text only 6.5): 6.8 (K/V only) → 5.0 (0.3) → 3.1 (0.5) → 2.8 (0.7) at 8 frames;
# 3.6 (0.7) vs 3.9 (0.85) at 32 frames. 0.7 it is.
DEFAULT_REFERENCE_START = 0.7
# A reference whose 99.5th-percentile chroma C*ab stays under this is gray: it has no colours to give.
# 4 is about two just-noticeable differences; film grain and JPEG noise on a gray image stay below it.
GRAY_CHROMA = 4.0


@dataclass(frozen=True)
class ReferenceImage:
    """A decoded reference: ``rgb`` H×W×3 float32 display sRGB in [0, 1]; ``frame`` the frame of the
    shot it depicts (in the numbering of the ``frame_numbers`` given to the pipeline), None for an
    exemplar."""

    rgb: np.ndarray
    frame: int | None = None


def gray_problem(rgb: np.ndarray) -> str | None:
    """Why ``rgb`` (…×3 sRGB) cannot be a colour reference, or None."""
    lab = np.asarray(color.rgb_to_lab(np.ascontiguousarray(rgb, dtype=np.float32)))
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    level = float(np.percentile(chroma, 99.5))
    if level < GRAY_CHROMA:
        return f"is gray (chroma {level:.1f} < {GRAY_CHROMA:g}): a reference must be a colour image"
    return None


def reference_weights(frames: Sequence[int], references: Sequence[int | None],
                      blend: str = DEFAULT_BLEND) -> np.ndarray:
    """frames × references weights, rows summing to 1: how much each frame reads each reference.

    Frame references are weighed by distance: ``nearest`` gives all to the nearest (the earlier on a
    tie), ``inverse_distance`` splits between the two nearest in proportion to 1/distance (so a frame
    midway takes half of each; a frame on a reference takes it alone). Exemplars (None) share equally
    among themselves and are read only where the shot has no frame reference: a graded frame of the
    shot is the stronger statement of what the shot looks like.
    """
    if blend not in BLENDS:
        raise InputError(f"reference blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    if not references:
        raise InputError("no references to weigh")
    weights = np.zeros((len(frames), len(references)), np.float64)
    placed = [(r, k) for r, k in enumerate(references) if k is not None]
    if not placed:
        weights[:] = 1.0 / len(references)
        return weights.astype(np.float32)
    for i, f in enumerate(frames):
        ranked = sorted(placed, key=lambda rk: (abs(rk[1] - f), rk[1]))
        if blend == "nearest" or len(ranked) == 1 or ranked[0][1] == f:
            weights[i, ranked[0][0]] = 1.0
            continue
        (r0, k0), (r1, k1) = ranked[:2]
        inv0, inv1 = 1.0 / abs(k0 - f), 1.0 / abs(k1 - f)
        weights[i, r0], weights[i, r1] = inv0 / (inv0 + inv1), inv1 / (inv0 + inv1)
    return weights.astype(np.float32)


def load_reference_file(path: str, encoding_to_srgb=None) -> np.ndarray:
    """Decode a reference image file to H×W×3 display sRGB in [0, 1], or raise a one-line InputError.

    Integer images (PNG, JPEG, 8/16-bit TIFF) are display sRGB as painted or exported from a grade;
    float images (EXR, float TIFF) are in the job's encoding, like the plate (``encoding_to_srgb``,
    the job's ``InputDecoder.to_srgb``)."""
    if not os.path.isfile(path):
        raise InputError(f"reference {path} not found")
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(path)
    if inp is None:
        raise InputError(f"reference {path} cannot be read: {(oiio.geterror() or 'unknown format').splitlines()[0]}")
    try:
        spec = inp.spec()
        if spec.nchannels < 3:
            raise InputError(f"reference {path} has {spec.nchannels} channel(s): a reference must be a colour image")
        pixels = inp.read_image(0, 0, 0, 3, oiio.FLOAT)
        if pixels is None:
            raise InputError(f"reference {path} cannot be decoded: {(inp.geterror() or 'read failed').splitlines()[0]}")
        is_float = str(spec.format) in ("half", "float", "double")
    finally:
        inp.close()
    rgb = np.nan_to_num(np.asarray(pixels, np.float32).reshape(spec.height, spec.width, 3), nan=0.0, posinf=1.0,
                        neginf=0.0)
    if is_float and encoding_to_srgb is not None:
        rgb = encoding_to_srgb(rgb)
    return np.ascontiguousarray(np.clip(rgb, 0, 1), dtype=np.float32)


@dataclass(frozen=True)
class CheckedReference:
    """A job's reference after its file was checked: where it is, what it holds (sha256), which frame."""

    frame: int | None
    path: str
    sha256: str

    def to_dict(self) -> dict:
        return {"frame": self.frame, "path": self.path, "sha256": self.sha256}


def check_reference(frame: int | None, path: str, plate_size: tuple[int, int],
                    encoding_to_srgb=None) -> tuple[CheckedReference, ReferenceImage]:
    """Read and check one reference of a job: it exists, decodes, has colour, and a frame reference has
    the plate's size. One-line ``InputError`` naming the file otherwise."""
    rgb = load_reference_file(path, encoding_to_srgb)
    problem = gray_problem(rgb)
    if problem:
        raise InputError(f"reference {path} {problem}")
    if frame is not None and rgb.shape[:2] != tuple(plate_size):
        raise InputError(f"reference {path} for frame {frame} is {rgb.shape[1]}×{rgb.shape[0]}, the plate is "
                         f"{plate_size[1]}×{plate_size[0]}: a frame reference must be the frame at its full size")
    return CheckedReference(frame, path, file_sha256(path)), ReferenceImage(rgb, frame)
