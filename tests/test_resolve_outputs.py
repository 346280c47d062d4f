"""The engine's Resolve outputs: the Loader sidecar (R = a*, G = b*, B = 0) and the RGB plate fallback
(the plate's L* + ab, in the job's encoding), switched on by the job's resolve_sidecar / rgb_plate."""

from __future__ import annotations

import os

import numpy as np
import OpenImageIO as oiio
import pytest
from test_video_job import one_shot_sequence

from coolcolor import color
from coolcolor.errors import InputError
from coolcolor.video.encoding import InputDecoder
from coolcolor.video.exr import read_ab_exr, srgb_to_encoding
from coolcolor.video.job import ColorizeJob
from coolcolor.video.run import run_colorize_job


def read_rgb(path: str) -> tuple[np.ndarray, list[str], str]:
    inp = oiio.ImageInput.open(path)
    assert inp is not None, oiio.geterror()
    spec = inp.spec()
    pixels = inp.read_image(0, 0, 0, spec.nchannels, oiio.FLOAT)
    fmt = str(spec.format)
    names = list(spec.channelnames)
    inp.close()
    return np.asarray(pixels, np.float32).reshape(spec.height, spec.width, spec.nchannels), names, fmt


@pytest.mark.parametrize("encoding", ["srgb", "rec709", "linear"])
def test_srgb_to_encoding_inverts_the_input_decoder(encoding):
    srgb = np.linspace(0, 1, 33, dtype=np.float32).reshape(1, 11, 3)
    back = InputDecoder(encoding).to_srgb(srgb_to_encoding(srgb, encoding))
    assert np.abs(back - srgb).max() < 1e-5


def test_rgb_plate_refuses_an_ocio_encoding():
    with pytest.raises(InputError, match="rgb_plate"):
        ColorizeJob("x.%04d.exr", "out", encoding="ACEScg", ocio_config="c.ocio", rgb_plate=True).validate()


@pytest.mark.parametrize("encoding", ["srgb", "linear"])
def test_job_writes_sidecar_and_plate(tmp_path, tiny_pipe, encoding):
    src = one_shot_sequence(tmp_path / "src", frames=range(1, 4))
    out = str(tmp_path / "out")
    job = ColorizeJob(src, out, prompt="a red ball", keyframes=[2], steps=2, encoding=encoding,
                      resolve_sidecar=True, rgb_plate=True)
    result = run_colorize_job(job, tiny_pipe)
    assert result.frames_written == [1, 2, 3]
    assert not os.path.exists(os.path.join(out, "preview.0001.png"))  # plate asked, preview not
    for f in (1, 2, 3):
        ab, header = read_ab_exr(os.path.join(out, f"ab.{f:04d}.exr"))
        side, names, fmt = read_rgb(os.path.join(out, f"ab_rg.{f:04d}.exr"))
        assert names == ["R", "G", "B"] and fmt == "half"
        assert np.array_equal(side[..., :2], ab) and np.all(side[..., 2] == 0)
        plate, names, fmt = read_rgb(os.path.join(out, f"rgb.{f:04d}.exr"))
        assert names == ["R", "G", "B"] and fmt == "half"
        # decoding the plate with the job's encoding gives back the source's L* and the layer's a*, b*
        src_pixels = read_rgb(src.replace("####", f"{f:04d}"))[0]
        gray = InputDecoder(encoding).to_gray(src_pixels)
        lab = color.rgb_to_lab(InputDecoder(encoding).to_srgb(plate))
        assert np.abs(lab[..., 0] - color.gray_to_lightness(gray)).max() < 0.6  # half-float plate
        assert np.abs(lab[..., 1:] - ab).max() < 1.5


def test_rerun_without_sidecar_files_redoes_them(tmp_path, tiny_pipe):
    src = one_shot_sequence(tmp_path / "src", frames=range(1, 3))
    out = str(tmp_path / "out")
    run_colorize_job(ColorizeJob(src, out, keyframes=[1], steps=2), tiny_pipe)
    assert not os.path.exists(os.path.join(out, "ab_rg.0001.exr"))
    again = run_colorize_job(ColorizeJob(src, out, keyframes=[1], steps=2, resolve_sidecar=True), tiny_pipe)
    assert again.frames_written == [1, 2] and os.path.exists(os.path.join(out, "ab_rg.0002.exr"))
    cached = run_colorize_job(ColorizeJob(src, out, keyframes=[1], steps=2, resolve_sidecar=True), tiny_pipe)
    assert cached.frames_written == [] and cached.frames_skipped == [1, 2]
