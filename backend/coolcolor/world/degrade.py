"""Old-film damage, applied to the gray input only.

Strengths are dimensionless: 0 switches a kind off, 1 is ordinary archival damage, 2–3 is bad.
Sizes scale with the frame height, so a clip looks the same at 128 px and at 4K.

Gate weave is the exception to "gray only": it moves the whole picture, and the colorized output must
line up with the input whose luminance it keeps, so it is applied as camera jitter to every layer
(color, gray, masks, flow) by the scene; this module only supplies the jitter.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np

from coolcolor.errors import InputError


@dataclass(frozen=True)
class Degradations:
    grain: float = 0.0
    flicker: float = 0.0
    blur: float = 0.0
    scratches: float = 0.0
    dust: float = 0.0
    gate_weave: float = 0.0
    vignette: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise InputError(f"degradation {f.name!r} must be a finite number >= 0, got {v!r}")

    @classmethod
    def none(cls) -> Degradations:
        return cls()

    @classmethod
    def old_film(cls, strength: float = 1.0) -> Degradations:
        return cls(**{f.name: float(strength) for f in fields(cls)})

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def parse(cls, spec: str, base: Degradations | None = None) -> Degradations:
        """``"grain=0.5,blur=0"`` (also ``gate-weave``) on top of ``base`` (default: none)."""
        values = asdict(base or cls())
        for item in filter(None, (s.strip() for s in spec.split(","))):
            name, sep, num = item.partition("=")
            key = name.strip().replace("-", "_")
            if key not in values:
                raise InputError(f"unknown degradation {name.strip()!r}; known: {', '.join(cls.names())}")
            try:
                values[key] = float(num) if sep else 1.0
            except ValueError:
                raise InputError(f"degradation {key!r}: strength {num!r} is not a number") from None
        return cls(**values)

    def to_json(self) -> dict:
        return asdict(self)

    def is_clean(self) -> bool:
        return all(v == 0 for v in asdict(self).values())


def weave_offsets(rng: np.random.Generator, frames: int, strength: float) -> np.ndarray:
    """(frames, 3) per-frame picture shift (dx, dy in frame heights) and rotation (rad): a jittery
    AR(1) path, more sideways than vertical as with a worn gate."""
    if strength <= 0:
        return np.zeros((frames, 3))
    noise = rng.normal(0, 1, (frames, 3))
    out = np.empty((frames, 3))
    state = np.zeros(3)
    for t in range(frames):
        state = 0.6 * state + 0.8 * noise[t]
        out[t] = state
    return out * strength * np.array([0.004, 0.0025, 0.0015])


def apply_degradations(gray: np.ndarray, d: Degradations, rng: np.random.Generator) -> np.ndarray:
    """Damage a clean (N, H, W) float32 sRGB gray clip in [0, 1]; returns a new array in [0, 1].

    Order follows the physics: exposure (vignette, flicker) → marks on the print (dust, scratches) →
    optics / duplication (blur) → grain.
    """
    n, h, w = gray.shape
    out = gray.astype(np.float32, copy=True)
    px = h / 256.0  # sizes below are in pixels of a 256-px-high frame
    if d.vignette > 0:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx + 0.5 - w / 2) ** 2 + (yy + 0.5 - h / 2) ** 2) / (0.25 * (w * w + h * h))
        out *= (1.0 - min(0.9, 0.35 * d.vignette) * r2 ** 1.5)[None]
    if d.flicker > 0:
        gain = np.empty(n, np.float32)
        g = 0.0
        for t, e in enumerate(rng.standard_normal((n,)).tolist()):
            g = 0.5 * g + e
            gain[t] = g
        gain = 1.0 + 0.06 * d.flicker * gain
        offset = (0.02 * d.flicker * rng.standard_normal((n,))).astype(np.float32)
        out = out * gain[:, None, None] + offset[:, None, None]
    if d.dust > 0:
        for t in range(n):
            for _ in range(rng.poisson(3.0 * d.dust)):
                c = (int(rng.integers(w)), int(rng.integers(h)))
                axes = (max(1, round(rng.uniform(0.5, 3.0) * px)), max(1, round(rng.uniform(0.5, 2.0) * px)))
                val = 0.02 if rng.random() < 0.7 else 0.95  # dirt is dark on a positive print
                cv2.ellipse(out[t], c, axes, float(rng.uniform(0, 180)), 0, 360, val, -1)
    if d.scratches > 0:
        cols = np.arange(w, dtype=np.float32)
        n_scr = rng.poisson(1.5 * d.scratches) + 1
        for _ in range(n_scr):
            start = int(rng.integers(n))
            life = int(rng.integers(max(1, n // 4), n + 1))
            x = rng.uniform(0, w)
            drift = rng.normal(0, 0.3 * px)
            width = max(0.4, rng.uniform(0.3, 1.2) * px)
            amp = (0.25 if rng.random() < 0.6 else -0.2) * min(1.0, 0.5 + 0.5 * d.scratches)
            for t in range(start, min(n, start + life)):
                x += drift + rng.normal(0, 0.2 * px)
                prof = amp * np.exp(-0.5 * ((cols - x) / width) ** 2)
                out[t] += prof[None, :]
    if d.blur > 0:
        for t in range(n):
            sigma = 0.8 * d.blur * px * (1.0 + 0.25 * rng.standard_normal())
            if sigma > 0.3:
                cv2.GaussianBlur(out[t], (0, 0), sigma, dst=out[t])
    if d.grain > 0:
        noise = rng.standard_normal((n, h, w), dtype=np.float32)
        if px > 1.2:  # grain clumps are a fixed size on film, i.e. bigger in pixels at high res
            for t in range(n):
                cv2.GaussianBlur(noise[t], (0, 0), 0.5 * px, dst=noise[t])
            noise *= 1.0 / max(noise.std(), 1e-6)
        clipped = np.clip(out, 0.0, 1.0)
        out += (0.035 * d.grain) * noise * (0.4 + 2.4 * clipped * (1.0 - clipped))
    np.clip(out, 0.0, 1.0, out=out)
    return out
