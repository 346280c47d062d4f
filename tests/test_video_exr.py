"""The ab layer file: half float, two channels of one layer, names Nuke keeps, provenance, atomic."""

from __future__ import annotations

import os

import numpy as np
import OpenEXR
import pytest

from coolcolor.errors import InputError
from coolcolor.video.exr import AB_CHANNELS, read_ab_exr, read_ab_header, write_ab_exr, write_preview_png


def nuke_channel_name(exr_name: str) -> str:
    """Nuke's EXR reader rule (NDK example ExrChannelNameToNuke.cpp, setFromPrefixedExrName), no views."""
    parts = []
    for part in exr_name.split("."):
        part = part.lstrip("0123456789")
        if part:
            parts.append("".join(c if c.isalnum() else "_" for c in part))
    layer, chan = "_".join(parts[:-1]), parts[-1]
    renames = {"red": ("R", "r", "Red", "RED"), "green": ("G", "g", "Green", "GREEN"),
               "blue": ("B", "b", "Blue", "BLUE"), "alpha": ("A", "a", "Alpha", "ALPHA")}
    for nuke, names in renames.items():
        if chan in names:
            chan = nuke
    if layer == "Ci":
        layer = ""
    return f"{layer}.{chan}" if layer else chan


def test_nuke_rule_as_documented():
    # the trap the channel names avoid: ab.a / ab.b would arrive as alpha / blue
    assert nuke_channel_name("ab.a") == "ab.alpha" and nuke_channel_name("ab.b") == "ab.blue"
    assert nuke_channel_name("diffuse.R") == "diffuse.red"


def test_ab_channel_names_survive_nukes_reader():
    assert [nuke_channel_name(c) for c in AB_CHANNELS] == list(AB_CHANNELS)
    assert {c.split(".")[0] for c in AB_CHANNELS} == {"ab"}  # one layer


def test_write_read_roundtrip_half_with_provenance(tmp_path):
    rng = np.random.default_rng(0)
    ab = (rng.random((20, 30, 2)) * 200 - 100).astype(np.float32)
    path = tmp_path / "ab.0007.exr"
    prov = {"prompt": "a red car, 1950s street", "keyframes": [3, 40], "seed": 7, "model_hash": "ab" * 32,
            "encoding": "rec709", "frame": 7, "guidance_scale": 5.0}
    write_ab_exr(str(path), ab, prov)
    assert sorted(os.listdir(tmp_path)) == ["ab.0007.exr"]  # no temporary left behind

    # read with the OpenEXR library itself, independently of the writer
    f = OpenEXR.File(str(path))
    channels = f.channels()
    assert sorted(channels) == sorted(AB_CHANNELS)
    for name, index in zip(AB_CHANNELS, (0, 1), strict=True):
        pixels = channels[name].pixels
        assert pixels.dtype == np.float16 and pixels.shape == (20, 30)
        assert np.abs(pixels.astype(np.float32) - ab[..., index]).max() <= 0.05  # half: 11-bit mantissa
    header = f.header()
    assert header["coolcolor:prompt"] == "a red car, 1950s street"
    assert header["coolcolor:model_hash"] == "ab" * 32
    assert header["coolcolor:seed"] == 7

    got, meta = read_ab_exr(str(path))
    assert np.abs(got - ab).max() <= 0.05
    assert meta["keyframes"] == "[3, 40]" and meta["encoding"] == "rec709" and meta["frame"] == 7
    assert read_ab_header(str(path))["prompt"] == prov["prompt"]


def test_bad_shapes_and_foreign_files(tmp_path):
    with pytest.raises(InputError, match=r"ab must be H×W×2"):
        write_ab_exr(str(tmp_path / "x.exr"), np.zeros((4, 4, 3), np.float32), {})
    write_preview_png(str(tmp_path / "p.png"), np.zeros((4, 5, 3), np.float32))
    assert read_ab_header(str(tmp_path / "p.png")) is None
    (tmp_path / "junk.exr").write_bytes(b"junk")
    assert read_ab_header(str(tmp_path / "junk.exr")) is None
    with pytest.raises(InputError, match="not an ab layer file"):
        read_ab_exr(str(tmp_path / "p.png"))


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import OpenImageIO as oiio

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(oiio.ImageOutput, "create", broken)
    with pytest.raises(OSError, match="disk full"):
        write_ab_exr(str(tmp_path / "ab.0001.exr"), np.zeros((4, 4, 2), np.float32), {})
    assert os.listdir(tmp_path) == []
