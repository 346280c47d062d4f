"""Pixels for the fake: reading and writing real image files with OpenImageIO (the fake only; the plugin never
touches pixels), Nuke's channel naming and the Read/Write colorspace conversions.

- Nuke's working space is linear: a Read converts "to Nuke's native color space … a linear format" and a Write
  converts back (Foundry, "Transforming the Color Space",
  https://learn.foundry.com/nuke/content/comp_environment/color_correction/transforming_colorspace.html). The
  ``default`` colorspace of a Read is sRGB for 8/16-bit integer files and linear for float files (the same page:
  "Nuke assumes ... 8-bit and 16-bit ... sRGB ... float ... linear").
- ``raw``: "Do not convert the data" (Read/Write knob tooltip, Nuke 17 node scan kirkjr2/nuke-python-reference
  data/nodes/Read.json).
- EXR channel names: the final part ``R/r/Red/RED`` → ``red``, ``G…`` → ``green``, ``B…`` → ``blue``, ``A…`` →
  ``alpha``; the other parts form the layer; unprefixed R/G/B/A are ``rgba`` (Foundry NDK example
  ExrChannelNameToNuke.cpp, https://learn.foundry.com/nuke/developers/16.0/ndkreference/examples/ExrChannelNameToNuke.cpp).
- A one-channel (gray) file fills red, green and blue (Nuke's Read of a luminance image; [inference]).
"""

from __future__ import annotations

import os

import numpy as np

Channels = dict[str, np.ndarray]  # Nuke channel name ("rgba.red", "ab.a_star") -> H×W float32, row 0 = TOP

_LAST_PART = {"r": "red", "red": "red", "g": "green", "green": "green", "b": "blue", "blue": "blue",
              "a": "alpha", "alpha": "alpha"}


def nuke_channel_name(exr_name: str) -> str:
    parts = exr_name.split(".")
    last = parts[-1]
    last = _LAST_PART.get(last.lower(), last) if last in ("R", "r", "Red", "RED", "G", "g", "Green", "GREEN", "B",
                                                            "b", "Blue", "BLUE", "A", "a", "Alpha", "ALPHA") else last
    layer = "_".join(parts[:-1]) if len(parts) > 1 else "rgba"
    return f"{layer}.{last}"


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0.04045, ((np.maximum(v, 0) + 0.055) / 1.055) ** 2.4, v / 12.92).astype(np.float32)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0.0031308, 1.055 * np.maximum(v, 0.0031308) ** (1 / 2.4) - 0.055, 12.92 * v).astype(np.float32)


def rec709_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v >= 0.081, ((np.maximum(v, 0) + 0.099) / 1.099) ** (1 / 0.45), v / 4.5).astype(np.float32)


def linear_to_rec709(v: np.ndarray) -> np.ndarray:
    return np.where(v >= 0.018, 1.099 * np.maximum(v, 0.018) ** 0.45 - 0.099, 4.5 * v).astype(np.float32)


_TO_LINEAR = {"linear": lambda v: v, "sRGB": srgb_to_linear, "rec709": rec709_to_linear}
_FROM_LINEAR = {"linear": lambda v: v, "sRGB": linear_to_srgb, "rec709": linear_to_rec709}


def resolve_colorspace(value: str, is_float: bool) -> str:
    """``default (sRGB)`` / ``default`` → the named space; unknown names are an error (like Nuke's red Read)."""
    name = value
    if name.startswith("default"):
        name = name[name.find("(") + 1:name.rfind(")")] if "(" in name else ("linear" if is_float else "sRGB")
    if name not in _TO_LINEAR:
        raise RuntimeError(f"unknown colorspace '{value}'")
    return name


def read_file(path: str, colorspace: str, raw: bool) -> tuple[Channels, bool]:
    import OpenImageIO as oiio

    if not os.path.exists(path):
        raise FileNotFoundError(path)
    buf = oiio.ImageBuf(path)
    if buf.has_error:
        raise RuntimeError(f"cannot read {path}: {buf.geterror()}")
    spec = buf.spec()
    pixels = buf.get_pixels(oiio.FLOAT)  # H×W×C, row 0 = top
    is_float = spec.format.basetype in (oiio.HALF, oiio.FLOAT, oiio.DOUBLE)
    names = list(spec.channelnames)
    out: Channels = {}
    if len(names) == 1:
        for c in ("rgba.red", "rgba.green", "rgba.blue"):
            out[c] = pixels[:, :, 0].copy()
    else:
        for i, n in enumerate(names):
            out[nuke_channel_name(n)] = pixels[:, :, i].copy()
    if not raw:
        convert = _TO_LINEAR[resolve_colorspace(colorspace, is_float)]
        for c in ("rgba.red", "rgba.green", "rgba.blue"):
            if c in out:
                out[c] = convert(out[c])
    return out, is_float


def write_file(path: str, channels: Channels, names: list, file_type: str, datatype: str, colorspace: str,
               raw: bool) -> None:
    import OpenImageIO as oiio

    h, w = next(iter(channels.values())).shape
    planes = []
    exr_names = []
    for n in names:
        layer, chan = n.split(".", 1)
        plane = channels.get(n, np.zeros((h, w), np.float32))
        if layer == "rgba" and chan != "alpha" and not raw:
            plane = _FROM_LINEAR[resolve_colorspace(colorspace, file_type == "exr")](plane)
        planes.append(plane)
        exr_names.append({"red": "R", "green": "G", "blue": "B", "alpha": "A"}[chan] if layer == "rgba"
                         else f"{layer}.{chan}")
    data = np.stack(planes, axis=-1).astype(np.float32)
    fmt = oiio.HALF if (file_type == "exr" and datatype.startswith("16")) else (
        oiio.FLOAT if file_type == "exr" else oiio.UINT8)
    spec = oiio.ImageSpec(w, h, len(names), fmt)
    spec.channelnames = tuple(exr_names)
    out = oiio.ImageOutput.create(path)
    if out is None or not out.open(path, spec):
        raise RuntimeError(f"Can't write {path}: {oiio.geterror()}")
    out.write_image(data)
    out.close()
