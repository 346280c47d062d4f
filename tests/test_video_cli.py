"""``coolcolor colorize``: the main job from the command line."""

from __future__ import annotations

import io
import json

import numpy as np
import OpenImageIO as oiio
import pytest

from coolcolor.video.cli import ProgressLine
from coolcolor.video.exr import read_ab_exr


def write_sequence(folder, frames=range(1, 5)):
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:40, 0:56].astype(np.float32)
    for f in frames:
        img = np.where(np.hypot(x - 15 - 2 * f, y - 20) < 9, 0.8, 0.2 + 0.5 * y / 40).astype(np.float32)
        out = oiio.ImageOutput.create(str(folder / f"shot.{f:04d}.png"))
        out.open(str(folder / f"shot.{f:04d}.png"), oiio.ImageSpec(56, 40, 1, "uint16"))
        out.write_image(img[..., None])
        out.close()
    return str(folder / "shot.%04d.png")


def test_colorize_sequence_then_resume(tmp_path, main, model_dir, capsys):
    source = write_sequence(tmp_path / "src", range(1, 7))
    out = tmp_path / "out"
    args = ["colorize", source, "--prompt", "a red ball", "--keyframe", "2", "--first", "2", "--last", "5",
            "--steps", "2", "--model", model_dir, "--preview", "-o", str(out), "--device", "cpu"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "4 frame(s) written, 0 already done, 0 failed" in captured.out
    assert "4/4 frames" in captured.err and "colorizing" in captured.err
    assert sorted(p.name for p in out.glob("ab.*.exr")) == [f"ab.{f:04d}.exr" for f in (2, 3, 4, 5)]
    assert len(list(out.glob("preview.*.png"))) == 4
    ab, header = read_ab_exr(str(out / "ab.0003.exr"))
    assert ab.shape == (40, 56, 2) and header["keyframe"] == 2 and header["prompt"] == "a red ball"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["job"]["keyframes"] == [2]

    assert main(args) == 0
    assert "0 frame(s) written, 4 already done" in capsys.readouterr().out


def test_one_frame_of_a_sequence_keeps_its_number_and_the_sequence_is_named(tmp_path, main, model_dir, capsys):
    """Issue 27: ``shot.0003.png`` became ``ab.0000.exr``; now ``ab.0003.exr``, with one line about the sequence."""
    write_sequence(tmp_path / "src", range(1, 7))
    out = tmp_path / "out"
    assert main(["colorize", str(tmp_path / "src" / "shot.0003.png"), "--prompt", "a red ball", "--steps", "1",
                 "--model", model_dir, "-o", str(out), "--device", "cpu"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "note" in line]
    assert notes == [f"coolcolor colorize: note: shot.0003.png is frame 3 of the sequence {tmp_path}/src/shot.%04d.png "
                     "(frames 1-6): only this frame is colorized; give the pattern shot.%04d.png for the whole sequence"]
    assert [p.name for p in out.glob("ab.*.exr")] == ["ab.0003.exr"]
    assert read_ab_exr(str(out / "ab.0003.exr"))[1]["frame"] == 3


def test_errors_are_one_line_and_exit_1(tmp_path, main, model_dir, capsys):
    out = tmp_path / "out"
    assert main(["colorize", str(tmp_path / "nothing.####.exr"), "-o", str(out), "--model", model_dir]) == 1
    err = capsys.readouterr().err
    assert err.startswith("coolcolor colorize: error: no frames match") and "Traceback" not in err
    source = write_sequence(tmp_path / "src")
    assert main(["colorize", source, "-o", str(out), "--model", str(tmp_path / "nomodel")]) == 1
    assert "model folder not found" in capsys.readouterr().err
    assert main(["colorize", source, "-o", str(out), "--model", model_dir, "--keyframe", "99"]) == 1
    assert "keyframe(s) 99 outside the frame range 1-4" in capsys.readouterr().err
    assert not list(out.glob("ab.*"))
    with pytest.raises(SystemExit):
        main(["colorize", source, "-o", str(out), "--keyframe", "1", "--auto-keyframe"])


def test_missing_default_model_is_named(tmp_path, main, monkeypatch, capsys):
    import coolcolor.default_model as default_model

    monkeypatch.setattr(default_model, "DEFAULT_MODEL_DIR", tmp_path / "not-installed")
    source = write_sequence(tmp_path / "src")
    assert main(["colorize", source, "-o", str(tmp_path / "out")]) == 1
    assert "the default model coolcolor-tiny is not installed" in capsys.readouterr().err


def test_main_job_on_the_default_model_and_a_world_sample_clip(tmp_path, main, capsys):
    """The README's main job: render a sample clip, colorize it with the embedded model."""
    from coolcolor import color
    from coolcolor.world import render_clip

    clip = render_clip(seed=3, frames=6, size=(96, 64))
    folder = tmp_path / "sample"
    folder.mkdir()
    for t, gray in enumerate(clip.gray):
        out = oiio.ImageOutput.create(str(folder / f"gray.{t + 1:04d}.png"))
        out.open(str(folder / f"gray.{t + 1:04d}.png"), oiio.ImageSpec(96, 64, 1, "uint16"))
        out.write_image(gray[..., None])
        out.close()
    out = tmp_path / "colorized"
    code = main(["colorize", str(folder / "gray.%04d.png"), "--prompt", clip.captions[0], "--steps", "4",
                 "--preview", "-o", str(out), "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert "6 frame(s) written" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    from coolcolor.model.resolve import resolve_model

    assert manifest["model"]["hash"] == resolve_model("default", device="cpu").hash
    ab, header = read_ab_exr(str(out / "ab.0004.exr"))
    assert ab.shape == (64, 96, 2) and header["prompt"] == clip.captions[0]
    # Recombined with the plate's own L*, every output pixel lies inside the sRGB gamut.
    gray16 = np.round(clip.gray[3] * 65535) / 65535
    lab = np.concatenate([color.gray_to_lightness(gray16)[..., None], ab], axis=-1)
    rgb = color.lab_to_rgb(lab)
    assert rgb.min() > -0.01 and rgb.max() < 1.01


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_line_shows_frames_steps_and_eta():
    stream = io.StringIO()
    clock = FakeClock()
    bar = ProgressLine(stream, clock=clock)
    bar.phase("colorize")
    clock.now = 2.0
    bar.progress(0, 10, 20, 20)
    clock.now = 4.0
    bar.progress(2, 10, 20, 20)
    clock.now = 10.0
    bar.progress(10, 10, 20, 20)
    bar.frame_failed(7, "frame 7: cannot decode")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "coolcolor colorize: colorizing…"
    assert "2/10 frames  step 20/20" in lines[2] and "ETA" in lines[2] and "0.50 frames/s" in lines[2]
    assert lines[3].startswith("[########################] 10/10 frames") and "done in 00:10" in lines[3]
    assert lines[4] == "coolcolor colorize: error: frame 7: cannot decode"


def test_the_eta_counts_measured_diffusion_steps_and_says_estimating_before_the_first():
    """Issue 27: "ETA 04:15" for a 23-s job. Frames are announced a window late (after their files are
    written), so a rate of frames overestimated the rest many times; each step is measured instead."""
    stream = io.StringIO()
    stream.isatty = lambda: True  # every call redraws the line
    clock = FakeClock()
    bar = ProgressLine(stream, window=2, clock=clock)  # 6 frames, 2 per window: 3 windows of 4 steps
    bar.phase("colorize")
    bar.progress(0, 6, 0, 4)
    assert stream.getvalue().endswith("0/6 frames  step 0/4  ETA estimating…")
    seen = []
    for window in range(3):
        for step in range(1, 5):
            clock.now += 1.0  # one second per step
            bar.progress(2 * max(0, window - 1), 6, step, 4)  # the previous window's frames come a window late
            seen.append(stream.getvalue().rsplit("\r", 1)[-1].strip())
        if window:
            for done in (2 * window - 1, 2 * window):
                bar.progress(done, 6, 4, 4)
    assert seen[0].endswith("step 1/4  ETA 00:11")  # 12 steps of 1 s, one done
    assert seen[5].endswith("0/6 frames  step 2/4  ETA 00:06")  # no frame announced yet, the ETA is right
    etas = [int(line[-2:]) for line in seen]
    assert etas == [12 - n for n in range(1, 13)]  # the true time left, at every step
