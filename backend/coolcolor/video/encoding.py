"""Declared input encodings → the model's gray (docs/architecture.md#the-color-contract).

The model sees display-referred sRGB. Every job declares how its frames are encoded:

``srgb``
    the values are sRGB-encoded already (clamped to [0, 1]).
``rec709``
    a Rec.709 video signal as a reference monitor shows it: the BT.1886 EOTF with a black level of
    zero (a pure 2.4 power) gives display light, which is then sRGB-encoded. This is the
    display-referred reading (what the colorist sees), not the inverse of the BT.709 camera OETF;
    it equals OCIO's "Rec.1886 Rec.709 - Display" → "sRGB - Display" conversion (tested).
``linear``
    scene-linear light with Rec.709 primaries, sRGB-encoded and clamped (no tone mapping).
any other name
    an OCIO colorspace of the config passed as ``ocio_config``; converted colorimetrically with
    ``Config.GetProcessorToBuiltinColorSpace`` to the built-in "sRGB - Display" colorspace, so the
    config must declare its interchange roles (``aces_interchange`` / ``cie_xyz_d65_interchange``),
    as every OCIO 2.2+ studio/CG config does. Values are clamped to [0, 1] afterwards.

Gray is the luminance of the sRGB frame: the sRGB-encoded neutral with the same CIE L* (the paper's
"grayscale preprocessing"), so color footage is desaturated exactly the way ``rgb_to_lab`` sees it,
and a gray input comes back unchanged.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from coolcolor import color
from coolcolor.errors import InputError
from coolcolor_protocol.abfiles import BUILTIN_ENCODINGS  # one list of names, shared with the plugins

_OCIO_TARGET = "sRGB - Display"
_BT1886_GAMMA = 2.4


# One definition of each, in color.py; re-exported here for the engine's callers.
lightness_to_gray = color.lightness_to_gray


def srgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 sRGB in [0, 1] → H×W float32 gray with the same L*."""
    return np.asarray(color.srgb_to_gray(np.ascontiguousarray(rgb, dtype=np.float32)), dtype=np.float32)


class InputDecoder:
    """Turns decoded pixel values (H×W×C float, C = 1 or 3) into the model's sRGB gray (H×W).

    Built once per job, so that an unknown encoding or a bad OCIO config is reported before any
    frame is read.
    """

    def __init__(self, encoding: str, ocio_config: str | None = None) -> None:
        self.encoding = encoding
        self.ocio_config = ocio_config
        self._cpu: Any = None  # PyOpenColorIO CPUProcessor for OCIO colorspaces
        if encoding in BUILTIN_ENCODINGS:
            return
        if not ocio_config:
            raise InputError(
                f"unknown input encoding {encoding!r}: use one of {', '.join(BUILTIN_ENCODINGS)}, "
                "or an OCIO colorspace name together with an OCIO config"
            )
        self._cpu = _ocio_processor(ocio_config, encoding)

    def to_srgb(self, pixels: np.ndarray) -> np.ndarray:
        """Decode to display-referred sRGB in [0, 1] (same channel count as the input)."""
        x = np.ascontiguousarray(pixels, dtype=np.float32)
        if self.encoding == "srgb":
            out = x
        elif self.encoding == "rec709":
            out = color.linear_to_srgb(np.clip(x, 0, 1) ** _BT1886_GAMMA)
        elif self.encoding == "linear":
            out = color.linear_to_srgb(np.clip(x, 0, 1))
        else:
            rgb = np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x.copy()
            self._cpu.applyRGB(rgb)
            out = rgb[..., :1] if x.shape[-1] == 1 else rgb
        return np.clip(out, 0, 1)

    def to_gray(self, pixels: np.ndarray) -> np.ndarray:
        """H×W×C decoded values → H×W sRGB gray in [0, 1], float32."""
        srgb = self.to_srgb(pixels)
        if srgb.shape[-1] == 1:
            return srgb[..., 0]
        return srgb_to_gray(srgb[..., :3])

    def describe(self) -> dict:
        return {"encoding": self.encoding, "ocio_config": self.ocio_config}


def _ocio_processor(config_path: str, colorspace: str):
    try:
        import PyOpenColorIO as ocio
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise InputError(f"OCIO colorspace {colorspace!r} needs PyOpenColorIO: {exc}") from exc
    if not config_path.startswith("ocio://") and not os.path.isfile(config_path):
        raise InputError(f"OCIO config not found: {config_path}")
    try:
        config = ocio.Config.CreateFromFile(config_path)
    except Exception as exc:
        raise InputError(f"cannot read OCIO config {config_path}: {exc}") from exc
    if config.getColorSpace(colorspace) is None:
        names = [cs.getName() for cs in config.getColorSpaces()]
        shown = ", ".join(names[:12]) + (" …" if len(names) > 12 else "")
        raise InputError(f"unknown input encoding {colorspace!r}: not a colorspace of {config_path} ({shown})")
    try:
        processor = ocio.Config.GetProcessorToBuiltinColorSpace(config, colorspace, _OCIO_TARGET)
    except Exception as exc:
        raise InputError(
            f"cannot convert OCIO colorspace {colorspace!r} of {config_path} to sRGB: {exc} "
            "(the config needs the aces_interchange or cie_xyz_d65_interchange role)"
        ) from exc
    return processor.getDefaultCPUProcessor()
