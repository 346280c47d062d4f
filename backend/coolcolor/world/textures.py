"""Lightness textures of the world's layers: smooth functions of a layer's own coordinates.

A texture moves with its layer (it is evaluated in the layer's coordinates), so brightness stays constant
along the exact flow. Its own module because every world version's scene generator draws them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from coolcolor.world.palette import SHADE_RANGE


@dataclass
class Texture:
    """Lightness offset (L* units) as a smooth function of the layer's own coordinates."""

    kind: str
    freq: float
    angle: float
    noise_k: np.ndarray  # (3, 2) wave vectors
    noise_phase: np.ndarray  # (3,)
    grad: tuple[float, float]
    bias: float
    g_amp: float
    p_amp: float
    light: tuple[float, float, float] = (0.0, 0.0, 1.0)

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        k = self.kind
        if k == "sphere":
            # Painted-on sphere (or ellipsoid) shading: Lambert with a fixed light.
            nz = np.sqrt(np.clip(1.0 - u * u - v * v, 0.0, 1.0))
            lx, ly, lz = self.light
            shade = np.clip(lx * u + ly * v + lz * nz, 0.0, 1.0)
            lo, hi = SHADE_RANGE
            out = lo + (hi - lo - self.p_amp) * shade
            pattern = np.sin(self.noise_k[0, 0] * u + self.noise_k[0, 1] * v + self.noise_phase[0])
            return out + self.p_amp * 0.5 * (pattern + 1.0)
        if k == "noise":
            p = sum(np.sin(self.noise_k[i, 0] * u + self.noise_k[i, 1] * v + self.noise_phase[i])
                    for i in range(3)) / 3.0
        elif k == "stripes":
            p = np.sin(self.freq * (math.cos(self.angle) * u + math.sin(self.angle) * v) + self.noise_phase[0])
        elif k == "checker":
            ca, sa = math.cos(self.angle), math.sin(self.angle)
            p = np.sin(self.freq * (ca * u + sa * v)) * np.sin(self.freq * (ca * v - sa * u))
        elif k == "rings":
            p = np.sin(self.freq * np.sqrt(u * u + v * v) + self.noise_phase[0])
        elif k == "bricks":
            # Soft mortar lines (continuous, so bilinear warping stays accurate).
            bh = 2 * math.pi / self.freq
            row = v / bh
            col = u / (2 * bh) + 0.5 * (np.floor(row) % 2)
            dist = np.minimum(np.abs(row - np.round(row)) * bh, np.abs(col - np.round(col)) * 2 * bh)
            p = np.clip(dist / (0.18 * bh), 0.0, 1.0) * 2.0 - 1.0
        elif k == "plain":
            p = 0.0
        else:  # pragma: no cover - kinds are fixed in this module
            raise AssertionError(k)
        g = np.clip(self.grad[0] * u + self.grad[1] * v, -1.0, 1.0)
        return self.bias + self.g_amp * g + self.p_amp * p


# The kinds a generator draws for an object or a backdrop region (besides the sky's clouds and spheres).
OBJECT_TEXTURES = ("noise", "stripes", "checker", "rings", "plain")
REGION_TEXTURES = ("noise", "stripes", "checker", "bricks", "plain")


def draw_texture(rng: np.random.Generator, kind: str, world: bool) -> Texture:
    """A texture of ``kind`` with drawn parameters, for a region (``world``) or an object."""
    # Frequencies: object-local units (radius 1) or world units (frame height 1).
    scale = 8.0 if world else 1.0
    lo, hi = SHADE_RANGE
    half = (hi - lo) / 2
    g_amp = float(rng.uniform(0.0, 0.45)) * half
    p_amp = float(rng.uniform(0.2, 0.55)) * half
    if kind == "plain":
        p_amp = 0.0
    ang = float(rng.uniform(0, 2 * math.pi))
    grad_dir = float(rng.uniform(0, 2 * math.pi))
    gscale = (1.5 if world else 0.8)
    freq = {"stripes": rng.uniform(5, 11), "checker": rng.uniform(3, 6), "rings": rng.uniform(6, 12),
            "bricks": rng.uniform(4, 7)}.get(kind, 0.0) * scale
    noise_k = rng.normal(0, 1, (3, 2)) * rng.uniform(2.0, 4.0) * scale
    return Texture(kind=kind, freq=float(freq), angle=ang, noise_k=noise_k,
                   noise_phase=rng.uniform(0, 2 * math.pi, 3),
                   grad=(gscale * math.cos(grad_dir), gscale * math.sin(grad_dir)),
                   bias=(lo + hi) / 2, g_amp=g_amp, p_amp=p_amp)


def sky_texture(rng: np.random.Generator) -> Texture:
    """Clouds: low-frequency noise, brighter towards the horizon."""
    tex = draw_texture(rng, "noise", world=True)
    tex.noise_k = tex.noise_k / 4.0  # clouds: low frequency
    tex.grad = (0.0, float(rng.uniform(1.5, 3.0)))  # brighter towards the horizon
    return tex



def sphere_texture(rng: np.random.Generator) -> Texture:
    """Painted-on sphere shading for a disk or an oval: noise drawn as for any object, a light direction and a
    faint pattern."""
    tex = draw_texture(rng, "noise", world=False)
    tex.kind = "sphere"
    lx, ly = rng.uniform(-0.6, 0.6, 2)
    tex.light = (float(lx), float(ly), math.sqrt(max(0.0, 1 - lx * lx - ly * ly)))
    tex.p_amp = float(rng.uniform(0.0, 3.0))
    return tex
