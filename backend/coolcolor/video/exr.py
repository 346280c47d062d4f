"""The ab layer file (docs/architecture.md#the-color-contract): OpenEXR, half float, one layer ``ab`` of two channels.

The names (channels, file patterns, attribute prefix) are defined once in ``coolcolor_protocol.abfiles``,
which the plugins import too; this module is how the engine writes and reads the files.

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

import errno
import json
import os
import secrets
from collections.abc import Callable
from typing import Any

import numpy as np

from coolcolor import __version__, faults
from coolcolor.errors import InputError
from coolcolor_protocol.abfiles import (
    AB_CHANNELS,
    BUILTIN_ENCODINGS,
    PROVENANCE_PREFIX,
    RESOLVE_SIDECAR_PATTERN,
    RGB_PLATE_PATTERN,
    frame_file,
)

ATTRIBUTE_PREFIX = PROVENANCE_PREFIX  # the names are the protocol's (coolcolor_protocol.abfiles): hosts read them


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


def _create_temporary(folder: str, base: str, ext: str) -> str:
    """A new, empty file ``.BASE.RANDOM.tmpEXT`` in ``folder`` with the mode an ordinary file gets (0666
    less the umask, as ``open(path, "w")`` — so 0644 under umask 022, 0664 under 002, and a folder's
    default ACL applies), where ``tempfile.mkstemp`` would make it 0600 and the renamed result unreadable
    to the rest of a studio. O_EXCL with a random name keeps it race-free. Secrets (the daemon's
    connection file) are written 0600 by their own writer."""
    for _ in range(100):
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp{ext}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666))
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", folder)  # pragma: no cover


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync it, rename it into place.

    The one writer of every file CoolColor puts in an output folder (ab EXRs, previews, sidecars, RGB
    plates, manifests): the result has the umask's ordinary mode (``_create_temporary``)."""
    folder = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    tmp = _create_temporary(folder, base, ext)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        faults.hit("mid_write")
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:  # a full disk: name the file, not its temporary
            raise OSError(exc.errno, exc.strerror, path) from exc
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


def _write_half_exr(path: str, pixels: np.ndarray, channels: tuple[str, ...], provenance: dict[str, Any]) -> None:
    """H×W×C float as a half-float EXR (ZIP) with the given channel names, atomically, ``provenance`` in the
    ``coolcolor:*`` header attributes: the one writer of the ab layer, the Resolve sidecar and the RGB plate."""
    import OpenImageIO as oiio

    height, width = pixels.shape[:2]

    def write(tmp: str) -> None:
        spec = oiio.ImageSpec(width, height, len(channels), "half")
        spec.channelnames = channels
        spec.attribute("compression", "zip")
        spec.attribute(ATTRIBUTE_PREFIX + "version", __version__)
        for key, value in provenance.items():
            spec.attribute(ATTRIBUTE_PREFIX + key, _header_value(value))
        out = oiio.ImageOutput.create(tmp)
        if out is None or not out.open(tmp, spec):
            raise OSError(f"cannot write {path}: {oiio.geterror()}")
        try:
            if not out.write_image(pixels):
                raise OSError(f"cannot write {path}: {out.geterror()}")
        finally:
            out.close()

    atomic_write(path, write)


def write_ab_exr(path: str, ab: np.ndarray, provenance: dict[str, Any]) -> None:
    """Write an H×W×2 a*, b* array as the ab layer file, atomically, with ``provenance`` in the header."""
    ab = np.ascontiguousarray(ab, dtype=np.float32)
    if ab.ndim != 3 or ab.shape[-1] != 2:
        raise InputError(f"ab must be H×W×2, got shape {ab.shape}")
    _write_half_exr(path, ab, AB_CHANNELS, provenance)


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


# ---------------------------------------------------- DaVinci Resolve outputs (docs/hosts.md#how-the-plugins-are-built)
RGB_PLATE_ENCODINGS = BUILTIN_ENCODINGS
_BT1886_GAMMA = 2.4  # the display EOTF the ``rec709`` input encoding is read with (video/encoding.py)


def _write_rgb_exr(path: str, rgb: np.ndarray, provenance: dict[str, Any]) -> None:
    """H×W×3 float as a half-float R, G, B EXR (ZIP), atomically, provenance in the header."""
    rgb = np.ascontiguousarray(rgb, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise InputError(f"an RGB frame must be H×W×3, got shape {rgb.shape}")
    _write_half_exr(path, rgb, ("R", "G", "B"), provenance)


def write_resolve_sidecar(path: str, ab: np.ndarray, provenance: dict[str, Any]) -> None:
    """The ab layer for a Fusion Loader: plain R = a*, G = b*, B = 0 (half float).

    Why a second file: a Loader reads R, G, B by default, and scripted EXR channel selection
    (``Clip1.OpenEXRFormat.RedName``) is reported ignored on Resolve 21.1
    (docs/hosts.md#r3-getting-the-ab-sequence-into-fusion), so the Custom Tool sees r2 = a*, g2 = b* without any.
    """
    ab = np.asarray(ab, dtype=np.float32)
    if ab.ndim != 3 or ab.shape[-1] != 2:
        raise InputError(f"ab must be H×W×2, got shape {ab.shape}")
    rgb = np.concatenate([ab, np.zeros(ab.shape[:2] + (1,), np.float32)], axis=-1)
    _write_rgb_exr(path, rgb, provenance)


def srgb_to_encoding(srgb: np.ndarray, encoding: str) -> np.ndarray:
    """Display sRGB (the model's space) → the job's input encoding: the inverse of ``InputDecoder.to_srgb``
    for the built-in encodings, through ``coolcolor.color``'s transfer functions (one definition)."""
    from coolcolor import color

    x = np.asarray(srgb, dtype=np.float32)
    if encoding == "srgb":
        return x
    linear = np.asarray(color.srgb_to_linear(np.ascontiguousarray(x)), dtype=np.float32)
    if encoding == "linear":
        return linear
    if encoding == "rec709":
        return np.clip(linear, 0, None) ** (1 / _BT1886_GAMMA)
    raise InputError(f"the RGB plate is written in the built-in encodings only ({', '.join(RGB_PLATE_ENCODINGS)}); "
                     f"got {encoding!r}")


def write_rgb_plate(path: str, srgb: np.ndarray, encoding: str, provenance: dict[str, Any]) -> None:
    """The colorized plate for Resolve's fallback (a clip on the track above): ``srgb`` is the pipeline's
    ``lab_to_rgb(L* of the plate, a*, b*)`` (paper §3.5: L* kept bit for bit), re-encoded into the
    job's encoding so it sits over the original like for like."""
    _write_rgb_exr(path, srgb_to_encoding(srgb, encoding), provenance)


def write_resolve_outputs(output_dir: str, frame: int, ab: np.ndarray, srgb: np.ndarray | None,
                          provenance: dict[str, Any], *, sidecar: bool, plate: bool, encoding: str) -> list[str]:
    """The engine's one hook: the files a job's ``resolve_sidecar`` / ``rgb_plate`` options ask for."""
    written = []
    if sidecar:
        path = os.path.join(output_dir, frame_file(RESOLVE_SIDECAR_PATTERN, frame))
        write_resolve_sidecar(path, ab, provenance)
        written.append(path)
    if plate:
        if srgb is None:
            raise InputError("the RGB plate needs the pipeline's RGB result (run it with preview/rgb on)")
        path = os.path.join(output_dir, frame_file(RGB_PLATE_PATTERN, frame))
        write_rgb_plate(path, srgb, encoding, provenance)
        written.append(path)
    return written


def resolve_outputs_present(output_dir: str, frame: int, *, sidecar: bool, plate: bool) -> bool:
    """Whether a finished frame also has the Resolve files its job asks for (else it is redone)."""
    return ((not sidecar or os.path.exists(os.path.join(output_dir, frame_file(RESOLVE_SIDECAR_PATTERN, frame))))
            and (not plate or os.path.exists(os.path.join(output_dir, frame_file(RGB_PLATE_PATTERN, frame)))))
