"""The Lab recombination as one expression tree: the plate's L* kept, a*, b* taken from the ab layer.

Why a tree: the hosts recombine the daemon's chroma-only ``ab`` layer with the plate themselves
(docs/architecture.md#the-color-contract), in their own expression languages (a Nuke MergeExpression, a Fusion
Custom Tool), and the tests evaluate the same maths in Python. Writing the formula three times would give three
chances to disagree; here it is built once and *rendered* to each host's syntax, and evaluated with Python floats
for the tests.

The maths is ``coolcolor.color``'s (skimage's constants, D65): the plate value is decoded to linear light in its
stated encoding and clamped to [0, 1] exactly as the pipeline's input decoder does, its luminance Y kept (so its L*,
since L* = 116·f(Y) − 16), and X, Z rebuilt from a*, b*::

    fy = f(Y);  X = 0.95047·f⁻¹(fy + a*/500);  Z = 1.08883·f⁻¹(fy − b*/200)
    linear RGB = M⁻¹·(X, Y, Z), clamped to [0, 1], then encoded back in the plate's encoding

The clamp is the pipeline's own: its preview is ``clip(lab_to_rgb(L*, a*, b*), 0, 1)``, and the delivered a*, b*
are already gamut-fitted for the plate's L*, so on the daemon's frames the clamp only absorbs half-float rounding;
an out-of-gamut a*, b* (a hand-edited layer) is clipped per channel, as the preview would be.

Host limits the renderings respect (docs/hosts.md, sections N1 and R1):

- Nuke MergeExpression (N1): 4 temporaries (``temp_name0..3``/``temp_expr0..3``) and ``expr0..3``; inputs are
  ``Br``/``Bg``/``Bb`` (B = plate) and ``Aab.a_star``/``Aab.b_star`` (A = the ab Read); ``pow``, ``max``, ``min``
  and ``?:``. Whether a temporary may use an earlier one is undocumented, so each temporary is written in terms
  of the inputs alone and only the channel expressions use the temporaries.
- Fusion Custom Tool (R1): Setup 1–4 (per frame, no pixels), Intermediate 1–4 (per pixel, ``i1..i4``), channel
  expressions; pixels ``r1 g1 b1 a1`` (Image1 = plate) and ``r2 g2`` (Image2 = ab sidecar, R = a*, G = b*).
  ``^`` is power (``pow()`` reportedly fails in Resolve), comparisons give 1 or 0, so branches are written
  branch-free as ``(c)*(x)+(1-(c))*(y)``; powers take a ``max(…)``-guarded base so the unused branch is never NaN.
  Intermediates, like Nuke's temporaries, use only the pixel inputs.

Numbers are written with ``repr`` of a float (never ``1/3``, in case a host divides integers).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Tuple

from coolcolor_protocol.abfiles import A_STAR_CHANNEL, B_STAR_CHANNEL, BUILTIN_ENCODINGS

# --- the constants of coolcolor.color (skimage.color's definition) -----------------------------------------------
_Y_FROM_RGB = (0.212671, 0.715160, 0.072169)
# Rows of inv(xyz_from_rgb), exactly as color._RGB_FROM_XYZ computes them (numpy's inverse of skimage's matrix).
_RGB_FROM_XYZ = (
    (3.2404813432005266, -1.5371515162713183, -0.4985363261688878),
    (-0.9692549499965682, 1.8759900014898907, 0.0415559265582928),
    (0.0556466391351772, -0.2040413383665112, 1.0573110696453443),
)
_WHITE_X, _WHITE_Z = 0.95047, 1.08883
_EPSILON = 0.008856
_KAPPA_SLOPE = 7.787
_F_INV_THRESHOLD = 0.2068966
_SRGB_DECODE_THRESHOLD = 0.04045
_SRGB_ENCODE_THRESHOLD = 0.0031308
_BT1886_GAMMA = 2.4

# Names of the tree's inputs; each host rendering maps them to its own variables.
PLATE_R, PLATE_G, PLATE_B, PLATE_A = "plate.r", "plate.g", "plate.b", "plate.a"
AB_A_STAR, AB_B_STAR = A_STAR_CHANNEL, B_STAR_CHANNEL
INPUTS = (PLATE_R, PLATE_G, PLATE_B, AB_A_STAR, AB_B_STAR)


# --- the tree ------------------------------------------------------------------------------------------------------
class Expr:
    """A node of the recombination tree. Operators build nodes, so the maths below reads as maths."""

    def __add__(self, other: object) -> Expr:
        return Binary("+", self, _expr(other))

    def __radd__(self, other: object) -> Expr:
        return Binary("+", _expr(other), self)

    def __sub__(self, other: object) -> Expr:
        return Binary("-", self, _expr(other))

    def __rsub__(self, other: object) -> Expr:
        return Binary("-", _expr(other), self)

    def __mul__(self, other: object) -> Expr:
        return Binary("*", self, _expr(other))

    def __rmul__(self, other: object) -> Expr:
        return Binary("*", _expr(other), self)

    def __truediv__(self, other: object) -> Expr:
        return Binary("/", self, _expr(other))

    def __gt__(self, other: object) -> Compare:
        return Compare(">", self, _expr(other))


@dataclass(frozen=True, eq=False)
class Const(Expr):
    value: float


@dataclass(frozen=True, eq=False)
class Input(Expr):
    name: str


@dataclass(frozen=True, eq=False)
class Binary(Expr):
    op: str  # + - * /
    left: Expr
    right: Expr


@dataclass(frozen=True, eq=False)
class Compare(Expr):
    op: str  # >
    left: Expr
    right: Expr


@dataclass(frozen=True, eq=False)
class Select(Expr):
    """``condition ? if_true : if_false``; both branches are kept finite by construction (guarded powers)."""

    condition: Compare
    if_true: Expr
    if_false: Expr


@dataclass(frozen=True, eq=False)
class Power(Expr):
    base: Expr
    exponent: float


@dataclass(frozen=True, eq=False)
class Extremum(Expr):
    op: str  # max | min
    left: Expr
    right: Expr


@dataclass(frozen=True, eq=False)
class Temp(Expr):
    """A named temporary: a host variable in channel expressions, written out in full inside other temporaries."""

    name: str
    value: Expr


def _expr(x: object) -> Expr:
    if isinstance(x, Expr):
        return x
    if isinstance(x, (int, float)):
        return Const(float(x))
    raise TypeError(f"not an expression: {x!r}")


def _max(a: Expr, b: object) -> Expr:
    return Extremum("max", a, _expr(b))


def _min(a: Expr, b: object) -> Expr:
    return Extremum("min", a, _expr(b))


def _clamp01(x: Expr) -> Expr:
    return _min(_max(x, 0.0), 1.0)


def _decode(encoding: str, c: Expr) -> Expr:
    """Plate value → linear light in [0, 1], as ``coolcolor.video.encoding.InputDecoder`` reads it."""
    c = _clamp01(c)
    if encoding == "srgb":
        return Select(c > _SRGB_DECODE_THRESHOLD, Power(_max((c + 0.055) / 1.055, 0.0), 2.4), c / 12.92)
    if encoding == "rec709":  # BT.1886 with zero black: a pure 2.4 power gives display light
        return Power(c, _BT1886_GAMMA)
    if encoding == "linear":
        return c
    raise ValueError(f"unknown encoding {encoding!r}: the recombination is defined for {', '.join(BUILTIN_ENCODINGS)}")


def _encode(encoding: str, v: Expr) -> Expr:
    """Linear light in [0, 1] → the plate's encoding (the inverse of :func:`_decode` on [0, 1])."""
    if encoding == "srgb":
        return Select(v > _SRGB_ENCODE_THRESHOLD,
                      1.055 * Power(_max(v, _SRGB_ENCODE_THRESHOLD), 1 / 2.4) - 0.055, v * 12.92)
    if encoding == "rec709":
        return Power(v, 1 / _BT1886_GAMMA)
    if encoding == "linear":
        return v
    raise ValueError(f"unknown encoding {encoding!r}: the recombination is defined for {', '.join(BUILTIN_ENCODINGS)}")


def _f(t: Expr) -> Expr:
    return Select(t > _EPSILON, Power(_max(t, _EPSILON), 1 / 3), _KAPPA_SLOPE * t + 16 / 116)


def _f_inv(t: Expr) -> Expr:
    return Select(t > _F_INV_THRESHOLD, t * t * t, (t - 16 / 116) / _KAPPA_SLOPE)


@dataclass(frozen=True)
class Recombination:
    """The built tree for one plate encoding: its temporaries (Y, fy) and the three channel expressions."""

    encoding: str
    temps: Tuple[Temp, ...]
    channels: Tuple[Expr, Expr, Expr]  # red, green, blue


@functools.lru_cache(maxsize=None)
def build(encoding: str) -> Recombination:
    """The recombination tree for a plate in ``encoding`` (one of ``BUILTIN_ENCODINGS``)."""
    if encoding not in BUILTIN_ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}: the recombination is defined for "
                         f"{', '.join(BUILTIN_ENCODINGS)} (convert an OCIO colorspace to one of them first)")
    linear = [_decode(encoding, Input(n)) for n in (PLATE_R, PLATE_G, PLATE_B)]
    y = Temp("Y", _Y_FROM_RGB[0] * linear[0] + _Y_FROM_RGB[1] * linear[1] + _Y_FROM_RGB[2] * linear[2])
    fy = Temp("fy", _f(y))
    # X and Z stay inside the channel expressions: as temporaries they would have to repeat fy (and so Y) in
    # full, since a temporary may only use the inputs; this way every expression stays a few hundred characters.
    x = _WHITE_X * _f_inv(fy + Input(AB_A_STAR) / 500)
    z = _WHITE_Z * _f_inv(fy - Input(AB_B_STAR) / 200)
    channels = tuple(_encode(encoding, _clamp01(row[0] * x + row[1] * y + row[2] * z)) for row in _RGB_FROM_XYZ)
    return Recombination(encoding, (y, fy), channels)  # type: ignore[arg-type]


# --- evaluation with Python floats ---------------------------------------------------------------------------------
def _eval(node: Expr, env: Mapping[str, float]) -> float:
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Input):
        return env[node.name]
    if isinstance(node, Temp):
        return _eval(node.value, env)
    if isinstance(node, Binary):
        a, b = _eval(node.left, env), _eval(node.right, env)
        return a + b if node.op == "+" else a - b if node.op == "-" else a * b if node.op == "*" else a / b
    if isinstance(node, Compare):
        return 1.0 if _eval(node.left, env) > _eval(node.right, env) else 0.0
    if isinstance(node, Select):
        return _eval(node.if_true if _eval(node.condition, env) else node.if_false, env)
    if isinstance(node, Power):
        return math.pow(_eval(node.base, env), node.exponent)
    if isinstance(node, Extremum):
        a, b = _eval(node.left, env), _eval(node.right, env)
        return max(a, b) if node.op == "max" else min(a, b)
    raise TypeError(f"unknown node {node!r}")


def evaluate(encoding: str, plate_rgb: Tuple[float, float, float], a_star: float,
             b_star: float) -> Tuple[float, float, float]:
    """The recombined RGB of one pixel, in the plate's ``encoding``, with Python floats (the tests' reference)."""
    tree = build(encoding)
    env = {PLATE_R: float(plate_rgb[0]), PLATE_G: float(plate_rgb[1]), PLATE_B: float(plate_rgb[2]),
           AB_A_STAR: float(a_star), AB_B_STAR: float(b_star)}
    r, g, b = (_eval(c, env) for c in tree.channels)
    return r, g, b


# --- rendering to a host's syntax ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Dialect:
    inputs: Dict[str, str]
    power: Callable[[str, str], str]
    select: Callable[[str, str, str], str]
    temp_names: Dict[str, str] = field(default_factory=dict)


def _number(x: float) -> str:
    text = repr(float(x))
    return f"({text})" if text.startswith("-") else text


def _render(node: Expr, d: _Dialect, temps_as_variables: bool) -> str:
    def r(n: Expr) -> str:
        return _render(n, d, temps_as_variables)

    if isinstance(node, Const):
        return _number(node.value)
    if isinstance(node, Input):
        return d.inputs[node.name]
    if isinstance(node, Temp):
        return d.temp_names[node.name] if temps_as_variables else f"({r(node.value)})"
    if isinstance(node, Binary):
        return f"({r(node.left)}{node.op}{r(node.right)})"
    if isinstance(node, Compare):
        return f"({r(node.left)}{node.op}{r(node.right)})"
    if isinstance(node, Select):
        return d.select(r(node.condition), r(node.if_true), r(node.if_false))
    if isinstance(node, Power):
        return d.power(r(node.base), _number(node.exponent))
    if isinstance(node, Extremum):
        return f"{node.op}({r(node.left)},{r(node.right)})"
    raise TypeError(f"unknown node {node!r}")


@dataclass(frozen=True)
class NukeExpressions:
    """Knob values of a MergeExpression with B = the plate and A = the raw Read of the ab EXRs."""

    temps: List[Tuple[str, str]]
    exprs: Tuple[str, str, str]

    def knobs(self) -> Dict[str, str]:
        """Knob name → value for ``node[name].setValue(value)``: temporaries, rgb expressions and channel masks.

        ``channel3`` is ``none``, so alpha (and every other channel, the ``ab`` layer included) comes from B.
        """
        out: Dict[str, str] = {}
        for i, (name, expr) in enumerate(self.temps):
            out[f"temp_name{i}"] = name
            out[f"temp_expr{i}"] = expr
        for i, (expr, channel) in enumerate(zip(self.exprs, ("rgba.red", "rgba.green", "rgba.blue"))):
            out[f"channel{i}"] = channel
            out[f"expr{i}"] = expr
        out["channel3"] = "none"
        out["expr3"] = ""
        return out


def nuke_expressions(encoding: str = "linear", *, plate: str = "B", ab: str = "A") -> NukeExpressions:
    """The recombination for a Nuke MergeExpression.

    Nuke's Read has already linearised the plate (docs/hosts.md#n7-the-plate-inside-a-nuke-comp), so ``encoding`` is
    ``linear`` inside a comp unless the plate is read raw. ``plate``/``ab`` name the inputs (MergeExpression
    prefixes ``A``/``B``).
    """
    tree = build(encoding)
    names = {t.name: f"cc_{t.name}" for t in tree.temps}  # prefixed: no clash with channel names like Y
    d = _Dialect(
        inputs={PLATE_R: f"{plate}r", PLATE_G: f"{plate}g", PLATE_B: f"{plate}b",
                AB_A_STAR: f"{ab}{A_STAR_CHANNEL}", AB_B_STAR: f"{ab}{B_STAR_CHANNEL}"},
        power=lambda base, exp: f"pow({base},{exp})",
        select=lambda c, t, f: f"({c}?{t}:{f})",
        temp_names=names,
    )
    temps = [(names[t.name], _render(t.value, d, temps_as_variables=False)) for t in tree.temps]
    exprs = tuple(_render(c, d, temps_as_variables=True) for c in tree.channels)
    return NukeExpressions(temps, exprs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FusionExpressions:
    """Inputs of a Fusion Custom Tool with Image1 = the plate and Image2 = the ab sidecar (R = a*, G = b*)."""

    setup: List[str]
    intermediate: List[str]
    red: str
    green: str
    blue: str
    alpha: str

    def inputs(self) -> Dict[str, str]:
        """Custom Tool input id → expression (``tool.SetInput(id, value)`` or a ``.comp`` ``Input { Value = … }``)."""
        out = {f"Setup{i + 1}": e for i, e in enumerate(self.setup)}
        out.update({f"Intermediate{i + 1}": e for i, e in enumerate(self.intermediate)})
        out.update(RedExpression=self.red, GreenExpression=self.green, BlueExpression=self.blue,
                   AlphaExpression=self.alpha)
        return out


def fusion_expressions(encoding: str = "rec709") -> FusionExpressions:
    """The recombination for a Fusion Custom Tool (Resolve's Fusion page).

    ``encoding`` is the plate's as MediaIn delivers it: a Rec.709 (gamma 2.4) timeline is ``rec709``.
    """
    tree = build(encoding)
    names = {t.name: f"i{i + 1}" for i, t in enumerate(tree.temps)}
    d = _Dialect(
        inputs={PLATE_R: "r1", PLATE_G: "g1", PLATE_B: "b1", AB_A_STAR: "r2", AB_B_STAR: "g2"},
        power=lambda base, exp: f"({base}^{exp})",
        select=lambda c, t, f: f"({c}*{t}+(1-{c})*{f})",
        temp_names=names,
    )
    intermediate = [_render(t.value, d, temps_as_variables=False) for t in tree.temps]
    red, green, blue = (_render(c, d, temps_as_variables=True) for c in tree.channels)
    return FusionExpressions(setup=[], intermediate=intermediate, red=red, green=green, blue=blue, alpha="a1")
