"""Which generator draws a world version's scenes: ``classic`` for versions 1 and 4, ``wide`` for 2 and 3.

The choice lives here, above both generators, so that neither imports the other.
"""

from __future__ import annotations

from coolcolor.world.classic import generate_classic_scene
from coolcolor.world.scene import Motion, Scene
from coolcolor.world.spec import WorldSpec
from coolcolor.world.wide import generate_wide_scene


def generate_scene(seed: int, aspect: float, n_objects: int | None, motion: Motion,
                   object_colors: tuple[str, ...] | None = None, world: WorldSpec | None = None) -> Scene:
    """Draw a scene from ``seed``. ``aspect`` = width / height places objects across the frame.
    ``world`` picks the world version and what it leaves out (default: version 1, nothing left out,
    which draws exactly what this generator always drew)."""
    world = WorldSpec() if world is None else world
    if world.version in (2, 3):
        return generate_wide_scene(seed, aspect, n_objects, motion, object_colors, world)
    return generate_classic_scene(seed, aspect, n_objects, motion, object_colors, world)
