"""Scene model of the old-film world: backdrop regions and moving objects, rendered analytically.

Every layer (region or object) is a function of its own coordinates: regions of world coordinates,
objects of object-local coordinates. Pixels map to those coordinates through one affine matrix per
layer and frame (pixel → screen → world by the camera, world → local by the object pose), so

* a mask is exact (which layer wins at a pixel centre, painter's order, no anti-aliasing), and
* forward flow is exact: a pixel of layer k at frame t moves by ``X_k(t+1)⁻¹ · X_k(t)`` where
  ``X_k(t)`` maps pixels to k's coordinates — the texture point it shows is shown there at t+1.

Object texture and shading are painted on (they move with the object), so brightness is constant
along the flow; only the degradations applied to the gray input afterwards break that, as in film.
Coordinates are in units of the frame height, so one seed gives the same scene at any resolution.

The scene generators (``classic`` for world versions 1 and 4, ``wide`` for 2 and 3; ``generator`` picks
one) build on this model and on the draws below that they share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coolcolor.world.palette import PaletteColor, lightness_groups, palette_color
from coolcolor.world.spec import WorldSpec
from coolcolor.world.textures import Texture

# Radius (local units) of a disc that contains the shape: used to cull pixels outside an object.
_SHAPE_BOUND = {
    "disk": 1.0, "square": 0.8 * math.sqrt(2), "bar": math.hypot(1.0, 0.38), "triangle": 1.0,
    "star": 1.0, "ring": 1.0, "oval": 1.0, "cross": math.hypot(0.95, 0.32),
    "crescent": 1.0, "heart": 1.35, "hexagon": 1.0, "diamond": 1.0,
}
_STAR_INNER = 0.45
_OVAL_RATIO = 0.62

WIDE_SIZE_RANGE = (0.05, 0.55)  # object radius (frame heights) in versions 2–4: ≈1 % … ≈95 % of a square frame


@dataclass(frozen=True)
class Motion:
    """Strength of each kind of motion (0 switches it off, 1 is the usual amount)."""

    translate: float = 1.0
    rotate: float = 1.0
    scale: float = 1.0
    pan: float = 1.0
    zoom: float = 1.0
    occlusion: bool = True  # place one object so that it passes over another

    @classmethod
    def static(cls) -> Motion:
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, False)


@dataclass(frozen=True)
class Layer:
    """One region or object: its mask id, what a caption calls it and its palette color."""

    id: int
    kind: str  # "region" or "object"
    shape: str  # shape family for objects, layout slot name ("sky", "wall", …) for regions
    nouns: tuple[str, ...]
    color: str

    @property
    def noun(self) -> str:
        return self.nouns[0]

    @property
    def palette(self) -> PaletteColor:
        return palette_color(self.color)

    @property
    def lab(self) -> tuple[float, float, float]:
        return self.palette.lab

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "shape": self.shape, "nouns": list(self.nouns),
                "color": self.color, "lab": list(self.lab)}

    @classmethod
    def from_json(cls, d: dict) -> Layer:
        return cls(int(d["id"]), str(d["kind"]), str(d["shape"]), tuple(d["nouns"]), str(d["color"]))


@dataclass
class SceneObject:
    shape: str
    texture: Texture
    center: np.ndarray  # (2,) world position at frame 0
    amp: np.ndarray  # (M, 2) sinusoidal path components
    omega: np.ndarray  # (M, 2) rad/frame
    phase: np.ndarray  # (M, 2)
    theta0: float
    omega_rot: float
    sigma0: float
    scale_amp: float
    omega_scale: float
    phase_scale: float

    def pose(self, t: float, m: Motion) -> np.ndarray:
        """Local → world 3×3 matrix at frame t."""
        path = self.amp * (np.sin(self.omega * t + self.phase) - np.sin(self.phase))
        pos = self.center + m.translate * path.sum(axis=0)
        theta = self.theta0 + m.rotate * self.omega_rot * t
        sigma = self.sigma0 * math.exp(m.scale * self.scale_amp
                                       * (math.sin(self.omega_scale * t + self.phase_scale)
                                          - math.sin(self.phase_scale)))
        c, s = math.cos(theta) * sigma, math.sin(theta) * sigma
        return np.array([[c, -s, pos[0]], [s, c, pos[1]], [0.0, 0.0, 1.0]])


@dataclass
class Boundary:
    """y = y0 + slope·x + amp·sin(freq·x + phase), in world coordinates (y down)."""

    y0: float
    slope: float
    amp: float
    freq: float
    phase: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.y0 + self.slope * x + self.amp * np.sin(self.freq * x + self.phase)


@dataclass
class Scene:
    """A generated scene: layers plus everything needed to render any frame at any size."""

    layers: list[Layer]
    layout: str
    boundaries: list[Boundary]
    region_textures: list[Texture]
    objects: list[SceneObject]
    motion: Motion
    camera: dict
    weave: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # per frame (dx, dy, rot)

    # -- geometry ---------------------------------------------------------------------------------
    def camera_matrix(self, t: int) -> np.ndarray:
        """World → screen 3×3 at frame t: pan, zoom and gate weave."""
        cam, m = self.camera, self.motion
        cx = m.pan * cam["pan_amp"][0] * (math.sin(cam["pan_omega"] * t + cam["pan_phase"][0])
                                          - math.sin(cam["pan_phase"][0]))
        cy = m.pan * cam["pan_amp"][1] * (math.sin(cam["pan_omega"] * t + cam["pan_phase"][1])
                                          - math.sin(cam["pan_phase"][1]))
        z = math.exp(m.zoom * cam["zoom_amp"] * (math.sin(cam["zoom_omega"] * t + cam["zoom_phase"])
                                                 - math.sin(cam["zoom_phase"])))
        dx = dy = rho = 0.0
        if t < len(self.weave):
            dx, dy, rho = self.weave[t]
        c, s = math.cos(rho) * z, math.sin(rho) * z
        S = np.array([[c, -s], [s, c]])
        off = np.array([dx, dy]) - S @ np.array([cx, cy])
        return np.array([[S[0, 0], S[0, 1], off[0]], [S[1, 0], S[1, 1], off[1]], [0.0, 0.0, 1.0]])

    @staticmethod
    def pixel_matrix(size: tuple[int, int]) -> np.ndarray:
        """Pixel (x = column, y = row; pixel centres on integers) → screen units of the frame height."""
        w, h = size
        return np.array([[1.0 / h, 0.0, (0.5 - w / 2) / h], [0.0, 1.0 / h, (0.5 - h / 2) / h], [0, 0, 1.0]])

    def layer_matrices(self, t: int, size: tuple[int, int]) -> np.ndarray:
        """(len(layers), 3, 3): pixel → the layer's own coordinates at frame t."""
        to_world = np.linalg.inv(self.camera_matrix(t)) @ self.pixel_matrix(size)
        n_regions = len(self.boundaries) + 1
        mats = [to_world] * n_regions
        for obj in self.objects:
            mats.append(np.linalg.inv(obj.pose(t, self.motion)) @ to_world)
        return np.stack(mats)

    def flow_matrices(self, t: int, size: tuple[int, int]) -> np.ndarray:
        """(len(layers), 3, 3): pixel at t → pixel at t+1, for a point painted on each layer."""
        a, b = self.layer_matrices(t, size), self.layer_matrices(t + 1, size)
        return np.linalg.inv(b) @ a

    # -- evaluation -------------------------------------------------------------------------------
    def sample(self, t: int, x: np.ndarray, y: np.ndarray, size: tuple[int, int]):
        """Layer id (uint8) and L* (float32) of the scene at frame t at pixel positions (x, y), which
        need not be integers — the exact reference the flow tests compare against."""
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        ids = np.zeros(x.shape, np.uint8)
        L = np.zeros(x.shape, np.float32)
        mats = self.layer_matrices(t, size)
        self._paint(mats, x, y, ids, L, culled=None)
        return ids, L

    def render_frame(self, t: int, size: tuple[int, int], ids: np.ndarray, L: np.ndarray,
                     grid: tuple[np.ndarray, np.ndarray]) -> None:
        """Paint frame t into ``ids`` (H×W uint8) and ``L`` (H×W float32)."""
        self._paint(self.layer_matrices(t, size), grid[0], grid[1], ids, L, culled=size)

    def _paint(self, mats, x, y, ids, L, culled):
        n_regions = len(self.boundaries) + 1
        base = np.array([lay.palette.lightness for lay in self.layers], np.float32)
        # Regions partition the plane: evaluate once in world coordinates.
        m = mats[0]
        wx = (m[0, 0] * x + m[0, 1] * y + m[0, 2]).astype(np.float32)
        wy = (m[1, 0] * x + m[1, 1] * y + m[1, 2]).astype(np.float32)
        rid = np.zeros(x.shape, np.uint8)
        for bnd in self.boundaries:
            rid += (wy > bnd(wx)).astype(np.uint8)
        ids[...] = rid
        if n_regions == 1:
            L[...] = base[0] + self.region_textures[0](wx, wy)
        else:
            for r in range(n_regions):
                sel = rid == r
                if sel.any():
                    L[sel] = base[r] + self.region_textures[r](wx[sel], wy[sel])
        # Objects, back to front, each only where its bounding disc can reach.
        for k, obj in enumerate(self.objects):
            lid = n_regions + k
            m = mats[lid]
            if culled is not None:
                sl = self._bbox_slices(m, _SHAPE_BOUND[obj.shape], culled)
                if sl is None:
                    continue
                xs, ys = x[sl], y[sl]
            else:
                xs, ys = x, y
            u = (m[0, 0] * xs + m[0, 1] * ys + m[0, 2]).astype(np.float32)
            v = (m[1, 0] * xs + m[1, 1] * ys + m[1, 2]).astype(np.float32)
            inside = _inside(obj.shape, u, v)
            if not inside.any():
                continue
            if obj.shape == "oval":
                u_t, v_t = u[inside], v[inside] / _OVAL_RATIO
            else:
                u_t, v_t = u[inside], v[inside]
            val = base[lid] + obj.texture(u_t, v_t)
            if culled is not None:
                ids[sl][inside] = lid
                L[sl][inside] = val
            else:
                ids[inside] = lid
                L[inside] = val

    @staticmethod
    def _bbox_slices(m: np.ndarray, radius: float, size: tuple[int, int]):
        inv = np.linalg.inv(m)
        cx, cy = inv[0, 2], inv[1, 2]
        r = radius * math.sqrt(abs(np.linalg.det(inv[:2, :2]))) + 1.0
        w, h = size
        x0, x1 = max(0, math.floor(cx - r)), min(w, math.ceil(cx + r) + 1)
        y0, y1 = max(0, math.floor(cy - r)), min(h, math.ceil(cy + r) + 1)
        if x0 >= x1 or y0 >= y1:
            return None
        return (slice(y0, y1), slice(x0, x1))


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    if shape == "disk":
        return u * u + v * v < 1.0
    if shape == "square":
        return np.maximum(au, av) < 0.8
    if shape == "bar":
        return (au < 1.0) & (av < 0.38)
    if shape == "triangle":  # equilateral, circumradius 1, apex up (−v)
        return (v < 0.5) & (-0.8660254 * u - 0.5 * v < 0.5) & (0.8660254 * u - 0.5 * v < 0.5)
    if shape == "star":  # five points, outer radius 1, one point up
        a = 2 * math.pi / 5
        theta = np.arctan2(u, -v)
        phi = np.abs(np.mod(theta + a / 2, a) - a / 2)
        rho = np.sqrt(u * u + v * v)
        px, py = rho * np.cos(phi), rho * np.sin(phi)
        ex, ey = _STAR_INNER * math.cos(a / 2) - 1.0, _STAR_INNER * math.sin(a / 2)
        return ex * py - ey * (px - 1.0) > 0
    if shape == "ring":
        r2 = u * u + v * v
        return (r2 < 1.0) & (r2 > 0.55**2)
    if shape == "oval":
        return u * u + (v / _OVAL_RATIO) ** 2 < 1.0
    if shape == "cross":
        return ((au < 0.32) & (av < 0.95)) | ((au < 0.95) & (av < 0.32))
    if shape == "crescent":  # a disc with an offset disc cut away
        return (u * u + v * v < 1.0) & ((u - 0.5) ** 2 + v * v > 0.75**2)
    if shape == "heart":  # (x² + y² − 1)³ < x² y³, point down (+v), scaled into the bound
        x, y = u / 0.85, 0.1 - v / 0.85
        return (x * x + y * y - 1.0) ** 3 - x * x * y**3 < 0.0
    if shape == "hexagon":  # regular, circumradius 1, corners on the u axis
        return (av < 0.8660254) & (0.8660254 * au + 0.5 * av < 0.8660254)
    if shape == "diamond":
        return au + av / 0.6 < 1.0
    raise AssertionError(shape)  # pragma: no cover


# -- draws every world version makes (classic.py: versions 1 and 4, wide.py: versions 2 and 3) --------


def pick_shapes(rng: np.random.Generator, world: WorldSpec, n_objects: int, seed: int) -> list[str]:
    """``n_objects`` distinct families; with ``feature = "shape"`` one of them (at a drawn position) is
    the held-out family."""
    shapes = [str(s) for s in rng.permutation(world.allowed_shapes())[:n_objects]]
    if world.feature == "shape":
        held = world.exclude_shapes[int(seed) % len(world.exclude_shapes)]
        shapes[int(rng.integers(len(shapes)))] = held
    return shapes


def pick_colors(rng: np.random.Generator, n_regions: int, n_objects: int,
                object_colors: tuple[str, ...] | None) -> list[str]:
    """Regions next to each other, and objects against the backdrop, get different base L* when the
    palette allows, so the gray picture shows their edges; the hue inside a lightness level is free."""
    groups = lightness_groups()
    levels = sorted(groups)
    region_levels: list[float] = []
    for _ in range(n_regions):
        options = [lv for lv in levels if not region_levels or lv != region_levels[-1]]
        region_levels.append(options[rng.integers(len(options))])
    colors = [groups[lv][rng.integers(len(groups[lv]))].name for lv in region_levels]
    free = [lv for lv in levels if lv not in region_levels] or levels
    used: list[float] = []
    for _ in range(n_objects):
        options = [lv for lv in free if lv not in used] or free
        lv = options[rng.integers(len(options))]
        used.append(lv)
        colors.append(groups[lv][rng.integers(len(groups[lv]))].name)
    if object_colors is not None:
        for k, name in enumerate(object_colors):
            colors[n_regions + k] = palette_color(name).name
    return colors


def wide_object_size(rng: np.random.Generator) -> float:
    """An object radius (frame heights) of world versions 2–4: log-uniform over ``WIDE_SIZE_RANGE``."""
    return float(math.exp(rng.uniform(math.log(WIDE_SIZE_RANGE[0]), math.log(WIDE_SIZE_RANGE[1]))))


def sweep_front_across_back(rng: np.random.Generator, back: SceneObject, front: SceneObject) -> None:
    """Occlusion: the front object starts beside one behind it, follows its path and sweeps across it
    (through its centre after a quarter sweep period, 15–25 frames). Shared by every world version, in
    the same order of draws, so version 1 renders every seed as it always has."""
    direction = rng.uniform(0, 2 * math.pi)
    offset = (back.sigma0 + front.sigma0) * np.array([math.cos(direction), math.sin(direction)])
    sweep_omega = 2 * math.pi / rng.uniform(60, 100)
    front.center = back.center + offset
    front.amp = np.concatenate([back.amp, -offset[None] * rng.uniform(1.5, 2.2)])
    front.omega = np.concatenate([back.omega, np.full((1, 2), sweep_omega)])
    front.phase = np.concatenate([back.phase, np.zeros((1, 2))])


def camera_motion(rng: np.random.Generator) -> dict[str, Any]:
    """A slow pan and zoom, drawn once per clip (the same draws in every world version)."""
    return {
        "pan_amp": rng.uniform(0.05, 0.3, 2) * np.array([1.0, 0.3]) * rng.choice([-1, 1], 2),
        "pan_omega": float(2 * math.pi / rng.uniform(150, 400)),
        "pan_phase": rng.uniform(0, 2 * math.pi, 2),
        "zoom_amp": float(rng.uniform(0.05, 0.2)),
        "zoom_omega": float(2 * math.pi / rng.uniform(80, 240)),
        "zoom_phase": float(rng.uniform(0, 2 * math.pi)),
    }
