"""What the world's scenes are made of: shape families and backdrop layouts with the nouns captions
call them, per world version.

Its own module because the world spec validates against it (``WorldSpec``) and every scene generator
draws from it; it depends on nothing else in the world, so neither needs the other to know the names.
"""

from __future__ import annotations

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

# Backdrop layouts, top to bottom; each region lists its caption nouns.
LAYOUTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "studio": (("backdrop", "background"),),
    "outdoor": (("sky",), ("ground", "field", "land")),
    "indoor": (("wall",), ("floor",)),
    "landscape": (("sky",), ("hills", "mountains"), ("meadow", "plain")),
    "seaside": (("sky",), ("sea", "ocean", "water"), ("beach", "shore")),
}

MAX_OBJECTS = 4


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
