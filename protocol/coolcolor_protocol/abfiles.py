"""The ab file contract (DESIGN §3, SPEC §7): what the daemon writes and the host plugins read.

One definition, imported by the backend and by the plugins (which cannot import the backend: it needs torch).
"""

from __future__ import annotations

AB_LAYER = "ab"
# Nuke's EXR reader renames a final ``a``/``b`` part to alpha/blue; ``a_star``/``b_star`` arrive unchanged.
A_STAR_CHANNEL = "ab.a_star"
B_STAR_CHANNEL = "ab.b_star"
AB_CHANNELS = (A_STAR_CHANNEL, B_STAR_CHANNEL)

AB_FILE_PATTERN = "ab.%04d.exr"
PREVIEW_FILE_PATTERN = "preview.%04d.png"
RESOLVE_SIDECAR_PATTERN = "ab_rg.%04d.exr"  # plain R = a*, G = b*, B = 0: what a Fusion Loader reads by default
RGB_PLATE_PATTERN = "rgb.%04d.exr"  # the plate's L* + ab in the job's encoding (Resolve's fallback)
MANIFEST_NAME = "manifest.json"

BUILTIN_ENCODINGS = ("srgb", "rec709", "linear")


def frame_file(pattern: str, frame: int) -> str:
    """``pattern`` (printf style, ``%04d``) for one frame number."""
    return pattern % frame


def hash_pattern(pattern: str) -> str:
    """``ab.%04d.exr`` → ``ab.####.exr``, the padding notation Nuke's Read shows."""
    import re

    return re.sub(r"%0(\d)d", lambda m: "#" * int(m.group(1)), pattern)
