"""The one job contract: what a colorize job is, its defaults, its limits and why a value is refused.

Every producer and consumer of a job uses this class — the plugins (which build one from their UI),
``coolcolor submit`` and ``coolcolor colorize`` (which build one from the same flags), the daemon
(which validates what arrives and journals ``to_dict()``), and the video engine's ``ColorizeJob``
(a subclass that adds only the checks needing the file system: the source exists, the output folder
is writable). There used to be three copies with three sets of limits; SPEC.md §3.4 lists the one set
that is left, and ``JOB_LIMITS`` is what ``hello_reply.limits`` advertises.

Only the standard library: this module runs inside Resolve's and Nuke's Python (3.9+).
"""

from __future__ import annotations

import hashlib
import math
import numbers
import re
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Dict, List, Optional

from coolcolor_protocol.abfiles import BUILTIN_ENCODINGS
from coolcolor_protocol.errors import BAD_REQUEST, TOO_LARGE, ProtocolError

# ---------------------------------------------------------------------------------------- limits
# Why these numbers: seeds are 32-bit because the hosts' integer knobs are (Nuke Int_Knob, Fusion
# sliders); 500 steps is 25× the default and far past where DDIM stops changing the picture; 64 frames
# per model call is already more memory than any GPU we target has at 512 px; 20,000 frames is ~14 min
# at 24 fps — longer shots are split by the caller so a single failure never costs hours.
MAX_PATH_CHARS = 4096
MAX_PROMPT_CHARS = 2000
MAX_ENCODING_CHARS = 256
MAX_FRAME_NUMBER = 10_000_000
MAX_FRAMES_PER_JOB = 20_000
MAX_KEYFRAMES = 64
MAX_STEPS = 500
MAX_GUIDANCE = 50.0
MAX_SEED = 2**32 - 1
MAX_WINDOW = 64
MAX_EXTRA_FIELDS = 64
# References (issue 25): a graded frame every few seconds of a long shot, plus a few exemplars; each is
# decoded at full size and costs a UNet pass per step, so a handful, not hundreds.
MAX_REFERENCES = 16

JOB_LIMITS: Dict[str, Any] = {
    "max_path_chars": MAX_PATH_CHARS,
    "max_prompt_chars": MAX_PROMPT_CHARS,
    "max_encoding_chars": MAX_ENCODING_CHARS,
    "max_frame_number": MAX_FRAME_NUMBER,
    "max_frames_per_job": MAX_FRAMES_PER_JOB,
    "max_keyframes": MAX_KEYFRAMES,
    "max_steps": MAX_STEPS,
    "max_guidance_scale": MAX_GUIDANCE,
    "max_seed": MAX_SEED,
    "max_window": MAX_WINDOW,
    "max_extra_fields": MAX_EXTRA_FIELDS,
    "max_references": MAX_REFERENCES,
}

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # tab and newline are allowed (multi-line prompts)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass
class JobSpec:
    """A colorize job as it travels (JSON) and is journaled. Frame numbers are the source's own.

    Construct it directly (then call ``validate()``) or with ``from_dict`` (validates). Validation only
    needs the values themselves — never the file system, the model or the network — so a plugin can
    check a job before it is sent and name the offending field in its UI.
    """

    source: str  # image-sequence pattern (name.%04d.exr or name.####.exr), one image, or a movie
    output_dir: str
    prompt: str = ""
    negative_prompt: str = ""
    first: Optional[int] = None  # inclusive; None = the source's first frame
    last: Optional[int] = None  # inclusive; None = the source's last frame
    keyframes: List[int] = field(default_factory=list)  # artist-marked; a shot without one gets an automatic one
    seed: int = 0
    steps: int = 20
    guidance_scale: float = 5.0
    encoding: str = "srgb"  # one of BUILTIN_ENCODINGS, or an OCIO colorspace name (needs ocio_config)
    ocio_config: Optional[str] = None
    preview: bool = False  # also write preview.%04d.png (sRGB, 8-bit)
    clip_model_dir: Optional[str] = None  # local CLIP model folder: rank automatic keyframes by CLIP too
    window: int = 8  # frames per model call (memory only: the pixels do not depend on it)
    keyframes_only: bool = False  # "preview keyframe": colorize only the keyframes, write nothing else
    resolve_sidecar: bool = False  # also write ab_rg.%04d.exr: R = a*, G = b*, B = 0 (for a Fusion Loader)
    rgb_plate: bool = False  # also write rgb.%04d.exr: the plate's L* + ab in the job's encoding (fallback)
    # colour images the shot follows: {"frame": n, "path": p} (a graded frame n of the shot, its output is
    # the reference's a*b*) or {"frame": null, "path": p} (an exemplar still); see _validate_references
    references: List[Dict[str, Any]] = field(default_factory=list)
    extras: Dict[str, Any] = field(default_factory=dict)  # unknown fields a newer client sent: kept, ignored

    LIMITS: ClassVar[Dict[str, Any]] = JOB_LIMITS

    # ------------------------------------------------------------------------------------ conversion
    @classmethod
    def field_names(cls) -> tuple:
        """The known fields, in wire order (``extras`` is not one: it holds the unknown ones)."""
        return tuple(f.name for f in fields(cls) if f.name != "extras")

    @classmethod
    def from_dict(cls, d: Any, where: str = "job") -> JobSpec:
        """Validate a JSON object and build the job. Unknown fields go to ``extras`` (kept, not used).

        Raises ``ProtocolError(400 or 413, "<where>.<field>: <reason>")`` for the first bad field.
        """
        if not isinstance(d, dict):
            raise ProtocolError(BAD_REQUEST, f"{where}: must be an object, got {type(d).__name__}")
        known = cls.field_names()
        values = {name: d[name] for name in known if name in d and not (d[name] is None and name in _NOT_NULLABLE)}
        for name in ("source", "output_dir"):
            if d.get(name) is None:
                raise ProtocolError(BAD_REQUEST, f"{where}.{name}: is required")
        extras = {k: v for k, v in d.items() if k not in known}
        spec = cls(**values, extras=extras)
        spec.validate(where)
        return spec

    def to_dict(self) -> Dict[str, Any]:
        """JSON-safe: the known fields, then the unknown ones from ``extras`` at the same level, so that
        ``from_dict(to_dict())`` gives the same job and a journaled job keeps all a newer client sent."""
        out: Dict[str, Any] = {name: getattr(self, name) for name in self.field_names()}
        out["keyframes"] = [int(k) for k in self.keyframes]
        out["references"] = [dict(r) for r in self.references]
        for key, value in self.extras.items():
            out.setdefault(key, value)
        return out

    # ------------------------------------------------------------------------------------ validation
    def validate(self, where: str = "job") -> None:
        """Check every field; normalize in place (ints to int, guidance to float, keyframes sorted and unique).

        Raises ``ProtocolError(BAD_REQUEST | TOO_LARGE, "<where>.<field>: <reason>")``.
        """

        def bad(name: str, reason: str, code: int = BAD_REQUEST) -> ProtocolError:
            return ProtocolError(code, f"{where}.{name}: {reason}" if name else f"{where}: {reason}")

        def text(name: str, limit: int, *, nullable: bool = False, allow_empty: bool = True) -> None:
            value = getattr(self, name)
            if value is None and nullable:
                return
            if not isinstance(value, str):
                raise bad(name, f"must be a string, got {type(value).__name__}")
            if len(value) > limit:
                raise bad(name, f"{len(value)} characters; limit {limit}", TOO_LARGE)
            if not value and not allow_empty:
                raise bad(name, "must not be empty")
            if _CONTROL_RE.search(value):
                raise bad(name, "contains control characters")

        def integer(name: str, lo: int, hi: int, *, nullable: bool = False) -> None:
            value = getattr(self, name)
            if value is None and nullable:
                return
            if not _is_int(value):
                raise bad(name, f"must be an integer, got {value!r}")
            if not lo <= value <= hi:
                raise bad(name, f"{value} is outside {lo}..{hi}")
            setattr(self, name, int(value))

        def flag(name: str) -> None:
            if not isinstance(getattr(self, name), bool):
                raise bad(name, f"must be true or false, got {getattr(self, name)!r}")

        text("source", MAX_PATH_CHARS, allow_empty=False)
        text("output_dir", MAX_PATH_CHARS, allow_empty=False)
        text("prompt", MAX_PROMPT_CHARS)
        text("negative_prompt", MAX_PROMPT_CHARS)
        integer("first", 0, MAX_FRAME_NUMBER, nullable=True)
        integer("last", 0, MAX_FRAME_NUMBER, nullable=True)
        first, last = self.first, self.last
        if first is not None and last is not None:
            if last < first:
                raise bad("", f"last ({last}) is before first ({first})")
            if last - first + 1 > MAX_FRAMES_PER_JOB:
                raise bad("", f"{last - first + 1} frames; limit {MAX_FRAMES_PER_JOB} per job (split the shot)",
                          TOO_LARGE)
        if not isinstance(self.keyframes, (list, tuple)):
            raise bad("keyframes", f"must be a list of frame numbers, got {type(self.keyframes).__name__}")
        if len(self.keyframes) > MAX_KEYFRAMES:
            raise bad("keyframes", f"{len(self.keyframes)} keyframes; limit {MAX_KEYFRAMES}", TOO_LARGE)
        for k in self.keyframes:
            if not _is_int(k) or not 0 <= k <= MAX_FRAME_NUMBER:
                raise bad("keyframes", f"{k!r} is not a frame number in 0..{MAX_FRAME_NUMBER}")
            if (first is not None and k < first) or (last is not None and k > last):
                shown = f"{'' if first is None else first}..{'' if last is None else last}"
                raise bad("keyframes", f"keyframe {k} is outside the frame range {shown}")
        self.keyframes = sorted({int(k) for k in self.keyframes})
        self._validate_references(bad)
        integer("seed", 0, MAX_SEED)
        integer("steps", 1, MAX_STEPS)
        g = self.guidance_scale
        if not isinstance(g, numbers.Real) or isinstance(g, bool) or not math.isfinite(g) or not 0 <= g <= MAX_GUIDANCE:
            raise bad("guidance_scale", f"must be a number in 0..{MAX_GUIDANCE:g}, got {g!r}")
        self.guidance_scale = float(g)
        text("encoding", MAX_ENCODING_CHARS, allow_empty=False)
        text("ocio_config", MAX_PATH_CHARS, nullable=True, allow_empty=False)
        if self.encoding not in BUILTIN_ENCODINGS and not self.ocio_config:
            raise bad("encoding", f"unknown input encoding {self.encoding!r}: use one of {', '.join(BUILTIN_ENCODINGS)}, "
                      "or an OCIO colorspace name together with ocio_config")
        text("clip_model_dir", MAX_PATH_CHARS, nullable=True, allow_empty=False)
        integer("window", 1, MAX_WINDOW)
        for name in ("preview", "keyframes_only", "resolve_sidecar", "rgb_plate"):
            flag(name)
        if self.rgb_plate and self.encoding not in BUILTIN_ENCODINGS:
            raise bad("rgb_plate", f"is written in a built-in encoding only ({', '.join(BUILTIN_ENCODINGS)}), "
                      f"not {self.encoding!r}")
        if not isinstance(self.extras, dict):
            raise bad("extras", f"must be an object, got {type(self.extras).__name__}")
        if len(self.extras) > MAX_EXTRA_FIELDS:
            raise bad("", f"{len(self.extras)} unknown fields; limit {MAX_EXTRA_FIELDS}", TOO_LARGE)
        clash = sorted(set(self.extras) & set(self.field_names()))
        if clash:
            raise bad("extras", f"holds known field(s) {', '.join(clash)}")

    def _validate_references(self, bad: Any) -> None:
        """Each reference is {"frame": int or null, "path": non-empty string}; frames unique and in the range.
        Normalized to frame references by frame, then exemplars in the order given. Whether the file
        exists, decodes, has colour and the plate's size is the engine's check (it needs the pixels)."""
        refs = self.references
        if not isinstance(refs, (list, tuple)):
            raise bad("references", f"must be a list of {{frame, path}} objects, got {type(refs).__name__}")
        if len(refs) > MAX_REFERENCES:
            raise bad("references", f"{len(refs)} references; limit {MAX_REFERENCES}", TOO_LARGE)
        placed: Dict[int, Dict[str, Any]] = {}
        exemplars: List[Dict[str, Any]] = []
        for i, ref in enumerate(refs):
            name = f"references[{i}]"
            if not isinstance(ref, dict):
                raise bad(name, f"must be an object with frame and path, got {type(ref).__name__}")
            unknown = sorted(set(ref) - {"frame", "path"})
            if unknown:
                raise bad(name, f"unknown key(s) {', '.join(map(str, unknown))}; a reference has frame and path")
            path, frame = ref.get("path"), ref.get("frame")
            if not isinstance(path, str) or not path:
                raise bad(name, f"path must be a non-empty string, got {path!r}")
            if len(path) > MAX_PATH_CHARS:
                raise bad(name, f"path of {len(path)} characters; limit {MAX_PATH_CHARS}", TOO_LARGE)
            if _CONTROL_RE.search(path):
                raise bad(name, "path contains control characters")
            if frame is None:
                exemplars.append({"frame": None, "path": path})
                continue
            if not _is_int(frame) or not 0 <= frame <= MAX_FRAME_NUMBER:
                raise bad(name, f"frame {frame!r} is not a frame number in 0..{MAX_FRAME_NUMBER} (null for an exemplar)")
            if (self.first is not None and frame < self.first) or (self.last is not None and frame > self.last):
                shown = f"{'' if self.first is None else self.first}..{'' if self.last is None else self.last}"
                raise bad(name, f"frame {frame} is outside the frame range {shown}")
            if int(frame) in placed:
                raise bad(name, f"a second reference for frame {frame} ({placed[int(frame)]['path']} and {path})")
            placed[int(frame)] = {"frame": int(frame), "path": path}
        self.references = [placed[k] for k in sorted(placed)] + exemplars

    def frame_range(self) -> Optional[tuple]:
        """(first, last) when both are given, else None (the source decides)."""
        if self.first is None or self.last is None:
            return None
        return (self.first, self.last)


def file_sha256(path: str) -> str:
    """A reference file's content hash: what ``job_key``, the ab files' provenance and a host's own job key know a
    reference by (a moved file keeps it; a re-graded one does not). Here so the plugins hash as the engine does."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Fields whose null on the wire means "the default" rather than a value (e.g. an older client sending
# "seed": null). first, last, ocio_config and clip_model_dir are nullable by design and keep their null.
_NOT_NULLABLE = frozenset({"prompt", "negative_prompt", "keyframes", "references", "seed", "steps", "guidance_scale", "encoding",
                           "preview", "window", "keyframes_only", "resolve_sidecar", "rgb_plate"})

__all__ = [
    "JOB_LIMITS",
    "MAX_FRAMES_PER_JOB",
    "MAX_FRAME_NUMBER",
    "MAX_GUIDANCE",
    "MAX_KEYFRAMES",
    "MAX_PATH_CHARS",
    "MAX_PROMPT_CHARS",
    "MAX_REFERENCES",
    "MAX_SEED",
    "MAX_STEPS",
    "MAX_WINDOW",
    "JobSpec",
    "file_sha256",
]
