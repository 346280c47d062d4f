"""The ab file contract: the names a host needs to find and read what the daemon writes.

The engine writes (``backend/coolcolor/video/exr.py`` and ``job.py``), the plugins read; both import
these names from here so that they cannot drift apart. Only the standard library (hosts' Python 3.9+).

Per job, in ``output_dir``:

- ``ab.%04d.exr`` — OpenEXR, half float, ZIP; one layer ``ab`` of two channels ``ab.a_star`` (CIE a*)
  and ``ab.b_star`` (CIE b*), in natural CIE units (about −128…127), already gamut-fitted to the
  plate's L*. Why not ``ab.a`` / ``ab.b``: Nuke's EXR reader renames a final ``a`` to ``alpha`` and
  ``b`` to ``blue``; ``a_star`` / ``b_star`` arrive unchanged (a Nuke layer ``ab``).
- ``preview.%04d.png`` — optional 8-bit sRGB preview (``preview: true``).
- ``ab_rg.%04d.exr`` — optional (``resolve_sidecar: true``): R = a*, G = b*, B = 0, half float, for a
  Fusion Loader, which reads only RGBA by name.
- ``rgb.%04d.exr`` — optional (``rgb_plate: true``): the plate's L* with the ab, in the job's encoding.
- ``manifest.json`` — the job's plan and outcome.

Frame numbers are the source's own, zero-padded to at least four digits (``%04d``: frame 12345 is
``ab.12345.exr``). Provenance travels in the EXR header as attributes named ``coolcolor:<key>``.
"""

from __future__ import annotations

import os
import re

AB_LAYER = "ab"
A_STAR_CHANNEL = "ab.a_star"
B_STAR_CHANNEL = "ab.b_star"
AB_CHANNELS = (A_STAR_CHANNEL, B_STAR_CHANNEL)

AB_FILE_PATTERN = "ab.%04d.exr"
PREVIEW_FILE_PATTERN = "preview.%04d.png"
RESOLVE_SIDECAR_PATTERN = "ab_rg.%04d.exr"
RGB_PLATE_PATTERN = "rgb.%04d.exr"
MANIFEST_NAME = "manifest.json"

# The declared input encodings the engine knows without an OCIO config (docs/architecture.md#the-color-contract);
# any other name is an OCIO colorspace and needs the job's ocio_config.
BUILTIN_ENCODINGS = ("srgb", "rec709", "linear")

# EXR header attributes: PROVENANCE_PREFIX + key. The keys an ab file carries:
PROVENANCE_PREFIX = "coolcolor:"
PROVENANCE_KEYS = (
    "version",  # the coolcolor version that wrote the file
    "prompt",
    "negative_prompt",
    "keyframe",  # the keyframe this frame followed
    "keyframes",  # every keyframe of the job (JSON list)
    "seed",
    "steps",
    "guidance_scale",
    "model_hash",
    "encoding",
    "ocio_config",
    "source",
    "frame",
    "job_key",  # identifies everything that decides the pixels; a resumed job skips frames that carry its own
    "references",  # the job's reference images (JSON list of {frame, path, sha256}; frame null: an exemplar)
)
VERSION_ATTRIBUTE = PROVENANCE_PREFIX + "version"
FRAME_ATTRIBUTE = PROVENANCE_PREFIX + "frame"
JOB_KEY_ATTRIBUTE = PROVENANCE_PREFIX + "job_key"
ENCODING_ATTRIBUTE = PROVENANCE_PREFIX + "encoding"
MODEL_HASH_ATTRIBUTE = PROVENANCE_PREFIX + "model_hash"

_PRINTF_RE = re.compile(r"%0?(\d*)d")


def provenance_attribute(key: str) -> str:
    """The EXR attribute name of a provenance key: ``"job_key"`` → ``"coolcolor:job_key"``."""
    return PROVENANCE_PREFIX + key


def frame_file(pattern: str, frame: int) -> str:
    """One frame's path from a printf pattern: ``frame_file("/o/ab.%04d.exr", 7)`` → ``"/o/ab.0007.exr"``."""
    if not _PRINTF_RE.search(pattern):
        raise ValueError(f"{pattern!r} has no %d or %0Nd frame field")
    return _PRINTF_RE.sub(lambda m: f"{int(frame):0{m.group(1) or 0}d}", pattern, count=1)


def hash_pattern(pattern: str) -> str:
    """The same pattern with ``#`` padding, as Nuke's Read knob and Fusion's Loader like it:
    ``"ab.%04d.exr"`` → ``"ab.####.exr"``."""
    match = _PRINTF_RE.search(pattern)
    if not match:
        raise ValueError(f"{pattern!r} has no %d or %0Nd frame field")
    width = int(match.group(1) or 1)
    return pattern[: match.start()] + "#" * width + pattern[match.end():]


def output_patterns(output_dir: str, *, resolve_sidecar: bool = False, rgb_plate: bool = False,
                    preview: bool = False, first: int | None = None, last: int | None = None) -> dict:
    """The absolute file patterns a job in ``output_dir`` writes (None where that output is off), and its
    frame range: what ``submit_reply.output`` carries (SPEC §5.2), so a host can set up its Read or Loader
    before the first frame exists."""
    folder = os.path.abspath(output_dir)
    return {
        "dir": folder,
        "pattern": os.path.join(folder, AB_FILE_PATTERN),
        "first": first,
        "last": last,
        "sidecar_pattern": os.path.join(folder, RESOLVE_SIDECAR_PATTERN) if resolve_sidecar else None,
        "rgb_pattern": os.path.join(folder, RGB_PLATE_PATTERN) if rgb_plate else None,
        "preview_pattern": os.path.join(folder, PREVIEW_FILE_PATTERN) if preview else None,
        "manifest": os.path.join(folder, MANIFEST_NAME),
    }


def job_output(job: dict) -> dict:
    """``output_patterns`` for a job as ``JobSpec.to_dict()`` gives it (the daemon's submit_reply.output)."""
    return output_patterns(job["output_dir"], resolve_sidecar=bool(job.get("resolve_sidecar")),
                           rgb_plate=bool(job.get("rgb_plate")), preview=bool(job.get("preview")),
                           first=job.get("first"), last=job.get("last"))


__all__ = [
    "AB_CHANNELS",
    "AB_FILE_PATTERN",
    "AB_LAYER",
    "A_STAR_CHANNEL",
    "BUILTIN_ENCODINGS",
    "B_STAR_CHANNEL",
    "ENCODING_ATTRIBUTE",
    "FRAME_ATTRIBUTE",
    "JOB_KEY_ATTRIBUTE",
    "MANIFEST_NAME",
    "MODEL_HASH_ATTRIBUTE",
    "PREVIEW_FILE_PATTERN",
    "PROVENANCE_KEYS",
    "PROVENANCE_PREFIX",
    "RESOLVE_SIDECAR_PATTERN",
    "RGB_PLATE_PATTERN",
    "VERSION_ATTRIBUTE",
    "frame_file",
    "hash_pattern",
    "job_output",
    "output_patterns",
    "provenance_attribute",
]
