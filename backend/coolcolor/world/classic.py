"""World versions 1 and 4: version 1's scenes, the world the shipped model was trained and measured on.

Version 1 renders every seed exactly as it always has (the same draws in the same order); version 4 keeps
its backdrops and placement and takes version 2's twelve shape families and object sizes, from a random
stream of its own.
"""

from __future__ import annotations

import math

import numpy as np

from coolcolor.world.catalog import LAYOUTS, MAX_OBJECTS, shape_nouns
from coolcolor.world.scene import (
    Boundary,
    Layer,
    Motion,
    Scene,
    SceneObject,
    camera_motion,
    pick_colors,
    pick_shapes,
    sweep_front_across_back,
    wide_object_size,
)
from coolcolor.world.spec import WorldSpec
from coolcolor.world.textures import OBJECT_TEXTURES, REGION_TEXTURES, draw_texture, sky_texture, sphere_texture


def generate_classic_scene(seed: int, aspect: float, n_objects: int | None, motion: Motion,
                           object_colors: tuple[str, ...] | None, world: WorldSpec) -> Scene:
    """Draw a version 1 or 4 scene from ``seed``. ``aspect`` = width / height places objects across the frame."""
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
    colors = pick_colors(rng, len(slots), n_objects, object_colors)

    layers: list[Layer] = []
    for i, nouns in enumerate(slots):
        layers.append(Layer(i, "region", nouns[0], nouns, colors[i]))
    for k, shape in enumerate(shapes):
        lid = len(slots) + k
        layers.append(Layer(lid, "object", shape, shape_nouns(shape), colors[lid]))

    # Backdrop boundaries (world y is down, the frame spans y ∈ [−0.5, 0.5]).
    boundaries: list[Boundary] = []
    if len(slots) == 2:
        wavy = layout == "outdoor"
        boundaries.append(Boundary(float(rng.uniform(-0.2, 0.2)), float(rng.uniform(-0.15, 0.15)),
                                   float(rng.uniform(0.0, 0.04)) if wavy else 0.0,
                                   float(rng.uniform(3, 9)), float(rng.uniform(0, 2 * math.pi))))
    elif len(slots) == 3:
        y1 = float(rng.uniform(-0.3, -0.1))
        slope = float(rng.uniform(-0.08, 0.08))
        boundaries.append(Boundary(y1, slope, float(rng.uniform(0.02, 0.06)), float(rng.uniform(4, 10)),
                                   float(rng.uniform(0, 2 * math.pi))))
        boundaries.append(Boundary(y1 + float(rng.uniform(0.2, 0.3)), slope, float(rng.uniform(0.0, 0.02)),
                                   float(rng.uniform(2, 6)), float(rng.uniform(0, 2 * math.pi))))
    region_textures = []
    for nouns in slots:
        if nouns[0] == "sky":
            region_textures.append(sky_texture(rng))
        else:
            kind = REGION_TEXTURES[rng.integers(len(REGION_TEXTURES))]
            region_textures.append(draw_texture(rng, str(kind), world=True))

    half_w = 0.5 * aspect
    objects: list[SceneObject] = []
    for shape in shapes:
        if shape in ("disk", "oval"):
            tex = sphere_texture(rng)
        else:
            tex = draw_texture(rng, str(OBJECT_TEXTURES[rng.integers(len(OBJECT_TEXTURES))]), world=False)
        center = np.array([rng.uniform(-0.7, 0.7) * half_w, rng.uniform(-0.3, 0.3)])
        period = rng.uniform(40, 160, 2)
        objects.append(SceneObject(
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


def _object_size(rng: np.random.Generator, version: int) -> float:
    """Object radius (frame heights): version 1's 0.08–0.18, or version 4's version-2 range."""
    return wide_object_size(rng) if version == 4 else float(rng.uniform(0.08, 0.18))
