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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coolcolor.world.palette import SHADE_RANGE, PaletteColor, lightness_groups, palette_color
from coolcolor.world.spec import WorldSpec

# Shape family → caption nouns (canonical first). Nouns are unique across families and regions, so a
# caption binds each color to exactly one layer.
SHAPES: dict[str, tuple[str, ...]] = {
    "disk": ("ball", "circle", "disc", "sphere"),
    "square": ("square", "box", "block", "crate"),
    "bar": ("bar", "plank", "rectangle"),
    "triangle": ("triangle", "wedge", "pyramid"),
    "star": ("star", "starfish"),
    "ring": ("ring", "donut", "hoop"),
    "oval": ("egg", "oval", "ellipse"),
    "cross": ("cross", "plus sign"),
}
# Radius (local units) of a disc that contains the shape: used to cull pixels outside an object.
_SHAPE_BOUND = {
    "disk": 1.0, "square": 0.8 * math.sqrt(2), "bar": math.hypot(1.0, 0.38), "triangle": 1.0,
    "star": 1.0, "ring": 1.0, "oval": 1.0, "cross": math.hypot(0.95, 0.32),
    "crescent": 1.0, "heart": 1.35, "hexagon": 1.0, "diamond": 1.0,
}
_STAR_INNER = 0.45
_OVAL_RATIO = 0.62

# Backdrop layouts, top to bottom; each region lists its caption nouns.
LAYOUTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "studio": (("backdrop", "background"),),
    "outdoor": (("sky",), ("ground", "field", "land")),
    "indoor": (("wall",), ("floor",)),
    "landscape": (("sky",), ("hills", "mountains"), ("meadow", "plain")),
    "seaside": (("sky",), ("sea", "ocean", "water"), ("beach", "shore")),
}

MAX_OBJECTS = 4
WIDE_SIZE_RANGE = (0.05, 0.55)  # object radius (frame heights) in versions 2–4: ≈1 % … ≈95 % of a square frame


def shapes_for(version: int) -> tuple[str, ...]:
    """Shape families of a world version, in the order the generator draws from."""
    return tuple(SHAPES) if version == 1 else tuple(SHAPES) + tuple(WIDE_SHAPES)


def layouts_for(version: int) -> tuple[str, ...]:
    """Backdrop layouts of a world version: version 4 keeps version 1's five."""
    return tuple(LAYOUTS) if version in (1, 4) else tuple(LAYOUTS) + tuple(WIDE_LAYOUTS)


def shape_nouns(shape: str) -> tuple[str, ...]:
    return SHAPES[shape] if shape in SHAPES else WIDE_SHAPES[shape]


def layout_slots(layout: str) -> tuple[tuple[str, ...], ...]:
    return LAYOUTS[layout] if layout in LAYOUTS else WIDE_LAYOUTS[layout]


# World version 2 adds these (nouns unique across every family and region of both versions).
WIDE_SHAPES: dict[str, tuple[str, ...]] = {
    "crescent": ("crescent", "moon", "sickle"),
    "heart": ("heart", "valentine"),
    "hexagon": ("hexagon", "tile"),
    "diamond": ("diamond", "rhombus", "kite"),
}
WIDE_LAYOUTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "street": (("sky",), ("houses", "buildings"), ("road", "street")),
    "harbor": (("sky",), ("town",), ("harbor", "bay"), ("pier", "quay")),
    "countryside": (("sky",), ("peaks",), ("forest", "woods"), ("farmland", "fields"), ("path", "track")),
}


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
class _Texture:
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


@dataclass
class _Object:
    shape: str
    texture: _Texture
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
class _Boundary:
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
    boundaries: list[_Boundary]
    region_textures: list[_Texture]
    objects: list[_Object]
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


# -- generation ----------------------------------------------------------------------------------

_OBJECT_TEXTURES = ("noise", "stripes", "checker", "rings", "plain")
_REGION_TEXTURES = ("noise", "stripes", "checker", "bricks", "plain")


def _texture(rng: np.random.Generator, kind: str, world: bool) -> _Texture:
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
    return _Texture(kind=kind, freq=float(freq), angle=ang, noise_k=noise_k,
                    noise_phase=rng.uniform(0, 2 * math.pi, 3),
                    grad=(gscale * math.cos(grad_dir), gscale * math.sin(grad_dir)),
                    bias=(lo + hi) / 2, g_amp=g_amp, p_amp=p_amp)


def _sky_texture(rng: np.random.Generator) -> _Texture:
    tex = _texture(rng, "noise", world=True)
    tex.noise_k = tex.noise_k / 4.0  # clouds: low frequency
    tex.grad = (0.0, float(rng.uniform(1.5, 3.0)))  # brighter towards the horizon
    return tex


def pick_shapes(rng: np.random.Generator, world: WorldSpec, n_objects: int, seed: int) -> list[str]:
    """``n_objects`` distinct families; with ``feature = "shape"`` one of them (at a drawn position) is
    the held-out family."""
    shapes = [str(s) for s in rng.permutation(world.allowed_shapes())[:n_objects]]
    if world.feature == "shape":
        held = world.exclude_shapes[int(seed) % len(world.exclude_shapes)]
        shapes[int(rng.integers(len(shapes)))] = held
    return shapes


def _pick_colors(rng: np.random.Generator, n_regions: int, n_objects: int,
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


def generate_scene(seed: int, aspect: float, n_objects: int | None, motion: Motion,
                   object_colors: tuple[str, ...] | None = None, world: WorldSpec | None = None) -> Scene:
    """Draw a scene from ``seed``. ``aspect`` = width / height places objects across the frame.
    ``world`` picks the world version and what it leaves out (default: version 1, nothing left out,
    which draws exactly what this generator always drew)."""
    world = WorldSpec() if world is None else world
    if world.version in (2, 3):
        from coolcolor.world.wide import generate_wide_scene

        return generate_wide_scene(seed, aspect, n_objects, motion, object_colors, world)
    # Version 4 draws from its own stream (version 1's seeds keep their scenes).
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5CE4E] + ([4] if world.version == 4 else [])))
    layouts = world.allowed_layouts()
    layout = layouts[rng.integers(len(layouts))]
    if world.feature == "layout":
        layout = world.exclude_layouts[int(seed) % len(world.exclude_layouts)]
    slots = LAYOUTS[layout]
    if n_objects is None:
        n_objects = int(rng.integers(1, MAX_OBJECTS + 1))
        if object_colors is not None:
            n_objects = len(object_colors)
    shapes = pick_shapes(rng, world, n_objects, seed)
    colors = _pick_colors(rng, len(slots), n_objects, object_colors)

    layers: list[Layer] = []
    for i, nouns in enumerate(slots):
        layers.append(Layer(i, "region", nouns[0], nouns, colors[i]))
    for k, shape in enumerate(shapes):
        lid = len(slots) + k
        layers.append(Layer(lid, "object", shape, shape_nouns(shape), colors[lid]))

    # Backdrop boundaries (world y is down, the frame spans y ∈ [−0.5, 0.5]).
    boundaries: list[_Boundary] = []
    if len(slots) == 2:
        wavy = layout == "outdoor"
        boundaries.append(_Boundary(float(rng.uniform(-0.2, 0.2)), float(rng.uniform(-0.15, 0.15)),
                                    float(rng.uniform(0.0, 0.04)) if wavy else 0.0,
                                    float(rng.uniform(3, 9)), float(rng.uniform(0, 2 * math.pi))))
    elif len(slots) == 3:
        y1 = float(rng.uniform(-0.3, -0.1))
        slope = float(rng.uniform(-0.08, 0.08))
        boundaries.append(_Boundary(y1, slope, float(rng.uniform(0.02, 0.06)), float(rng.uniform(4, 10)),
                                    float(rng.uniform(0, 2 * math.pi))))
        boundaries.append(_Boundary(y1 + float(rng.uniform(0.2, 0.3)), slope, float(rng.uniform(0.0, 0.02)),
                                    float(rng.uniform(2, 6)), float(rng.uniform(0, 2 * math.pi))))
    region_textures = []
    for nouns in slots:
        if nouns[0] == "sky":
            region_textures.append(_sky_texture(rng))
        else:
            kind = _REGION_TEXTURES[rng.integers(len(_REGION_TEXTURES))]
            region_textures.append(_texture(rng, str(kind), world=True))

    half_w = 0.5 * aspect
    objects: list[_Object] = []
    for shape in shapes:
        if shape in ("disk", "oval"):
            tex = _texture(rng, "noise", world=False)
            tex.kind = "sphere"
            lx, ly = rng.uniform(-0.6, 0.6, 2)
            lz = math.sqrt(max(0.0, 1 - lx * lx - ly * ly))
            tex.light = (float(lx), float(ly), lz)
            tex.p_amp = float(rng.uniform(0.0, 3.0))
        else:
            tex = _texture(rng, str(_OBJECT_TEXTURES[rng.integers(len(_OBJECT_TEXTURES))]), world=False)
        center = np.array([rng.uniform(-0.7, 0.7) * half_w, rng.uniform(-0.3, 0.3)])
        period = rng.uniform(40, 160, 2)
        objects.append(_Object(
            shape=shape, texture=tex, center=center,
            amp=(rng.uniform(0.04, 0.25, 2) * rng.choice([-1, 1], 2))[None],
            omega=(2 * math.pi / period)[None], phase=rng.uniform(0, 2 * math.pi, (1, 2)),
            theta0=float(rng.uniform(0, 2 * math.pi)),
            omega_rot=float(rng.uniform(0.01, 0.05) * rng.choice([-1, 1])),
            sigma0=_object_size(rng, world.version), scale_amp=float(rng.uniform(0.05, 0.25)),
            omega_scale=float(2 * math.pi / rng.uniform(30, 120)), phase_scale=float(rng.uniform(0, 2 * math.pi)),
        ))
    if motion.occlusion and len(objects) >= 2:
        sweep_front_across_back(rng, objects[0], objects[-1])
    return Scene(layers, layout, boundaries, region_textures, objects, motion, camera_motion(rng))


def wide_object_size(rng: np.random.Generator) -> float:
    """An object radius (frame heights) of world versions 2–4: log-uniform over ``WIDE_SIZE_RANGE``."""
    return float(math.exp(rng.uniform(math.log(WIDE_SIZE_RANGE[0]), math.log(WIDE_SIZE_RANGE[1]))))


def _object_size(rng: np.random.Generator, version: int) -> float:
    """Object radius (frame heights): version 1's 0.08–0.18, or version 4's version-2 range."""
    return wide_object_size(rng) if version == 4 else float(rng.uniform(0.08, 0.18))


def sweep_front_across_back(rng: np.random.Generator, back: _Object, front: _Object) -> None:
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
