"""Reference images through the job (issue 25): ``--reference`` on the CLI, the files' provenance and the
manifest, the job key by content, and every bad reference refused in one line before anything is written."""

from __future__ import annotations

import argparse
import json
import os
import shutil

import numpy as np
import OpenImageIO as oiio
import pytest

from coolcolor import color
from coolcolor.errors import InputError
from coolcolor.job_args import add_job_arguments, job_from_args
from coolcolor.references import file_sha256
from coolcolor.video.exr import read_ab_exr
from coolcolor.video.job import ColorizeJob, job_key
from coolcolor.video.run import run_colorize_job

H, W = 40, 56


def _plate(f: int) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    return np.where(np.hypot(x - 15 - 2 * f, y - 20) < 9, 0.8, 0.2 + 0.5 * y / H).astype(np.float32)


def _write(path, img: np.ndarray, fmt: str = "uint8") -> str:
    img = img[..., None] if img.ndim == 2 else img
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), oiio.ImageSpec(img.shape[1], img.shape[0], img.shape[2], fmt))
    out.write_image(np.ascontiguousarray(img, np.float32))
    out.close()
    return str(path)


def _sequence(folder, frames=range(1, 7)) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for f in frames:
        _write(folder / f"shot.{f:04d}.png", _plate(f), "uint16")
    return str(folder / "shot.%04d.png")


def _graded(f: int, tint=(1.0, 0.6, 0.3)) -> np.ndarray:
    return np.clip(np.stack([_plate(f) * c for c in tint], -1), 0, 1)


def _decoded(path: str) -> np.ndarray:
    inp = oiio.ImageInput.open(path)
    pixels = np.asarray(inp.read_image(0, 0, 0, 3, oiio.FLOAT), np.float32)
    inp.close()
    return pixels


def test_colorize_with_a_graded_frame_and_an_exemplar(tmp_path, main, model_dir, capsys):
    source = _sequence(tmp_path / "src")
    graded = _write(tmp_path / "sh010.0003.png", _graded(3))
    still = _write(tmp_path / "still.jpg", _graded(1, (0.3, 0.6, 1.0))[::2, ::2])
    out = tmp_path / "out"
    args = ["colorize", source, "--prompt", "a red ball", "--reference", f"3={graded}", "--reference", still,
            "--steps", "2", "--model", model_dir, "-o", str(out), "--device", "cpu"]
    assert main(args) == 0
    assert "6 frame(s) written" in capsys.readouterr().out
    ab, header = read_ab_exr(str(out / "ab.0003.exr"))
    expected = color.rgb_to_lab(_decoded(graded))[..., 1:]
    assert np.abs(ab - expected).max() < 0.07  # the artist's frame, to half-float precision
    recorded = [{"frame": 3, "path": graded, "sha256": file_sha256(graded)},
                {"frame": None, "path": still, "sha256": file_sha256(still)}]
    assert json.loads(header["references"]) == recorded
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["references"] == recorded and manifest["job"]["references"][0] == {"frame": 3, "path": graded}
    assert [s["keyframe_source"] for s in manifest["shots"]] == ["reference"]
    other, _ = read_ab_exr(str(out / "ab.0005.exr"))
    assert np.abs(other - ab).max() > 1  # other frames are colorized, not copies

    # the fast loop: only the referenced frame, written at once from the reference
    quick = tmp_path / "quick"
    assert main([*args[:-4], "-o", str(quick), "--device", "cpu", "--keyframes-only"]) == 0
    assert sorted(p.name for p in quick.glob("ab.*.exr")) == ["ab.0003.exr"]
    assert np.abs(read_ab_exr(str(quick / "ab.0003.exr"))[0] - expected).max() < 0.07


class NoWork:
    model_hash = "f" * 64
    resolution = 64
    device = "cpu"

    def model_size(self, h, w):
        return (h, w)

    def __call__(self, *args, **kwargs):
        raise AssertionError("the pipeline must not run for bad input")


def test_each_bad_reference_is_one_line_and_nothing_is_written(tmp_path):
    source = _sequence(tmp_path / "src")
    out = tmp_path / "out"
    good = _write(tmp_path / "good.png", _graded(2))
    gray = _write(tmp_path / "gray.png", np.repeat(_plate(2)[..., None], 3, -1))
    small = _write(tmp_path / "small.png", _graded(2)[::2, ::2])
    single = _write(tmp_path / "single.png", _plate(2))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")

    def check(match, references, **changes):
        fields = {"source": source, "output_dir": str(out), "steps": 1, "references": references} | changes
        with pytest.raises(InputError, match=match) as info:
            run_colorize_job(ColorizeJob(**fields), NoWork())
        assert "\n" not in str(info.value)
        assert not out.exists() or not any(out.iterdir())

    check(r"reference .*missing.png not found", [{"frame": 2, "path": str(tmp_path / "missing.png")}])
    check(r"reference .*broken.png cannot be read", [{"frame": 2, "path": str(broken)}])
    check(r"reference .*gray.png is gray \(chroma 0.0 < 4\): a reference must be a colour image",
          [{"frame": 2, "path": gray}])
    check(r"reference .*single.png has 1 channel\(s\): a reference must be a colour image",
          [{"frame": None, "path": single}])
    check(r"reference .*small.png for frame 2 is 28×20, the plate is 56×40", [{"frame": 2, "path": small}])
    check(r"reference .*good.png is for frame 9, outside the frames to colorize \(1-6\)",
          [{"frame": 9, "path": good}])
    check(r"job.references\[0\]: frame 9 is outside the frame range 1..6", [{"frame": 9, "path": good}],
          first=1, last=6)
    check(r"job.references\[1\]: a second reference for frame 2", [{"frame": 2, "path": good}] * 2)
    # an exemplar of another size is fine: the same job with it gets past every check
    ColorizeJob(source=source, output_dir=str(out), references=[{"frame": None, "path": small}]).validate()


def test_the_job_key_follows_the_references_content_not_their_path(tmp_path):
    source = _sequence(tmp_path / "src", range(1, 4))
    ref = _write(tmp_path / "a.png", _graded(2))

    def key(references):
        return job_key(ColorizeJob(source=source, output_dir=str(tmp_path / "o"), references=references), 1, 3, "m")

    plain = key([])
    first = key([{"frame": 2, "path": ref}])
    moved = str(tmp_path / "elsewhere.png")
    shutil.copy(ref, moved)
    assert key([{"frame": 2, "path": moved}]) == first != plain
    assert key([{"frame": None, "path": ref}]) != first  # as an exemplar it is another job
    _write(ref, _graded(2, (0.2, 0.9, 0.4)))  # the artist re-grades the frame
    assert key([{"frame": 2, "path": ref}]) != first


def test_reference_flags_are_shared_by_colorize_and_submit(tmp_path, monkeypatch):
    parser = argparse.ArgumentParser()
    add_job_arguments(parser)
    monkeypatch.chdir(tmp_path)
    args = parser.parse_args(["in.%04d.png", "-o", "out", "--reference", "1040=graded/sh010.1040.png",
                              "--reference", "still.jpg"])
    spec = job_from_args(args, absolute_paths=True)
    assert spec.references == [{"frame": 1040, "path": os.path.join(str(tmp_path), "graded/sh010.1040.png")},
                               {"frame": None, "path": os.path.join(str(tmp_path), "still.jpg")}]
    assert job_from_args(args).references[0] == {"frame": 1040, "path": "graded/sh010.1040.png"}


def test_the_daemon_refuses_a_bad_reference_before_journaling(tmp_path):
    from coolcolor.daemon.validation import check_job
    from coolcolor_protocol import ProtocolError

    source = _sequence(tmp_path / "src", range(1, 4))
    job = {"source": source, "output_dir": str(tmp_path / "out")}
    with pytest.raises(ProtocolError, match=r"job.references\[0\] not found: .*nope.png"):
        check_job(dict(job, references=[{"frame": 2, "path": str(tmp_path / "nope.png")}]), [])
    gray = _write(tmp_path / "gray.png", np.repeat(_plate(2)[..., None], 3, -1))
    with pytest.raises(ProtocolError, match=r"job: reference .*gray.png is gray"):
        check_job(dict(job, references=[{"frame": 2, "path": gray}]), [])
    ref = _write(tmp_path / "ref.png", _graded(2))
    checked = check_job(dict(job, references=[{"frame": 2, "path": ref}]), [])
    assert checked.spec["references"] == [{"frame": 2, "path": ref}]
    before = checked.with_model("m", []).cache_key()
    # the checked job keeps each reference's content hash, in the job's (normalized) order: its job key is the
    # one the engine makes by hashing the files (an exemplar given first is sorted after the frame reference)
    from coolcolor.video.job import ColorizeJob, job_key

    still = _write(tmp_path / "still.png", _graded(3, (0.8, 0.3, 0.2)))
    both = check_job(dict(job, references=[{"frame": None, "path": still}, {"frame": 2, "path": ref}]), [])
    assert [r["path"] for r in both.spec["references"]] == [ref, still]
    assert both.with_model("m", []).job_key() == job_key(ColorizeJob.from_dict(both.spec), 1, 3, "m",
                                                         both.source_identity)
    _write(ref, _graded(2, (0.2, 0.9, 0.4)))
    assert check_job(dict(job, references=[{"frame": 2, "path": ref}]), []).with_model("m", []).cache_key() != before
