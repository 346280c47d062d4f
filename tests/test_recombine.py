"""The shared Lab recombination tree: Python evaluation, the Nuke and Fusion renderings, and real engine frames."""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest

from coolcolor import color
from coolcolor.video.encoding import InputDecoder
from coolcolor.video.exr import read_ab_exr
from coolcolor_protocol import recombine
from coolcolor_protocol.abfiles import BUILTIN_ENCODINGS
from hostexpr import ExpressionError, eval_fusion_custom, eval_nuke_merge

L_GRID = np.linspace(0.0, 100.0, 21)
AB_GRID = np.linspace(-110.0, 110.0, 23)  # far beyond the sRGB gamut at most L*: exercises the clamp


def encode_linear(encoding: str, linear: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] → ``encoding`` (the inverse of InputDecoder's reading)."""
    linear = np.clip(linear, 0, 1)
    if encoding == "srgb":
        return color.linear_to_srgb(linear)
    if encoding == "rec709":
        return linear ** (1 / 2.4)
    return linear


def reference(encoding: str, plate: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """What the pipeline does: the plate's gray as its decoder reads it, L* of that gray, then Lab → sRGB clipped
    (its preview), expressed in the plate's encoding."""
    gray = InputDecoder(encoding).to_gray(plate.astype(np.float64))
    lab = color.replace_luminance(ab.astype(np.float64), gray)
    srgb = np.clip(color.lab_to_rgb(lab), 0, 1)
    return encode_linear(encoding, color.srgb_to_linear(srgb))


def grid(encoding: str, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Gray plates at every L* of the grid × every (a*, b*), in the plate's encoding (every ``step``-th)."""
    L, a, b = np.meshgrid(L_GRID[::step], AB_GRID[::step], AB_GRID[::step], indexing="ij")
    y = color.lab_to_xyz(np.stack([L, np.zeros_like(L), np.zeros_like(L)], -1).astype(np.float64))[..., 1]
    plate = np.repeat(encode_linear(encoding, y)[..., None], 3, -1)
    return plate.reshape(-1, 3), np.stack([a, b], -1).reshape(-1, 2)


@pytest.mark.parametrize("encoding", BUILTIN_ENCODINGS)
def test_evaluation_equals_the_pipelines_recombination_on_a_dense_grid(encoding):
    plate, ab = grid(encoding, step=2)  # Python floats, one pixel at a time: the renderings below take the full grid
    want = reference(encoding, plate, ab)
    got = np.array([recombine.evaluate(encoding, tuple(p), a, b) for p, (a, b) in zip(plate, ab)])
    assert np.abs(got - want).max() < 1e-5
    # and on color plates, whose gray is the decoder's luminance (and values outside [0, 1], which it clamps)
    rng = np.random.default_rng(0)
    plate = rng.uniform(-0.2, 1.2, (200, 3))
    ab = rng.uniform(-60, 60, (200, 2))
    want = reference(encoding, plate, ab)
    got = np.array([recombine.evaluate(encoding, tuple(p), a, b) for p, (a, b) in zip(plate, ab)])
    assert np.abs(got - want).max() < 1e-5


def test_the_plates_lightness_survives_in_gamut():
    """In gamut, the recombined pixel has the plate's L* exactly, and a*, b* those of the layer."""
    for L, a, b in [(50.0, 20.0, -10.0), (75.0, -15.0, 30.0), (20.0, 5.0, 5.0)]:
        y = float(color.lab_to_xyz(np.array([L, 0.0, 0.0]))[1])
        gray = float(color.linear_to_srgb(np.array([y]))[0])
        rgb = recombine.evaluate("srgb", (gray, gray, gray), a, b)
        assert np.allclose(color.rgb_to_lab(np.array(rgb)), [L, a, b], atol=1e-4)


@pytest.mark.parametrize("encoding", BUILTIN_ENCODINGS)
def test_the_nuke_rendering_parses_and_gives_the_same_numbers(encoding):
    plate, ab = grid(encoding)
    knobs = recombine.nuke_expressions(encoding).knobs()
    assert {f"temp_name{i}" for i in range(2)} <= set(knobs) and len(recombine.nuke_expressions(encoding).temps) <= 4
    assert all("[" not in v and "$" not in v for v in knobs.values())  # EvalString knobs would TCL-substitute
    out = eval_nuke_merge(knobs, B={"r": plate[:, 0], "g": plate[:, 1], "b": plate[:, 2]},
                          A={"ab.a_star": ab[:, 0], "ab.b_star": ab[:, 1]})
    assert set(out) == {"rgba.red", "rgba.green", "rgba.blue"}  # alpha and the ab layer come from B
    got = np.stack([out["rgba.red"], out["rgba.green"], out["rgba.blue"]], -1)
    assert np.abs(got - reference(encoding, plate, ab)).max() < 1e-5


@pytest.mark.parametrize("encoding", BUILTIN_ENCODINGS)
def test_the_fusion_rendering_parses_and_gives_the_same_numbers(encoding):
    plate, ab = grid(encoding)
    fusion = recombine.fusion_expressions(encoding)
    inputs = fusion.inputs()
    assert len(fusion.setup) <= 4 and len(fusion.intermediate) <= 4
    assert all("pow(" not in v for v in inputs.values())  # pow() reportedly fails in Resolve: ^ only
    out = eval_fusion_custom(inputs, c1={"r": plate[:, 0], "g": plate[:, 1], "b": plate[:, 2], "a": 1.0},
                             c2={"r": ab[:, 0], "g": ab[:, 1], "b": 0.0})
    got = np.stack([out["r"], out["g"], out["b"]], -1)
    assert np.isfinite(got).all()  # branch-free: the unused branch must not be NaN either
    assert np.abs(got - reference(encoding, plate, ab)).max() < 1e-5
    assert out["a"] == 1.0


def test_the_parsers_follow_the_hosts_grammar():
    """The test parsers themselves: precedence and the operators each host documents, and what each refuses."""
    from hostexpr import FUSION, NUKE, evaluate

    assert evaluate("1+2*3^2", FUSION, {}) == 19.0 and evaluate("2^3^2", FUSION, {}) == 512.0
    assert evaluate("(2>1)+(1<>1)+(3=3)", FUSION, {}) == 2.0
    assert evaluate("1 > 2 ? 5 : 1+1", NUKE, {}) == 2.0 and evaluate("pow(2,10)-max(1,3)", NUKE, {}) == 1021.0
    assert evaluate("", NUKE, {}) == 0.0
    for text, grammar in [("pow(2,3)", FUSION), ("2^3", NUKE), ("[exit]", NUKE), ("$env(HOME)", NUKE),
                          ("1 ? 2 : 3", FUSION), ("r9", FUSION)]:
        with pytest.raises(ExpressionError):
            evaluate(text, grammar, {"r1": 0.0})


def test_an_unknown_encoding_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown encoding 'acescg'.*srgb, rec709, linear"):
        recombine.nuke_expressions("acescg")


def read_png(path: str) -> np.ndarray:
    img = oiio.ImageInput.open(path)
    try:
        return img.read_image(format="float")
    finally:
        img.close()


def test_recombining_a_real_ab_exr_with_its_plate_reproduces_the_engines_preview(tmp_path, monkeypatch):
    """The engine's own files: plate + ab EXR (half) through both hosts' renderings = its preview PNG."""
    from coolcolor import cli
    from coolcolor.model.presets import tiny_pipeline

    model = tmp_path / "model"
    tiny_pipeline(seed=0).save_pretrained(model)
    src = tmp_path / "src"
    src.mkdir()
    y, x = np.mgrid[0:40, 0:56].astype(np.float32)
    for f in (1, 2):
        img = np.where(np.hypot(x - 15 - 2 * f, y - 20) < 9, 0.8, 0.05 + 0.9 * y / 40).astype(np.float32)
        out = oiio.ImageOutput.create(str(src / f"p.{f:04d}.png"))
        out.open(str(src / f"p.{f:04d}.png"), oiio.ImageSpec(56, 40, 1, "uint16"))
        out.write_image(img[..., None])
        out.close()
    if "coolcolor.video.cli" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "coolcolor.video.cli"))
    dst = tmp_path / "out"
    assert cli.main(["colorize", str(src / "p.%04d.png"), "--prompt", "a red ball", "--steps", "2", "--model",
                     str(model), "--preview", "-o", str(dst), "--device", "cpu"]) == 0
    for f in (1, 2):
        gray = read_png(str(src / f"p.{f:04d}.png"))[..., 0]
        ab, _ = read_ab_exr(str(dst / f"ab.{f:04d}.exr"))
        preview = read_png(str(dst / f"preview.{f:04d}.png"))[..., :3]
        assert np.abs(ab).max() > 1.0  # a colorization, not a gray frame that would match trivially
        a_star, b_star = ab[..., 0].astype(np.float64), ab[..., 1].astype(np.float64)
        # Resolve: an sRGB plate through MediaIn, the sidecar's R/G = a*/b*
        fu = eval_fusion_custom(recombine.fusion_expressions("srgb").inputs(),
                                c1={"r": gray, "g": gray, "b": gray, "a": 1.0}, c2={"r": a_star, "g": b_star})
        fusion_rgb = np.stack([fu["r"], fu["g"], fu["b"]], -1)
        assert np.abs(fusion_rgb - preview).max() <= 1 / 255
        # Nuke: the Read linearises the plate, the MergeExpression works in linear, the Write re-encodes sRGB
        linear = color.srgb_to_linear(gray.astype(np.float64))
        nk = eval_nuke_merge(recombine.nuke_expressions("linear").knobs(),
                             B={"r": linear, "g": linear, "b": linear}, A={"ab.a_star": a_star, "ab.b_star": b_star})
        nuke_rgb = color.linear_to_srgb(np.stack([nk["rgba.red"], nk["rgba.green"], nk["rgba.blue"]], -1))
        assert np.abs(nuke_rgb - preview).max() <= 1 / 255
