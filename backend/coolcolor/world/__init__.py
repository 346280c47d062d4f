"""Procedural old-film world: clips with exact ground truth (masks, flow, palette colors, captions)
for training the default model and for measuring text adherence and temporal stability.

    from coolcolor.world import render_clip, evaluate
    clip = render_clip(seed=3, frames=64, size=(128, 128))
    clip.gray, clip.rgb, clip.masks, clip.flow, clip.captions
"""

from coolcolor.world.clip import Clip, luminance_gray, render_clip, render_image
from coolcolor.world.degrade import Degradations
from coolcolor.world.metrics import (
    Prediction,
    cdc_ab,
    cdc_rgb,
    ciede2000,
    dis_flow,
    evaluate,
    load_prediction,
    luminance_error,
    temporal_metrics,
    text_adherence,
    warp_error,
)
from coolcolor.world.palette import PALETTE, PaletteColor, lightness_groups, palette_color, palette_names
from coolcolor.world.scene import Layer, Motion

__all__ = [
    "PALETTE", "Clip", "Degradations", "Layer", "Motion", "PaletteColor", "Prediction", "cdc_ab", "cdc_rgb",
    "ciede2000", "dis_flow", "evaluate", "lightness_groups", "load_prediction", "luminance_error",
    "luminance_gray", "palette_color", "palette_names", "render_clip", "render_image", "temporal_metrics",
    "text_adherence", "warp_error",
]
