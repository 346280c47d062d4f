"""Color science shared by the pipeline, the metrics and the video engine (docs/architecture.md#the-color-contract).

Model space is display-referred sRGB (Rec.709 primaries, D65). Lab is CIE L*a*b* (D65) computed
from sRGB-decoded linear RGB exactly as ``skimage.color`` defines it (same matrix, same white point),
so numbers agree with the reference the rest of the field uses.

Every function is written once, in torch, so the same code runs on the GPU inside the pipeline and on
numpy arrays in the metrics: a numpy input is viewed as a tensor and the result handed back as numpy.
Channels are always the last axis.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)

# skimage.color: xyz_from_rgb (sRGB primaries, D65) and the D65 2° white point.
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_RGB_FROM_XYZ = tuple(map(tuple, np.linalg.inv(np.array(_XYZ_FROM_RGB)).tolist()))
D65_WHITE = (0.95047, 1.0, 1.08883)

# The linear segment of f(t) with skimage's rounded constants (CIE: 216/24389 and 24389/3132); the
# exact ones move a* by up to 1.6e-4, enough to break agreement with the reference at 1e-4.
_EPSILON = 0.008856
_KAPPA_SLOPE = 7.787
_F_INV_THRESHOLD = 0.2068966


def _numpy_in_numpy_out(fn: Callable[..., torch.Tensor]) -> Callable[..., Array]:
    """Let a torch implementation take numpy arrays: floats keep their precision, ints become float32."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        as_numpy = any(isinstance(a, np.ndarray) for a in args)
        if not as_numpy:
            return fn(*args, **kwargs)
        converted = []
        for a in args:
            if isinstance(a, np.ndarray):
                if not np.issubdtype(a.dtype, np.floating):
                    a = a.astype(np.float32)
                a = torch.from_numpy(np.ascontiguousarray(a))
            converted.append(a)
        out = fn(*converted, **kwargs)
        if isinstance(out, tuple):
            return tuple(o.numpy() if isinstance(o, torch.Tensor) else o for o in out)
        return out.numpy() if isinstance(out, torch.Tensor) else out

    return wrapper


def _matrix(rows, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def _check_channels(x: torch.Tensor, n: int, name: str) -> None:
    if x.ndim == 0 or x.shape[-1] != n:
        raise ValueError(f"{name} must have {n} channels in the last axis, got shape {tuple(x.shape)}")


@_numpy_in_numpy_out
def srgb_to_linear(x: Array) -> Array:
    """sRGB transfer function decode (IEC 61966-2-1), element-wise."""
    return torch.where(x > 0.04045, ((x + 0.055) / 1.055).clamp_min(0) ** 2.4, x / 12.92)


@_numpy_in_numpy_out
def linear_to_srgb(x: Array) -> Array:
    """sRGB transfer function encode (IEC 61966-2-1), element-wise."""
    return torch.where(x > 0.0031308, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, x * 12.92)


@_numpy_in_numpy_out
def linear_rgb_to_xyz(rgb: Array) -> Array:
    _check_channels(rgb, 3, "linear RGB")
    return rgb @ _matrix(_XYZ_FROM_RGB, rgb).T


@_numpy_in_numpy_out
def xyz_to_linear_rgb(xyz: Array) -> Array:
    _check_channels(xyz, 3, "XYZ")
    return xyz @ _matrix(_RGB_FROM_XYZ, xyz).T


def _f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _EPSILON, t.clamp_min(_EPSILON) ** (1 / 3), _KAPPA_SLOPE * t + 16 / 116)


def _f_inv(f: torch.Tensor) -> torch.Tensor:
    return torch.where(f > _F_INV_THRESHOLD, f**3, (f - 16 / 116) / _KAPPA_SLOPE)


@_numpy_in_numpy_out
def xyz_to_lab(xyz: Array) -> Array:
    _check_channels(xyz, 3, "XYZ")
    fx, fy, fz = _f(xyz / _matrix(D65_WHITE, xyz)).unbind(-1)
    return torch.stack((116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)), dim=-1)


@_numpy_in_numpy_out
def lab_to_xyz(lab: Array) -> Array:
    _check_channels(lab, 3, "Lab")
    L, a, b = lab.unbind(-1)
    fy = (L + 16) / 116
    f = torch.stack((fy + a / 500, fy, fy - b / 200), dim=-1)
    return _f_inv(f) * _matrix(D65_WHITE, lab)


@_numpy_in_numpy_out
def rgb_to_lab(rgb: Array) -> Array:
    """sRGB-encoded RGB (…×3, nominally [0, 1]) → CIE Lab (D65); matches ``skimage.color.rgb2lab``."""
    _check_channels(rgb, 3, "RGB")
    return xyz_to_lab(linear_rgb_to_xyz(srgb_to_linear(rgb)))


@_numpy_in_numpy_out
def lab_to_rgb(lab: Array) -> Array:
    """CIE Lab (D65) → sRGB-encoded RGB, *not* clipped (out-of-gamut colors fall outside [0, 1])."""
    return linear_to_srgb(xyz_to_linear_rgb(lab_to_xyz(lab)))


@_numpy_in_numpy_out
def gray_to_lightness(gray: Array) -> Array:
    """L* of an sRGB-encoded neutral gray (any shape): the luminance the output must keep.

    For R = G = B = g the matrix rows sum to Y = linear(g) exactly (to 1e-6), so this is the same
    number ``rgb_to_lab`` gives for a gray pixel, without building three channels.
    """
    y = srgb_to_linear(gray) * sum(_XYZ_FROM_RGB[1])
    return 116 * _f(y) - 16


@_numpy_in_numpy_out
def lightness_to_gray(lightness: Array) -> Array:
    """Inverse of :func:`gray_to_lightness`: the sRGB-encoded gray whose L* is ``lightness``."""
    y = _f_inv((lightness + 16) / 116) / sum(_XYZ_FROM_RGB[1])
    return linear_to_srgb(y.clamp(0, 1))


@_numpy_in_numpy_out
def srgb_to_gray(rgb: Array) -> Array:
    """sRGB color (…×3) → the sRGB gray (…) with the same luminance Y, hence the same L*: the
    paper's "grayscale preprocessing" of color footage, and the gray of the world's color frames."""
    _check_channels(rgb, 3, "RGB")
    y = linear_rgb_to_xyz(srgb_to_linear(rgb))[..., 1] / sum(_XYZ_FROM_RGB[1])
    return linear_to_srgb(y.clamp(0, 1))


@_numpy_in_numpy_out
def replace_luminance(ab: Array, gray: Array) -> Array:
    """Paper §3.5: the result's L* is the input's L*, bit for bit; only a*, b* come from the model.

    ``ab`` is …×2 (a*, b*) and ``gray`` the sRGB-encoded input of the same leading shape.
    Returns Lab …×3.
    """
    _check_channels(ab, 2, "ab")
    if tuple(ab.shape[:-1]) != tuple(gray.shape):
        raise ValueError(f"ab {tuple(ab.shape)} and gray {tuple(gray.shape)} differ in size")
    return torch.cat((gray_to_lightness(gray).to(ab.dtype).unsqueeze(-1), ab), dim=-1)


@_numpy_in_numpy_out
def fit_chroma_to_gamut(lab: Array, iterations: int = 14) -> Array:
    """Scale a*, b* towards neutral, per pixel, just enough that Lab → sRGB lies inside [0, 1].

    Luminance replacement can put a (new L, old ab) pair outside the sRGB gamut. Clipping RGB would
    change L; shrinking chroma keeps L exactly and the hue angle, which is what a colorist expects
    when the ab layer is recombined with the plate in the editor. Bisection on the scale factor;
    14 halvings leave < 1e-4 of the original chroma undecided (on the safe, in-gamut side): finer
    than the float32 noise of the model, so batching cannot flip a visible step.
    """
    _check_channels(lab, 3, "Lab")
    flat = lab.reshape(-1, 3)
    gamut = _GamutTest.of(flat)
    out_of_gamut = ~gamut.inside(1.0)
    if not out_of_gamut.any():
        return lab
    # Only the pixels outside the gamut need the search; usually a small fraction of the frame.
    gamut = gamut.subset(out_of_gamut)
    lo = torch.zeros_like(gamut.u)
    hi = torch.ones_like(gamut.u)
    for _ in range(iterations):
        mid = (lo + hi) * 0.5
        good = gamut.inside(mid)
        lo = torch.where(good, mid, lo)
        hi = torch.where(good, hi, mid)
    fitted = flat.clone()
    fitted[out_of_gamut, 1:] = flat[out_of_gamut, 1:] * lo.unsqueeze(-1)
    return fitted.reshape(lab.shape)


@dataclasses.dataclass
class _GamutTest:
    """Is (L, s·a, s·b) inside the sRGB gamut? Planar and with every s-independent term precomputed.

    Inside ⇔ linear RGB in [0, 1]: the sRGB encode is monotonic and maps [0, 1] onto itself, so the
    check skips it. L fixes fy and Y; only fx = fy + s·a/500 and fz = fy − s·b/200 move with s. This
    is the same arithmetic as ``lab_to_xyz`` then ``xyz_to_linear_rgb``, in planes instead of
    interleaved channels, which makes the 4K fit several times faster.
    """

    fy: torch.Tensor
    u: torch.Tensor  # a / 500
    v: torch.Tensor  # b / 200
    y: torch.Tensor
    tolerance: float = 1e-6

    @classmethod
    def of(cls, lab: torch.Tensor) -> _GamutTest:
        """For pixels ``lab`` (P×3)."""
        fy = (lab[:, 0] + 16) / 116
        return cls(fy, lab[:, 1] / 500, lab[:, 2] / 200, _f_inv(fy) * D65_WHITE[1])

    def subset(self, mask: torch.Tensor) -> _GamutTest:
        return _GamutTest(self.fy[mask], self.u[mask], self.v[mask], self.y[mask], self.tolerance)

    def inside(self, scale: torch.Tensor | float) -> torch.Tensor:
        x = _f_inv(self.fy + self.u * scale) * D65_WHITE[0]
        z = _f_inv(self.fy - self.v * scale) * D65_WHITE[2]
        ok: torch.Tensor | None = None
        for m_x, m_y, m_z in _RGB_FROM_XYZ:
            channel = x * m_x + self.y * m_y + z * m_z
            fits = (channel >= -self.tolerance) & (channel <= 1 + self.tolerance)
            ok = fits if ok is None else ok & fits
        assert ok is not None
        return ok


@_numpy_in_numpy_out
def colorfulness(rgb: Array) -> Array:
    """Hasler & Süsstrunk (2003) colorfulness M of sRGB images in [0, 1] (…×H×W×3 → …).

    M = σ_rgyb + 0.3·μ_rgyb on the 0–255 scale with rg = R − G, yb = (R + G)/2 − B (the original
    definition, without the absolute values some re-implementations add). Scale: 0 not colorful,
    15 slightly, 33 moderately, 45 averagely, 59 quite, 82 highly, 109 extremely.
    """
    _check_channels(rgb, 3, "RGB")
    if rgb.ndim < 3:
        raise ValueError(f"colorfulness needs at least H×W×3, got shape {tuple(rgb.shape)}")
    x = rgb * 255.0
    r, g, b = x.unbind(-1)
    rg = (r - g).flatten(-2)
    yb = (0.5 * (r + g) - b).flatten(-2)
    std = torch.sqrt(rg.var(dim=-1, unbiased=False) + yb.var(dim=-1, unbiased=False))
    mean = torch.sqrt(rg.mean(dim=-1) ** 2 + yb.mean(dim=-1) ** 2)
    return std + 0.3 * mean
