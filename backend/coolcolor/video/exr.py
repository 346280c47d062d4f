"""The ab layer file (DESIGN §3): OpenEXR, half float, one layer ``ab`` of two channels.

Channel names: ``ab.a_star`` (CIE a*) and ``ab.b_star`` (CIE b*).

Why not ``ab.a`` / ``ab.b``: Nuke's EXR reader (NDK ``ExrChannelNameToNuke::setFromPrefixedExrName``,
shared by exrReader and exrReaderDeep) splits a name at the periods, strips leading digits, turns
other non-alphanumerics into ``_``, and renames a final part of ``R r Red RED`` → ``red``,
``G g Green GREEN`` → ``green``, ``B b Blue BLUE`` → ``blue``, ``A a Alpha ALPHA`` → ``alpha``. So
``ab.a`` would arrive as ``ab.alpha`` and ``ab.b`` as ``ab.blue``. ``a_star`` / ``b_star`` match
none of those rules and arrive unchanged as ``ab.a_star`` / ``ab.b_star`` (a Nuke layer ``ab``).

Values: a*, b* in natural CIE units (≈ −128…127) of CIE L*a*b* (D65, the skimage definition) of
the display-referred sRGB rendering of the input (the job's declared encoding, also in the header),
already fitted so that (input L*, a*, b*) lies inside the sRGB gamut. Half float holds them to
better than 0.03 units. Compression: ZIP (lossless).

Provenance travels in the header as string/int attributes prefixed ``coolcolor:`` (prompt,
negative_prompt, keyframe, keyframes, seed, steps, guidance_scale, model_hash, encoding,
ocio_config, source, frame, job_key, version). Files are written atomically: a temporary file in
the same folder, fsync, ``os.replace``, fsync of the folder; a reader never sees a partial file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from coolcolor import __version__, faults
from coolcolor.errors import InputError

AB_CHANNELS = ("ab.a_star", "ab.b_star")
ATTRIBUTE_PREFIX = "coolcolor:"


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync it, rename it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        faults.hit("mid_write")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def _header_value(value: Any) -> str | int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    if value is None:
        return ""
    return json.dumps(value)


def write_ab_exr(path: str, ab: np.ndarray, provenance: dict[str, Any]) -> None:
    """Write an H×W×2 a*, b* array as the ab layer file, atomically, with ``provenance`` in the header."""
    import OpenImageIO as oiio

    ab = np.ascontiguousarray(ab, dtype=np.float32)
    if ab.ndim != 3 or ab.shape[-1] != 2:
        raise InputError(f"ab must be H×W×2, got shape {ab.shape}")
    height, width = ab.shape[:2]

    def write(tmp: str) -> None:
        spec = oiio.ImageSpec(width, height, 2, "half")
        spec.channelnames = AB_CHANNELS
        spec.attribute("compression", "zip")
        spec.attribute(ATTRIBUTE_PREFIX + "version", __version__)
        for key, value in provenance.items():
            spec.attribute(ATTRIBUTE_PREFIX + key, _header_value(value))
        out = oiio.ImageOutput.create(tmp)
        if out is None or not out.open(tmp, spec):
            raise OSError(f"cannot write {path}: {oiio.geterror()}")
        try:
            if not out.write_image(ab):
                raise OSError(f"cannot write {path}: {out.geterror()}")
        finally:
            out.close()

    atomic_write(path, write)


def read_ab_exr(path: str) -> tuple[np.ndarray, dict[str, Any]]:
    """(H×W×2 float32 a*, b*; the ``coolcolor:`` header attributes without the prefix)."""
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(path)
    if inp is None:
        raise InputError(f"cannot read ab file {path}: {oiio.geterror()}")
    try:
        spec = inp.spec()
        names = tuple(spec.channelnames)
        missing = [c for c in AB_CHANNELS if c not in names]
        if missing:
            raise InputError(f"{path} is not an ab layer file: channels {names}, missing {missing}")
        pixels = inp.read_image(0, 0, 0, spec.nchannels, oiio.FLOAT)
        if pixels is None:
            raise InputError(f"cannot decode {path}: {inp.geterror()}")
        header = {
            a.name[len(ATTRIBUTE_PREFIX):]: a.value
            for a in spec.extra_attribs
            if a.name.startswith(ATTRIBUTE_PREFIX)
        }
    finally:
        inp.close()
    pixels = np.asarray(pixels, np.float32).reshape(spec.height, spec.width, spec.nchannels)
    ab = np.stack([pixels[..., names.index(c)] for c in AB_CHANNELS], axis=-1)
    return ab, header


def read_ab_header(path: str) -> dict[str, Any] | None:
    """The ``coolcolor:`` attributes of an existing file, or None if it cannot be read as an ab file."""
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(path)
    if inp is None:
        oiio.geterror()
        return None
    try:
        spec = inp.spec()
        if tuple(spec.channelnames) != AB_CHANNELS:
            return None
        return {
            a.name[len(ATTRIBUTE_PREFIX):]: a.value
            for a in spec.extra_attribs
            if a.name.startswith(ATTRIBUTE_PREFIX)
        }
    finally:
        inp.close()


def write_preview_png(path: str, rgb: np.ndarray) -> None:
    """An 8-bit sRGB PNG preview (H×W×3 in [0, 1]), written atomically."""
    import OpenImageIO as oiio

    data = np.clip(np.round(np.asarray(rgb, np.float32) * 255), 0, 255).astype(np.uint8)
    height, width = data.shape[:2]

    def write(tmp: str) -> None:
        out = oiio.ImageOutput.create(tmp)
        if out is None or not out.open(tmp, oiio.ImageSpec(width, height, 3, "uint8")):
            raise OSError(f"cannot write {path}: {oiio.geterror()}")
        try:
            out.write_image(data)
        finally:
            out.close()

    atomic_write(path, write)
