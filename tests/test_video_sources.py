"""Frame sources: sequences of every file type and bit depth, movies, and every bad-input case."""

from __future__ import annotations

import os

import av
import numpy as np
import OpenImageIO as oiio
import pytest

from coolcolor.errors import InputError
from coolcolor.video.sources import FrameReadError, open_source, parse_sequence_pattern


def write_image(path, pixels: np.ndarray, pixel_type: str, bits: int | None = None) -> None:
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels  # OIIO's Python binding needs H×W×C
    h, w, channels = pixels.shape
    spec = oiio.ImageSpec(w, h, channels, pixel_type)
    if bits:
        spec.attribute("oiio:BitsPerSample", bits)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), oiio.geterror()
    assert out.write_image(np.ascontiguousarray(pixels, np.float32))
    out.close()


def ramp(h=12, w=16, channels=3, offset=0.0):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = (x + y * w) / (h * w - 1)
    img = np.stack([base, base[::-1], 0.3 * base + 0.5 * offset], axis=-1)
    return img if channels == 3 else img[..., 0]


def write_sequence(folder, name, frames, ext="exr", pixel_type="half", size=(12, 16), bits=None, channels=3):
    for f in frames:
        write_image(folder / f"{name}.{f:04d}.{ext}", ramp(*size, channels=channels, offset=f / 10), pixel_type, bits)


def write_movie(path, frames=12, size=(48, 64), codec="libx264", pix_fmt="yuv420p", rate=24, options=None):
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=rate)
    stream.height, stream.width = size
    stream.pix_fmt = pix_fmt
    if options:
        stream.codec_context.options = options
    values = []
    for i in range(frames):
        v = 16 + 18 * i  # distinct flat gray per frame: frame identity survives compression
        values.append(v)
        image = np.full((*size, 3), v, np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return values


def test_pattern_forms():
    assert parse_sequence_pattern("/a/b/shot.%04d.exr") == ("/a/b/shot.", ".exr", 4)
    assert parse_sequence_pattern("/a/b/shot.####.dpx") == ("/a/b/shot.", ".dpx", 4)
    assert parse_sequence_pattern("shot_%d.png") == ("shot_", ".png", 0)
    assert parse_sequence_pattern("/a/b/shot.exr") is None
    with pytest.raises(InputError, match="more than one"):
        parse_sequence_pattern("shot.%04d.####.exr")


@pytest.mark.parametrize(
    ("ext", "pixel_type", "bits", "tol"),
    [
        ("exr", "half", None, 1e-3),
        ("exr", "float", None, 1e-7),
        ("png", "uint16", None, 1e-4),
        ("png", "uint8", None, 3e-3),
        ("tif", "uint16", None, 1e-4),
        ("tif", "float", None, 1e-7),
        ("dpx", "uint16", 10, 1e-3),
        ("jpg", "uint8", None, 0.01),  # lossy: mean error
    ],
)
def test_sequence_types_and_depths(tmp_path, ext, pixel_type, bits, tol):
    write_sequence(tmp_path, "plate", range(5, 9), ext, pixel_type, bits=bits)
    with open_source(str(tmp_path / f"plate.####.{ext}")) as src:
        assert (src.info.kind, src.info.first, src.info.last) == ("sequence", 5, 8)
        assert (src.info.width, src.info.height, src.info.channels) == (16, 12, 3)
        got = src.read(7)
    assert got.dtype == np.float32 and got.shape == (12, 16, 3)
    err = np.abs(got - ramp(offset=0.7))
    assert (err.mean() if ext == "jpg" else err.max()) <= tol


def test_gray_sequence_and_printf_pattern_with_range(tmp_path):
    write_sequence(tmp_path, "g", range(1, 11), "png", "uint16", channels=1)
    with open_source(str(tmp_path / "g.%04d.png"), first=3, last=6) as src:
        assert (src.info.first, src.info.last, src.info.channels) == (3, 6, 1)
        assert list(src.frames()) == [3, 4, 5, 6]
        got = src.read(4)
        assert got.shape == (12, 16, 1)
        assert np.abs(got[..., 0] - ramp(channels=1, offset=0.4)).max() < 1e-4
        with pytest.raises(InputError, match="outside 3-6"):
            src.read(7)


def test_gap_in_sequence_is_named(tmp_path):
    write_sequence(tmp_path, "p", [1, 2, 3, 6, 7, 9])
    with pytest.raises(InputError, match=r"gaps in the sequence .*p\.%04d\.exr: 4-5, 8 \(3 frames\)"):
        open_source(str(tmp_path / "p.####.exr"))


def test_missing_frames_in_requested_range(tmp_path):
    write_sequence(tmp_path, "p", range(1, 5))
    with pytest.raises(InputError, match=r"missing frames .*: 5-6 \(2 frames\)"):
        open_source(str(tmp_path / "p.####.exr"), first=1, last=6)


def test_no_matching_frames_and_missing_folder(tmp_path):
    with pytest.raises(InputError, match="no frames match"):
        open_source(str(tmp_path / "none.####.exr"))
    with pytest.raises(InputError, match="sequence folder not found"):
        open_source(str(tmp_path / "nope" / "a.####.exr"))
    with pytest.raises(InputError, match="source not found"):
        open_source(str(tmp_path / "clip.mov"))
    with pytest.raises(InputError, match="is a folder"):
        open_source(str(tmp_path))


def test_unreadable_frame_is_named_before_work(tmp_path):
    write_sequence(tmp_path, "p", range(1, 5))
    (tmp_path / "p.0003.exr").write_bytes(b"not an exr at all" * 8)
    with pytest.raises(InputError, match=r"cannot read image .*p\.0003\.exr"):
        open_source(str(tmp_path / "p.####.exr"))


def test_mismatched_sizes_are_named(tmp_path):
    write_sequence(tmp_path, "p", range(1, 4))
    write_image(tmp_path / "p.0004.exr", ramp(10, 16), "half")
    with pytest.raises(InputError, match=r"frame 4 is 16×10, frame 1 is 16×12"):
        open_source(str(tmp_path / "p.####.exr"))


def test_range_errors(tmp_path):
    write_sequence(tmp_path, "p", range(1, 4))
    with pytest.raises(InputError, match="first frame 3 is after last frame 2"):
        open_source(str(tmp_path / "p.####.exr"), first=3, last=2)
    write_image(tmp_path / "one.exr", ramp(), "half")
    with pytest.raises(InputError, match=r"frames 0-3 are out of range: .*one\.exr has frames 0-0"):
        open_source(str(tmp_path / "one.exr"), first=0, last=3)


def test_truncated_frame_fails_only_when_read(tmp_path):
    write_sequence(tmp_path, "p", range(1, 4), size=(64, 64))
    path = tmp_path / "p.0002.exr"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])  # header intact, pixels cut off
    with open_source(str(tmp_path / "p.####.exr")) as src:
        assert src.read(1).shape == (64, 64, 3)
        with pytest.raises(FrameReadError, match=r"^frame 2: .*p\.0002\.exr") as info:
            src.read(2)
        assert info.value.frame == 2
        got = dict(src.iter_frames())
    assert isinstance(got[2], FrameReadError) and got[3].shape == (64, 64, 3)


def test_single_image(tmp_path):
    write_image(tmp_path / "still.tif", ramp(), "uint16")
    with open_source(str(tmp_path / "still.tif")) as src:
        assert (src.info.kind, src.info.first, src.info.last) == ("image", 0, 0)
        assert np.abs(src.read(0) - ramp()).max() < 1e-4


def test_one_frame_of_a_sequence_keeps_its_frame_number_and_names_the_sequence(tmp_path):
    """Issue 27: ``plate.1001.exr`` given by name became frame 0 (``ab.0000.exr``)."""
    write_sequence(tmp_path, "plate", [*range(1001, 1006), 1008], size=(32, 32))
    with open_source(str(tmp_path / "plate.1003.exr")) as src:
        assert (src.info.kind, src.info.first, src.info.last) == ("image", 1003, 1003)
        assert src.read(1003).shape == (32, 32, 3) and list(src.frames()) == [1003]
        assert src.note == (f"plate.1003.exr is frame 1003 of the sequence {tmp_path}/plate.%04d.exr (frames "
                            "1001-1005, 1008): only this frame is colorized; give the pattern plate.%04d.exr for "
                            "the whole sequence")
    with pytest.raises(InputError, match=r"frames 0-0 are out of range: .*plate\.1003\.exr has frames 1003-1003"):
        open_source(str(tmp_path / "plate.1003.exr"), 0, 0)
    # Alone in its folder: the number is kept, no sequence is named.
    (tmp_path / "alone").mkdir()
    write_image(tmp_path / "alone" / "shot_0042.tif", ramp(), "uint16")
    with open_source(str(tmp_path / "alone" / "shot_0042.tif")) as src:
        assert (src.info.first, src.note) == (42, None)


# The codecs and wrappers a post house receives: H.264 in MP4, ProRes in MOV, DNxHR (8- and 10-bit) and
# MPEG-2 in MXF. DNxHR needs a frame size its profiles accept, hence 256×144.
MOVIES = [
    ("clip.mp4", "libx264", "yuv420p", None, (48, 64), 3.0),
    ("clip.mov", "prores_ks", "yuv422p10le", None, (48, 64), 1.0),
    ("dnxhr_hq.mxf", "dnxhd", "yuv422p", {"profile": "dnxhr_hq"}, (144, 256), 3.0),
    ("dnxhr_hqx.mxf", "dnxhd", "yuv422p10le", {"profile": "dnxhr_hqx"}, (144, 256), 3.0),
    ("mpeg2.mxf", "mpeg2video", "yuv422p", None, (48, 64), 3.0),
]


@pytest.mark.parametrize(("name", "codec", "pix_fmt", "options", "size", "tol"), MOVIES)
def test_movie_random_and_sequential_access(tmp_path, name, codec, pix_fmt, options, size, tol):
    values = write_movie(tmp_path / name, frames=12, size=size, codec=codec, pix_fmt=pix_fmt, options=options)
    height, width = size
    with open_source(str(tmp_path / name)) as src:
        assert (src.info.kind, src.info.first, src.info.last, src.info.fps) == ("movie", 0, 11, 24.0)
        assert (src.info.width, src.info.height, src.info.channels) == (width, height, 3)
        assert src.info.pixel_format == pix_fmt
        order = [0, 1, 2, 9, 3, 4, 11, 5]  # sequential runs and jumps both ways
        for f in order:
            got = src.read(f)
            assert got.shape == (height, width, 3)
            assert abs(float(got.mean()) * 255 - values[f]) <= tol, (f, got.mean() * 255, values[f])
    with open_source(str(tmp_path / name), first=4, last=7) as src:
        assert list(src.frames()) == [4, 5, 6, 7]
    with pytest.raises(InputError, match=r"frames 5-20 are out of range: .* has frames 0-11"):
        open_source(str(tmp_path / name), first=5, last=20)


def test_not_a_movie(tmp_path):
    (tmp_path / "broken.mov").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match=r"cannot open movie .*broken\.mov"):
        open_source(str(tmp_path / "broken.mov"))


def test_pattern_only_matches_its_padding(tmp_path):
    write_sequence(tmp_path, "p", range(1, 4))
    os.rename(tmp_path / "p.0002.exr", tmp_path / "p.2.exr")  # wrong padding: not part of the sequence
    with pytest.raises(InputError, match="gaps in the sequence .*: 2 "):
        open_source(str(tmp_path / "p.####.exr"))
