"""Which world a clip is drawn from: the world version, and what is left out of it or featured in it.

Two uses, both deterministic functions of the seed:

* **leave-out training**: ``WorldSpec(exclude_shapes=("ring",), ...)`` never draws a ring, a seaside
  layout or an excluded color synonym, so a model trained on it has never seen them;
* **leave-out evaluation**: ``spec.featuring("shape")`` draws clips in which one object *is* a ring
  (``featuring("layout")``: the layout is the held-out one; ``featuring("synonym")``: every caption
  names each color by its held-out synonym where it has one) — scenes the model can only get right by
  generalising.

``version`` 1 is the world the shipped model was trained and measured on; the default spec renders
every seed exactly as before (the same random draws in the same order). Version 2 (``world.wide``)
widens it: more shape families and sizes, 1–5 regions, objects that touch, overlap and leave the
frame, photographic lightness textures and freer captions. Version 4 keeps version 1's backdrops,
placement and captions and takes only version 2's shape families and object sizes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from coolcolor.errors import InputError
from coolcolor.world.catalog import layouts_for, shapes_for
from coolcolor.world.palette import PALETTE, palette_color

# 3: version 2's scenes with version 1's caption split (two full, two partial); 4: version 1's scenes
# and captions with version 2's twelve shape families and object sizes (docs/training.md, E5)
WORLD_VERSIONS = (1, 2, 3, 4)
FEATURES = ("shape", "layout", "synonym")


@dataclass(frozen=True)
class WorldSpec:
    version: int = 1
    exclude_shapes: tuple[str, ...] = ()  # shape families never drawn
    exclude_layouts: tuple[str, ...] = ()  # backdrop layouts never drawn
    exclude_synonyms: tuple[str, ...] = ()  # color words captions never use (a color's name cannot be one)
    feature: str = ""  # "", or one of FEATURES: draw the excluded items of that kind on purpose
    photos: bool = True  # versions 2 and 3: lightness textures from photographs (needs scikit-learn's sample images)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "world") -> None:
        if self.version not in WORLD_VERSIONS:
            raise InputError(f"{where}.version must be one of {', '.join(map(str, WORLD_VERSIONS))}, got {self.version!r}")
        shapes, layouts = shapes_for(self.version), layouts_for(self.version)
        for key, known in (("exclude_shapes", shapes), ("exclude_layouts", layouts)):
            bad = [v for v in getattr(self, key) if v not in known]
            if bad:
                raise InputError(f"{where}.{key}: unknown {', '.join(map(repr, bad))}; world version {self.version} "
                                 f"has {', '.join(known)}")
        if len(set(self.exclude_shapes)) >= len(shapes):
            raise InputError(f"{where}.exclude_shapes leaves no shape family to draw")
        if len(set(self.exclude_layouts)) >= len(layouts):
            raise InputError(f"{where}.exclude_layouts leaves no backdrop layout to draw")
        synonyms = {w: c for c in PALETTE for w in c.synonyms[1:]}
        names = {c.name for c in PALETTE}
        for word in self.exclude_synonyms:
            if word in names:
                raise InputError(f"{where}.exclude_synonyms: {word!r} is a color's own name; only synonyms can be left out")
            if word not in synonyms:
                raise InputError(f"{where}.exclude_synonyms: {word!r} is not a palette synonym")
        if self.feature not in ("", *FEATURES):
            raise InputError(f"{where}.feature must be empty or one of {', '.join(FEATURES)}, got {self.feature!r}")
        if self.feature and not self.held_out(self.feature):
            raise InputError(f"{where}.feature = {self.feature!r} but nothing of that kind is excluded")

    def held_out(self, kind: str) -> tuple[str, ...]:
        return {"shape": self.exclude_shapes, "layout": self.exclude_layouts, "synonym": self.exclude_synonyms}[kind]

    @property
    def leaves_out(self) -> bool:
        return bool(self.exclude_shapes or self.exclude_layouts or self.exclude_synonyms)

    def featuring(self, kind: str) -> WorldSpec:
        """The same world, drawing the held-out items of ``kind`` on purpose (and the others still not)."""
        return replace(self, feature=kind)

    def allowed_shapes(self) -> list[str]:
        return [s for s in shapes_for(self.version) if s not in self.exclude_shapes]

    def allowed_layouts(self) -> list[str]:
        return [s for s in layouts_for(self.version) if s not in self.exclude_layouts]

    def caption_synonyms(self, color: str) -> tuple[str, ...]:
        """The words a caption may use for ``color`` (a palette name) in this world."""
        words = palette_color(color).synonyms
        if self.feature == "synonym":
            held = tuple(w for w in words if w in self.exclude_synonyms)
            if held:
                return held
        return tuple(w for w in words if w not in self.exclude_synonyms)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None, where: str = "world") -> WorldSpec:
        """From a config table; ``{"leave_out": true}`` is shorthand for ``DEFAULT_LEAVE_OUT``'s exclusions."""
        if data is not None and not isinstance(data, dict):
            raise InputError(f"{where}: must be a table/object, got {data!r}")
        data = dict(data or {})
        base: dict[str, Any] = {}
        leave_out = data.pop("leave_out", False)
        if not isinstance(leave_out, bool):
            raise InputError(f"{where}.leave_out must be true or false, got {leave_out!r}")
        if leave_out:
            base = {k: v for k, v in DEFAULT_LEAVE_OUT.items()}
        known = {"version", "exclude_shapes", "exclude_layouts", "exclude_synonyms", "feature", "photos"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; known: leave_out, {', '.join(sorted(known))}")
        values: dict[str, Any] = {**base}
        for key, raw in data.items():
            if key == "version":
                if isinstance(raw, bool) or not isinstance(raw, int):
                    raise InputError(f"{where}.version must be an integer, got {raw!r}")
                values[key] = raw
            elif key == "photos":
                if not isinstance(raw, bool):
                    raise InputError(f"{where}.photos must be true or false, got {raw!r}")
                values[key] = raw
            elif key == "feature":
                if not isinstance(raw, str):
                    raise InputError(f"{where}.feature must be a string, got {raw!r}")
                values[key] = raw
            else:
                if not isinstance(raw, (list, tuple)) or not all(isinstance(v, str) for v in raw):
                    raise InputError(f"{where}.{key} must be a list of names, got {raw!r}")
                values[key] = tuple(raw)
        try:
            return cls(**values)
        except InputError as exc:
            raise InputError(str(exc).replace("world.", f"{where}.", 1)) from None


# What leave-out evaluation holds out by default: one shape family and one layout that both world
# versions have, and the last synonym of every color.
DEFAULT_LEAVE_OUT: dict[str, tuple[str, ...]] = {
    "exclude_shapes": ("ring",),
    "exclude_layouts": ("seaside",),
    "exclude_synonyms": ("snow-white", "lemon-yellow", "aqua", "amber", "salmon-pink", "jade", "scarlet",
                         "cobalt", "plum", "silver", "chestnut", "jet-black"),
}
