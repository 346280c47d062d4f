"""The named palette of the old-film world.

Colors are defined in CIE Lab on four lightness levels. Every level holds at least two colors, so the
same gray object can be red, blue, purple or gray (all L* = 50): the gray frame cannot tell them apart
and only the caption can. Chroma is chosen so that every color stays inside the sRGB gamut over the
whole shading range ``SHADE_RANGE`` (tested), which keeps a*, b* exactly constant inside an object
while its lightness varies with shading and texture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from coolcolor.errors import InputError

# Offsets of L* around a color's base lightness that shading and texture may use (inclusive).
SHADE_RANGE = (-14.0, 6.0)


@dataclass(frozen=True)
class PaletteColor:
    name: str
    lab: tuple[float, float, float]
    synonyms: tuple[str, ...]  # words a caption may use for it, the name first

    @property
    def lightness(self) -> float:
        return self.lab[0]

    @property
    def ab(self) -> tuple[float, float]:
        return self.lab[1], self.lab[2]


def _polar(name: str, lightness: float, hue_deg: float, chroma: float, synonyms: tuple[str, ...]):
    h = math.radians(hue_deg)
    a, b = round(chroma * math.cos(h), 3), round(chroma * math.sin(h), 3)
    return PaletteColor(name, (lightness, a, b), (name, *synonyms))


PALETTE: tuple[PaletteColor, ...] = (
    # L* = 86
    _polar("white", 86.0, 0.0, 0.0, ("ivory", "snow-white")),
    _polar("yellow", 86.0, 100.0, 65.0, ("golden", "lemon-yellow")),
    _polar("cyan", 86.0, 198.0, 34.0, ("turquoise", "aqua")),
    # L* = 68
    _polar("orange", 68.0, 58.0, 52.0, ("tangerine", "amber")),
    _polar("pink", 68.0, 352.0, 42.0, ("rose", "salmon-pink")),
    _polar("green", 68.0, 138.0, 60.0, ("emerald", "jade")),
    # L* = 50
    _polar("red", 50.0, 38.0, 65.0, ("crimson", "scarlet")),
    _polar("blue", 50.0, 292.0, 55.0, ("azure", "cobalt")),
    _polar("purple", 50.0, 325.0, 60.0, ("violet", "plum")),
    _polar("gray", 50.0, 0.0, 0.0, ("grey", "silver")),
    # L* = 30
    _polar("brown", 30.0, 55.0, 27.0, ("chocolate", "chestnut")),
    _polar("black", 30.0, 0.0, 0.0, ("ebony", "jet-black")),
)

_BY_NAME = {c.name: c for c in PALETTE}
_BY_WORD = {w: c for c in PALETTE for w in c.synonyms}


def palette_color(name: str) -> PaletteColor:
    """The palette color called ``name`` (a name or a synonym, case-insensitive)."""
    key = str(name).strip().lower()
    if key in _BY_WORD:
        return _BY_WORD[key]
    raise InputError(f"unknown palette color {name!r}; known colors: {', '.join(_BY_NAME)}")


def palette_names() -> tuple[str, ...]:
    return tuple(_BY_NAME)


def lightness_groups() -> dict[float, tuple[PaletteColor, ...]]:
    """Colors by base L*: the sets a gray frame cannot separate."""
    groups: dict[float, list[PaletteColor]] = {}
    for c in PALETTE:
        groups.setdefault(c.lightness, []).append(c)
    return {k: tuple(v) for k, v in groups.items()}


def palette_ab() -> np.ndarray:
    """(len(PALETTE), 2) float64 a*, b* of every palette color, in PALETTE order."""
    return np.array([c.ab for c in PALETTE], dtype=np.float64)


def nearest_palette_colors(ab: np.ndarray) -> list[tuple[str, ...]]:
    """For each a*, b* row, the names of the palette colors nearest in ab (several when they tie:
    white, gray and black share ab = 0 and differ only in L*, which the input already fixes)."""
    ab = np.asarray(ab, dtype=np.float64).reshape(-1, 2)
    d = np.linalg.norm(ab[:, None, :] - palette_ab()[None], axis=-1)
    out = []
    for row in d:
        best = row.min()
        out.append(tuple(c.name for c, v in zip(PALETTE, row, strict=True) if v <= best + 1e-9))
    return out
